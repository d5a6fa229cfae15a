"""How rows become members / test / nonmembers: the split specs and the assignment they compute.

members train the target model, test (same distribution) measures utility, nonmembers are the attacker's
outsiders. The biased splits (k-means, Butina) put nonmembers in another cluster, as the study does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Union

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sklearn.cluster import KMeans

from app.datasets.butina import STUDY_GROUP_FRACTIONS, butina_groups
from app.datasets.errors import DatasetError
from app.datasets.tables import MISSING_CATEGORY, numeric_view

PARTS = ("members", "test", "nonmembers")
MEMBERS, TEST, NONMEMBERS, UNUSED = 0, 1, 2, -1
MIN_PART_ROWS = 10
MIN_BUTINA_GROUP_ROWS = 20
# Numeric k-means inputs are standardized, clipped to this many standard deviations so that a handful of
# extreme values (healthcare costs are heavy-tailed) cannot form a cluster of their own, and then scaled to
# the spread of a 0/1 column (sd 0.5), so that one number weighs in the distances like one indicator and a
# single skewed column cannot outweigh the categorical ones (docs/datasets.md).
KMEANS_CLIP_SD = 3.0
KMEANS_NUMERIC_SD = 0.5


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomSplit(_Spec):
    """Random fractions of the rows, stratified by label."""

    kind: Literal["random"] = "random"
    members: float = Field(default=0.5, gt=0.0, lt=1.0)
    test: float = Field(default=0.25, gt=0.0, lt=1.0)
    nonmembers: float = Field(default=0.25, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _sums_to_one(self) -> RandomSplit:
        total = self.members + self.test + self.nonmembers
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"members + test + nonmembers must be 1, got {total:g}")
        return self


class KMeansSplit(_Spec):
    """The study's biased split: k-means (k=2) on the named columns; the larger cluster gives members and
    test, the other cluster the nonmembers."""

    kind: Literal["kmeans"] = "kmeans"
    columns: list[str] = Field(min_length=1)
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str]) -> list[str]:
        if len(set(columns)) != len(columns) or any(not c for c in columns):
            raise ValueError("k-means columns must be distinct, non-empty names")
        return columns


class ColumnSplit(_Spec):
    """The user's own split: a column whose values are members, test or nonmembers. It is not a feature."""

    kind: Literal["column"] = "column"
    column: str = Field(default="split", min_length=1)


