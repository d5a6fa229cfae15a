"""Pruning hopeless trials: a pure rule, no database and no HTTP (the engine and the service's queue call it).

A trial's first repeat trains to a checkpoint (CHECKPOINT_FRACTION of its steps, through the compiled loop's
DenseTrainer.train_until), and its validation ROC-AUC is read there, with its Hanley-McNeil interval. The
"median" rule (Optuna's MedianPruner) stops the trial when that utility is clearly below the median of the
checkpoint utilities of the job's earlier *completed* trials at the same checkpoint step: like is compared with
like (a partial training against partial trainings, never against final utilities). "Clearly" means by more
than MARGIN_SE standard errors of the trial's own checkpoint AUC. Never:
- during the warm-up (fewer than WARMUP_TRIALS completed trials with a checkpoint);
- when the checkpoint utility reaches the best feasible trial's checkpoint utility (the one a recommendation
  would be compared with);
- for a user's Keras model (spec.keras_json): only the built-in MLP trains in the compiled loop that can stop
  and go on, so such trials always run to the end.

A trial that is not pruned goes on from the checkpoint to the end: the compiled loop makes that bit for bit the
training it would have had without the checkpoint (tests/tuning/test_pruning.py).

A pruned trial keeps the epsilon of its full configuration (all its steps): the configuration is what a user
would train, and the truncated training's smaller epsilon describes nothing anyone would publish.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.tuning.results import Baseline, Estimate, GuaranteeSpec, Trial
from app.tuning.search import PruningRule

# The checkpoint: half the trial's steps (Hyperband's and ASHA's reduction factor 2, one rung).
CHECKPOINT_FRACTION = 0.5
# Optuna's MedianPruner default n_startup_trials is 5; 4 completed trials give a median of two middle values.
WARMUP_TRIALS = 4
# The Hanley-McNeil standard error of the checkpoint AUC includes the validation split's own sampling error,
# which every trial shares (one fixed split); as a margin between two trials it is therefore conservative.
MARGIN_SE = 1.0
# The 95 % normal quantile the utility intervals are built with (attacks.statistics.CONFIDENCE).
Z_95 = 1.959963984540054


def checkpoint_step(steps: int) -> int:
    """The step a trial's utility is read at: CHECKPOINT_FRACTION of its steps, at least 1 and before the end."""
    return min(max(1, round(steps * CHECKPOINT_FRACTION)), max(steps - 1, 1))


@dataclass(frozen=True)
class Pruner:
    """What the rule compares a new trial with: the job's completed trials' checkpoints (step, validation AUC)
    and the best feasible trial's checkpoint utility (None when no completed trial is feasible yet)."""

    rule: PruningRule
    history: tuple[tuple[int, float], ...] = field(default=())
    best_feasible: float | None = None


@dataclass(frozen=True)
class PruneDecision:
    prune: bool
    median: float | None  # of the history at the same step; None when it is too short (warm-up)
    compared: int  # completed trials at the same step
    reason: str


def standard_error(utility: Estimate) -> float:
    """The AUC's standard error from its 95 % Hanley-McNeil interval (cut to [0, 1], so never over-stated)."""
    return max(utility.high - utility.low, 0.0) / (2 * Z_95)


def decide(pruner: Pruner, step: int, utility: Estimate) -> PruneDecision:
    """The median rule at one checkpoint. Pure: the same inputs give the same decision."""
    same_step = [value for s, value in pruner.history if s == step]
    if pruner.rule == "none":
        return PruneDecision(False, None, len(same_step), "pruning is off")
    if len(same_step) < WARMUP_TRIALS:
        return PruneDecision(
            False, None, len(same_step), f"warm-up: {len(same_step)} of {WARMUP_TRIALS} completed trials"
        )
    median = float(np.median(same_step))
    margin = MARGIN_SE * standard_error(utility)
    if pruner.best_feasible is not None and utility.value >= pruner.best_feasible:
        return PruneDecision(
            False,
            median,
            len(same_step),
            f"checkpoint utility {utility.value:.4f} reaches the best feasible trial's {pruner.best_feasible:.4f}",
        )
    if utility.value + margin < median:
        return PruneDecision(
            True,
            median,
            len(same_step),
            f"checkpoint validation ROC-AUC {utility.value:.4f} (+ {MARGIN_SE:g} SE = {utility.value + margin:.4f}) "
            f"is below the median {median:.4f} of {len(same_step)} completed trials at step {step}",
        )
    return PruneDecision(
        False,
        median,
        len(same_step),
        f"checkpoint validation ROC-AUC {utility.value:.4f} is within {MARGIN_SE:g} SE of the median {median:.4f} "
        "or above it",
    )


def pruner_for(
    rule: PruningRule, trials: Sequence[Trial], baseline: Baseline, guarantee: GuaranteeSpec
) -> Pruner | None:
    """The pruner for the next trial of a job, from its completed trials (engine.tune and the service's queue
    alike); None when pruning is off."""
    if rule == "none":
        return None
    from app.tuning.recommendation import feasible  # recommendation imports the search, which this module reads

    with_checkpoint = [t for t in sorted(trials, key=lambda t: t.index) if t.checkpoint is not None]
    # An undefined (NaN) checkpoint AUC, on a validation split of one class, would make every median NaN.
    history = tuple(
        (t.checkpoint.step, t.checkpoint.utility_validation.value)
        for t in with_checkpoint
        if t.checkpoint is not None and math.isfinite(t.checkpoint.utility_validation.value)
    )
    allowed = [t for t in with_checkpoint if feasible(t, baseline, guarantee)]
    best = max(allowed, key=lambda t: (t.objective, -t.index)) if allowed else None
    return Pruner(
        rule=rule,
        history=history,
        best_feasible=best.checkpoint.utility_validation.value if best is not None and best.checkpoint else None,
    )
