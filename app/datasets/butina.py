"""Chemically distant groups of compounds (one per fraction): Butina clusters, merged around far-apart seeds.

The Butina split asks for two (the member side and the external group); the study used three. Butina alone
yields thousands of small clusters (2,854 on 11,000 HIV compounds, the largest 221), never a few large
groups, so the clusters are merged (docs/datasets.md, "Butina split"):

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

import numpy as np
from rdkit.ML.Cluster import Butina

from app.datasets.smiles import tanimoto, tanimoto_distance_matrix

# The study's groups (6.3.2): 5,627 train, 2,953 test, 2,198 external compounds.
STUDY_GROUP_FRACTIONS = (0.52, 0.27, 0.21)


@dataclass(frozen=True)
class ButinaGroups:
    """`group[i]` is compound i's group (0 = largest); `cluster[i]` its Butina cluster."""

    group: np.ndarray
    cluster: np.ndarray
    n_clusters: int
    largest_cluster: int


def butina_clusters(bits: np.ndarray, cutoff: float) -> np.ndarray:
    """Butina cluster index of every compound, for a Tanimoto distance cutoff."""
    n = len(bits)
    clusters = Butina.ClusterData(tanimoto_distance_matrix(bits), n, cutoff, isDistData=True)
    labels = np.empty(n, dtype=np.int64)
    for index, members in enumerate(clusters):
        labels[list(members)] = index
    return labels


def cluster_centroids(bits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean fingerprint and size of each cluster."""
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    sums = np.zeros((k, bits.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, bits.astype(np.float64))
    return (sums / sizes[:, None]).astype(np.float32), sizes


def farthest_point_seeds(centroids: np.ndarray, sizes: np.ndarray, n_groups: int, min_seed_size: int) -> list[int]:
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


def assign_with_capacity(similarity: np.ndarray, sizes: np.ndarray, capacity: np.ndarray) -> np.ndarray:
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
    bits: np.ndarray,
    labels: np.ndarray,
    fractions: tuple[float, ...] = STUDY_GROUP_FRACTIONS,
    *,
    min_seed_size: int = 5,
    refinements: int = 5,
) -> np.ndarray:
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
    return rank[compound_groups]


def _group_centre(centroids: np.ndarray, sizes: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if not mask.any():
        return np.zeros(centroids.shape[1], dtype=np.float32)
    weights = sizes[mask].astype(np.float64)
    return (centroids[mask] * weights[:, None]).sum(axis=0).astype(np.float32) / np.float32(weights.sum())


def butina_groups(
    bits: np.ndarray, cutoff: float, fractions: tuple[float, ...] = STUDY_GROUP_FRACTIONS
) -> ButinaGroups:
    """Butina clusters of the fingerprints, merged into len(fractions) distant groups."""
    labels = butina_clusters(bits, cutoff)
    groups = merge_clusters(bits, labels, fractions)
    counts = np.bincount(labels)
    return ButinaGroups(group=groups, cluster=labels, n_clusters=len(counts), largest_cluster=int(counts.max()))
