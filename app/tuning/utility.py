"""Utility: ROC-AUC for binary labels (the study's metric), macro one-vs-rest ROC-AUC for multi-class."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score


def roc_auc(probabilities: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> float:
    """AUC of the class probabilities; NaN when the split holds fewer than two classes (AUC undefined)."""
    present = np.unique(y)
    if present.size < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(y, probabilities[:, 1]))
    if present.size == probabilities.shape[1]:
        return float(roc_auc_score(y, probabilities, multi_class="ovr", average="macro"))
    # Classes missing from this split: average one-vs-rest AUC over the classes it has.
    return float(np.mean([roc_auc_score(y == c, probabilities[:, c]) for c in present]))


def accuracy(probabilities: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> float:
    return float(np.mean(probabilities.argmax(axis=1) == y))
