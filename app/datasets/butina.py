"""Chemically distant groups of compounds: Butina clusters, grouped whole (docs/datasets.md, "Butina split").

Two groupings (`GROUPINGS`):

- `outlying`: the external group is the Butina clusters least typical of the whole sample (lowest mean Tanimoto
  similarity to a seeded reference sample of its compounds), taken from the least typical up to the external
  share; everything else is the member side, one large diverse region. See `outlying_groups`.
- `distant-groups` (the grouping before issue 14): clusters merged into groups around far-apart seeds, below.

distant-groups: Butina alone yields thousands of small clusters (2,854 on 11,000 HIV compounds, the largest
221), never a few large groups, so the clusters are merged (the study used three groups):

1. Describe each Butina cluster by its centroid, the mean of its members' fingerprints.
2. Seeds: the largest cluster, then (one per further group) the cluster least similar (continuous Tanimoto on centroids) to
   every seed so far (farthest-point), among clusters of at least `min_seed_size` compounds so that a seed
   is a populated chemotype rather than an odd singleton.
3. Assign whole clusters to groups: each group has a capacity (its fraction of the compounds); clusters go
   in order of regret (how much better their most similar group is than their second), each to the most
   similar group that still has room.
4. Recompute each group's centroid from its compounds and repeat step 3 (`refinements` times).

A Butina cluster is never split, so near-duplicates never straddle two groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.datasets.smiles import tanimoto

# The study's groups (6.3.2): 5,627 train, 2,953 test, 2,198 external compounds.
STUDY_GROUP_FRACTIONS = (0.52, 0.27, 0.21)
GROUPINGS = ("outlying", "distant-groups")
# Compounds the typicality of the outlying grouping is measured against (seeded sample of the clustered ones).
TYPICALITY_REFERENCE = 2000


@dataclass(frozen=True)
class ButinaGroups:
    """`group[i]` is compound i's group (0 = largest); `cluster[i]` its Butina cluster."""

    group: npt.NDArray[np.int64]
    cluster: npt.NDArray[np.int64]
    n_clusters: int
    largest_cluster: int


def tanimoto_neighbours(
    bits: npt.NDArray[Any],
    cutoff: float,
    block: int = 1024,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each compound's neighbours (Tanimoto distance <= cutoff, itself included) as CSR (indptr, indices),
    indices ascending per row.

    Distances are computed as tanimoto_distance_matrix does (float32, exact integer dot products), upper
    triangle only and in row blocks, so memory grows with the number of neighbours, not with n^2 (the
    whole 41k HIV file never needs its 6.8 GB matrix).
    """
    x = np.asarray(bits, dtype=np.float32)
    n = len(x)
    counts = x.sum(axis=1)
    heads: list[npt.NDArray[np.int64]] = []
    tails: list[npt.NDArray[np.int64]] = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        dot = x[start:stop] @ x[start:].T
        union = counts[start:stop, None] + counts[None, start:] - dot
        distance = 1.0 - np.divide(dot, union, out=np.zeros_like(dot), where=union > 0)
        rows, cols = np.nonzero(distance <= np.float32(cutoff))
        upper = cols > rows  # j > i; the diagonal is added below, as in the dense matrix (distance 0)
        heads.append(rows[upper].astype(np.int64) + start)
        tails.append(cols[upper].astype(np.int64) + start)
    i = np.concatenate(heads + tails + [np.arange(n)])
    j = np.concatenate(tails + heads + [np.arange(n)])
    order = np.lexsort((j, i))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(i, minlength=n))])
    return indptr, j[order]


def butina_clusters(bits: npt.NDArray[Any], cutoff: float) -> npt.NDArray[np.int64]:
    """Butina cluster index of every compound, for a Tanimoto distance cutoff.

    The same algorithm and order as `rdkit.ML.Cluster.Butina.ClusterData(D, n, cutoff, isDistData=True)`
    (no reordering), on sparse neighbour lists instead of a dense n x n matrix; tests check it gives RDKit's
    clusters.
    """
    n = len(bits)
    indptr, indices = tanimoto_neighbours(bits, cutoff)
    degree = np.diff(indptr)
    # RDKit sorts (neighbour count, index) pairs descending: most neighbours first, ties by higher index.
    order = np.lexsort((-np.arange(n), -degree))
    labels = np.full(n, -1, dtype=np.int64)
    cluster = 0
    for idx in order:
        if labels[idx] >= 0:
            continue
        labels[idx] = cluster
        if degree[idx] > 1:
            neighbours = indices[indptr[idx] : indptr[idx + 1]]
            labels[neighbours[labels[neighbours] < 0]] = cluster
        cluster += 1
    return labels


def compound_typicality(
    bits: npt.NDArray[Any],
    seed: int,
    reference: int = TYPICALITY_REFERENCE,
) -> npt.NDArray[np.float64]:
    """Each compound's mean Tanimoto similarity to a seeded sample of `reference` compounds (all when fewer)."""
    n = len(bits)
    rows = np.arange(n) if n <= reference else np.random.default_rng(seed).choice(n, reference, replace=False)
    sample = bits[rows]
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, 4096):
        out[start : start + 4096] = tanimoto(bits[start : start + 4096], sample).mean(axis=1)
    return out


