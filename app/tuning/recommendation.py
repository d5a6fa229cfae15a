"""From trials to a recommendation a privacy engineer can sign, and the one builder of a tuning result.

Selection: the Gaussian process's best posterior mean over the tried points that meet the guarantee (and
max_utility_loss), not the best single noisy draw; among the points within one standard error of it, the
lowest epsilon. The chosen point is then confirmed on fresh seeds (engine.confirm) and reported with the
complete training configuration its epsilon depends on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.tuning.accounting import SAMPLING_ASSUMPTION, dp_sgd_guarantee, dp_sgd_steps, sampling_rate
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import MEANINGFUL_EPSILON, objective, pareto_front, score
from app.tuning.results import (
    CALIBRATED_ATTACK,
    Baseline,
    Confirmation,
    Estimate,
    FailedTrial,
    GuaranteeSpec,
    MeasurementSpec,
    PrivacyStatement,
    PrunedTrial,
    Recommendation,
    Selection,
    SplitSizes,
    TrainingConfig,
    Trial,
    TrialMeasurement,
    TuningResult,
)
from app.tuning.search import Observation, SearchSpace, SearchSpec, posterior_at, search_space

TuneSource = Literal["private", "proxy"]

TUNING_COST_PRIVATE = (
    "The search, its baseline and its attacks ran on the private data, and epsilon does not cover them: choosing "
    "parameters by looking at results on the data is itself a privacy cost (Papernot & Steinke 2022). Epsilon "
    "covers one training of the final model. To have it cover everything done to the private data, tune on a "
    "public or synthetic proxy of the same columns (job field tune_dataset_id, CLI --tune-on PROXY.csv): the "
    "private data is then read once, by the final training."
)
TUNING_COST_PROXY = (
    "The search, its baseline and its attacks ran only on the proxy data set; the private data set was read "
    "once, by the final training, so epsilon covers everything done to the private data (the proxy itself is "
    "assumed public or synthetic)."
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
MEMBERSHIP_READING = (
    "Membership game (members against holdout; what DP bounds): the calibrated attack finds {base} of the "
    "baseline's members at 1 % FPR and {rec} of the recommended model's ({epsilon}); guessing finds 1 %. {verdict}"
)
LEAK_REMOVED = "The baseline leaks; at the recommendation the attack is within the noise of guessing."
LEAK_LEFT = "At the recommendation the attack still finds more members than guessing does."
NO_LEAK_FOUND = (
    "Even on the baseline the attack is within the noise of guessing: it finds no membership leak "
    "here for DP to remove."
)
POPULATION_READING = (
    "Population game (the study's: members against the external set): the attack reaches {base:.3f} on the "
    "baseline and {rec:.3f} on the recommended model, and a control model that never saw the members reaches "
    "{control:.3f}. That part is a difference between the two populations, not membership: DP bounds what one "
    "record changes in the model, not how two groups differ, so noise does not remove it."
)
# TPR at 1 % FPR of an attack that guesses; an interval reaching down to it is no evidence of a leak.
GUESSING_TPR = 0.01
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
NO_BETTER_THAN_CHANCE_NOTE = (
    "The recommended model's test ROC-AUC is {value:.3f} (95 % interval {low:.3f}-{high:.3f}), which includes "
    "or lies below chance (0.5): no configuration tried within this budget trained a useful model. Do not "
    "publish it as is: raise max_epsilon, give DP-SGD more steps or a larger learning rate (clipped, noised "
    "steps are smaller than the baseline's), or train on more records."
)
NOT_CONFIRMED_NOTE = (
    "Not confirmed: these are the search trial's own figures (one draw), re-scored at t = {tradeoff:g}; the job "
    "confirmed its recommendation at its own trade-off."
)
BEST_OBSERVED_NOTE = (
    "Chosen as the best observed trial: {count} trial(s) are too few for the Gaussian process to smooth the "
    "measurement noise."
)
UNIT = (0.0, 1.0)
# Tolerance when checking a trial's epsilon against max_epsilon (the calibration's own tolerance is 1e-4).
EPSILON_SLACK = 1e-6


def training_config(spec: ModelSpec, clip: float, noise: float, n: int, delta: float) -> TrainingConfig:
    """The complete configuration the guarantee is for, with its epsilon."""
    rate = sampling_rate(n, spec.batch_size)
    steps = dp_sgd_steps(n, spec.batch_size, spec.epochs)
    guarantee = dp_sgd_guarantee(sampling_rate=rate, noise_multiplier=noise, steps=steps, delta=delta)
    return TrainingConfig(
        clip=clip,
        noise=noise,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        learning_rate=spec.effective_learning_rate,
        optimizer=spec.optimizer,
        n=n,
        sampling_rate=rate,
        steps=steps,
        delta=delta,
        epsilon=guarantee.epsilon,
        epsilon_rdp=guarantee.epsilon_rdp,
        accountant=SAMPLING_ASSUMPTION,
        model=spec,
    )


def space_for(
    search: SearchSpec, guarantee: GuaranteeSpec, spec: ModelSpec, n_members: int, delta: float
) -> SearchSpace:
    """The search space the guarantee allows for this training (its sampling rate and steps)."""
    return search_space(
        search,
        max_epsilon=guarantee.max_epsilon,
        target_epsilon=guarantee.target_epsilon,
        sampling_rate=sampling_rate(n_members, spec.batch_size),
        steps=dp_sgd_steps(n_members, spec.batch_size, spec.epochs),
        delta=delta,
    )


def headline(mode: str, training: TrainingConfig) -> str:
    """The recommendation's first line: what to train, and what it guarantees, or that it guarantees nothing."""
    what = (
        f"clip {training.clip:.4g}, noise multiplier {training.noise:.4g}, {training.epochs} epochs at batch "
        f"size {training.batch_size} ({training.optimizer}, learning rate {training.learning_rate:g}) on "
        f"{training.n} records"
    )
    if mode == "no_guarantee":
        why = (
            "adds no noise, so nothing bounds what it leaks"
            if training.epsilon is None
            else f"has epsilon {training.epsilon:.3g} at delta {training.delta:.2g}"
            + (", which bounds no attack in practice" if training.epsilon > MEANINGFUL_EPSILON else "")
        )
        return f"NO PRIVACY GUARANTEE (you asked for none: max_epsilon null). Train with {what}; this point {why}."
    assert training.epsilon is not None
    return (
        f"Train with {what}: ({training.epsilon:.3g}, {training.delta:.2g})-DP for one training (PLD "
        "accountant, Poisson sampling, add/remove-one adjacency)."
    )


