"""Butina split on a seeded sub-sample of the real HIV file: distant, disjoint groups."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.datasets import ButinaSplit, prepare_dataset
from app.datasets.butina import butina_clusters, butina_groups, merge_clusters
from app.datasets.smiles import morgan_fingerprints, tanimoto, tanimoto_distance_matrix


@pytest.fixture(scope="module")
def hiv_sample(hiv_csv: Path) -> pd.DataFrame:
    df = pd.read_csv(hiv_csv)
    return df.sample(n=3000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def hiv_bits(hiv_sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    bits, valid = morgan_fingerprints(hiv_sample["smiles"].iloc[:1500])
    return bits[valid], hiv_sample["HIV_active"].to_numpy()[:1500][valid]


def test_distance_matrix_matches_rdkit() -> None:
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    smiles = ["CCO", "CCN", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
    bits, _ = morgan_fingerprints(smiles, bits=1024)
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    fps = [generator.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    expected = np.array([[1.0 - DataStructs.TanimotoSimilarity(a, b) for b in fps] for a in fps])
    assert np.allclose(tanimoto_distance_matrix(bits), expected, atol=1e-6)


def rdkit_clusters(bits: np.ndarray, cutoff: float) -> np.ndarray:
    """RDKit's Butina on the dense distance matrix: what butina_clusters replaced."""
    from rdkit.ML.Cluster import Butina

    labels = np.empty(len(bits), dtype=np.int64)
    for index, members in enumerate(
        Butina.ClusterData(tanimoto_distance_matrix(bits), len(bits), cutoff, isDistData=True)
    ):
        labels[list(members)] = index
    return labels


@pytest.mark.parametrize("cutoff", [0.6, 0.7])
def test_sparse_butina_gives_rdkits_clusters(hiv_bits: tuple[np.ndarray, np.ndarray], cutoff: float) -> None:
    bits, _ = hiv_bits
    assert np.array_equal(butina_clusters(bits, cutoff), rdkit_clusters(bits, cutoff))


def test_distant_groups_is_the_old_assignment(hiv_bits: tuple[np.ndarray, np.ndarray]) -> None:
    """The legacy name gives exactly what the grouping gave before issue 14 (RDKit's clusters, merged)."""
    bits, _ = hiv_bits
    fractions = ButinaSplit().fractions
    old = merge_clusters(bits, rdkit_clusters(bits, 0.7), fractions)
    assert np.array_equal(butina_groups(bits, 0.7, fractions, "distant-groups").group, old)
    assert ButinaSplit(grouping="distant-groups") == ButinaSplit()


def test_outlying_keeps_clusters_whole_and_external_far(hiv_bits: tuple[np.ndarray, np.ndarray]) -> None:
    bits, _ = hiv_bits
    groups = butina_groups(bits, 0.7, (0.79, 0.21), "outlying", seed=0)
    assert set(np.unique(groups.group)) == {0, 1}
    assert (pd.Series(groups.group).groupby(groups.cluster).nunique() == 1).all()
    external = groups.group == 1
    assert 0.15 < external.mean() <= 0.21
    similarity = tanimoto(bits, bits).astype(np.float64)
    np.fill_diagonal(similarity, np.nan)
    side = ~external
    within_side = np.nanmean(similarity[np.ix_(side, side)])  # what members and test share
    side_external = np.nanmean(similarity[np.ix_(side, external)])
    assert side_external < 0.8 * within_side
    again = butina_groups(bits, 0.7, (0.79, 0.21), "outlying", seed=0)
    assert np.array_equal(groups.group, again.group)


def test_outlying_split_shares_test_with_members(hiv_sample: pd.DataFrame) -> None:
    split = ButinaSplit(grouping="outlying", max_compounds=1500)
    data, report = prepare_dataset(hiv_sample, label="HIV_active", split=split, smiles_column="smiles", seed=0)
    assert report.split_details["compounds_clustered"] == 1500
    m, t, e = (x.astype(np.float32) for x in (data.x_members, data.x_test, data.x_external))
    assert tanimoto(m, e).mean() < tanimoto(m, t).mean()
    for part in ("members", "holdout", "validation", "test", "external"):
        assert min(report.class_counts[part].values()) > 0


def test_groups_are_distant_and_never_split_a_cluster(hiv_bits: tuple[np.ndarray, np.ndarray]) -> None:
    bits, _ = hiv_bits
    groups = butina_groups(bits, cutoff=0.7)
    sizes = np.bincount(groups.group, minlength=3)
    assert sizes.sum() == len(bits) and sizes[0] >= sizes[1] >= sizes[2] > 0
    assert sizes / sizes.sum() == pytest.approx([0.52, 0.27, 0.21], abs=0.03)
    # disjoint: every Butina cluster lies in exactly one group
    per_cluster = pd.Series(groups.group).groupby(groups.cluster).nunique()
    assert (per_cluster == 1).all()
    similarity = tanimoto(bits, bits)
    np.fill_diagonal(similarity, np.nan)
    same = groups.group[:, None] == groups.group[None, :]
    within = np.nanmean(similarity[same])
    cross = np.nanmean(similarity[~same])
    assert cross < within


def test_two_groups_have_the_member_side_and_external_shares(hiv_bits: tuple[np.ndarray, np.ndarray]) -> None:
    bits, _ = hiv_bits
    groups = butina_groups(bits, cutoff=0.7, fractions=ButinaSplit().fractions)
    sizes = np.bincount(groups.group, minlength=2)
    assert len(sizes) == 2 and sizes[0] > sizes[1] > 0
    assert sizes / sizes.sum() == pytest.approx([0.79, 0.21], abs=0.03)
    assert (pd.Series(groups.group).groupby(groups.cluster).nunique() == 1).all()


def test_butina_split_subsamples_and_keeps_both_classes(hiv_sample: pd.DataFrame) -> None:
    data, report = prepare_dataset(
        hiv_sample, label="HIV_active", split=ButinaSplit(max_compounds=1500), smiles_column="smiles", seed=0
    )
    assert report.rows_in == 3000 and report.rows_used == 1500
    assert report.split_details["compounds_clustered"] == 1500
    sizes = report.split_sizes
    assert sizes.external is not None and sizes.external >= 20
    side = sizes.members + sizes.holdout + sizes.validation + sizes.test
    assert side + sizes.external == 1500
    assert sizes.external / 1500 == pytest.approx(0.21, abs=0.03)
    for got, share in zip(
        (sizes.members, sizes.holdout, sizes.validation, sizes.test), (0.35, 0.35, 0.15, 0.15), strict=True
    ):
        assert got == pytest.approx(share * side, abs=2)
    for part in ("members", "holdout", "validation", "test", "external"):
        assert min(report.class_counts[part].values()) > 0
    again, _ = prepare_dataset(
        hiv_sample, label="HIV_active", split=ButinaSplit(max_compounds=1500), smiles_column="smiles", seed=0
    )
    assert np.array_equal(data.x_test, again.x_test)
