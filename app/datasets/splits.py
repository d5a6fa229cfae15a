"""How rows become the five parts of a job's data: the split specs and the assignment they compute.

- members train the target model;
- holdout are in-distribution nonmembers, drawn from the members' population and never trained on (the
  membership game: members against holdout);
- validation selects parameters only; test only reports them;
- external is the study's attacker set from elsewhere (the population game: members against external): the
  other k-means cluster, the other Butina group, or the rows a user's split column marks. A random split
  has none.

Every kind divides its member side (all rows for random, the larger cluster for k-means, the Butina member
side) into members / holdout / validation / test by the same four fractions, stratified by label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from app.datasets.butina import STUDY_GROUP_FRACTIONS, butina_groups
from app.datasets.errors import DatasetError
from app.datasets.tables import MISSING_CATEGORY, numeric_view

PARTS = ("members", "holdout", "validation", "test", "external")
MEMBERS, HOLDOUT, VALIDATION, TEST, EXTERNAL, UNUSED = 0, 1, 2, 3, 4, -1
MEMBER_SIDE_PARTS = PARTS[:EXTERNAL]  # the four parts every split has
# The user's split column: each value names a part; `nonmembers` (the study's files) means external.
COLUMN_VALUES = {**{name: code for code, name in enumerate(PARTS)}, "nonmembers": EXTERNAL}
MIN_PART_ROWS = 10
MIN_BUTINA_GROUP_ROWS = 20
# What check_parts asks of every split, whatever its kind and fractions: members, holdout, validation and test
# each hold MIN_PART_ROWS rows and two classes, so a table needs this many rows, and at least one row per part
# outside its most common class. A table short of either is refused at upload (features.check_splittable).
MIN_TABLE_ROWS = len(MEMBER_SIDE_PARTS) * MIN_PART_ROWS
MIN_ROWS_OUTSIDE_MAJORITY = len(MEMBER_SIDE_PARTS)
# Numeric k-means inputs are standardized, clipped to this many standard deviations so that a handful of
# extreme values (healthcare costs are heavy-tailed) cannot form a cluster of their own, and then scaled to
# the spread of a 0/1 column (sd 0.5), so that one number weighs in the distances like one indicator and a
# single skewed column cannot outweigh the categorical ones (docs/datasets.md).
KMEANS_CLIP_SD = 3.0
KMEANS_NUMERIC_SD = 0.5


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _MemberSide(_Spec):
    """The member side's fractions: members, holdout, validation and test, each in (0, 1), summing to 1.

    holdout defaults to the members' size on purpose: the calibrated reference-model attack trains its
    reference models on random halves of members ∪ holdout, each with the target's training-set size, so
    holdout must be as large as members for a half to be as large as the target's training set.
    """

    members: float = Field(default=0.35, gt=0.0, lt=1.0, description="Share trained on.")
    holdout: float = Field(default=0.35, gt=0.0, lt=1.0, description="In-distribution nonmembers, never trained on.")
    validation: float = Field(default=0.15, gt=0.0, lt=1.0, description="Selects parameters only.")
    test: float = Field(default=0.15, gt=0.0, lt=1.0, description="Reports the choice only.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> _MemberSide:
        total = self.members + self.holdout + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"members + holdout + validation + test must sum to 1, got {total:g}")
        return self

    def member_fractions(self) -> tuple[float, float, float, float]:
        return (self.members, self.holdout, self.validation, self.test)


class RandomSplit(_MemberSide):
    """Random fractions of all rows, stratified by label. No external set."""

    kind: Literal["random"] = Field(default="random", description="Selects this split.")


class KMeansSplit(_MemberSide):
    """The study's biased split: k-means (k=2) on the named columns; the larger cluster is the member side
    (divided by the fractions, stratified), the other cluster is external."""

    kind: Literal["kmeans"] = Field(default="kmeans", description="Selects this split.")
    columns: list[str] = Field(min_length=1, description="Columns k-means clusters the rows on.")

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: list[str]) -> list[str]:
        if len(set(columns)) != len(columns) or any(not c for c in columns):
            raise ValueError("k-means columns must be distinct, non-empty names")
        return columns


class ColumnSplit(_Spec):
    """The user's own split: a column whose values are members, holdout, validation, test or external
    (`nonmembers` is read as external). No external row: no external set. The column is not a feature."""

    kind: Literal["column"] = Field(default="column", description="Selects this split.")
    column: str = Field(default="split", min_length=1, description="The column that names each row's part.")


# The study's train and test groups together become the member side; its attacker group stays external.
BUTINA_FRACTIONS = (STUDY_GROUP_FRACTIONS[0] + STUDY_GROUP_FRACTIONS[1], STUDY_GROUP_FRACTIONS[2])
LEGACY_BUTINA_COMPOUNDS = 11_000  # distant-groups' sample: about the study's 10,778 compounds
MAX_BUTINA_COMPOUNDS = 50_000  # more than HIV's 41,127 rows


class ButinaSplit(_MemberSide):
    """SMILES only: Butina clusters of ECFP fingerprints (on a seeded sub-sample of at most `max_compounds`)
    grouped whole into the member side (divided by the fractions, stratified) and the external group.
    `grouping` says how: `outlying` (the least typical clusters are external) or `distant-groups` (clusters
    merged into two distant groups, the grouping before issue 14). A spec without `grouping` means
    `distant-groups`, so that stored specs keep their meaning (docs/datasets.md, "Butina split")."""

    kind: Literal["butina"] = Field(default="butina", description="Selects this split.")
    grouping: Literal["outlying", "distant-groups"] = Field(
        default="distant-groups",
        description="outlying: the external group is the Butina clusters least similar to the data set as a "
        "whole, and the member side is the rest (the grouping the CLI's `butina` gives, and the one under "
        "which a 10-epoch baseline learns on HIV); distant-groups: clusters merged into two distant groups "
        "(the grouping before issue 14, the value assumed when the field is missing).",
    )
    cutoff: float = Field(default=0.7, gt=0.0, lt=1.0, description="Tanimoto distance threshold.")
    # Neighbour lists are sparse (no n^2 matrix): all of HIV's 41,120 valid compounds took 110-200 s on a shared machine.
    max_compounds: int | None = Field(
        default=None,
        ge=len(PARTS) * MIN_BUTINA_GROUP_ROWS,
        le=MAX_BUTINA_COMPOUNDS,
        description=f"Compounds clustered (a seeded sub-sample when there are more). Default: "
        f"{LEGACY_BUTINA_COMPOUNDS:,} for distant-groups (as before), {MAX_BUTINA_COMPOUNDS:,} for outlying.",
    )
    fractions: tuple[float, float] = Field(
        default=BUTINA_FRACTIONS,
        description="Target shares of the member side and the external group (the study's by default: its "
        "train + test groups, and its attacker group).",
    )

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, fractions: tuple[float, float]) -> tuple[float, float]:
        if any(f <= 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError("Butina group fractions (member side, external) must be positive and sum to 1")
        return fractions

    @property
    def compounds(self) -> int:
        """max_compounds, or its default for the grouping."""
        if self.max_compounds is not None:
            return self.max_compounds
        return MAX_BUTINA_COMPOUNDS if self.grouping == "outlying" else LEGACY_BUTINA_COMPOUNDS


SplitSpec = Annotated[RandomSplit | KMeansSplit | ColumnSplit | ButinaSplit, Field(discriminator="kind")]
# Reads and writes a SplitSpec as stored JSON (data sets' default split, jobs' split, work units).
SPLIT_ADAPTER: TypeAdapter[SplitSpec] = TypeAdapter(SplitSpec)


def parse_split_option(text: str) -> SplitSpec:
    """The CLI's split option: `random`, `kmeans:COL,COL,...`, `butina` (outlying grouping),
    `butina:distant-groups` (the grouping before issue 14; also `butina:outlying`) or `column:COL`."""
    kind, sep, arg = text.strip().partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    try:
        if kind == "random" and not sep:
            return RandomSplit()
        if kind == "butina" and not sep:
            return ButinaSplit(grouping="outlying")
        if kind == "butina" and arg in ("outlying", "distant-groups"):
            return ButinaSplit(grouping=arg)
        if kind == "kmeans" and arg:
            return KMeansSplit(columns=[c.strip() for c in arg.split(",")])
        if kind == "column" and arg:
            return ColumnSplit(column=arg)
    except ValidationError as exc:
        raise DatasetError("invalid_split_option", f"invalid split '{text}': {exc.errors()[0]['msg']}") from None
    raise DatasetError(
        "invalid_split_option",
        f"unknown split '{text}'; use random, kmeans:COL,COL,..., butina, butina:distant-groups or column:COL",
        {"option": text},
    )


# ---------------------------------------------------------------------------------------------- assignment


@dataclass(frozen=True)
class SplitAssignment:
    """`part[i]` is row i's part: 0 members, 1 holdout, 2 validation, 3 test, 4 external, -1 unused (not
    sampled)."""

    part: npt.NDArray[np.int64]
    details: dict[str, int | float] = field(default_factory=dict)


def assign_split(
    df: pd.DataFrame,
    spec: SplitSpec,
    labels: npt.NDArray[np.int64],
    *,
    seed: int = 0,
    fingerprints: npt.NDArray[np.uint8] | None = None,
) -> SplitAssignment:
    """Compute the part of every row of `df` (labels are class indices; fingerprints needed for Butina)."""
    if isinstance(spec, RandomSplit):
        rng = np.random.default_rng(seed)
        assignment = SplitAssignment(stratified_parts(labels, spec.member_fractions(), rng))
    elif isinstance(spec, KMeansSplit):
        assignment = kmeans_split(df, spec, labels, seed)
    elif isinstance(spec, ColumnSplit):
        assignment = SplitAssignment(column_parts(df, spec.column))
    else:
        if fingerprints is None:
            raise DatasetError("butina_needs_smiles", "the Butina split needs a SMILES column")
        assignment = butina_split(fingerprints, spec, labels, seed)
    # Column splits may leave external out; random has none; k-means and Butina always have one.
    if isinstance(spec, ColumnSplit):
        external = bool((assignment.part == EXTERNAL).any())
    else:
        external = not isinstance(spec, RandomSplit)
    min_rows = MIN_BUTINA_GROUP_ROWS if isinstance(spec, ButinaSplit) else MIN_PART_ROWS
    check_parts(assignment.part, labels, min_rows, external=external)
    return assignment


def stratified_parts(
    labels: npt.NDArray[np.int64],
    fractions: tuple[float, ...],
    rng: np.random.Generator,
) -> npt.NDArray[np.int64]:
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


def encode_for_clustering(df: pd.DataFrame, columns: list[str]) -> npt.NDArray[np.float64]:
    """Numeric columns standardized (median-imputed, clipped, sd 0.5), categorical ones one-hot (missing = own level,
    two levels = one 0/1 column)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(
            "missing_column", f"k-means column(s) not in the table: {', '.join(missing)}", {"columns": missing}
        )
    blocks: list[npt.NDArray[np.float64]] = []
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


