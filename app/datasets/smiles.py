"""SMILES -> ECFP (Morgan) bit vectors, and Tanimoto similarities between them."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt


@functools.cache
def _chem() -> Any:
    """RDKit's Chem module, loaded on first use: the API imports the data set modules, and only a SMILES
    column needs RDKit (about 0.2 s to load)."""
    from rdkit import Chem, rdBase

    # RDKit prints every unparsable SMILES to stderr, value included; invalid SMILES are counted instead.
    rdBase.DisableLog("rdApp.*")  # RDLogger re-exports it; RDKit's stubs have it only here
    return Chem


def _fingerprinter(radius: int, bits: int) -> Any:
    _chem()  # RDKit's logging off before the first parse
    try:  # the generator API (RDKit >= 2023.09); AllChem's function is deprecated there
        from rdkit.Chem import rdFingerprintGenerator
    except ImportError:  # pragma: no cover - older RDKit
        from rdkit import DataStructs
        from rdkit.Chem import rdMolDescriptors  # AllChem re-exports this function; RDKit's stubs say so only here

        def fingerprint(mol: Any) -> npt.NDArray[np.uint8]:
            out = np.zeros(bits, dtype=np.uint8)
            bit_vector = rdMolDescriptors.GetMorganFingerprintAsBitVect(mol, radius, nBits=bits)
            DataStructs.ConvertToNumpyArray(bit_vector, out)
            return out

        return fingerprint
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    return generator.GetFingerprintAsNumPy


def morgan_fingerprints(
    smiles: Iterable[object],
    radius: int = 2,
    bits: int = 1024,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """ECFP bits (n, bits) uint8 and a validity mask; rows of invalid or missing SMILES are all zeros."""
    fingerprint = _fingerprinter(radius, bits)
    texts = list(smiles)
    out = np.zeros((len(texts), bits), dtype=np.uint8)
    valid = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        mol = molecule(text)
        if mol is not None:
            out[i] = fingerprint(mol)
            valid[i] = True
    return out, valid


def molecule(text: object) -> Any:
    """The RDKit molecule of a SMILES string; None for anything that is not one (missing, blank, invalid)."""
    return _chem().MolFromSmiles(text) if isinstance(text, str) and text.strip() else None


def tanimoto(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Tanimoto similarity of every row of `a` with every row of `b`.

    For 0/1 rows this is |a & b| / |a | b|; for real-valued rows (mean fingerprints of clusters) it is the
    continuous form a.b / (|a|^2 + |b|^2 - a.b). Two empty fingerprints count as dissimilar (0).
    """
    a32 = np.asarray(a, dtype=np.float32)
    b32 = np.asarray(b, dtype=np.float32)
    dot = a32 @ b32.T
    union = (a32 * a32).sum(axis=1)[:, None] + (b32 * b32).sum(axis=1)[None, :] - dot
    return np.divide(dot, union, out=np.zeros_like(dot), where=union > 0)


def tanimoto_distance_matrix(bits: npt.NDArray[Any], block: int = 2048) -> npt.NDArray[np.float32]:
    """Full (n, n) float32 Tanimoto distance matrix, built in row blocks.

    A float32 square (484 MB at 11,000 compounds) is what Butina.ClusterData accepts without copying;
    its condensed 1-D input is expanded to a float64 square internally, twice the memory.
    """
    x = np.asarray(bits, dtype=np.float32)
    counts = x.sum(axis=1)
    out = np.empty((len(x), len(x)), dtype=np.float32)
    for start in range(0, len(x), block):
        stop = min(start + block, len(x))
        dot = x[start:stop] @ x.T
        union = counts[start:stop, None] + counts[None, :] - dot
        out[start:stop] = 1.0 - np.divide(dot, union, out=np.zeros_like(dot), where=union > 0)
    np.fill_diagonal(out, 0.0)
    return out
