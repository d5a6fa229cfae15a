"""check_splittable refuses exactly the tables no split can use: at its minimum a column split works, one row
fewer (or one minority row fewer) and no split can; with SMILES only parsing rows count."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.datasets.errors import DatasetError
from app.datasets.features import check_splittable
from app.datasets.splits import MIN_ROWS_OUTSIDE_MAJORITY, MIN_TABLE_ROWS, ColumnSplit, RandomSplit, assign_split
from app.datasets.tables import label_classes


def _table(rows: int, minority: int) -> pd.DataFrame:
    """`rows` rows in members, holdout, validation, test turn by turn; the first `minority` rows of class 1."""
    parts = ["members", "holdout", "validation", "test"]
    return pd.DataFrame(
        {
            "x": np.arange(rows, dtype=float),
            "split": [parts[i % 4] for i in range(rows)],
            "y": [1 if i < minority else 0 for i in range(rows)],
        }
    )


def test_the_minimum_table_can_be_split() -> None:
    assert (MIN_TABLE_ROWS, MIN_ROWS_OUTSIDE_MAJORITY) == (40, 4)
    table = _table(MIN_TABLE_ROWS, MIN_ROWS_OUTSIDE_MAJORITY)
    check_splittable(table, "y")
    assignment = assign_split(table, ColumnSplit(column="split"), label_classes(table["y"])[1])  # check_parts
    assert np.bincount(assignment.part).tolist() == [10, 10, 10, 10]


@pytest.mark.parametrize(
    ("rows", "minority", "code"),
    [
        (MIN_TABLE_ROWS - 1, 10, "too_few_rows"),
        (500, MIN_ROWS_OUTSIDE_MAJORITY - 1, "too_few_minority_rows"),
    ],
)
def test_one_short_is_refused_and_no_split_works(rows: int, minority: int, code: str) -> None:
    table = _table(rows, minority)
    with pytest.raises(DatasetError) as refused:
        check_splittable(table, "y")
    assert refused.value.code == code
    labels = label_classes(table["y"])[1]
    for split in (ColumnSplit(column="split"), RandomSplit()):
        with pytest.raises(DatasetError) as failed:
            assign_split(table, split, labels)
        assert failed.value.code == "split_too_small"


def test_only_rows_whose_smiles_parse_count() -> None:
    smiles = ["CCO" if i < 45 else "not a molecule" for i in range(100)]
    table = pd.DataFrame({"smiles": smiles, "y": [i % 2 for i in range(100)]})
    check_splittable(table, "y", "smiles")
    table.loc[5:, "smiles"] = "C1CC"  # 5 parse
    with pytest.raises(DatasetError) as few:
        check_splittable(table, "y", "smiles")
    assert few.value.code == "too_few_rows" and few.value.details == {"rows": 5, "min_rows": 40}
    assert "valid SMILES in 'smiles'" in few.value.message
    table["smiles"] = None
    with pytest.raises(DatasetError) as none:
        check_splittable(table, "y", "smiles")
    assert none.value.code == "no_valid_smiles"