def kmeans_split(df: pd.DataFrame, spec: KMeansSplit, labels: npt.NDArray[np.int64], seed: int) -> SplitAssignment:
    """Larger k-means cluster -> members / holdout / validation / test (stratified), the other -> external."""
    x = encode_for_clustering(df, spec.columns)
    if len(np.unique(x, axis=0)) < 2:
        raise DatasetError(
            "split_too_small", "the k-means columns hold a single distinct row; they cannot form two clusters"
        )
    from sklearn.cluster import KMeans  # scikit-learn takes ~1 s to load; the API imports this module

    clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(x)
    sizes = np.bincount(clusters, minlength=2)
    larger = int(np.argmax(sizes))  # ties: sklearn's cluster 0
    in_larger = clusters == larger
    parts = np.full(len(df), EXTERNAL, dtype=np.int64)
    rng = np.random.default_rng(seed)
    parts[in_larger] = stratified_parts(labels[in_larger], spec.member_fractions(), rng)
    return SplitAssignment(parts, {"cluster0_rows": int(sizes[larger]), "cluster1_rows": int(sizes[1 - larger])})


def column_parts(df: pd.DataFrame, column: str) -> npt.NDArray[np.int64]:
    """The user's split column, whose values must each name a part (COLUMN_VALUES; surrounding spaces are
    ignored, `nonmembers` means external)."""
    if column not in df.columns:
        raise DatasetError("missing_column", f"split column '{column}' is not in the table", {"column": column})
    text = df[column].astype("string").str.strip()
    parts = np.array(
        [COLUMN_VALUES.get(value, UNUSED) if isinstance(value, str) else UNUSED for value in text], dtype=np.int64
    )
    bad = parts == UNUSED
    if bad.any():
        first = int(np.flatnonzero(bad)[0]) + 1
        raise DatasetError(
            "invalid_split_column",
            f"split column '{column}' has {int(bad.sum())} values that are not members, holdout, validation, "
            f"test or external (or nonmembers, read as external) (first at row {first})",
            {"column": column, "count": int(bad.sum()), "row": first},
        )
    return parts


