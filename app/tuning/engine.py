"""One trial is a function of (prepared data, model spec, clip, noise, measurement, seed); `tune` runs a search.

A measurement trains the target on the members, then measures utility on every split and plays the games:
membership (members against holdout, with the calibrated attack's K reference models trained like the target)
and, where the split has an external set, population (members against external, with a control model trained
like the target on the holdout)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

# The engine is the façade the CLI and the workers import from: default_delta and space_for are re-exported ("as").
from app.tuning.accounting import default_delta as default_delta
from app.tuning.accounting import dp_sgd_guarantee, dp_sgd_steps, sampling_rate
from app.tuning.attacks.games import (
    Predict,
    TrainReferences,
    label_only_attack_accuracy,
    membership_game,
    population_game,
)
from app.tuning.attacks.statistics import auc_interval, estimate
from app.tuning.errors import TuningError
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import score
from app.tuning.prepared import PreparedData
from app.tuning.pruning import Pruner, checkpoint_step, decide, pruner_for
from app.tuning.recommendation import (
    TuneSource,
    build_recommendation,
    build_result,
    choose,
    confirmation_summary,
    observations,
    training_config,
)
from app.tuning.recommendation import space_for as space_for
from app.tuning.results import (
    Baseline,
    Checkpoint,
    Confirmation,
    Estimate,
    FailedTrial,
    Games,
    GuaranteeSpec,
    MeasurementSpec,
    PrunedMeasurement,
    PrunedTrial,
    RepeatValues,
    Trial,
    TrialMeasurement,
    TuningResult,
    Utility,
)
from app.tuning.search import SearchSpec, search_step
from app.tuning.train import DPParams, TrainedModel, dense_models, dense_trainer, train, train_many
from app.tuning.utility import accuracy, roc_auc

# The baseline gate: validation and test need this many records of the rarer class for an AUC to mean much.
MIN_RARE_CLASS_RECORDS = 20
# Seeds of repeat r are derived from (seed, r), so repeat 0 of seed s is the single measurement of seed s.
REPEAT_SEED_STRIDE = 1_000_003


def check_game(data: PreparedData, measurement: MeasurementSpec) -> None:
    """The population game needs an external set."""
    if measurement.privacy_game == "population" and not data.has_external:
        raise TuningError(
            "no_external_set",
            "privacy_game 'population' plays members against an external set, and this split has none; use a "
            "k-means, Butina or column split with external rows, or privacy_game 'membership'",
        )


def _probabilities(predict: Predict, data: PreparedData) -> dict[str, npt.NDArray[np.float64]]:
    parts = {
        "members": data.x_members,
        "holdout": data.x_holdout,
        "validation": data.x_validation,
        "test": data.x_test,
    }
    if data.has_external:
        assert data.x_external is not None
        parts["external"] = data.x_external
    return {name: predict(x) for name, x in parts.items()}


def _auc_estimate(proba: npt.NDArray[np.float64], y: npt.NDArray[np.int64], n_classes: int) -> Estimate:
    """ROC-AUC with its Hanley-McNeil interval, which needs the positives (class 1) of a binary AUC;
    multi-class: the rarest class, conservatively."""
    value = roc_auc(proba, y)
    positives = int((y == 1).sum()) if n_classes == 2 else _rare_class_count(y, n_classes)
    return estimate(value, auc_interval(value, positives, len(y) - positives))


def _utility(proba: dict[str, npt.NDArray[np.float64]], data: PreparedData) -> Utility:
    test = _auc_estimate(proba["test"], data.y_test, data.n_classes)
    if math.isnan(test.value):
        raise TuningError(
            "single_class_split", "the test split holds a single class, so its ROC-AUC (the utility) is undefined"
        )
    validation = _auc_estimate(proba["validation"], data.y_validation, data.n_classes)
    return Utility(
        utility_members=roc_auc(proba["members"], data.y_members),
        utility_holdout=roc_auc(proba["holdout"], data.y_holdout),
        utility_validation=validation.value,
        utility_validation_interval=validation,
        utility_test=test.value,
        utility_external=(
            roc_auc(proba["external"], data.y_external)
            if "external" in proba and data.y_external is not None
            else None
        ),
        utility_test_interval=test,
        accuracy_test=accuracy(proba["test"], data.y_test),
    )


def _rare_class_count(y: npt.NDArray[np.int64], n_classes: int) -> int:
    counts = np.bincount(y, minlength=n_classes)
    return int(counts[counts > 0].min()) if counts.any() else 0


def _reference_trainer(spec: ModelSpec, n_classes: int, dp: DPParams | None) -> TrainReferences:
    """The K reference models of a game, trained in one computation (train_many)."""

    def train_references(
        x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], rows: list[npt.NDArray[np.int64]], seeds: list[int]
    ) -> list[Predict]:
        return [model.predict_proba for model in train_many(spec, x, y, n_classes, dp, seeds, rows=rows)]

    return train_references


def _measure_once(
    data: PreparedData,
    spec: ModelSpec,
    dp: DPParams | None,
    reference_models: int,
    delta: float,
    seed: int,
    target: TrainedModel | None = None,
) -> tuple[Utility, Games]:
    """Train the target (unless given: trained through a pruning checkpoint, the same model), read its
    probabilities everywhere (before any other training: a worker reuses one compiled model), then the control
    model and the games."""
    if target is None:
        target = train(spec, data.x_members, data.y_members, data.n_classes, dp, seed)
    proba = _probabilities(target.predict_proba, data)
    utility = _utility(proba, data)
    population = None
    if data.has_external:
        assert data.x_external is not None and data.y_external is not None
        control = train(spec, data.x_holdout, data.y_holdout, data.n_classes, dp, seed + 1)
        population = population_game(
            target_members=proba["members"],
            target_external=proba["external"],
            control_members=control.predict_proba(data.x_members),
            control_external=control.predict_proba(data.x_external),
            y_members=data.y_members,
            y_external=data.y_external,
            n_classes=data.n_classes,
            seed=seed,
        )
    membership = membership_game(
        target_members=proba["members"],
        target_holdout=proba["holdout"],
        target_population=proba["validation"],
        x_members=data.x_members,
        y_members=data.y_members,
        x_holdout=data.x_holdout,
        y_holdout=data.y_holdout,
        x_population=data.x_validation,
        y_population=data.y_validation,
        n_classes=data.n_classes,
        train_references=_reference_trainer(spec, data.n_classes, dp),
        reference_models=reference_models,
        delta=delta,
        seed=seed,
    )
    return utility, Games(membership=membership, population=population)


def _game_accuracy(games: Games, game: str) -> float:
    if game == "population":
        assert games.population is not None
        return games.population.attack_accuracy
    return games.membership.attack_accuracy


def logistic_regression_utility(data: PreparedData, seed: int) -> float | None:
    """Test ROC-AUC of a logistic regression on the members: a reference for what the baseline should reach."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(data.y_members)) < 2:
        return None
    model = LogisticRegression(max_iter=2000, random_state=seed).fit(data.x_members, data.y_members)
    return roc_auc(model.predict_proba(data.x_test), data.y_test)


