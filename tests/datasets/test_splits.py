"""Split specs, the CLI option, and the assignment each spec computes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

from app.datasets import (
    ButinaSplit,
    ColumnSplit,
    DatasetError,
    KMeansSplit,
    RandomSplit,
    SplitSpec,
    parse_split_option,
)
from app.datasets.splits import MEMBERS, NONMEMBERS, TEST, assign_split, encode_for_clustering
from app.datasets.tables import label_classes


def _labels(df: pd.DataFrame, column: str = "y") -> np.ndarray:
    return label_classes(df[column])[1]


# ---------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("random", RandomSplit()),
        ("butina", ButinaSplit()),
        ("kmeans:gender,race", KMeansSplit(columns=["gender", "race"])),
        (" kmeans: gender , race ", KMeansSplit(columns=["gender", "race"])),
        ("column:fold", ColumnSplit(column="fold")),
    ],
)
def test_parse_split_option(text: str, expected: SplitSpec) -> None:
    assert parse_split_option(text) == expected


@pytest.mark.parametrize(
    "text", ["", "kmeans", "kmeans:", "column", "random:0.5", "butina:x", "stratified", "kmeans:a,a"]
)
def test_parse_split_option_rejects(text: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        parse_split_option(text)
    assert excinfo.value.code == "invalid_split_option"


def test_split_spec_is_a_discriminated_union() -> None:
    adapter = TypeAdapter(SplitSpec)
    spec = adapter.validate_python({"kind": "kmeans", "columns": ["a"], "test_fraction": 0.3})
    assert isinstance(spec, KMeansSplit) and spec.test_fraction == 0.3
    assert adapter.validate_json(adapter.dump_json(ButinaSplit(cutoff=0.6))) == ButinaSplit(cutoff=0.6)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "random", "members": 0.5, "test": 0.3, "nonmembers": 0.3})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "random", "members": 0.0, "test": 0.5, "nonmembers": 0.5})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "bogus"})


# ---------------------------------------------------------------------------------------------- random


def test_random_split_is_stratified_and_seeded(tabular: pd.DataFrame) -> None:
    labels = _labels(tabular)
    parts = assign_split(tabular, RandomSplit(members=0.6, test=0.2, nonmembers=0.2), labels, seed=3).part
    assert np.bincount(parts).tolist() == pytest.approx([120, 40, 40], abs=2)
    overall = labels.mean()
    for code in (MEMBERS, TEST, NONMEMBERS):
        assert labels[parts == code].mean() == pytest.approx(overall, abs=0.03)
    again = assign_split(tabular, RandomSplit(members=0.6, test=0.2, nonmembers=0.2), labels, seed=3).part
    other = assign_split(tabular, RandomSplit(members=0.6, test=0.2, nonmembers=0.2), labels, seed=4).part
    assert np.array_equal(parts, again) and not np.array_equal(parts, other)


def test_too_small_split() -> None:
    df = pd.DataFrame({"x": range(30), "y": [0, 1] * 15})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, RandomSplit(members=0.8, test=0.1, nonmembers=0.1), _labels(df))
    assert excinfo.value.code == "split_too_small"
    assert excinfo.value.details["rows"] < 10


def test_single_class_part_is_too_small() -> None:
    fold = ["members"] * 20 + ["test"] * 10 + ["nonmembers"] * 10
    df = pd.DataFrame({"x": range(40), "y": [1] + [0] * 39, "fold": fold})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, ColumnSplit(column="fold"), _labels(df))
    assert excinfo.value.code == "split_too_small"
    assert excinfo.value.details["part"] == "test"


# ---------------------------------------------------------------------------------------------- k-means


def _two_groups(seed: int = 0) -> pd.DataFrame:
    """A big group (city A, high income) of 140 and a small one (city B, low income) of 60."""
    rng = np.random.default_rng(seed)
    big = pd.DataFrame({"city": "A", "income": rng.normal(100, 5, 140), "sex": rng.choice(["F", "M"], 140)})
    small = pd.DataFrame({"city": "B", "income": rng.normal(40, 5, 60), "sex": rng.choice(["F", "M"], 60)})
    df = pd.concat([small, big], ignore_index=True)  # small first: the larger cluster must still be cluster 0
    df["y"] = rng.integers(0, 2, len(df))
    return df


def test_kmeans_larger_cluster_gives_members_and_test() -> None:
    df = _two_groups()
    spec = KMeansSplit(columns=["city", "income"], test_fraction=0.25)
    result = assign_split(df, spec, _labels(df), seed=0)
    parts = result.part
    assert result.details == {"cluster0_rows": 140, "cluster1_rows": 60}
    assert set(df.loc[parts == NONMEMBERS, "city"]) == {"B"}
    assert set(df.loc[parts != NONMEMBERS, "city"]) == {"A"}
    assert (parts == TEST).sum() == pytest.approx(35, abs=1)
    assert (parts == MEMBERS).sum() == pytest.approx(105, abs=1)
    again = assign_split(df, spec, _labels(df), seed=0).part
    assert np.array_equal(parts, again)


def test_kmeans_missing_column() -> None:
    df = _two_groups()
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, KMeansSplit(columns=["city", "zip"]), _labels(df))
    assert excinfo.value.code == "missing_column"


def test_kmeans_encoding_weighs_binary_columns_once_and_tames_outliers() -> None:
    df = pd.DataFrame({"sex": ["F", "M", "F", "M"], "edu": ["a", "b", "c", "a"], "cost": [1.0, 2.0, 3.0, 1e9]})
    x = encode_for_clustering(df, ["sex", "edu", "cost"])
    assert x.shape == (4, 1 + 3 + 1)  # sex: one 0/1 column; edu: one-hot; cost: one number
    assert np.abs(x[:, -1]).max() <= 1.5  # standardized, clipped at 3 sd, scaled to sd 0.5


# ---------------------------------------------------------------------------------------------- column


def test_column_split() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {"x": rng.normal(size=60), "y": [0, 1] * 30, "fold": ["members"] * 30 + [" test"] * 15 + ["nonmembers"] * 15}
    )
    parts = assign_split(df, ColumnSplit(column="fold"), _labels(df)).part
    assert np.bincount(parts).tolist() == [30, 15, 15]


def test_column_split_rejects_other_values() -> None:
    df = pd.DataFrame({"x": range(60), "y": [0, 1] * 30, "fold": ["members"] * 30 + ["train"] * 15 + [None] * 15})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, ColumnSplit(column="fold"), _labels(df))
    assert excinfo.value.code == "invalid_split_column"
    assert excinfo.value.details == {"column": "fold", "count": 30, "row": 31}
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, ColumnSplit(column="part"), _labels(df))
    assert excinfo.value.code == "missing_column"
