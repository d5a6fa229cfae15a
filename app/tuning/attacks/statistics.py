"""Intervals and ROC readings for membership scores: every estimate an attack reports carries its 95 % interval."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.stats import beta, norm
from sklearn.metrics import roc_auc_score, roc_curve

from app.tuning.results import AttackScores, Estimate

CONFIDENCE = 0.95


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact two-sided binomial interval (Clopper & Pearson 1934)."""
    if trials <= 0:
        return 0.0, 1.0
    alpha = 1.0 - confidence
    low = 0.0 if successes == 0 else float(beta.ppf(alpha / 2, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - alpha / 2, successes + 1, trials - successes))
    return low, high


def auc_interval(auc: float, n_positive: int, n_negative: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Normal interval with the Hanley & McNeil (1982) standard error of an AUC."""
    if not math.isfinite(auc) or n_positive < 1 or n_negative < 1:
        return 0.0, 1.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (n_positive - 1) * (q1 - auc * auc) + (n_negative - 1) * (q2 - auc * auc)) / (
        n_positive * n_negative
    )
    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def estimate(value: float, interval: tuple[float, float]) -> Estimate:
    return Estimate(value=float(value), low=float(interval[0]), high=float(interval[1]))


def proportion(successes: int, trials: int) -> Estimate:
    return estimate(successes / trials if trials else 0.0, clopper_pearson(successes, trials))


def tpr_at_fpr(truth: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], max_fpr: float) -> Estimate:
    """The ROC's TPR at the largest threshold whose FPR is at most `max_fpr`, with a Clopper-Pearson interval on
    the members counted at that threshold. The threshold is read from the same records (the usual ROC reading);
    the empirical epsilon uses thresholds chosen on other records (lower_bound.py)."""
    fpr, tpr, _ = roc_curve(truth, scores)
    allowed = np.flatnonzero(fpr <= max_fpr)
    value = float(tpr[allowed].max()) if allowed.size else 0.0
    positives = int(truth.sum())
    return estimate(value, clopper_pearson(int(round(value * positives)), positives))


def roc_auc(truth: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> Estimate:
    value = float(roc_auc_score(truth, scores))
    positives = int(truth.sum())
    return estimate(value, auc_interval(value, positives, len(truth) - positives))


def attack_scores(
    truth: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float64],
    predicted_member: npt.NDArray[np.bool_],
) -> AttackScores:
    """Scores of one attack: `scores` rank records (higher = more likely a member); `predicted_member` is the
    attack's decision, made with a threshold fitted on other records."""
    correct = int(np.sum(predicted_member.astype(bool) == truth.astype(bool)))
    return AttackScores(
        accuracy=proportion(correct, len(truth)),
        auc=roc_auc(truth, scores),
        tpr_at_1pct_fpr=tpr_at_fpr(truth, scores, 0.01),
        tpr_at_0_1pct_fpr=tpr_at_fpr(truth, scores, 0.001),
    )


def best_accuracy_threshold(truth: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> float:
    """The threshold (predict member when score >= it) with the highest accuracy on these records."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_truth = scores[order], truth[order].astype(np.int64)
    # Predicting the top k as members: correct = members in the top k + nonmembers below it.
    members_above = np.concatenate([[0], np.cumsum(sorted_truth)])
    nonmembers_below = (len(truth) - sorted_truth.sum()) - (np.arange(len(truth) + 1) - members_above)
    correct = members_above + nonmembers_below
    # Only cut between distinct scores, so ties fall on one side.
    cuts = [0] + [k for k in range(1, len(truth)) if sorted_scores[k - 1] != sorted_scores[k]] + [len(truth)]
    k = max(cuts, key=lambda c: correct[c])
    if k == 0:
        return math.inf
    return float(sorted_scores[k - 1])