class ButinaSplit(_Spec):
    """SMILES only: Butina clusters of ECFP fingerprints merged into three distant groups (largest -> members,
    next -> test, smallest -> nonmembers), on a seeded sub-sample of at most `max_compounds`."""

    kind: Literal["butina"] = "butina"
    cutoff: float = Field(default=0.7, gt=0.0, lt=1.0, description="Tanimoto distance threshold.")
    # The distance matrix is n^2 float32: 11,000 compounds take 484 MB, 20,000 take 1.6 GB.
    max_compounds: int = Field(default=11_000, ge=60, le=20_000)
    fractions: tuple[float, float, float] = Field(
        default=STUDY_GROUP_FRACTIONS, description="Target shares of the three groups (the study's by default)."
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError("Butina group fractions must be positive and sum to 1")
        return fractions


SplitSpec = Annotated[Union[RandomSplit, KMeansSplit, ColumnSplit, ButinaSplit], Field(discriminator="kind")]


def parse_split_option(text: str) -> SplitSpec:
    """The CLI's split option: `random`, `kmeans:COL,COL,...`, `butina` or `column:COL`."""
    kind, sep, arg = text.strip().partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    try:
        if kind == "random" and not sep:
            return RandomSplit()
        if kind == "butina" and not sep:
            return ButinaSplit()
        if kind == "kmeans" and arg:
            return KMeansSplit(columns=[c.strip() for c in arg.split(",")])
        if kind == "column" and arg:
            return ColumnSplit(column=arg)
    except ValidationError as exc:
        raise DatasetError("invalid_split_option", f"invalid split '{text}': {exc.errors()[0]['msg']}") from None
    raise DatasetError(
        "invalid_split_option",
        f"unknown split '{text}'; use random, kmeans:COL,COL,..., butina or column:COL",
        {"option": text},
    )


# ---------------------------------------------------------------------------------------------- assignment


@dataclass(frozen=True)
class SplitAssignment:
    """`part[i]` is row i's part: 0 members, 1 test, 2 nonmembers, -1 unused (not sampled)."""

    part: np.ndarray
    details: dict[str, int | float] = field(default_factory=dict)


def assign_split(
    df: pd.DataFrame,
    spec: SplitSpec,
    labels: np.ndarray,
    *,
    seed: int = 0,
    fingerprints: np.ndarray | None = None,
) -> SplitAssignment:
    """Compute the part of every row of `df` (labels are class indices; fingerprints needed for Butina)."""
    if isinstance(spec, RandomSplit):
        rng = np.random.default_rng(seed)
        assignment = SplitAssignment(stratified_parts(labels, (spec.members, spec.test, spec.nonmembers), rng))
    elif isinstance(spec, KMeansSplit):
        assignment = kmeans_split(df, spec, labels, seed)
    elif isinstance(spec, ColumnSplit):
        assignment = SplitAssignment(column_parts(df, spec.column))
    else:
        if fingerprints is None:
            raise DatasetError("butina_needs_smiles", "the Butina split needs a SMILES column")
        assignment = butina_split(fingerprints, spec, labels, seed)
    check_parts(assignment.part, labels, MIN_BUTINA_GROUP_ROWS if isinstance(spec, ButinaSplit) else MIN_PART_ROWS)
    return assignment


def stratified_parts(labels: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Part of each row, shuffled within each class so every part keeps the class balance."""
    parts = np.full(len(labels), UNUSED, dtype=np.int64)
    bounds = np.cumsum(fractions)
    for cls in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == cls))
        edges = np.concatenate([[0], np.round(bounds * len(rows)).astype(np.int64)])
        edges[-1] = len(rows)
        for part in range(len(fractions)):
            parts[rows[edges[part] : edges[part + 1]]] = part
    return parts


def encode_for_clustering(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Numeric columns standardized (median-imputed, clipped, sd 0.5), categorical ones one-hot (missing = own level,
    two levels = one 0/1 column)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(
            "missing_column", f"k-means column(s) not in the table: {', '.join(missing)}", {"columns": missing}
        )
    blocks: list[np.ndarray] = []
    for column in columns:
        numbers = numeric_view(df[column])
        if numbers is not None:
            values = numbers.to_numpy(dtype=np.float64)
            fill = np.nanmedian(values) if np.isfinite(values).any() else 0.0
            values = np.where(np.isfinite(values), values, fill)
            sd = values.std()
            scaled = (values - values.mean()) / sd if sd > 0 else np.zeros_like(values)
            blocks.append(KMEANS_NUMERIC_SD * np.clip(scaled, -KMEANS_CLIP_SD, KMEANS_CLIP_SD)[:, None])
        else:
            text = df[column].astype("string").fillna(MISSING_CATEGORY).to_numpy(dtype=object)
            levels = sorted(set(text.tolist()))
            onehot = (text[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(np.float64)
            # Two levels: one 0/1 column. The second one-hot column repeats the first and would double the
            # weight of every binary column (gender) in the distances, against multi-level ones (education).
            blocks.append(onehot[:, 1:] if len(levels) == 2 else onehot)
    return np.hstack(blocks)


def kmeans_split(df: pd.DataFrame, spec: KMeansSplit, labels: np.ndarray, seed: int) -> SplitAssignment:
    """Larger k-means cluster -> members and test (stratified), the other -> nonmembers."""
    x = encode_for_clustering(df, spec.columns)
    if len(np.unique(x, axis=0)) < 2:
        raise DatasetError(
            "split_too_small", "the k-means columns hold a single distinct row; they cannot form two clusters"
        )
    clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(x)
    sizes = np.bincount(clusters, minlength=2)
    larger = int(np.argmax(sizes))  # ties: sklearn's cluster 0
    in_larger = clusters == larger
    parts = np.full(len(df), NONMEMBERS, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sub = stratified_parts(labels[in_larger], (1.0 - spec.test_fraction, spec.test_fraction), rng)
    parts[in_larger] = sub  # 0 members, 1 test
    return SplitAssignment(parts, {"cluster0_rows": int(sizes[larger]), "cluster1_rows": int(sizes[1 - larger])})


def column_parts(df: pd.DataFrame, column: str) -> np.ndarray:
    """The user's split column, whose values must be exactly members, test or nonmembers."""
    if column not in df.columns:
        raise DatasetError("missing_column", f"split column '{column}' is not in the table", {"column": column})
    text = df[column].astype("string").str.strip()
    codes = {name: i for i, name in enumerate(PARTS)}
    parts = np.array([codes.get(value, UNUSED) if isinstance(value, str) else UNUSED for value in text], dtype=np.int64)
    bad = parts == UNUSED
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise DatasetError(
            "invalid_split_column",
            f"split column '{column}' has {int(bad.sum())} values that are not members, test or nonmembers "
            f"(first at row {first})",
            {"column": column, "count": int(bad.sum()), "row": first},
        )
    return parts


def butina_split(fingerprints: np.ndarray, spec: ButinaSplit, labels: np.ndarray, seed: int) -> SplitAssignment:
    """Sub-sample (seeded) to max_compounds, then Butina groups: largest members, next test, smallest nonmembers."""
    n = len(fingerprints)
    rows = np.arange(n)
    if n > spec.max_compounds:
        rows = np.sort(np.random.default_rng(seed).choice(n, spec.max_compounds, replace=False))
    if len(rows) < 3 * MIN_BUTINA_GROUP_ROWS:
        raise DatasetError(
            "split_too_small", f"the Butina split needs at least {3 * MIN_BUTINA_GROUP_ROWS} valid compounds"
        )
    groups = butina_groups(fingerprints[rows], spec.cutoff, spec.fractions)
    parts = np.full(n, UNUSED, dtype=np.int64)
    parts[rows] = groups.group
    return SplitAssignment(
        parts,
        {
            "compounds_clustered": len(rows),
            "compounds_available": n,
            "butina_clusters": groups.n_clusters,
            "largest_butina_cluster": groups.largest_cluster,
        },
    )


def check_parts(parts: np.ndarray, labels: np.ndarray, min_rows: int) -> None:
    """Every part needs min_rows rows and two classes: test AUC is undefined on one class, and a target
    model trained on one class learns nothing."""
    for code, name in enumerate(PARTS):
        in_part = parts == code
        n = int(in_part.sum())
        classes = int(np.unique(labels[in_part]).size)
        if n < min_rows or classes < 2:
            raise DatasetError(
                "split_too_small",
                f"the {name} part has {n} rows and {classes} class(es); each part needs at least {min_rows} "
                "rows and two classes",
                {"part": name, "rows": n, "classes": classes, "min_rows": min_rows},
            )