def feasible(trial: Trial, baseline: Baseline, guarantee: GuaranteeSpec) -> bool:
    if guarantee.max_epsilon is not None and (
        trial.epsilon is None or trial.epsilon > guarantee.max_epsilon * (1 + EPSILON_SLACK)
    ):
        return False
    if guarantee.max_utility_loss is not None:
        return baseline.utility_validation - trial.utility_validation <= guarantee.max_utility_loss
    return True


@dataclass(frozen=True)
class Choice:
    trial: Trial | None
    selection: Selection | None
    reason: str | None  # why there is no trial to recommend


def observations(
    trials: Sequence[Trial], failed: Sequence[FailedTrial] = (), pruned: Sequence[PrunedTrial] = ()
) -> list[Observation]:
    """Trials as the search sees them, in index order; a failed trial has no objective. The noise is the
    repeats' standard error: objective_sampling_se includes the validation split's own sampling error, which
    every trial shares (one fixed split), so it over-states the trial-to-trial noise (about 0.02 against the
    0.010-0.014 measured over seeds) and let far worse points into the one-SE set (recommendation_choice.py).

    A pruned trial enters like a failed one, with no objective (search.scored_observations gives it the worst
    objective seen). Its objective was never measured: no attack ran, and its utility is a half-trained
    model's, which cannot be put on the completed trials' scale without a bias (utility rises with training).
    What is known is that its utility was clearly below the median trial's, so its objective is in the lower
    half; the worst objective seen is the conservative reading of "move away from here", the same the search
    already gives a point that failed, and it keeps grid and random search moving on past it."""
    rows = [
        (t.index, Observation((t.clip, t.noise), t.objective, t.objective_se, t.objective_sampling_se))
        for t in trials
    ]
    rows += [(f.index, Observation((f.clip, f.noise), None)) for f in failed]
    rows += [(p.index, Observation((p.clip, p.noise), None)) for p in pruned]
    return [o for _, o in sorted(rows, key=lambda row: row[0])]


