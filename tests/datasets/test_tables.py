"""read_table and validate_table: every bad input gets its own stable error code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.datasets import DatasetError, TableSummary, read_table, validate_table


def _code(excinfo: pytest.ExceptionInfo[DatasetError]) -> str:
    return excinfo.value.code


# ---------------------------------------------------------------------------------------------- read_table


def test_reads_csv_and_parquet_alike(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "label": [0, 1, 0]})
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv = read_table(tmp_path / "t.csv")
    from_parquet = read_table(tmp_path / "t.parquet")
    assert list(from_csv.columns) == list(from_parquet.columns) == ["a", "b", "label"]
    assert from_csv["a"].tolist() == from_parquet["a"].tolist() == [1, 2, 3]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes("\ufeffname,label\nÄrger,1\nb,0\n".encode())
    assert list(read_table(tmp_path / "t.csv").columns) == ["name", "label"]


def test_uploaded_filename_decides_the_format(tmp_path: Path) -> None:
    stored = tmp_path / "upload-1234"  # the service stores uploads under an id, without extension
    pd.DataFrame({"a": [1], "label": [0]}).to_parquet(stored, index=False)
    assert read_table(stored, filename="mine.PQ")["a"].tolist() == [1]


@pytest.mark.parametrize("name", ["data.xlsx", "data.json", "data", "data.csv.gz"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / name)
    assert _code(excinfo) == "unsupported_file_type"


def test_garbage_bytes_in_csv(tmp_path: Path) -> None:
    (tmp_path / "g.csv").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "g.csv")
    assert _code(excinfo) == "unreadable_file"


def test_non_utf8_text(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes("name,label\nM\u00fcller,1\nb,0\n".encode("latin-1"))
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "l.csv")
    assert _code(excinfo) == "invalid_encoding"
    assert "line 2" in excinfo.value.message
    assert "ller" not in excinfo.value.message  # never the data


@pytest.mark.parametrize("content", [b"", b"   \n\n", b"a,b,label\n"])
def test_empty_file_or_no_rows(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "e.csv").write_bytes(content)
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "e.csv")
    assert _code(excinfo) == "empty_table"


def test_parquet_without_rows(tmp_path: Path) -> None:
    pd.DataFrame({"a": pd.Series([], dtype=float), "label": pd.Series([], dtype=int)}).to_parquet(tmp_path / "e.pq")
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "e.pq")
    assert _code(excinfo) == "empty_table"


def test_ragged_csv(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "r.csv")
    assert _code(excinfo) == "unreadable_file"


def test_corrupted_parquet(tmp_path: Path) -> None:
    pd.DataFrame({"a": range(100), "label": [0, 1] * 50}).to_parquet(tmp_path / "ok.parquet")
    data = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.parquet").write_text("a,b\n1,2\n")
    for name in ("cut.parquet", "text.parquet"):
        with pytest.raises(DatasetError) as excinfo:
            read_table(tmp_path / name)
        assert _code(excinfo) == "unreadable_file", name


def test_duplicate_columns_in_csv(tmp_path: Path) -> None:
    # pandas would silently rename the second 'a' to 'a.1'
    (tmp_path / "d.csv").write_text("a,b,a,label\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "d.csv")
    assert _code(excinfo) == "duplicate_columns"
    assert excinfo.value.details["columns"] == ["a"]


def test_duplicate_columns_in_parquet(tmp_path: Path) -> None:
    table = pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["a", "a"])
    pq.write_table(table, tmp_path / "d.parquet")
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / "d.parquet")
    assert _code(excinfo) == "duplicate_columns"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        read_table(tmp_path / os.sep.join(["nope", "t.csv"]))
    assert _code(excinfo) == "unreadable_file"


# ---------------------------------------------------------------------------------------------- validate_table


def test_summary_counts_classes_by_text() -> None:
    df = pd.DataFrame({"f": range(6), "label": ["yes", "no", "yes", "maybe", "yes", "no"]})
    summary = validate_table(df, "label")
    assert isinstance(summary, TableSummary)
    assert summary.rows == 6
    assert summary.columns == ["f", "label"]
    assert summary.class_counts == {"maybe": 1, "no": 2, "yes": 3}


def test_whole_number_float_labels_read_as_ints() -> None:
    summary = validate_table(pd.DataFrame({"f": [1, 2, 3], "label": [0.0, 1.0, 1.0]}), "label")
    assert summary.class_counts == {"0": 1, "1": 2}


def test_missing_label_column(tabular: pd.DataFrame) -> None:
    with pytest.raises(DatasetError) as excinfo:
        validate_table(tabular, "outcome")
    assert _code(excinfo) == "missing_label"
    assert "outcome" in excinfo.value.message


def test_single_class(tabular: pd.DataFrame) -> None:
    with pytest.raises(DatasetError) as excinfo:
        validate_table(tabular.assign(y=1), "y")
    assert _code(excinfo) == "single_class"


def test_missing_label_values(tabular: pd.DataFrame) -> None:
    df = tabular.astype({"y": float})
    df.loc[[4, 9], "y"] = np.nan
    with pytest.raises(DatasetError) as excinfo:
        validate_table(df, "y")
    assert _code(excinfo) == "missing_labels"
    assert excinfo.value.details == {"column": "y", "count": 2, "row": 5}


def test_missing_smiles_column(tabular: pd.DataFrame) -> None:
    with pytest.raises(DatasetError) as excinfo:
        validate_table(tabular, "y", smiles_column="smiles")
    assert _code(excinfo) == "missing_smiles_column"


def test_numeric_column_with_text_names_column_and_row_not_value(tabular: pd.DataFrame) -> None:
    df = tabular.astype({"z": object})
    df.loc[17, "z"] = "abc-secret"
    with pytest.raises(DatasetError) as excinfo:
        validate_table(df, "y")
    assert _code(excinfo) == "non_numeric_values"
    assert "'z'" in excinfo.value.message and "row 18" in excinfo.value.message
    assert "secret" not in excinfo.value.message and "secret" not in str(excinfo.value.details)


def test_numbers_stored_as_text_are_fine(tabular: pd.DataFrame) -> None:
    df = tabular.assign(z=tabular["z"].map(lambda v: f" {v:.3f}"))
    assert validate_table(df, "y").rows == len(df)


def test_too_many_categories(tabular: pd.DataFrame) -> None:
    df = tabular.assign(patient_id=[f"p{i}" for i in range(len(tabular))])
    with pytest.raises(DatasetError) as excinfo:
        validate_table(df, "y")
    assert _code(excinfo) == "too_many_categories"
    assert excinfo.value.details["column"] == "patient_id"
    assert validate_table(df, "y", max_categories=len(df)).rows == len(df)


def test_smiles_table_checks_no_other_columns() -> None:
    # the features are the fingerprints: neither the SMILES nor an identifier column is a category
    df = pd.DataFrame(
        {"smiles": ["C" * (i + 1) for i in range(150)], "id": [f"c{i}" for i in range(150)], "label": [0, 1] * 75}
    )
    assert validate_table(df, "label", smiles_column="smiles").rows == 150
    with pytest.raises(DatasetError):
        validate_table(df.drop(columns="smiles"), "label")


def test_continuous_label_is_not_a_class_label() -> None:
    df = pd.DataFrame({"f": range(300), "label": np.linspace(0, 1, 300)})
    with pytest.raises(DatasetError) as excinfo:
        validate_table(df, "label")
    assert _code(excinfo) == "too_many_classes"


def test_nested_parquet_columns_are_named(tmp_path: Path) -> None:
    table = pa.table(
        {"y": [0, 1, 0, 1], "point": [{"a": 1}, {"a": 2}, {"a": 3}, {"a": 4}], "x": [1.0, 2.0, 3.0, 4.0]}
    )
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    with pytest.raises(DatasetError) as excinfo:
        read_table(path)
    assert excinfo.value.code == "unsupported_column_type" and excinfo.value.details["columns"] == ["point"]


def test_infinite_labels_are_rejected_with_their_row() -> None:
    frame = pd.DataFrame({"y": [0.0, 1.0, np.inf, 1.0], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DatasetError) as excinfo:
        validate_table(frame, "y")
    assert excinfo.value.code == "non_finite_labels" and excinfo.value.details["row"] == 3


def test_features_without_one_finite_value_are_rejected() -> None:
    frame = pd.DataFrame({"y": [0, 1, 0, 1], "a": [np.nan, np.inf, -np.inf, np.nan], "b": [None] * 4})
    with pytest.raises(DatasetError) as excinfo:
        validate_table(frame, "y")
    assert excinfo.value.code == "no_usable_features"
    frame["c"] = [np.nan, 1.0, np.nan, np.nan]
    assert validate_table(frame, "y").rows == 4
