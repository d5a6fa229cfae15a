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
from app.datasets.splits import (
    EXTERNAL,
    HOLDOUT,
    MEMBERS,
    PARTS,
    TEST,
    UNUSED,
    VALIDATION,
    assign_split,
    encode_for_clustering,
)
from app.datasets.tables import label_classes


def _labels(df: pd.DataFrame, column: str = "y") -> np.ndarray:
    return label_classes(df[column])[1]


# ---------------------------------------------------------------------------------------------- specs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("random", RandomSplit()),
        ("butina", ButinaSplit(grouping="outlying")),
        ("butina:outlying", ButinaSplit(grouping="outlying")),
        ("butina:distant-groups", ButinaSplit(grouping="distant-groups")),
        ("kmeans:gender,race", KMeansSplit(columns=["gender", "race"])),
        (" kmeans: gender , race ", KMeansSplit(columns=["gender", "race"])),
        ("column:fold", ColumnSplit(column="fold")),
    ],
)
def test_parse_split_option(text: str, expected: SplitSpec) -> None:
    assert parse_split_option(text) == expected


@pytest.mark.parametrize(
    "text", ["", "kmeans", "kmeans:", "column", "random:0.5", "butina:x", "butina:", "stratified", "kmeans:a,a"]
)
def test_parse_split_option_rejects(text: str) -> None:
    with pytest.raises(DatasetError) as excinfo:
        parse_split_option(text)
    assert excinfo.value.code == "invalid_split_option"


def test_split_spec_is_a_discriminated_union() -> None:
    adapter = TypeAdapter(SplitSpec)
    spec = adapter.validate_python(
        {"kind": "kmeans", "columns": ["a"], "members": 0.4, "holdout": 0.4, "validation": 0.1, "test": 0.1}
    )
    assert isinstance(spec, KMeansSplit) and spec.member_fractions() == (0.4, 0.4, 0.1, 0.1)
    assert adapter.validate_json(adapter.dump_json(ButinaSplit(cutoff=0.6))) == ButinaSplit(cutoff=0.6)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "random", "members": 0.0, "holdout": 0.5, "validation": 0.25, "test": 0.25})
    with pytest.raises(ValidationError):  # the old three-part fields are gone
        adapter.validate_python({"kind": "random", "members": 0.5, "test": 0.25, "nonmembers": 0.25})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "kmeans", "columns": ["a"], "test_fraction": 0.3})
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "bogus"})


def test_default_fractions_and_holdout_as_large_as_members() -> None:
    for spec in (RandomSplit(), KMeansSplit(columns=["a"]), ButinaSplit()):
        assert spec.member_fractions() == (0.35, 0.35, 0.15, 0.15)
    assert ButinaSplit().fractions == pytest.approx((0.52 + 0.27, 0.21))  # the study's train + test, attacker


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "random", "members": 0.5, "holdout": 0.3, "validation": 0.15, "test": 0.15},
        {"kind": "kmeans", "columns": ["a"], "members": 0.3},
        {"kind": "butina", "holdout": 0.2, "validation": 0.1},
    ],
)
def test_fractions_not_summing_to_one_are_a_clear_error(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as excinfo:
        TypeAdapter(SplitSpec).validate_python(fields)
    assert "members + holdout + validation + test must sum to 1" in str(excinfo.value)


def test_parse_split_option_round_trips_through_json() -> None:
    adapter = TypeAdapter(SplitSpec)
    for text in ("butina", "butina:outlying", "butina:distant-groups"):
        spec = parse_split_option(text)
        assert adapter.validate_json(adapter.dump_json(spec)) == spec


def test_butina_spec_without_grouping_keeps_its_stored_meaning() -> None:
    """A split spec stored before `grouping` existed (every field but that one) still means distant-groups
    on 11,000 compounds; the CLI's `butina` is the outlying grouping on all compounds."""
    adapter = TypeAdapter(SplitSpec)
    stored = {
        "kind": "butina",
        "members": 0.35,
        "holdout": 0.35,
        "validation": 0.15,
        "test": 0.15,
        "cutoff": 0.7,
        "max_compounds": 11000,
        "fractions": [0.79, 0.21],
    }
    spec = adapter.validate_python(stored)
    assert isinstance(spec, ButinaSplit) and spec.grouping == "distant-groups" and spec.compounds == 11_000
    bare = adapter.validate_python({"kind": "butina"})
    assert isinstance(bare, ButinaSplit) and bare.grouping == "distant-groups" and bare.compounds == 11_000
    outlying = parse_split_option("butina")
    assert isinstance(outlying, ButinaSplit) and outlying.compounds == 50_000
    assert ButinaSplit(grouping="outlying", max_compounds=3000).compounds == 3000
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "butina", "grouping": "nearest"})


def test_butina_fractions_are_member_side_and_external() -> None:
    assert ButinaSplit(fractions=(0.7, 0.3)).fractions == (0.7, 0.3)
    with pytest.raises(ValidationError):
        ButinaSplit(fractions=(0.52, 0.27, 0.21))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ButinaSplit(fractions=(0.7, 0.4))


# ---------------------------------------------------------------------------------------------- random


