"""Target-epsilon tuning end to end, the final model and its privacy statement."""

import json
import math
import re

import numpy as np
import pytest

from app.tuning import engine
from app.tuning.accounting import dp_sgd_guarantee
from app.tuning.final_model import (
    final_training,
    save_final_model,
    tf_privacy_statement,
    train_final,
)
from app.tuning.recommendation import training_config
from app.tuning.results import GuaranteeSpec, MeasurementSpec
from app.tuning.search import SearchSpec
from app.tuning.train import DPParams, export_model, train
from tests.tuning.test_engine import SPEC, _data


def tf_privacy_poisson_epsilon(statement: str) -> float:
    """The 'Epsilon assuming Poisson sampling' figure of a TF Privacy statement."""
    match = re.search(r"Epsilon assuming Poisson sampling \(\*\):\s+([0-9.]+|inf)", statement)
    if match is None:
        raise ValueError("no Poisson-sampling epsilon in the statement")
    return float(match.group(1))


FAST = MeasurementSpec(reference_models=2, audit_reference_models=2, allow_weak_baseline=True)


@pytest.mark.slow
def test_target_epsilon_tuning_calibrates_every_trial_and_confirms_the_choice() -> None:
    result = engine.tune(
        _data(),
        SPEC,
        SearchSpec(trials=3, initial_points=2),
        measurement=FAST,
        guarantee=GuaranteeSpec(target_epsilon=1.0, confirm_repeats=2),
    )
    assert result.mode == "target_epsilon" and result.search_space.fixed_noise is not None
    for trial in [*result.trials, result.recommendation]:
        assert trial is not None and trial.epsilon is not None and 0.99 <= trial.epsilon <= 1.0
    rec = result.recommendation
    assert rec is not None and rec.confirmation is not None and rec.confirmation.repeats == 2
    assert rec.repeats == 2  # the recommendation's figures are the confirmation's means
    assert rec.confirmation.seeds[0] != result.seed  # fresh seeds, not the search's
    training = rec.training
    assert (training.n, training.batch_size, training.epochs) == (120, SPEC.batch_size, SPEC.epochs)
    assert training.steps == SPEC.epochs * math.ceil(120 / SPEC.batch_size) and training.epsilon == rec.epsilon
    assert result.stop_reason == "budget" and rec.selection.method == "posterior_mean"
    assert "not covered" not in rec.tuning_cost and "does not cover" in rec.tuning_cost


@pytest.mark.slow
def test_a_failed_trial_is_recorded_and_the_search_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.search_trial
    calls = []

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 1:
            raise FloatingPointError("diverged")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "search_trial", flaky)
    result = engine.tune(
        _data(),
        SPEC,
        SearchSpec(trials=3, initial_points=2),
        measurement=FAST,
        guarantee=GuaranteeSpec(confirm_repeats=2),
    )
    assert [f.index for f in result.failed_trials] == [0] and "diverged" in result.failed_trials[0].error
    assert [t.index for t in result.trials] == [1, 2]
    assert result.recommendation is not None and result.recommendation.index in (1, 2)


@pytest.mark.slow
def test_the_exported_model_loads_without_dptune_and_predicts_the_trained_probabilities(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf

    data = _data()
    trained = train(SPEC, data.x_members, data.y_members, 2, DPParams(1.0, 1.0), seed=5)
    expected = trained.predict_proba(data.x_test)[:, 1]
    config = training_config(SPEC, 1.0, 1.0, 120, 1e-5)
    model, statement = train_final(data, SPEC, config, "private", seed=5, noise_source="fast")
    assert statement.noise_source == "fast"
    save_final_model(tmp_path, model, statement)
    loaded = tf.keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(data.x_test, verbose=0)[:, 0], expected, atol=1e-5)
    exported = export_model(trained, SPEC, data.n_features)
    np.testing.assert_allclose(exported(data.x_test).numpy()[:, 0], expected, atol=1e-5)
    written = json.loads((tmp_path / "privacy.json").read_text())
    assert written["epsilon"] == statement.epsilon == config.epsilon and written["tuned_on"] == "private"
    for key in (
        "delta",
        "accountant",
        "steps",
        "sampling_rate",
        "clip",
        "noise",
        "n",
        "epochs",
        "batch_size",
        "learning_rate",
        "model",
        "tuning_cost",
        "seed_source",
        "noise_source",
        "rng",
    ):
        assert key in written


@pytest.mark.slow
def test_the_statement_agrees_with_tensorflow_privacys() -> None:
    # TF Privacy counts ceil(epochs * n / batch) steps; dptune epochs * ceil(n / batch), never fewer.
    config = training_config(SPEC.model_copy(update={"epochs": 10, "batch_size": 32}), 1.0, 1.1, 1206, 1e-5)
    theirs = tf_privacy_poisson_epsilon(tf_privacy_statement(config))
    same_steps = dp_sgd_guarantee(
        sampling_rate=config.sampling_rate, noise_multiplier=1.1, steps=math.ceil(10 * 1206 / 32), delta=1e-5
    ).epsilon
    assert same_steps == pytest.approx(theirs, rel=0.01)
    assert config.epsilon is not None and config.epsilon >= theirs - 1e-3


@pytest.mark.slow
def test_the_final_training_on_other_data_is_calibrated_again() -> None:
    tuned = training_config(SPEC, 1.0, 3.0, 120, 1e-5)
    target = final_training(tuned, GuaranteeSpec(target_epsilon=1.0), SPEC, 400, 1e-5)
    assert target.n == 400 and target.epsilon is not None and 0.99 <= target.epsilon <= 1.0
    budget = final_training(tuned.model_copy(update={"noise": 0.5}), GuaranteeSpec(max_epsilon=2.0), SPEC, 60, 1e-5)
    assert budget.epsilon is not None and budget.epsilon <= 2.0 and budget.noise > 0.5
    same = final_training(tuned, GuaranteeSpec(), SPEC, 120, 1e-5)
    assert same == tuned


@pytest.mark.slow
def test_the_final_model_draws_secure_noise_by_default_and_says_so() -> None:
    data = _data()
    config = training_config(SPEC, 1.0, 1.0, 120, 1e-5)
    first, statement = train_final(data, SPEC, config, "private", seed=5)
    second, _ = train_final(data, SPEC, config, "private", seed=5)
    assert statement.noise_source == "secure" and "os.urandom" in statement.rng
    # The same seed, yet other noise: the secure source is keyed from the OS, not from the seed.
    assert not np.allclose(first(data.x_test).numpy(), second(data.x_test).numpy())
