"""Data preparation: a validated table and a split spec -> PreparedData (the input of every trial).

Every statistic (medians, means, standard deviations, category levels) is learned on the members only:
holdout, validation, test and external must look to the model like data it has never seen, as they will in
production.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, Field

from app.datasets.errors import DatasetError
from app.datasets.smiles import molecule, morgan_fingerprints
from app.datasets.splits import (
    EXTERNAL,
    HOLDOUT,
    MEMBERS,
    MIN_PART_ROWS,
    MIN_ROWS_OUTSIDE_MAJORITY,
    MIN_TABLE_ROWS,
    PARTS,
    TEST,
    VALIDATION,
    ButinaSplit,
    ColumnSplit,
    KMeansSplit,
    SplitSpec,
    assign_split,
)
from app.datasets.tables import (
    DEFAULT_MAX_CATEGORIES,
    MISSING_CATEGORY,
    check_feature_column,
    label_classes,
    numeric_view,
    validate_table,
)
from app.tuning.prepared import PreparedData
from app.tuning.results import SplitSizes

logger = logging.getLogger(__name__)


class PreparationReport(BaseModel):
    """What preparation did to the table, in counts only (no data values)."""

    rows_in: int
    rows_used: int = Field(description="Rows in one of the parts (after invalid SMILES and sub-sampling).")
    invalid_smiles: int = 0
    imputed: dict[str, int] = Field(default_factory=dict, description="Missing values filled, per column.")
    unseen_categories: dict[str, int] = Field(
        default_factory=dict,
        description="Non-member rows (holdout, validation, test, external) whose category never occurs in members (encoded 0).",
    )
    dropped_columns: list[str] = Field(
        default_factory=list, description="Columns with no usable member values, or constant on the members."
    )
    split_sizes: SplitSizes
    class_counts: dict[str, dict[str, int]] = Field(
        description="Rows per class, per part present (external only when the split has one)."
    )
    class_names: list[str]
    n_features: int
    split: SplitSpec
    split_details: dict[str, int | float] = Field(default_factory=dict)


@dataclass
class EncodedFeatures:
    """The feature matrix of the used rows, and what encoding it took."""

    x: npt.NDArray[np.float32]
    names: list[str]
    imputed: dict[str, int] = field(default_factory=dict)
    unseen: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def prepare_dataset(
    df: pd.DataFrame,
    *,
    label: str,
    split: SplitSpec,
    smiles_column: str | None = None,
    seed: int = 0,
    fingerprint_radius: int = 2,
    fingerprint_bits: int = 1024,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> tuple[PreparedData, PreparationReport]:
    """Validate, split and encode. Tabular: standardized numbers and one-hot categories; SMILES: ECFP bits."""
    if isinstance(split, ButinaSplit) and smiles_column is None:
        raise DatasetError("butina_needs_smiles", "the Butina split needs a SMILES column (smiles_column)")
    validate_table(df, label, smiles_column, max_categories)
    if smiles_column is not None and isinstance(split, KMeansSplit):
        for column in split.columns:  # not features here, but k-means encodes them
            if column in df.columns:
                check_feature_column(df[column], column, max_categories)

    rows = np.arange(len(df))
    fingerprints: npt.NDArray[np.uint8] | None = None
    invalid = 0
    if smiles_column is not None:
        bits, valid = morgan_fingerprints(df[smiles_column].tolist(), fingerprint_radius, fingerprint_bits)
        invalid = int((~valid).sum())
        if not valid.any():
            raise _no_valid_smiles(smiles_column)
        rows = np.flatnonzero(valid)
        fingerprints = bits[rows]
    table = df.iloc[rows].reset_index(drop=True)
    class_names, all_codes = label_classes(df[label])
    labels = all_codes[rows]

    assignment = assign_split(table, split, labels, seed=seed, fingerprints=fingerprints)
    used = assignment.part >= 0
    part = assignment.part[used]
    y = labels[used]
    if fingerprints is not None:
        encoded = EncodedFeatures(
            x=fingerprints[used].astype(np.float32), names=[f"ecfp_{i}" for i in range(fingerprint_bits)]
        )
    else:
        excluded = {label} | ({split.column} if isinstance(split, ColumnSplit) else set())
        columns = [c for c in table.columns if c not in excluded]
        encoded = encode_tabular(table.loc[used, columns].reset_index(drop=True), part == MEMBERS)
    if encoded.x.shape[1] == 0:
        raise DatasetError("no_features", "no feature columns are left besides the label")

    x = encoded.x.astype(np.float32)
    y = y.astype(np.int64)
    has_external = bool((part == EXTERNAL).any())
    data = PreparedData(
        x_members=x[part == MEMBERS],
        y_members=y[part == MEMBERS],
        x_holdout=x[part == HOLDOUT],
        y_holdout=y[part == HOLDOUT],
        x_validation=x[part == VALIDATION],
        y_validation=y[part == VALIDATION],
        x_test=x[part == TEST],
        y_test=y[part == TEST],
        x_external=x[part == EXTERNAL] if has_external else None,
        y_external=y[part == EXTERNAL] if has_external else None,
        n_classes=len(class_names),
        feature_names=encoded.names,
        class_names=class_names,
    )
    report = PreparationReport(
        rows_in=len(df),
        rows_used=int(used.sum()),
        invalid_smiles=invalid,
        imputed=encoded.imputed,
        unseen_categories=encoded.unseen,
        dropped_columns=encoded.dropped,
        split_sizes=data.split_sizes(),
        class_counts={
            name: {c: int(((part == code) & (y == k)).sum()) for k, c in enumerate(class_names)}
            for code, name in enumerate(PARTS)
            if code != EXTERNAL or has_external
        },
        class_names=class_names,
        n_features=data.n_features,
        split=split,
        split_details=dict(assignment.details),
    )
    logger.info(
        "prepared %d of %d rows: %s, %d features, %d invalid SMILES",
        report.rows_used,
        report.rows_in,
        report.split_sizes,
        report.n_features,
        invalid,
    )
    return data, report


def check_splittable(df: pd.DataFrame, label: str, smiles_column: str | None = None) -> None:
    """Refuse, before any job, a table that prepare_dataset would refuse for every split: a SMILES column in
    which no SMILES parses, or fewer usable rows (with a SMILES column: rows whose SMILES parses, the rows
    prepare_dataset keeps) than check_parts needs of any split. With a SMILES column, SMILES are parsed only
    until the rows read are enough. Run after validate_table (the label has no missing value)."""
    class_names, codes = label_classes(df[label])
    if smiles_column is None:
        counts = np.bincount(codes, minlength=len(class_names))
    else:
        counts = np.zeros(len(class_names), dtype=np.int64)
        for text, code in zip(df[smiles_column].tolist(), codes, strict=True):
            if molecule(text) is not None:
                counts[code] += 1
                if _enough_for_a_split(counts):
                    return
        if not counts.any():
            raise _no_valid_smiles(smiles_column)
    rows = int(counts.sum())
    usable = "rows" if smiles_column is None else f"rows with a valid SMILES in '{smiles_column}'"
    if rows < MIN_TABLE_ROWS:
        raise DatasetError(
            "too_few_rows",
            f"the table has {rows} {usable}; every split needs at least {MIN_TABLE_ROWS}: {MIN_PART_ROWS} in each of "
            "members, holdout, validation and test",
            {"rows": rows, "min_rows": MIN_TABLE_ROWS},
        )
    outside = rows - int(counts.max())  # the class itself is not named: messages never quote values
    if outside < MIN_ROWS_OUTSIDE_MAJORITY:
        raise DatasetError(
            "too_few_minority_rows",
            f"only {outside} of the {usable} are outside the most common class of '{label}'; every split needs "
            f"at least {MIN_ROWS_OUTSIDE_MAJORITY}, as each of members, holdout, validation and test needs two "
            "classes",
            {"column": label, "rows": outside, "min_rows": MIN_ROWS_OUTSIDE_MAJORITY},
        )


def _enough_for_a_split(counts: npt.NDArray[np.int64]) -> bool:
    rows = int(counts.sum())
    return rows >= MIN_TABLE_ROWS and rows - int(counts.max()) >= MIN_ROWS_OUTSIDE_MAJORITY


def _no_valid_smiles(column: str) -> DatasetError:
    return DatasetError("no_valid_smiles", f"no value in column '{column}' is a valid SMILES", {"column": column})


# A column constant on the members teaches the model nothing, but its untrained weights still act on the other
# parts' rows whose values differ, handing the attack a member/nonmember signal that no training made
# (measured on synthea-covid: k-means puts every member in one education level). Such columns are dropped.
CONSTANT_ON_MEMBERS = "constant on members"


def encode_tabular(table: pd.DataFrame, members: npt.NDArray[np.bool_]) -> EncodedFeatures:
    """Numbers: impute the members' median, standardize with the members' mean and sd.
    Text: one-hot on the members' levels, missing as its own level, unseen levels all zeros.
    Columns constant on the members are dropped (CONSTANT_ON_MEMBERS)."""
    blocks: list[npt.NDArray[np.float64]] = []
    out = EncodedFeatures(x=np.zeros((len(table), 0), dtype=np.float32), names=[])
    for column in table.columns:
        name = str(column)
        numbers = numeric_view(table[column])
        if numbers is not None:
            values = numbers.to_numpy(dtype=np.float64)
            missing = ~np.isfinite(values)
            member_values = values[members & ~missing]
            if member_values.size == 0:
                out.dropped.append(name)
                continue
            values = np.where(missing, np.median(member_values), values)
            mean, sd = values[members].mean(), values[members].std()
            if sd == 0:  # see CONSTANT_ON_MEMBERS
                out.dropped.append(name)
                continue
            blocks.append(((values - mean) / sd)[:, None])
            out.names.append(name)
        else:
            text = table[column].astype("string")
            missing = text.isna().to_numpy()
            levels_in = text.fillna(MISSING_CATEGORY).to_numpy(dtype=object)
            levels = sorted(set(levels_in[members].tolist()))
            onehot = (levels_in[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(np.float64)
            unseen = int((onehot.sum(axis=1) == 0).sum())
            if unseen:
                out.unseen[name] = unseen
            if len(levels) < 2:  # one level among members: a constant column, see CONSTANT_ON_MEMBERS
                out.dropped.append(name)
                continue
            blocks.append(onehot)
            out.names.extend(f"{name}={level}" for level in levels)
        if missing.any():
            out.imputed[name] = int(missing.sum())
    if blocks:
        out.x = np.hstack(blocks).astype(np.float32)
    return out
