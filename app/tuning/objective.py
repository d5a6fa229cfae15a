"""The study's objective, the Pareto front, and the recommendation for any trade-off t.

The objective reads utility on the validation split (selection); the test split only reports the chosen point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from app.tuning.results import Baseline, Recommendation, Trial, TrialMeasurement

TUNING_COST_NOTE = (
    "Choosing parameters by looking at results on the private data is itself a privacy cost "
    "(Papernot & Steinke 2022): the epsilon above covers training the final model once, not the search. "
    "Tune on public or synthetic data of the same shape, or account for the search, before you publish a guarantee."
)
EMPIRICAL_NOTE = (
    "Attack figures are what the simulated attacks reach (a stronger attacker may do better) and "
    "epsilon_lower_bound is what they prove; attack_accuracy_bound and the TPR bounds come from the accountant "
    "and hold for every attacker, if training sampled as the accountant assumes."
)

SHIFT_NOTE = (
    "The objective uses the population game (members against the external set). The control model, trained "
    "without the members, already reaches attack accuracy {reference:.3f}: that part is the difference between "
    "the two populations, which no DP noise removes; only {membership:+.3f} is left for membership. The "
    "membership game (members against holdout) measures {game:.3f}."
)
BOUND_EXCEEDED_NOTE = (
    "The membership game's attack accuracy ({measured:.3f}, 95 % interval from {low:.3f}) exceeds what "
    "(epsilon, delta)-DP allows any membership attack ({bound:.3f}): training or accounting does not match "
    "the guarantee. Do not publish this guarantee; report it as a bug."
)

LABEL_SHIFT_NOTE = (
    "Members and nonmembers differ in their label distribution: an attacker who sees only the label already "
    "reaches accuracy {floor:.3f}. No privacy setting takes the attacks below that floor; of the recommended "
    "point's attack accuracy ({measured:.3f}), only the part above it can come from the model."
)
# A floor this far above guessing (a total variation distance of 0.02 between the label distributions) is
# reported; below it, it is within the sampling noise of a few hundred examples.
LABEL_SHIFT_FLOOR = 0.51

WEAK_BASELINE_NOTE = (
    "The non-private baseline's test utility is {utility:.3f}, near or below chance (0.5): the model does not "
    "generalise to the test split, so the utility side of this trade-off means little. Fix the model or the "
    "split before choosing privacy parameters."
)
WEAK_BASELINE_UTILITY = 0.6

# "How to DP-fy ML" (Ponomareva et al. 2023): epsilon <= 10 is a reasonable guarantee, above it a weak one.
MEANINGFUL_EPSILON = 10.0
NO_GUARANTEE_NOTE = (
    "The recommended point {why}: its low measured attack accuracy comes from clipping and training, not from a "
    "DP guarantee, and a stronger attack may do better. {alternative}"
)


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
    per_repeat = [objective(v.utility_validation, v.attack_accuracy, baseline, tradeoff)
                  for v in measurement.repeat_values]
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
    )


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


def _no_guarantee_note(best: Trial, rescored: Sequence[Trial]) -> str:
    why = ("adds no noise, so no epsilon bounds it" if best.epsilon is None
           else f"has epsilon {best.epsilon:.3g}, which bounds no attack in practice")
    guaranteed = [t for t in rescored if t.epsilon is not None and t.epsilon <= MEANINGFUL_EPSILON]
    if not guaranteed:
        alternative = (f"No trial has epsilon <= {MEANINGFUL_EPSILON:g}; search higher noise multipliers for one "
                       "that does.")
    else:
        alt = max(guaranteed, key=lambda t: (t.objective, -t.index))
        alternative = (
            f"The best trial with epsilon <= {MEANINGFUL_EPSILON:g} is trial {alt.index}: clip {alt.clip:.3g}, "
            f"noise {alt.noise:.3g}, epsilon {alt.epsilon:.3g}, utility loss {alt.utility_loss:.3f}, "
            f"attack accuracy {alt.attack_accuracy:.3f}."
        )
    return NO_GUARANTEE_NOTE.format(why=why, alternative=alternative)


def recommend(trials: Sequence[Trial], baseline: Baseline, tradeoff: float) -> Recommendation | None:
    """The stored trial with the best objective at `tradeoff` (rescored, so any t works without re-running)."""
    if not trials:
        return None
    rescored = [score(t, baseline, tradeoff, t.index) for t in trials]
    best = max(rescored, key=lambda t: (t.objective, -t.index))
    bound = best.attack_accuracy_bound
    notes = [TUNING_COST_NOTE, EMPIRICAL_NOTE]
    if not baseline.learns or baseline.utility_test < WEAK_BASELINE_UTILITY:
        notes.append(WEAK_BASELINE_NOTE.format(utility=baseline.utility_test))
    floor = baseline.label_only_attack_accuracy
    if floor is not None and floor > LABEL_SHIFT_FLOOR:
        notes.append(LABEL_SHIFT_NOTE.format(floor=floor, measured=best.attack_accuracy))
    population = best.games.population
    if best.privacy_game == "population" and population is not None:
        notes.append(SHIFT_NOTE.format(reference=population.reference_attack_accuracy,
                                       membership=population.membership,
                                       game=best.games.membership.attack_accuracy))
    membership = best.games.membership
    strongest = max(membership.attacks.values(), key=lambda a: a.accuracy.value)
    if bound is not None and strongest.accuracy.low > bound:
        notes.append(BOUND_EXCEEDED_NOTE.format(measured=strongest.accuracy.value, low=strongest.accuracy.low,
                                                bound=bound))
    if best.epsilon is None or best.epsilon > MEANINGFUL_EPSILON:
        notes.append(_no_guarantee_note(best, rescored))
    return Recommendation(
        **{name: getattr(best, name) for name in Trial.model_fields},
        tradeoff=tradeoff,
        notes=notes,
    )