def butina_split(
    fingerprints: npt.NDArray[np.uint8],
    spec: ButinaSplit,
    labels: npt.NDArray[np.int64],
    seed: int,
) -> SplitAssignment:
    """Sub-sample (seeded) to spec.compounds, then two groups of whole Butina clusters (spec.grouping): group 0
    is the member side (divided by the fractions, stratified), group 1 external."""
    n = len(fingerprints)
    rows = np.arange(n)
    if n > spec.compounds:
        rows = np.sort(np.random.default_rng(seed).choice(n, spec.compounds, replace=False))
    needed = len(PARTS) * MIN_BUTINA_GROUP_ROWS
    if len(rows) < needed:
        raise DatasetError("split_too_small", f"the Butina split needs at least {needed} valid compounds")
    groups = butina_groups(fingerprints[rows], spec.cutoff, spec.fractions, spec.grouping, seed)
    parts = np.full(n, UNUSED, dtype=np.int64)
    side = groups.group == 0  # distant-groups numbers groups largest first; outlying's external group is 1
    sub = np.full(len(rows), EXTERNAL, dtype=np.int64)
    sub[groups.group < 0] = UNUSED  # fewer Butina clusters than groups: nothing assigned
    sub[side] = stratified_parts(labels[rows][side], spec.member_fractions(), np.random.default_rng(seed))
    parts[rows] = sub
    return SplitAssignment(
        parts,
        {
            "compounds_clustered": len(rows),
            "compounds_available": n,
            "butina_clusters": groups.n_clusters,
            "largest_butina_cluster": groups.largest_cluster,
        },
    )


def check_parts(
    parts: npt.NDArray[np.int64],
    labels: npt.NDArray[np.int64],
    min_rows: int,
    *,
    external: bool,
) -> None:
    """members, holdout, validation and test (and external when the split has one) each need min_rows rows
    and two classes: AUC is undefined on one class, and a target model trained on one class learns nothing."""
    names = PARTS if external else MEMBER_SIDE_PARTS
    for code, name in enumerate(names):
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