def choose(
    trials: Sequence[Trial],
    baseline: Baseline,
    tradeoff: float,
    space: SearchSpace,
    guarantee: GuaranteeSpec,
    seed: int = 0,
) -> Choice:
    """The point to recommend among trials scored at `tradeoff`: the best posterior mean among the feasible
    ones, then the lowest epsilon within one standard error of it."""
    if not trials:
        return Choice(None, None, "no trial succeeded")
    rescored = sorted((score(t, baseline, tradeoff, t.index) for t in trials), key=lambda t: t.index)
    allowed = [t for t in rescored if feasible(t, baseline, guarantee)]
    if not allowed:
        return Choice(None, None, _infeasible_reason(rescored, baseline, guarantee))
    posterior = posterior_at(space, observations(rescored), seed)
    if posterior is None:
        best = max(allowed, key=lambda t: (t.objective, -t.index))
        return Choice(
            best,
            Selection(
                method="best_observed",
                best_posterior_index=None,
                posterior_mean=None,
                standard_error=None,
                within_one_se=[best.index],
                feasible=len(allowed),
            ),
            None,
        )
    mean_of = {t.index: m for t, m in zip(rescored, posterior.means, strict=True)}
    std_of = {t.index: s for t, s in zip(rescored, posterior.stds, strict=True)}
    leader = max(allowed, key=lambda t: (mean_of[t.index], -t.index))
    # The one-standard-error rule: the standard error of the leader's estimated objective is its posterior
    # standard deviation, not one trial's noise (which is larger, and let far worse points in).
    standard_error = std_of[leader.index]
    close = [t for t in allowed if mean_of[t.index] >= mean_of[leader.index] - standard_error]
    chosen = min(close, key=lambda t: (math.inf if t.epsilon is None else t.epsilon, -mean_of[t.index], t.index))
    return Choice(
        chosen,
        Selection(
            method="posterior_mean",
            best_posterior_index=leader.index,
            posterior_mean=mean_of[chosen.index],
            standard_error=standard_error,
            within_one_se=sorted(t.index for t in close),
            feasible=len(allowed),
        ),
        None,
    )


def _infeasible_reason(trials: Sequence[Trial], baseline: Baseline, guarantee: GuaranteeSpec) -> str:
    within_budget = [
        t
        for t in trials
        if guarantee.max_epsilon is None
        or (t.epsilon is not None and t.epsilon <= guarantee.max_epsilon * (1 + EPSILON_SLACK))
    ]
    if not within_budget:
        return f"no trial meets max_epsilon {guarantee.max_epsilon:g}"
    best = min(within_budget, key=lambda t: (baseline.utility_validation - t.utility_validation, t.index))
    loss = baseline.utility_validation - best.utility_validation
    return (
        f"no trial loses at most {guarantee.max_utility_loss:g} validation ROC-AUC (max_utility_loss); the "
        f"smallest loss within the epsilon budget is {loss:.3f}, at trial #{best.index}: clip {best.clip:.3g}, "
        f"noise {best.noise:.3g}, epsilon {_eps(best.epsilon)}, attack accuracy {best.attack_accuracy:.3f}. "
        "Raise max_utility_loss or max_epsilon, or change the model"
    )