def weak_baseline_reasons(utility: Utility, data: PreparedData) -> list[str]:
    """Why the baseline does not learn: its test AUC interval includes chance, or validation or test holds too
    few records of the rarer class for an AUC to mean much."""
    reasons = []
    interval = utility.utility_test_interval
    if interval.low <= 0.5:
        where = "includes chance (0.5)" if interval.high >= 0.5 else "lies below chance (0.5)"
        reasons.append(
            f"its test ROC-AUC is {interval.value:.3f} (95 % interval {interval.low:.3f}-{interval.high:.3f}), "
            f"which {where}"
        )
    for name, y in (("validation", data.y_validation), ("test", data.y_test)):
        rare = _rare_class_count(y, data.n_classes)
        if rare < MIN_RARE_CLASS_RECORDS:
            reasons.append(
                f"the {name} split holds {rare} records of its rarer class, fewer than {MIN_RARE_CLASS_RECORDS}"
            )
    return reasons


def run_baseline(
    data: PreparedData,
    spec: ModelSpec,
    measurement: MeasurementSpec | None = None,
    seed: int = 0,
    delta: float | None = None,
) -> Baseline:
    """Train without privacy: u_start, p_start, both games audited with the larger K, and the gate's verdict."""
    measurement = measurement or MeasurementSpec()
    check_game(data, measurement)
    start = time.perf_counter()
    delta = default_delta(len(data.y_members)) if delta is None else delta
    utility, games = _measure_once(data, spec, None, measurement.audit_reference_models, delta, seed)
    other = data.y_external if measurement.privacy_game == "population" else data.y_holdout
    assert other is not None
    reasons = weak_baseline_reasons(utility, data)
    return Baseline(
        **utility.model_dump(),
        privacy_game=measurement.privacy_game,
        attack_accuracy=_game_accuracy(games, measurement.privacy_game),
        games=games,
        epsilon_lower_bound=games.membership.epsilon_lower_bound,
        label_only_attack_accuracy=label_only_attack_accuracy(data.y_members, other, data.n_classes),
        logistic_regression_utility_test=logistic_regression_utility(data, seed),
        learns=not reasons,
        weak_reasons=reasons,
        seconds=time.perf_counter() - start,
    )


