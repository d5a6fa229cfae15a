"""The study's objective, its standard error, and the Pareto front.

The objective reads utility on the validation split (selection); the test split only reports the chosen point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.tuning.results import Baseline, Trial, TrialMeasurement

# "How to DP-fy ML" (Ponomareva et al. 2023): epsilon <= 10 is a reasonable guarantee, above it a weak one.
MEANINGFUL_EPSILON = 10.0


def objective(utility: float, attack_accuracy: float, baseline: Baseline, tradeoff: float) -> float:
    """o_i = t * (u_i - u_start) + (1 - t) * (p_start - p_i), to maximise; u on the validation split."""
    if not 0.0 <= tradeoff <= 1.0:
        raise ValueError(f"tradeoff must be in [0, 1], got {tradeoff}")
    return tradeoff * (utility - baseline.utility_validation) + (1 - tradeoff) * (
        baseline.attack_accuracy - attack_accuracy
    )


def score(measurement: TrialMeasurement, baseline: Baseline, tradeoff: float, index: int) -> Trial:
    """The objective as the mean over repeats, with its standard error (each repeat scored, then averaged)."""
    fields = {name: getattr(measurement, name) for name in TrialMeasurement.model_fields}
    per_repeat = [
        objective(v.utility_validation, v.attack_accuracy, baseline, tradeoff) for v in measurement.repeat_values
    ]
    mean = sum(per_repeat) / len(per_repeat)
    se = None
    if len(per_repeat) > 1:
        variance = sum((o - mean) ** 2 for o in per_repeat) / (len(per_repeat) - 1)
        se = math.sqrt(variance / len(per_repeat))
    return Trial(
        **fields,
        index=index,
        utility_loss=baseline.utility_test - measurement.utility_test,
        objective=mean,
        objective_se=se,
        objective_sampling_se=sampling_se(measurement, tradeoff),
    )


def sampling_se(measurement: TrialMeasurement, tradeoff: float) -> float | None:
    """The objective's standard error from the records measured, per repeat, over sqrt(repeats): the
    validation AUC's Hanley-McNeil SE (its 95 % interval over 2 x 1.96) and the attack accuracy's binomial SE
    on the records the game scores, combined as independent with weights t and 1 - t."""
    interval = measurement.utility_validation_interval
    if interval is None:
        return None
    utility_se = (interval.high - interval.low) / (2 * 1.959964)
    game = measurement.games.population if measurement.privacy_game == "population" else measurement.games.membership
    if game is None:
        return None
    p = min(max(measurement.attack_accuracy, 0.0), 1.0)
    attack_se = math.sqrt(max(p * (1 - p), 1e-12) / (2 * game.members))
    combined = math.sqrt((tradeoff * utility_se) ** 2 + ((1 - tradeoff) * attack_se) ** 2)
    return combined / math.sqrt(measurement.repeats)


def pareto_front(trials: Sequence[TrialMeasurement | Trial]) -> list[int]:
    """Positions (or trial indices, for Trials) not dominated on (higher utility_validation, lower
    attack_accuracy): the front selection sees, so the test split stays for reporting."""
    front = []
    for i, a in enumerate(trials):
        dominated = any(
            b.utility_validation >= a.utility_validation
            and b.attack_accuracy <= a.attack_accuracy
            and (b.utility_validation > a.utility_validation or b.attack_accuracy < a.attack_accuracy)
            for b in trials
        )
        if not dominated:
            front.append(getattr(a, "index", i))
    return sorted(front)
