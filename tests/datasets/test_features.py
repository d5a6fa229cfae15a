"""prepare_dataset: members-only statistics, categories, imputation, SMILES features, the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.datasets import ColumnSplit, DatasetError, PreparationReport, RandomSplit, prepare_dataset
from app.tuning.prepared import PreparedData


def _folded() -> pd.DataFrame:
    """100 rows with a user split column, so each row's part is known: rows 0-39 members, 40-59 test,
    60-79 external, 80-89 holdout, 90-99 validation."""
    fold = ["members"] * 40 + ["test"] * 20 + ["external"] * 20 + ["holdout"] * 10 + ["validation"] * 10
    return pd.DataFrame({"fold": fold, "y": ["dead", "alive"] * 50})


def test_shapes_dtypes_and_report(tabular: pd.DataFrame) -> None:
    data, report = prepare_dataset(tabular, label="y", split=RandomSplit(), seed=1)
    assert isinstance(data, PreparedData) and isinstance(report, PreparationReport)
    assert data.x_members.dtype == np.float32 and data.y_members.dtype == np.int64
    assert data.n_features == 2 + 3 == report.n_features  # x, z, colour one-hot
    assert data.feature_names == ["x", "z", "colour=blue", "colour=green", "colour=red"]
    assert report.split_sizes == data.split_sizes()
    sizes = report.split_sizes
    assert sizes.external is None and data.x_external is None and data.y_external is None
    assert not data.has_external
    assert sizes.members + sizes.holdout + sizes.validation + sizes.test == report.rows_used == report.rows_in == 200
    assert (sizes.members, sizes.holdout, sizes.validation, sizes.test) == pytest.approx((70, 70, 30, 30), abs=2)
    assert set(report.class_counts) == {"members", "holdout", "validation", "test"}
    assert report.class_counts["members"]["1"] == int(data.y_members.sum())
    assert report.class_counts["holdout"]["1"] == int(data.y_holdout.sum())
    for part in ("holdout", "validation", "test"):
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), data.n_features)
    assert report.split == RandomSplit()
    assert PreparationReport.model_validate_json(report.model_dump_json()) == report


def test_each_row_lands_in_its_part() -> None:
    df = _folded().assign(x=np.arange(100.0))
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert report.split_sizes.model_dump() == {
        "members": 40,
        "holdout": 10,
        "validation": 10,
        "test": 20,
        "external": 20,
    }
    assert set(report.class_counts) == set(report.split_sizes.model_dump())
    assert data.has_external and data.y_external is not None
    raw = df["x"].to_numpy()
    z = (raw - raw[:40].mean()) / raw[:40].std()
    for part, rows in [
        ("members", slice(0, 40)),
        ("test", slice(40, 60)),
        ("external", slice(60, 80)),
        ("holdout", slice(80, 90)),
        ("validation", slice(90, 100)),
    ]:
        assert np.allclose(getattr(data, f"x_{part}")[:, 0], z[rows], atol=1e-4), part


def test_labels_are_indices_of_sorted_class_names() -> None:
    df = _folded().assign(x=np.arange(100.0))
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert data.class_names == report.class_names == ["alive", "dead"]
    assert data.y_members[:4].tolist() == [1, 0, 1, 0]  # dead, alive, dead, alive
    assert data.n_classes == 2


def test_standardization_uses_members_only() -> None:
    rng = np.random.default_rng(0)
    df = _folded().assign(x=np.concatenate([rng.normal(10, 2, 40), rng.normal(50, 9, 60)]))
    data, _ = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    members = data.x_members[:, 0]
    assert members.mean() == pytest.approx(0.0, abs=1e-5)
    assert members.std() == pytest.approx(1.0, abs=1e-5)
    # the other parts were scaled with the members' statistics, so they sit far off the members
    raw = df["x"].to_numpy()
    expected = (raw[40:60] - raw[:40].mean()) / raw[:40].std()
    assert np.allclose(data.x_test[:, 0], expected, atol=1e-4)
    assert data.x_external is not None and data.x_external[:, 0].mean() > 10
    assert data.x_holdout[:, 0].mean() > 10 and data.x_validation[:, 0].mean() > 10


def test_split_column_is_not_a_feature_and_columns_constant_on_members_are_dropped() -> None:
    df = _folded().assign(x=np.arange(100.0), const=7.0)
    members = (df["fold"] == "members").to_numpy()
    # Constant among members only: the model could learn nothing from them, yet other splits differ.
    df["member_const"] = np.where(members, 1.0, np.arange(100.0))
    df["member_level"] = np.where(members, "a", "b")
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert "fold" not in " ".join(data.feature_names)
    assert np.all(np.isfinite(data.x_members))
    assert data.feature_names == ["x"]
    assert set(report.dropped_columns) == {"const", "member_const", "member_level"}


def test_unseen_categories_are_all_zeros_and_counted() -> None:
    colour = ["red", "blue"] * 20 + ["red"] * 10 + ["green"] * 10 + ["purple"] * 5 + ["blue"] * 15 + ["red"] * 20
    df = _folded().assign(colour=colour)
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert data.feature_names == ["colour=blue", "colour=red"]
    assert np.all(data.x_test[10:].sum(axis=1) == 0)  # green never occurs in members
    assert np.all(data.x_test[:10, 1] == 1)
    assert report.unseen_categories == {"colour": 15}


def test_imputation_uses_members_median_and_is_counted() -> None:
    x = np.arange(100.0)
    x[[3, 5, 50, 70, 71]] = np.nan
    colour = np.array(["a", "b"] * 50, dtype=object)
    colour[[0, 45]] = None
    df = _folded().assign(x=x, colour=colour)
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert report.imputed == {"x": 5, "colour": 2}
    assert "colour=__missing__" in data.feature_names
    members_median = np.nanmedian(x[:40])
    raw_members = np.where(np.isnan(x[:40]), members_median, x[:40])
    imputed_z = (members_median - raw_members.mean()) / raw_members.std()
    assert data.x_test[10, 0] == pytest.approx(imputed_z, abs=1e-5)  # row 50 is test row 10


def test_column_missing_for_all_members_is_dropped() -> None:
    df = _folded().assign(x=np.arange(100.0), later=[np.nan] * 40 + list(range(60)))
    data, report = prepare_dataset(df, label="y", split=ColumnSplit(column="fold"))
    assert report.dropped_columns == ["later"]
    assert data.feature_names == ["x"]


def test_label_only_table_has_no_features() -> None:
    with pytest.raises(DatasetError) as excinfo:
        prepare_dataset(_folded(), label="y", split=ColumnSplit(column="fold"))
    assert excinfo.value.code == "no_features"


def test_invalid_smiles_are_counted_not_fatal(capfd: pytest.CaptureFixture[str]) -> None:
    valid = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCC", "C1CCCCC1", "CC(C)O", "OCCO"] * 8
    smiles = valid + ["not-a-smiles", "C1CC", "", None, "c1cccc1"]
    df = pd.DataFrame({"smiles": smiles, "active": [0, 1] * (len(smiles) // 2) + [0]})
    data, report = prepare_dataset(
        df, label="active", split=RandomSplit(), smiles_column="smiles", fingerprint_bits=256, seed=0
    )
    assert report.invalid_smiles == 5
    assert report.rows_in == 69 and report.rows_used == 64
    assert data.n_features == 256 and data.feature_names[0] == "ecfp_0"
    assert set(np.unique(data.x_members).tolist()) <= {0.0, 1.0}
    assert "not-a-smiles" not in capfd.readouterr().err  # RDKit's logging (with the value) is silenced


def test_no_valid_smiles() -> None:
    df = pd.DataFrame({"smiles": ["xx", "yy"] * 20, "active": [0, 1] * 20})
    with pytest.raises(DatasetError) as excinfo:
        prepare_dataset(df, label="active", split=RandomSplit(), smiles_column="smiles")
    assert excinfo.value.code == "no_valid_smiles"


def test_smiles_table_ignores_other_columns() -> None:
    # 'activity' would leak the label, and 'compound_id' would fail the category cap, were they features
    df = pd.DataFrame(
        {
            "smiles": ["CCO", "c1ccccc1", "CC(=O)O", "CCN"] * 20,
            "compound_id": [f"id{i}" for i in range(80)],
            "activity": ["CI", "CA"] * 40,
            "active": [0, 1] * 40,
        }
    )
    data, _ = prepare_dataset(df, label="active", split=RandomSplit(), smiles_column="smiles", fingerprint_bits=128)
    assert data.n_features == 128


def test_butina_needs_smiles(tabular: pd.DataFrame) -> None:
    from app.datasets import ButinaSplit

    with pytest.raises(DatasetError) as excinfo:
        prepare_dataset(tabular, label="y", split=ButinaSplit())
    assert excinfo.value.code == "butina_needs_smiles"
