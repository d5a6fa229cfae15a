"""Pruning hopeless trials (app/tuning/pruning.py): the median rule on hand-made histories, the pruner a job's
trials give, a checkpointed training that goes on equals the plain one bit for bit, and a pruned trial in
engine.tune: counted in the budget, never recommended, with its full configuration's epsilon."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from app.tuning import engine
from app.tuning.accounting import dp_sgd_guarantee, dp_sgd_steps, sampling_rate
from app.tuning.model_spec import ModelSpec
from app.tuning.pruning import (
    WARMUP_TRIALS,
    PruneDecision,
    Pruner,
    checkpoint_step,
    decide,
    pruner_for,
    standard_error,
)
from app.tuning.results import Checkpoint, Estimate, GuaranteeSpec, PrunedMeasurement, TrialMeasurement
from app.tuning.search import SearchSpec
from app.tuning.train import DPParams, dense_models, dense_trainer, train
from app.tuning.trials_csv import result_trials_csv
from tests.tuning.test_engine import FAST, SPEC, _data

STEP = 20


def _auc(value: float, half: float = 0.02) -> Estimate:
    return Estimate(value=value, low=value - half, high=value + half)


def _history(*values: float, step: int = STEP) -> tuple[tuple[int, float], ...]:
    return tuple((step, v) for v in values)


def test_no_pruning_during_the_warm_up_however_bad_the_trial() -> None:
    pruner = Pruner("median", _history(*([0.9] * (WARMUP_TRIALS - 1))))
    decision = decide(pruner, STEP, _auc(0.5))
    assert not decision.prune and decision.median is None and decision.compared == WARMUP_TRIALS - 1
    # One more completed trial ends the warm-up, and the same trial is pruned.
    pruner = Pruner("median", _history(*([0.9] * WARMUP_TRIALS)))
    assert decide(pruner, STEP, _auc(0.5)).prune


def test_the_median_of_the_same_step_and_a_margin_of_one_standard_error() -> None:
    # Median of 0.70, 0.80, 0.85, 0.95 is 0.825; values at another step are not compared (like with like).
    pruner = Pruner("median", (*_history(0.70, 0.80, 0.85, 0.95), *_history(0.10, 0.10, 0.10, step=STEP + 1)))
    se = standard_error(_auc(0.80, half=0.0392))  # half-width 0.0392 is 2 SE of 0.0392 / 1.96 = 0.02
    assert se == pytest.approx(0.02, rel=1e-3)
    within = decide(pruner, STEP, _auc(0.81, half=0.0392))  # 0.81 + 0.02 >= 0.825: not clearly below
    assert not within.prune and within.median == pytest.approx(0.825) and within.compared == 4
    below = decide(pruner, STEP, _auc(0.80, half=0.0392))  # 0.80 + 0.02 < 0.825
    assert below.prune and "median 0.8250" in below.reason
    # A wider interval (fewer validation records) is a wider margin: the same value is no longer pruned.
    assert not decide(pruner, STEP, _auc(0.80, half=0.08)).prune
    # At another step there are no completed trials to compare with: warm-up.
    assert decide(pruner, STEP + 2, _auc(0.1)) == PruneDecision(False, None, 0, "warm-up: 0 of 4 completed trials")


def test_never_pruned_at_or_above_the_best_feasible_trials_checkpoint_nor_when_off() -> None:
    history = _history(0.90, 0.92, 0.94, 0.96)
    # The best feasible trial (by objective) had a low checkpoint utility: a trial reaching it is kept.
    assert not decide(Pruner("median", history, best_feasible=0.70), STEP, _auc(0.70, half=0.001)).prune
    assert decide(Pruner("median", history, best_feasible=0.70), STEP, _auc(0.69, half=0.001)).prune
    assert not decide(Pruner("none", history), STEP, _auc(0.1)).prune


def test_the_checkpoint_is_half_the_steps_and_before_the_end() -> None:
    assert checkpoint_step(80) == 40 and checkpoint_step(3) == 2 and checkpoint_step(2) == 1


def _measurement(index_value: float, step: int, epsilon: float) -> TrialMeasurement:
    from tests.service.helpers import make_measurement

    measured = make_measurement(1.0, 1.0)
    checkpoint = Checkpoint(
        step=step,
        steps=2 * step,
        utility_validation=_auc(index_value),
        median=None,
        compared=0,
        best_feasible=None,
        pruned=False,
        reason="warm-up",
    )
    return measured.model_copy(update={"checkpoint": checkpoint, "epsilon": epsilon})


def test_a_jobs_trials_give_the_history_and_the_best_feasible_checkpoint() -> None:
    from app.tuning.objective import score
    from tests.service.helpers import make_baseline

    baseline = make_baseline()
    # Trial 1 is the best by objective but breaks max_epsilon 10: the best feasible one is trial 0.
    low = score(_measurement(0.6, STEP, epsilon=5.0), baseline, 0.5, 0)
    high = score(_measurement(0.9, STEP, epsilon=50.0), baseline, 0.5, 1).model_copy(update={"objective": 1.0})
    no_checkpoint = score(_measurement(0.8, STEP, 5.0), baseline, 0.5, 2).model_copy(update={"checkpoint": None})
    pruner = pruner_for("median", [high, low, no_checkpoint], baseline, GuaranteeSpec())
    assert pruner == Pruner("median", _history(0.6, 0.9), best_feasible=0.6)
    assert pruner_for("none", [low], baseline, GuaranteeSpec()) is None


@pytest.mark.parametrize(
    ("optimizer", "dropout", "dp"),
    [("sgd", 0.0, DPParams(clip=0.5, noise=1.3)), ("adam", 0.2, DPParams(clip=1.0, noise=0.8)), ("sgd", 0.1, None)],
)
def test_a_checkpointed_training_that_goes_on_equals_the_plain_one_bit_for_bit(
    optimizer: str, dropout: float, dp: DPParams | None
) -> None:
    data = _data()
    spec = ModelSpec(hidden=[8, 4], epochs=4, batch_size=16, learning_rate=0.05, optimizer=optimizer, dropout=dropout)
    plain = train(spec, data.x_members, data.y_members, 2, dp, seed=7)
    trainer = dense_trainer(spec, data.x_members, data.y_members, 2, dp, [7])
    trainer.train_until(checkpoint_step(trainer.steps))
    halfway = dense_models(trainer, dp)[0]
    trainer.train_until(trainer.steps)
    finished = dense_models(trainer, dp)[0]
    assert finished.steps == plain.steps == trainer.steps and halfway.steps == checkpoint_step(trainer.steps)
    for a, b, c in zip(finished.weights, plain.weights, halfway.weights, strict=True):
        assert np.array_equal(a, b)  # bit for bit
        assert not np.array_equal(a, c)  # and the checkpoint really was part-way
    assert np.array_equal(finished.predict_proba(data.x_test), plain.predict_proba(data.x_test))


def _delta() -> float:
    return engine.default_delta(120)


@pytest.mark.slow
def test_a_trial_that_goes_on_measures_what_run_trial_measures() -> None:
    data = _data()
    plain = engine.run_trial(data, SPEC, 1.0, 1.0, delta=_delta(), measurement=FAST, seed=5)
    below = Pruner("median", _history(0.1, step=checkpoint_step(dp_sgd_steps(120, SPEC.batch_size, SPEC.epochs))) * 4)
    kept = engine.search_trial(data, SPEC, 1.0, 1.0, delta=_delta(), measurement=FAST, seed=5, pruner=below)
    assert isinstance(kept, TrialMeasurement) and kept.checkpoint is not None and not kept.checkpoint.pruned
    assert kept.checkpoint.median == pytest.approx(0.1) and kept.checkpoint.step == checkpoint_step(kept.steps)
    assert plain.checkpoint is None
    for name in ("utility_validation", "utility_test", "utility_members", "attack_accuracy", "epsilon"):
        assert getattr(kept, name) == getattr(plain, name), name


@pytest.mark.slow
def test_a_pruned_trial_reports_its_full_configurations_epsilon() -> None:
    data = _data()
    steps = dp_sgd_steps(120, SPEC.batch_size, SPEC.epochs)
    step = checkpoint_step(steps)
    pruned = engine.search_trial(
        data,
        SPEC,
        1.0,
        1.0,
        delta=_delta(),
        measurement=FAST,
        seed=5,
        pruner=Pruner("median", _history(1.0, step=step) * 4),
    )
    assert isinstance(pruned, PrunedMeasurement) and pruned.checkpoint.pruned
    assert pruned.checkpoint.step == step < pruned.steps == steps
    rate = sampling_rate(120, SPEC.batch_size)
    full = dp_sgd_guarantee(sampling_rate=rate, noise_multiplier=1.0, steps=steps, delta=_delta())
    truncated = dp_sgd_guarantee(sampling_rate=rate, noise_multiplier=1.0, steps=step, delta=_delta())
    assert pruned.epsilon == full.epsilon and pruned.epsilon_rdp == full.epsilon_rdp
    assert truncated.epsilon is not None and pruned.epsilon is not None and truncated.epsilon < pruned.epsilon


@pytest.mark.slow
def test_a_users_keras_model_is_never_pruned() -> None:
    import tensorflow as tf

    keras = tf.keras.Sequential([tf.keras.layers.InputLayer(input_shape=(8,)), tf.keras.layers.Dense(1)])
    spec = SPEC.model_copy(update={"keras_json": keras.to_json(), "hidden": []})
    measured = engine.search_trial(
        _data(), spec, 1.0, 1.0, delta=_delta(), measurement=FAST, seed=5, pruner=Pruner("median", _history(1.0) * 9)
    )
    assert isinstance(measured, TrialMeasurement) and measured.checkpoint is None


@pytest.mark.slow
def test_tune_counts_pruned_trials_in_the_budget_and_never_recommends_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rule is forced (prune every trial after two completed ones, from the third on) to exercise the loop;
    the rule itself is tested above."""
    seen: list[Pruner] = []

    def forced(pruner: Pruner, step: int, utility: Estimate) -> PruneDecision:
        seen.append(pruner)
        prune = len(pruner.history) >= 2
        return PruneDecision(prune, 0.9 if prune else None, len(pruner.history), "forced")

    monkeypatch.setattr(engine, "decide", forced)
    result = engine.tune(
        _data(),
        SPEC,
        SearchSpec(trials=5, initial_points=2, pruning="median"),
        measurement=FAST,
        guarantee=GuaranteeSpec(confirm_repeats=2),
    )
    assert [t.index for t in result.trials] == [0, 1]
    assert [p.index for p in result.pruned_trials] == [2, 3, 4]  # the budget of 5 counts them
    assert result.stop_reason == "budget" and len(seen) == 5
    assert [len(p.history) for p in seen] == [0, 1, 2, 2, 2]  # completed trials only, as Optuna's MedianPruner
    assert all(t.checkpoint is not None and not t.checkpoint.pruned for t in result.trials)
    assert result.recommendation is not None and result.recommendation.index in {0, 1}
    steps = dp_sgd_steps(120, SPEC.batch_size, SPEC.epochs)
    for p in result.pruned_trials:
        assert p.checkpoint.pruned and p.steps == steps and p.checkpoint.step < steps
        full = dp_sgd_guarantee(
            sampling_rate=sampling_rate(120, SPEC.batch_size),
            noise_multiplier=p.noise,
            steps=steps,
            delta=result.delta,
        )
        assert p.epsilon == full.epsilon
    # The pruned points are distinct suggestions: the search moved on past them (a failed trial's penalty).
    assert len({(p.clip, p.noise) for p in result.pruned_trials}) == 3
    # `dptune tune --csv` lists them in index order with their status, as the API's CSV does.
    rows = list(csv.DictReader(io.StringIO(result_trials_csv(result.trials, result.pruned_trials))))
    assert [(row["index"], row["status"]) for row in rows] == [
        ("0", "succeeded"),
        ("1", "succeeded"),
        ("2", "pruned"),
        ("3", "pruned"),
        ("4", "pruned"),
    ]
    assert [row["objective"] for row in rows[2:]] == ["", "", ""] and all(row["objective"] for row in rows[:2])
    assert rows[2]["checkpoint.pruned"] == "true" and rows[0]["checkpoint.pruned"] == "false"


def test_pruning_is_off_by_default_and_a_bad_rule_is_refused() -> None:
    from pydantic import ValidationError

    assert SearchSpec().pruning == "none"
    with pytest.raises(ValidationError) as refused:
        SearchSpec(pruning="sometimes")  # type: ignore[arg-type]
    assert refused.value.errors()[0]["loc"] == ("pruning",)