def _eps(epsilon: float | None) -> str:
    return "inf" if epsilon is None else f"{epsilon:.3g}"


def mean_interval(
    values: Sequence[float], bounds: tuple[float, float] = (-math.inf, math.inf), confidence: float = 0.95
) -> Estimate:
    """Mean over repeats with a Student-t interval, cut to the quantity's range (a single value has no
    interval: it spans itself)."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return Estimate(value=mean, low=mean, high=mean)
    from scipy import stats  # ~1 s to load; the API imports this module but builds intervals only in workers

    half = float(stats.t.ppf(0.5 + confidence / 2, len(array) - 1) * array.std(ddof=1) / math.sqrt(len(array)))
    return Estimate(value=mean, low=max(bounds[0], mean - half), high=min(bounds[1], mean + half))


def confirmation_summary(
    measured: TrialMeasurement,
    baseline: Baseline,
    tradeoff: float,
    seeds: list[int],
    reference_models: int,
    seconds: float,
) -> Confirmation:
    values = measured.repeat_values
    return Confirmation(
        repeats=len(values),
        seeds=seeds,
        reference_models=reference_models,
        utility_validation=mean_interval([v.utility_validation for v in values], UNIT),
        utility_test=mean_interval([v.utility_test for v in values], UNIT),
        utility_loss=mean_interval([baseline.utility_test - v.utility_test for v in values], (-1.0, 1.0)),
        attack_accuracy=mean_interval([v.attack_accuracy for v in values], UNIT),
        objective=mean_interval(
            [objective(v.utility_validation, v.attack_accuracy, baseline, tradeoff) for v in values]
        ),
        epsilon_lower_bound=measured.epsilon_lower_bound,
        seconds=seconds,
    )


def build_recommendation(
    choice: Choice,
    baseline: Baseline,
    tradeoff: float,
    guarantee: GuaranteeSpec,
    training: TrainingConfig,
    *,
    confirmed: TrialMeasurement | None = None,
    confirmation: Confirmation | None = None,
    tuned_on: TuneSource = "private",
) -> Recommendation:
    """The recommendation: the confirmation's measurement at the chosen point when there is one (its means over
    fresh seeds), else the search trial's own figures, with the configuration, headline and notes."""
    assert choice.trial is not None and choice.selection is not None
    best = score(confirmed, baseline, tradeoff, choice.trial.index) if confirmed is not None else choice.trial
    # The two games' readings first: what the baseline leaked and what the recommendation leaves.
    notes = games_readings(baseline, best)
    notes.append(EMPIRICAL_NOTE)
    if confirmation is None:
        notes.append(NOT_CONFIRMED_NOTE.format(tradeoff=tradeoff))
    if choice.selection.method == "best_observed":
        notes.append(BEST_OBSERVED_NOTE.format(count=choice.selection.feasible))
    if not baseline.learns or baseline.utility_test < WEAK_BASELINE_UTILITY:
        notes.append(WEAK_BASELINE_NOTE.format(utility=baseline.utility_test))
    utility = confirmation.utility_test if confirmation is not None else best.utility_test_interval
    if utility.low <= 0.5:
        notes.insert(0, NO_BETTER_THAN_CHANCE_NOTE.format(value=utility.value, low=utility.low, high=utility.high))
    floor = baseline.label_only_attack_accuracy
    if floor is not None and floor > LABEL_SHIFT_FLOOR:
        notes.append(LABEL_SHIFT_NOTE.format(floor=floor, measured=best.attack_accuracy))
    population = best.games.population
    if best.privacy_game == "population" and population is not None:
        notes.append(
            SHIFT_NOTE.format(
                reference=population.reference_attack_accuracy,
                membership=population.membership,
                game=best.games.membership.attack_accuracy,
            )
        )
    strongest = max(best.games.membership.attacks.values(), key=lambda a: a.accuracy.value)
    bound = best.attack_accuracy_bound
    if bound is not None and strongest.accuracy.low > bound:
        notes.append(
            BOUND_EXCEEDED_NOTE.format(measured=strongest.accuracy.value, low=strongest.accuracy.low, bound=bound)
        )
    return Recommendation(
        **{name: getattr(best, name) for name in Trial.model_fields},
        tradeoff=tradeoff,
        mode=guarantee.mode,
        headline=headline(guarantee.mode, training),
        selection=choice.selection,
        training=training,
        confirmation=confirmation,
        tuning_cost=TUNING_COST_PROXY if tuned_on == "proxy" else TUNING_COST_PRIVATE,
        notes=notes,
    )


