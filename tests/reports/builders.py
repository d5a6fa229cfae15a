"""Tuning results for the report tests, built with the engine's own builders from the factories' measurements
(no training, no accounting: the epsilons and bounds are chosen, monotone in the noise)."""

from __future__ import annotations

import math
from typing import TypeVar

from app.tuning.accounting import SAMPLING_ASSUMPTION
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import score
from app.tuning.recommendation import Choice, build_recommendation, build_result
from app.tuning.results import (
    Baseline,
    GuaranteeSpec,
    MeasurementSpec,
    ScoreHistogram,
    Selection,
    SplitSizes,
    TrainingConfig,
    Trial,
    TrialMeasurement,
    TuningResult,
)
from app.tuning.search import SearchSpace, SearchSpec
from tests import factories
from tests.service.helpers import fake_confirmation

M = TypeVar("M", Baseline, TrialMeasurement)
POINTS = [(0.5, 0.8), (1.0, 1.5), (2.0, 3.0), (4.0, 0.9), (0.2, 5.0), (8.0, 2.2)]
SPEC = ModelSpec(hidden=[8], epochs=2, batch_size=16, learning_rate=0.1)


def histogram(shift: float) -> ScoreHistogram:
    """100 members and 100 nonmembers in 20 bins; members' counts moved `shift` bins up (a leak)."""
    nonmembers = [5] * 20
    members = [0] * 20
    for i, count in enumerate(nonmembers):
        members[min(19, i + round(shift))] += count
    return ScoreHistogram(edges=[i / 20 for i in range(21)], members=members, nonmembers=nonmembers)


def with_histogram(item: M, shift: float) -> M:
    assert item.games is not None
    membership = item.games.membership.model_copy(update={"score_histogram": histogram(shift)})
    return item.model_copy(update={"games": item.games.model_copy(update={"membership": membership})})


def measured(clip: float, noise: float) -> TrialMeasurement:
    utility = 0.85 - 0.03 * noise + 0.01 * math.log(clip)
    attack = 0.62 - 0.02 * noise
    epsilon = 8.0 / noise
    return with_histogram(
        factories.measurement(
            utility,
            attack,
            clip,
            noise,
            epsilon=epsilon,
            tpr_bound_at_1pct_fpr=min(1.0, 0.01 * math.exp(epsilon)),
            tpr_bound_at_0_1pct_fpr=min(1.0, 0.001 * math.exp(epsilon)),
            delta=1e-3,
        ),
        4 / noise,
    )


def training(trial: Trial) -> TrainingConfig:
    return TrainingConfig(
        clip=trial.clip,
        noise=trial.noise,
        epochs=SPEC.epochs,
        batch_size=SPEC.batch_size,
        learning_rate=0.1,
        optimizer="sgd",
        n=100,
        sampling_rate=0.16,
        steps=14,
        delta=1e-3,
        epsilon=trial.epsilon,
        epsilon_rdp=trial.epsilon,
        accountant=SAMPLING_ASSUMPTION,
        model=SPEC,
    )


def result(
    source: str = "tiny.csv",
    points: list[tuple[float, float]] | None = None,
    *,
    recommend: bool = True,
    tradeoff: float = 0.5,
) -> TuningResult:
    """A finished run: trials at `points`, the best one recommended and confirmed (or none, with its reason)."""
    baseline = with_histogram(factories.baseline(0.9, 0.66), 8)
    points = POINTS if points is None else points
    trials = [score(measured(c, n), baseline, tradeoff, i) for i, (c, n) in enumerate(points)]
    guarantee = GuaranteeSpec(max_epsilon=10.0, max_utility_loss=None if recommend else 0.001)
    recommendation = None
    if recommend:
        best = max(trials, key=lambda t: t.objective)
        choice = Choice(
            best,
            Selection(
                method="best_observed",
                best_posterior_index=None,
                posterior_mean=None,
                standard_error=None,
                within_one_se=[best.index],
                feasible=len(trials),
            ),
            None,
        )
        confirmed = with_histogram(
            factories.measurement(
                best.utility_validation,
                best.attack_accuracy,
                best.clip,
                best.noise,
                epsilon=best.epsilon,
                repeats=[(best.utility_validation, best.attack_accuracy)] * 3,
            ),
            4 / best.noise,
        )
        recommendation = build_recommendation(
            choice,
            baseline,
            tradeoff,
            guarantee,
            training(best),
            confirmed=confirmed,
            confirmation=fake_confirmation(confirmed, baseline, tradeoff),
        )
    return build_result(
        dataset={"source": source},
        spec=SPEC,
        search=SearchSpec(trials=max(1, len(trials))),
        space=SearchSpace(min_clip=0.1, max_clip=10.0, min_noise=0.5, max_noise=10.0),
        guarantee=guarantee,
        measurement=MeasurementSpec(),
        splits=SplitSizes(members=100, holdout=100, validation=60, test=60, external=None),
        tradeoff=tradeoff,
        delta=1e-3,
        seed=0,
        baseline=baseline,
        trials=trials,
        failed=[],
        stop_reason="budget",
        recommendation=recommendation,
        no_recommendation_reason=None if recommend else "no trial loses at most 0.001 validation ROC-AUC",
        final_model=None,
        seconds=12.0,
    )