def outlying_groups(
    bits: npt.NDArray[Any],
    labels: npt.NDArray[np.int64],
    external_share: float,
    seed: int,
) -> npt.NDArray[np.int64]:
    """Group of each compound: 1 (external) for the least typical whole Butina clusters, 0 for the rest.

    A cluster's typicality is its compounds' mean `compound_typicality`. Clusters are taken from the least
    typical up while the external group stays within `external_share` of the compounds (ties by cluster
    index). No label is used.
    """
    sizes = np.bincount(labels)
    if len(sizes) < 2:
        return np.full(len(labels), -1, dtype=np.int64)
    typicality = np.bincount(labels, weights=compound_typicality(bits, seed)) / sizes
    order = np.argsort(typicality, kind="stable")
    within = np.cumsum(sizes[order]) <= external_share * len(labels)
    external = order[within]
    if len(external) == 0:
        external = order[:1]
    return np.isin(labels, external).astype(np.int64)


def cluster_centroids(
    bits: npt.NDArray[Any],
    labels: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Mean fingerprint and size of each cluster."""
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    sums = np.zeros((k, bits.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, bits.astype(np.float64))
    return (sums / sizes[:, None]).astype(np.float32), sizes


def farthest_point_seeds(
    centroids: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.int64],
    n_groups: int,
    min_seed_size: int,
) -> list[int]:
    """Start at the largest cluster, then add the candidate least similar to all seeds chosen so far."""
    candidates = np.flatnonzero(sizes >= min_seed_size)
    if len(candidates) < n_groups:
        candidates = np.argsort(-sizes, kind="stable")[: max(n_groups, len(candidates))]
    seeds = [int(candidates[np.argmax(sizes[candidates])])]
    while len(seeds) < n_groups:
        closest = tanimoto(centroids[candidates], centroids[seeds]).max(axis=1)
        closest[np.isin(candidates, seeds)] = np.inf
        seeds.append(int(candidates[np.argmin(closest)]))
    return seeds


def assign_with_capacity(
    similarity: npt.NDArray[Any],
    sizes: npt.NDArray[np.int64],
    capacity: npt.NDArray[np.float64],
) -> npt.NDArray[np.int64]:
    """Group of each cluster: most confident clusters first, each to its most similar group with room left.

    A cluster that fits nowhere goes to the group with the most room left, so every cluster is placed.
    """
    ranked = np.sort(similarity, axis=1)
    regret = ranked[:, -1] - ranked[:, -2]
    order = np.lexsort((-sizes, -regret))  # by regret, ties by size, both descending
    left = capacity.astype(np.float64).copy()
    groups = np.empty(len(sizes), dtype=np.int64)
    for k in order:
        choice = int(np.argmax(left))
        for g in np.argsort(-similarity[k], kind="stable"):
            if left[g] >= sizes[k]:
                choice = int(g)
                break
        groups[k] = choice
        left[choice] -= sizes[k]
    return groups


def merge_clusters(
    bits: npt.NDArray[Any],
    labels: npt.NDArray[np.int64],
    fractions: tuple[float, ...] = STUDY_GROUP_FRACTIONS,
    *,
    min_seed_size: int = 5,
    refinements: int = 5,
) -> npt.NDArray[np.int64]:
    """Group of each compound (0 = largest), merging whole Butina clusters as described in the module doc."""
    n_groups = len(fractions)
    centroids, sizes = cluster_centroids(bits, labels)
    if len(sizes) < n_groups:
        return np.full(len(labels), -1, dtype=np.int64)
    capacity = np.asarray(fractions, dtype=np.float64) * len(labels)
    group_centres = centroids[farthest_point_seeds(centroids, sizes, n_groups, min_seed_size)]
    groups = assign_with_capacity(tanimoto(centroids, group_centres), sizes, capacity)
    for _ in range(refinements):
        group_centres = np.stack([_group_centre(centroids, sizes, groups == g) for g in range(n_groups)])
        groups = assign_with_capacity(tanimoto(centroids, group_centres), sizes, capacity)
    # Renumber by size, largest first: group 0 is the Butina split's member side, the last its external group.
    compound_groups = groups[labels]
    order = np.argsort(-np.bincount(compound_groups, minlength=n_groups), kind="stable")
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(n_groups)
    renumbered: npt.NDArray[np.int64] = rank[compound_groups]
    return renumbered


def _group_centre(
    centroids: npt.NDArray[np.float32],
    sizes: npt.NDArray[np.int64],
    mask: npt.NDArray[np.bool_],
) -> npt.NDArray[np.float32]:
    if not mask.any():
        return np.zeros(centroids.shape[1], dtype=np.float32)
    weights = sizes[mask].astype(np.float64)
    weighted_sum = (centroids[mask] * weights[:, None]).sum(axis=0).astype(np.float32)
    centre: npt.NDArray[np.float32] = weighted_sum / np.float32(weights.sum())
    return centre


def butina_groups(
    bits: npt.NDArray[Any],
    cutoff: float,
    fractions: tuple[float, ...] = STUDY_GROUP_FRACTIONS,
    grouping: str = "distant-groups",
    seed: int = 0,
) -> ButinaGroups:
    """Butina clusters of the fingerprints, grouped whole: `distant-groups` merges them into len(fractions)
    distant groups (0 = largest); `outlying` puts the least typical clusters, fractions[-1] of the compounds,
    in group 1 (external) and the rest in group 0."""
    labels = butina_clusters(bits, cutoff)
    if grouping == "outlying":
        groups = outlying_groups(bits, labels, fractions[-1], seed)
    elif grouping == "distant-groups":
        groups = merge_clusters(bits, labels, fractions)
    else:
        raise ValueError(f"unknown Butina grouping {grouping!r}; use one of {', '.join(GROUPINGS)}")
    counts = np.bincount(labels)
    return ButinaGroups(group=groups, cluster=labels, n_clusters=len(counts), largest_cluster=int(counts.max()))