def games_readings(baseline: Baseline, recommended: TrialMeasurement) -> list[str]:
    """The membership game's reading, and the population game's when the split has one (the study's game; when
    the objective reads it, SHIFT_NOTE says the same)."""
    readings = []
    membership = membership_reading(baseline, recommended)
    if membership is not None:
        readings.append(membership)
    population, base_population = recommended.games.population, baseline.games.population
    if recommended.privacy_game == "membership" and population is not None and base_population is not None:
        readings.append(
            POPULATION_READING.format(
                base=base_population.attack_accuracy,
                rec=population.attack_accuracy,
                control=population.reference_attack_accuracy,
            )
        )
    return readings


def membership_reading(baseline: Baseline, recommended: TrialMeasurement) -> str | None:
    """What the calibrated attack's TPR at 1 % FPR says about the baseline and the recommended model (None when
    either was measured without it)."""
    base_attack = baseline.games.membership.attacks.get(CALIBRATED_ATTACK)
    rec_attack = recommended.games.membership.attacks.get(CALIBRATED_ATTACK)
    if base_attack is None or rec_attack is None:
        return None
    base, rec = base_attack.tpr_at_1pct_fpr, rec_attack.tpr_at_1pct_fpr
    if rec.low > GUESSING_TPR:
        verdict = LEAK_LEFT
    else:
        verdict = LEAK_REMOVED if base.low > GUESSING_TPR else NO_LEAK_FOUND
    epsilon = (
        "no DP guarantee"
        if recommended.epsilon is None
        else f"epsilon {recommended.epsilon:.3g} at delta {recommended.delta:.3g}"
    )
    return MEMBERSHIP_READING.format(base=_percent(base), rec=_percent(rec), epsilon=epsilon, verdict=verdict)


def _percent(estimate: Estimate) -> str:
    return f"{estimate.value:.1%} [{estimate.low:.1%}, {estimate.high:.1%}]"


def build_result(
    *,
    dataset: dict[str, object],
    spec: ModelSpec,
    search: SearchSpec,
    space: SearchSpace,
    guarantee: GuaranteeSpec,
    measurement: MeasurementSpec,
    splits: SplitSizes,
    tradeoff: float,
    delta: float,
    seed: int,
    baseline: Baseline,
    trials: Sequence[Trial],
    failed: Sequence[FailedTrial],
    stop_reason: str | None,
    pruned: Sequence[PrunedTrial] = (),
    recommendation: Recommendation | None,
    no_recommendation_reason: str | None,
    final_model: PrivacyStatement | None,
    seconds: float,
) -> TuningResult:
    """The one builder of a tuning result: `tune()` and the service's /result both call it."""
    return TuningResult(
        mode=guarantee.mode,
        guarantee=guarantee,
        search_space=space,
        dataset=dict(dataset),
        model=spec,
        search=search,
        measurement=measurement,
        splits=splits,
        tradeoff=tradeoff,
        delta=delta,
        seed=seed,
        accounting=SAMPLING_ASSUMPTION,
        baseline=baseline,
        trials=list(trials),
        pareto_front=pareto_front(trials),
        failed_trials=list(failed),
        pruned_trials=list(pruned),
        stop_reason=stop_reason,
        recommendation=recommendation,
        no_recommendation_reason=no_recommendation_reason,
        final_model=final_model,
        seconds=seconds,
    )