def check_baseline(baseline: Baseline, measurement: MeasurementSpec) -> None:
    """The gate: a baseline that does not learn is not optimised, unless the user allows it."""
    if baseline.learns or measurement.allow_weak_baseline:
        return
    reference = (
        f"; a logistic regression reaches test ROC-AUC {baseline.logistic_regression_utility_test:.3f} on "
        "the same split"
        if baseline.logistic_regression_utility_test is not None
        else ""
    )
    advice = []
    if any("chance" in r for r in baseline.weak_reasons):
        advice.append("change the learning rate, the epochs or the model until it learns")
    if any("rarer class" in r for r in baseline.weak_reasons):
        advice.append("use more data, or larger validation and test shares of the split, so its AUC can be measured")
    raise TuningError(
        "baseline_not_learning",
        f"the non-private baseline cannot be shown to learn: {'; '.join(baseline.weak_reasons)}{reference}. "
        f"{'; '.join(advice).capitalize()}, or set allow_weak_baseline to tune anyway",
        {
            "utility_test": baseline.utility_test,
            "utility_test_low": baseline.utility_test_interval.low,
            "logistic_regression_utility_test": baseline.logistic_regression_utility_test,
            "reasons": baseline.weak_reasons,
        },
    )


def _mean_and_se(values: list[float]) -> tuple[float, float | None]:
    if len(values) < 2:
        return float(values[0]), None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(len(array)))


def run_trial(
    data: PreparedData,
    spec: ModelSpec,
    clip: float,
    noise: float,
    *,
    delta: float,
    measurement: MeasurementSpec | None = None,
    seed: int = 0,
) -> TrialMeasurement:
    """Train with DP-SGD at (clip, noise), everything else unchanged, `repeats` times; measure utility, both
    games, epsilon and the bounds."""
    measured = search_trial(data, spec, clip, noise, delta=delta, measurement=measurement, seed=seed)
    assert isinstance(measured, TrialMeasurement)  # no pruner, no pruning
    return measured


