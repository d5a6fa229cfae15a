"""The empirical epsilon: what an attack proves about the trained model, at 95 % confidence.

For an (eps, delta)-DP training, every membership test obeys TPR <= e^eps FPR + delta and
TNR <= e^eps FNR + delta (Kairouz et al. 2015). With Clopper-Pearson bounds TPR >= tpr_low and FPR <= fpr_high
(each at 97.5 %, jointly 95 %), eps >= log((tpr_low - delta) / fpr_high), and likewise on the other side.
The threshold (and the attack) are chosen on one half of the records and the bound is computed on the other,
so the choice does not inflate it (Jagielski et al. 2020; Nasr et al. 2021).

It assumes the records' membership was assigned at random (the member side's split is) and treats records as
independent trials, as those audits do.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import beta

CONFIDENCE = 0.95
# Candidate thresholds per attack on the choosing half: quantiles of its scores (enough for a few thousand records).
MAX_THRESHOLDS = 400


def _cp_low(k: npt.NDArray[Any], n: int, alpha: float) -> npt.NDArray[np.float64]:
    k = np.asarray(k, dtype=np.float64)
    return np.where(k > 0, beta.ppf(alpha, np.maximum(k, 1e-300), n - k + 1), 0.0)


def _cp_high(k: npt.NDArray[Any], n: int, alpha: float) -> npt.NDArray[np.float64]:
    k = np.asarray(k, dtype=np.float64)
    return np.where(k < n, beta.ppf(1 - alpha, k + 1, np.maximum(n - k, 1e-300)), 1.0)


def epsilon_bounds(
    tp: npt.NDArray[np.int64],
    fp: npt.NDArray[np.int64],
    members: int,
    nonmembers: int,
    delta: float,
    confidence: float = CONFIDENCE,
) -> npt.NDArray[np.float64]:
    """The epsilon each (tp, fp) count pair proves, at `confidence` jointly (0 where it proves nothing)."""
    alpha = (1.0 - confidence) / 2  # one-sided per rate; the union bound gives the joint level
    tpr_low, fpr_high = _cp_low(tp, members, alpha), _cp_high(fp, nonmembers, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.log((tpr_low - delta) / fpr_high)  # TPR <= e^eps FPR + delta
        complement = np.log((1 - fpr_high - delta) / (1 - tpr_low))  # TNR <= e^eps FNR + delta
    bound = np.fmax(np.nan_to_num(direct, nan=0.0, neginf=0.0), np.nan_to_num(complement, nan=0.0, neginf=0.0))
    return np.maximum(bound, 0.0)


def _counts(
    scores: npt.NDArray[np.float64],
    truth: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Members and nonmembers with score >= each threshold."""
    member_scores = np.sort(scores[truth == 1])
    nonmember_scores = np.sort(scores[truth == 0])
    tp = len(member_scores) - np.searchsorted(member_scores, thresholds, side="left")
    fp = len(nonmember_scores) - np.searchsorted(nonmember_scores, thresholds, side="left")
    return tp, fp


def empirical_epsilon(
    attack_scores: dict[str, npt.NDArray[np.float64]],
    truth: npt.NDArray[np.int64],
    choose: npt.NDArray[np.bool_],
    delta: float,
) -> tuple[float, str | None]:
    """The largest epsilon proved on the records outside `choose` by the (attack, threshold) that proves the
    most on the records in `choose`. Returns (epsilon, attack); (0, None) when nothing is proved."""
    evaluate = ~choose
    best: tuple[float, str, float] | None = None
    for name, scores in attack_scores.items():
        chosen_scores, chosen_truth = scores[choose], truth[choose]
        candidates = np.unique(chosen_scores)
        if len(candidates) > MAX_THRESHOLDS:  # quantiles of many scores; the cut may then be slightly off
            candidates = np.unique(np.quantile(chosen_scores, np.linspace(0, 1, MAX_THRESHOLDS)))
        tp, fp = _counts(chosen_scores, chosen_truth, candidates)
        bounds = epsilon_bounds(tp, fp, int(chosen_truth.sum()), int((1 - chosen_truth).sum()), delta)
        k = int(np.argmax(bounds))
        if best is None or bounds[k] > best[0]:
            best = (float(bounds[k]), name, float(candidates[k]))
    if best is None or best[0] <= 0:
        return 0.0, None
    _, name, threshold = best
    scores, held_truth = attack_scores[name][evaluate], truth[evaluate]
    tp, fp = _counts(scores, held_truth, np.array([threshold]))
    proved = float(epsilon_bounds(tp, fp, int(held_truth.sum()), int((1 - held_truth).sum()), delta)[0])
    return (proved, name) if proved > 0 and math.isfinite(proved) else (0.0, None)
