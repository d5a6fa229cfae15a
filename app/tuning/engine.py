"""One trial is a function of (prepared data, model spec, clip, noise, seed); `tune` runs a whole search."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


from app.tuning.accounting import SAMPLING_ASSUMPTION, dp_sgd_epsilon
from app.tuning.attack import balanced_attack_split, label_only_attack_accuracy, membership_attacks
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import pareto_front, recommend, score
from app.tuning.prepared import PreparedData
from app.tuning.results import Baseline, Trial, TrialMeasurement, TuningResult, Utility
from app.tuning.search import SearchSpec, suggest
from app.tuning.train import DPParams, TrainedModel, train
from app.tuning.utility import accuracy, roc_auc


def default_delta(data: PreparedData) -> float:
    """delta = 1/n members, the usual choice (DESIGN.md)."""
    return 1.0 / len(data.y_members)


def _utility_and_attack(
    trained: TrainedModel, data: PreparedData, seed: int
) -> tuple[Utility, dict[str, object], float]:
    p_members = trained.predict_proba(data.x_members)
    p_test = trained.predict_proba(data.x_test)
    p_nonmembers = trained.predict_proba(data.x_nonmembers)
    utility_test = roc_auc(p_test, data.y_test)
    if math.isnan(utility_test):
        raise ValueError("the test split holds a single class, so its ROC-AUC (the utility) is undefined")
    utility = Utility(
        utility_members=roc_auc(p_members, data.y_members),
        utility_test=utility_test,
        utility_nonmembers=roc_auc(p_nonmembers, data.y_nonmembers),
        accuracy_test=accuracy(p_test, data.y_test),
    )
    split = balanced_attack_split(len(data.y_members), len(data.y_nonmembers), seed)
    attacks = membership_attacks(
        p_members, data.y_members, p_nonmembers, data.y_nonmembers, data.n_classes, split, seed
    )
    return utility, attacks, max(a.accuracy for a in attacks.values())


def run_baseline(data: PreparedData, spec: ModelSpec, seed: int = 0) -> Baseline:
    """Train without privacy: u_start and p_start."""
    start = time.perf_counter()
    trained = train(spec, data.x_members, data.y_members, data.n_classes, None, seed)
    utility, attacks, attack_accuracy = _utility_and_attack(trained, data, seed)
    return Baseline(
        **utility.model_dump(),
        attack_accuracy=attack_accuracy,
        attack=attacks,
        label_only_attack_accuracy=label_only_attack_accuracy(data.y_members, data.y_nonmembers, data.n_classes),
        seconds=time.perf_counter() - start,
    )


def run_trial(
    data: PreparedData, spec: ModelSpec, clip: float, noise: float, *, delta: float, seed: int = 0
) -> TrialMeasurement:
    """Train with DP-SGD at (clip, noise), everything else unchanged, and measure utility, attacks and epsilon."""
    start = time.perf_counter()
    trained = train(spec, data.x_members, data.y_members, data.n_classes, DPParams(clip, noise), seed)
    utility, attacks, attack_accuracy = _utility_and_attack(trained, data, seed)
    n = len(data.y_members)
    rate = min(1.0, spec.batch_size / n)
    epsilon = dp_sgd_epsilon(sampling_rate=rate, noise_multiplier=noise, steps=trained.steps, delta=delta)
    return TrialMeasurement(
        **utility.model_dump(),
        clip=clip,
        noise=noise,
        attack_accuracy=attack_accuracy,
        attack=attacks,
        epsilon=None if math.isinf(epsilon) else epsilon,
        delta=delta,
        steps=trained.steps,
        sampling_rate=rate,
        seconds=time.perf_counter() - start,
    )


ProgressCallback = Callable[[Trial, Trial, int], None]


def tune(
    data: PreparedData,
    spec: ModelSpec,
    search: SearchSpec,
    *,
    tradeoff: float = 0.5,
    delta: float | None = None,
    seed: int = 0,
    dataset_info: dict[str, object] | None = None,
    on_trial: ProgressCallback | None = None,
    baseline: Baseline | None = None,
) -> TuningResult:
    """Baseline, then trials until the budget (trials and/or seconds) is spent; the recommendation maximises
    the objective at `tradeoff`. `on_trial(trial, best, budget)` reports progress."""
    start = time.perf_counter()
    delta = default_delta(data) if delta is None else delta
    baseline = baseline or run_baseline(data, spec, seed)
    trials: list[Trial] = []
    budget = search.budget()
    while len(trials) < budget:
        if search.seconds is not None and time.perf_counter() - start >= search.seconds:
            break
        point = suggest(search, [((t.clip, t.noise), t.objective) for t in trials], [], seed)
        if point is None:
            break
        measurement = run_trial(data, spec, point[0], point[1], delta=delta, seed=seed)
        trial = score(measurement, baseline, tradeoff, index=len(trials))
        trials.append(trial)
        if on_trial is not None:
            on_trial(trial, max(trials, key=lambda t: t.objective), budget)
    return TuningResult(
        dataset=dict(dataset_info or {}),
        model=spec.model_dump(),
        search=search.model_dump(),
        tradeoff=tradeoff,
        delta=delta,
        seed=seed,
        accounting=SAMPLING_ASSUMPTION,
        baseline=baseline,
        trials=trials,
        pareto_front=pareto_front(trials),
        recommendation=recommend(trials, baseline, tradeoff),
        seconds=time.perf_counter() - start,
    )