def search_trial(
    data: PreparedData,
    spec: ModelSpec,
    clip: float,
    noise: float,
    *,
    delta: float,
    measurement: MeasurementSpec | None = None,
    seed: int = 0,
    pruner: Pruner | None = None,
) -> TrialMeasurement | PrunedMeasurement:
    """A search trial: run_trial, except that with a pruner (search.pruning) the built-in MLP's first repeat
    trains to its checkpoint first, where the rule (app/tuning/pruning.py) may stop it. A trial that goes on
    trains from the checkpoint to the end: the same model, bit for bit, as without the checkpoint."""
    measurement = measurement or MeasurementSpec()
    check_game(data, measurement)
    start = time.perf_counter()
    dp = DPParams(clip, noise)
    n = len(data.y_members)
    rate = sampling_rate(n, spec.batch_size)
    steps = dp_sgd_steps(n, spec.batch_size, spec.epochs)
    # The full configuration's epsilon, for a pruned trial too: what training this point costs, not what a
    # stopped run did.
    guarantee = dp_sgd_guarantee(sampling_rate=rate, noise_multiplier=noise, steps=steps, delta=delta)
    first_target: TrainedModel | None = None
    checkpoint: Checkpoint | None = None
    if pruner is not None and spec.keras_json is None and steps > 1:
        trainer = dense_trainer(spec, data.x_members, data.y_members, data.n_classes, dp, [seed])
        step = checkpoint_step(trainer.steps)
        trainer.train_until(step)
        # Validation ROC-AUC with its Hanley-McNeil interval, as _utility measures it at the end.
        utility_at = _auc_estimate(
            dense_models(trainer, dp)[0].predict_proba(data.x_validation), data.y_validation, data.n_classes
        )
        decision = decide(pruner, step, utility_at)
        checkpoint = Checkpoint(
            step=step,
            steps=trainer.steps,
            utility_validation=utility_at,
            median=decision.median,
            compared=decision.compared,
            best_feasible=pruner.best_feasible,
            pruned=decision.prune,
            reason=decision.reason,
        )
        if decision.prune:
            return PrunedMeasurement(
                clip=clip,
                noise=noise,
                checkpoint=checkpoint,
                epsilon=guarantee.epsilon,
                epsilon_rdp=guarantee.epsilon_rdp,
                delta=delta,
                steps=steps,
                sampling_rate=rate,
                seconds=time.perf_counter() - start,
            )
        trainer.train_until(trainer.steps)
        first_target = dense_models(trainer, dp)[0]
    measured = [
        _measure_once(
            data,
            spec,
            dp,
            measurement.reference_models,
            delta,
            seed + r * REPEAT_SEED_STRIDE,
            first_target if r == 0 else None,
        )
        for r in range(measurement.repeats)
    ]
    repeat_values = [
        RepeatValues(
            utility_validation=u.utility_validation,
            utility_test=u.utility_test,
            attack_accuracy=_game_accuracy(g, measurement.privacy_game),
        )
        for u, g in measured
    ]
    utility, games = measured[0]
    means = {}
    for name in ("utility_members", "utility_holdout", "utility_validation", "utility_test", "accuracy_test"):
        means[name] = float(np.mean([getattr(u, name) for u, _ in measured]))
    if utility.utility_external is not None:
        # Every repeat measures the same splits: all have an external utility or none does.
        means["utility_external"] = float(
            np.mean([u.utility_external for u, _ in measured if u.utility_external is not None])
        )
    attack, attack_se = _mean_and_se([v.attack_accuracy for v in repeat_values])
    _, validation_se = _mean_and_se([v.utility_validation for v in repeat_values])
    _, test_se = _mean_and_se([v.utility_test for v in repeat_values])
    return TrialMeasurement(
        **{**utility.model_dump(), **means},
        clip=clip,
        noise=noise,
        privacy_game=measurement.privacy_game,
        attack_accuracy=attack,
        attack_accuracy_se=attack_se,
        utility_validation_se=validation_se,
        utility_test_se=test_se,
        games=games,
        repeats=measurement.repeats,
        repeat_values=repeat_values,
        epsilon=guarantee.epsilon,
        epsilon_rdp=guarantee.epsilon_rdp,
        epsilon_lower_bound=games.membership.epsilon_lower_bound,
        delta=delta,
        attack_accuracy_bound=guarantee.attack_accuracy_bound,
        tpr_bound_at_1pct_fpr=guarantee.tpr_bounds[0.01],
        tpr_bound_at_0_1pct_fpr=guarantee.tpr_bounds[0.001],
        steps=steps,
        sampling_rate=rate,
        seconds=time.perf_counter() - start,
        checkpoint=checkpoint,
    )


ProgressCallback = Callable[[Trial, Trial, int], None]
# Trial i trains from seed + i * TRIAL_SEED_STRIDE: a point the noise-aware search measures again is a fresh
# draw, not a copy of the first. Confirmation seeds start at CONFIRM_SEED_OFFSET, far from every search seed
# (seed + i * TRIAL_SEED_STRIDE + r * REPEAT_SEED_STRIDE), so the confirmed figures are fresh draws too.
TRIAL_SEED_STRIDE = 101
CONFIRM_SEED_OFFSET = 900_000_001


def trial_seed(seed: int, index: int) -> int:
    """The seed trial `index` of a job with `seed` trains from (the CLI and the service alike)."""
    return seed + index * TRIAL_SEED_STRIDE


def confirm(
    data: PreparedData,
    spec: ModelSpec,
    clip: float,
    noise: float,
    *,
    baseline: Baseline,
    tradeoff: float,
    delta: float,
    measurement: MeasurementSpec,
    repeats: int,
    seed: int,
) -> tuple[TrialMeasurement, Confirmation]:
    """The chosen point measured again with `repeats` fresh seeds, its calibrated attack at the audit's K."""
    start = time.perf_counter()
    confirming = measurement.model_copy(
        update={"repeats": repeats, "reference_models": measurement.audit_reference_models}
    )
    first = seed + CONFIRM_SEED_OFFSET
    measured = run_trial(data, spec, clip, noise, delta=delta, measurement=confirming, seed=first)
    seeds = [first + r * REPEAT_SEED_STRIDE for r in range(repeats)]
    return measured, confirmation_summary(
        measured, baseline, tradeoff, seeds, measurement.audit_reference_models, time.perf_counter() - start
    )