def test_random_split_is_stratified_and_seeded(tabular: pd.DataFrame) -> None:
    labels = _labels(tabular)
    spec = RandomSplit(members=0.4, holdout=0.3, validation=0.15, test=0.15)
    parts = assign_split(tabular, spec, labels, seed=3).part
    # the five parts are disjoint and cover every row; a random split has no external part
    assert set(parts.tolist()) == {MEMBERS, HOLDOUT, VALIDATION, TEST}
    assert not (parts == UNUSED).any() and not (parts == EXTERNAL).any()
    # fractions within rounding (one row per class and boundary)
    assert np.bincount(parts).tolist() == pytest.approx([80, 60, 30, 30], abs=2)
    overall = labels.mean()
    for code in (MEMBERS, HOLDOUT, VALIDATION, TEST):
        assert labels[parts == code].mean() == pytest.approx(overall, abs=0.03)
    again = assign_split(tabular, spec, labels, seed=3).part
    other = assign_split(tabular, spec, labels, seed=4).part
    assert np.array_equal(parts, again) and not np.array_equal(parts, other)


def test_stratification_keeps_a_rare_class_in_every_part() -> None:
    labels = np.array([1] * 100 + [0] * 900)  # 10 % positives
    parts = assign_split(pd.DataFrame({"x": range(1000)}), RandomSplit(), labels, seed=0).part
    for code, share in zip((MEMBERS, HOLDOUT, VALIDATION, TEST), RandomSplit().member_fractions(), strict=True):
        in_part = parts == code
        assert in_part.sum() == pytest.approx(1000 * share, abs=1)
        assert labels[in_part].sum() == pytest.approx(100 * share, abs=1)


def test_too_small_split() -> None:
    df = pd.DataFrame({"x": range(60), "y": [0, 1] * 30})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, RandomSplit(members=0.7, holdout=0.2, validation=0.05, test=0.05), _labels(df))
    assert excinfo.value.code == "split_too_small"
    details = excinfo.value.details
    assert details["part"] == "validation" and details["rows"] < 10 and details["min_rows"] == 10


def test_single_class_part_is_too_small() -> None:
    fold = ["members"] * 20 + ["holdout"] * 20 + ["validation"] * 10 + ["test"] * 10 + ["external"] * 10
    df = pd.DataFrame({"x": range(70), "y": [0, 1] * 25 + [0] * 10 + [0, 1] * 5, "fold": fold})  # test: one class
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


def test_kmeans_larger_cluster_is_the_member_side_and_the_smaller_external() -> None:
    df = _two_groups()
    spec = KMeansSplit(columns=["city", "income"], members=0.4, holdout=0.3, validation=0.15, test=0.15)
    result = assign_split(df, spec, _labels(df), seed=0)
    parts = result.part
    assert result.details == {"cluster0_rows": 140, "cluster1_rows": 60}
    assert set(df.loc[parts == EXTERNAL, "city"]) == {"B"} and (parts == EXTERNAL).sum() == 60
    assert set(df.loc[parts != EXTERNAL, "city"]) == {"A"}
    assert not (parts == UNUSED).any()
    for code, expected in zip((MEMBERS, HOLDOUT, VALIDATION, TEST), (56, 42, 21, 21), strict=True):
        assert (parts == code).sum() == pytest.approx(expected, abs=2)
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
    fold = ["members"] * 30 + [" holdout"] * 20 + ["validation "] * 12 + ["test"] * 14 + ["external"] * 16
    df = pd.DataFrame({"x": rng.normal(size=92), "y": [0, 1] * 46, "fold": fold})
    parts = assign_split(df, ColumnSplit(column="fold"), _labels(df)).part
    assert np.bincount(parts).tolist() == [30, 20, 12, 14, 16]
    assert parts.tolist() == [PARTS.index(value.strip()) for value in fold]


def test_column_split_reads_nonmembers_as_external() -> None:
    fold = ["members"] * 20 + ["holdout"] * 20 + ["validation"] * 10 + ["test"] * 10 + ["nonmembers"] * 10
    df = pd.DataFrame({"x": range(70), "y": [0, 1] * 35, "fold": fold})
    parts = assign_split(df, ColumnSplit(column="fold"), _labels(df)).part
    assert (parts[60:] == EXTERNAL).all() and np.bincount(parts).tolist() == [20, 20, 10, 10, 10]


def test_column_split_external_is_optional_but_checked_when_present() -> None:
    fold = ["members"] * 20 + ["holdout"] * 20 + ["validation"] * 10 + ["test"] * 10
    df = pd.DataFrame({"x": range(60), "y": [0, 1] * 30, "fold": fold})
    parts = assign_split(df, ColumnSplit(column="fold"), _labels(df)).part
    assert not (parts == EXTERNAL).any()
    small = pd.DataFrame({"x": range(63), "y": [0, 1] * 31 + [0], "fold": fold + ["external"] * 3})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(small, ColumnSplit(column="fold"), _labels(small))
    assert excinfo.value.code == "split_too_small" and excinfo.value.details["part"] == "external"


def test_column_split_rejects_other_values() -> None:
    df = pd.DataFrame({"x": range(60), "y": [0, 1] * 30, "fold": ["members"] * 30 + ["train"] * 15 + [None] * 15})
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, ColumnSplit(column="fold"), _labels(df))
    assert excinfo.value.code == "invalid_split_column"
    assert excinfo.value.details == {"column": "fold", "count": 30, "row": 31}
    for value in ("members", "holdout", "validation", "test", "external"):
        assert value in excinfo.value.message
    with pytest.raises(DatasetError) as excinfo:
        assign_split(df, ColumnSplit(column="part"), _labels(df))
    assert excinfo.value.code == "missing_column"