def tune(
    data: PreparedData,
    spec: ModelSpec,
    search: SearchSpec,
    *,
    measurement: MeasurementSpec | None = None,
    guarantee: GuaranteeSpec | None = None,
    tradeoff: float = 0.5,
    delta: float | None = None,
    seed: int = 0,
    dataset_info: dict[str, object] | None = None,
    on_trial: ProgressCallback | None = None,
    baseline: Baseline | None = None,
    tuned_on: TuneSource = "private",
) -> TuningResult:
    """Baseline (and its gate), then the search inside the guarantee's space until its budget (trials, seconds
    or the grid) is spent; then the recommendation (best posterior mean, confirmed on fresh seeds).
    `on_trial(trial, best, budget)` reports progress. The final model is trained by final_model.train_final."""
    start = time.perf_counter()
    measurement = measurement or MeasurementSpec()
    guarantee = guarantee or GuaranteeSpec()
    check_game(data, measurement)
    delta = default_delta(len(data.y_members)) if delta is None else delta
    n_members = len(data.y_members)
    space = space_for(search, guarantee, spec, n_members, delta)  # before the baseline: a bad budget fails fast
    baseline = baseline or run_baseline(data, spec, measurement, seed, delta)
    check_baseline(baseline, measurement)
    trials: list[Trial] = []
    failed: list[FailedTrial] = []
    pruned: list[PrunedTrial] = []
    budget = search.budget()
    while True:
        step = search_step(
            search,
            space,
            observations(trials, failed, pruned),
            [],
            seed=seed,
            elapsed_seconds=time.perf_counter() - start,
        )
        if step.point is None:
            break
        clip, noise = step.point
        index = len(trials) + len(failed) + len(pruned)
        try:
            measured = search_trial(
                data,
                spec,
                clip,
                noise,
                delta=delta,
                measurement=measurement,
                seed=trial_seed(seed, index),
                pruner=pruner_for(search.pruning, trials, baseline, guarantee),  # as the service's queue does
            )
        except TuningError:
            raise  # the job's own configuration: every trial would fail alike
        except Exception as exc:  # one point failed (as in the service): the search moves away from it
            failed.append(FailedTrial(index=index, clip=clip, noise=noise, error=f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(measured, PrunedMeasurement):
            pruned.append(PrunedTrial(**measured.model_dump(), index=index))
            continue
        trial = score(measured, baseline, tradeoff, index=index)
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial, max(trials, key=lambda t: t.objective), budget)
    if not trials:
        first = f"; the first: {failed[0].error}" if failed else ""
        raise TuningError("no_trial_succeeded", f"no trial succeeded ({len(failed) + len(pruned)} ran){first}")
    choice = choose(trials, baseline, tradeoff, space, guarantee, seed)
    recommendation = None
    if choice.trial is not None:
        confirmed, confirmation = confirm(
            data,
            spec,
            choice.trial.clip,
            choice.trial.noise,
            baseline=baseline,
            tradeoff=tradeoff,
            delta=delta,
            measurement=measurement,
            repeats=guarantee.confirm_repeats,
            seed=seed,
        )
        recommendation = build_recommendation(
            choice,
            baseline,
            tradeoff,
            guarantee,
            training_config(spec, choice.trial.clip, choice.trial.noise, n_members, delta),
            confirmed=confirmed,
            confirmation=confirmation,
            tuned_on=tuned_on,
        )
    return build_result(
        dataset=dict(dataset_info or {}),
        spec=spec,
        search=search,
        space=space,
        guarantee=guarantee,
        measurement=measurement,
        splits=data.split_sizes(),
        tradeoff=tradeoff,
        delta=delta,
        seed=seed,
        baseline=baseline,
        trials=trials,
        failed=failed,
        pruned=pruned,
        stop_reason=step.stop,
        recommendation=recommendation,
        no_recommendation_reason=choice.reason,
        final_model=None,
        seconds=time.perf_counter() - start,
    )
