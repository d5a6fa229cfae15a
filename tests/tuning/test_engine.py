"""The engine end to end on small synthetic data: games, calibrated attack, empirical epsilon, gate, repeats."""

import json

import numpy as np
import pytest

from app.tuning.attacks.games import membership_game, one_at_a_time
from app.tuning.engine import check_baseline, run_baseline, run_trial, tune
from app.tuning.errors import TuningError
from app.tuning.model_spec import ModelSpec
from app.tuning.prepared import PreparedData
from app.tuning.results import MeasurementSpec, TuningResult
from app.tuning.search import SearchSpec
from app.tuning.train import train


def _part(rng: np.random.Generator, n: int, shift: float = 0.0, d: int = 8, noise: float = 0.5):
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 1] += shift
    y = (x[:, 0] + x[:, 1] + noise * rng.normal(size=n) > shift).astype(np.int64)
    return x, y


def _data(seed: int = 0, n: int = 120, external: bool = True, d: int = 8, noise: float = 0.5) -> PreparedData:
    rng = np.random.default_rng(seed)
    parts = [_part(rng, n, d=d, noise=noise) for _ in range(4)]
    xe, ye = _part(rng, n, shift=1.5, d=d, noise=noise) if external else (None, None)
    return PreparedData(*parts[0], *parts[1], *parts[2], *parts[3], xe, ye, n_classes=2)


SPEC = ModelSpec(hidden=[8], epochs=6, batch_size=16, learning_rate=0.1)
FAST = MeasurementSpec(reference_models=2, audit_reference_models=2)


@pytest.mark.slow
def test_tiny_tuning_run_writes_every_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seen = []
    result = tune(
        _data(),
        SPEC,
        SearchSpec(trials=2, initial_points=2),
        measurement=FAST,
        tradeoff=0.5,
        seed=0,
        on_trial=lambda trial, best, budget: seen.append((trial.index, best.index, budget)),
    )
    assert [s[0] for s in seen] == [0, 1] and all(s[2] == 2 for s in seen)
    assert result.delta == pytest.approx(min(1e-5, 1 / 1200))
    assert result.splits.model_dump() == {
        "members": 120,
        "holdout": 120,
        "validation": 120,
        "test": 120,
        "external": 120,
    }
    for item in [result.baseline, *result.trials]:
        membership = item.games.membership
        assert set(membership.attacks) == {"rf", "nn", "loss", "rmia"}
        assert membership.attack_accuracy == max(a.accuracy.value for a in membership.attacks.values())
        for scores in membership.attacks.values():
            for name in ("accuracy", "auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"):
                e = getattr(scores, name)
                assert e.low <= e.value <= e.high
        assert item.games.population is not None
        assert item.games.population.shift == pytest.approx(item.games.population.reference_attack_accuracy - 0.5)
    for trial in result.trials:
        assert trial.attack_accuracy == trial.games.membership.attack_accuracy  # the default game
        assert trial.utility_loss == pytest.approx(result.baseline.utility_test - trial.utility_test)
        assert trial.repeats == 1 and trial.objective_se is None
        if trial.noise > 0:
            assert trial.epsilon is not None and trial.epsilon_rdp is not None and trial.epsilon <= trial.epsilon_rdp
            assert 0.5 <= trial.attack_accuracy_bound <= 1.0
    # The default guarantee (max_epsilon 10): no trial and no recommendation without noise or above the budget.
    assert result.mode == "budget" and result.search_space.min_noise > 0
    assert all(
        t.noise >= result.search_space.min_noise and t.epsilon is not None and t.epsilon <= 10.0
        for t in result.trials
    )
    rec = result.recommendation
    assert rec is not None and rec.noise > 0 and rec.epsilon is not None and rec.epsilon <= 10.0
    assert rec.index in {t.index for t in result.trials}  # two trials: too few for a model, the best observed
    assert rec.selection.method == "best_observed"
    assert rec.index == max(result.trials, key=lambda t: (t.objective, -t.index)).index
    assert rec.confirmation is not None and rec.confirmation.repeats == 3 and rec.repeats == 3

    # The Pareto front on (higher validation utility, lower attack accuracy): never empty when a trial
    # succeeded, no member beaten on both by another trial, every other trial beaten by one.
    def beats(b, a) -> bool:  # type: ignore[no-untyped-def]
        return (
            b.utility_validation >= a.utility_validation
            and b.attack_accuracy <= a.attack_accuracy
            and (b.utility_validation > a.utility_validation or b.attack_accuracy < a.attack_accuracy)
        )

    assert result.pareto_front and set(result.pareto_front) <= {t.index for t in result.trials}
    for trial in result.trials:
        beaten = any(beats(other, trial) for other in result.trials)
        assert beaten == (trial.index not in result.pareto_front), (trial.index, result.pareto_front)
    path = tmp_path / "out.json"
    path.write_text(result.model_dump_json())
    raw = json.loads(path.read_text())
    again = TuningResult.model_validate(raw)
    assert again.recommendation == result.recommendation and again.recommendation.training.model == SPEC
    trial = raw["trials"][0]
    for key in (
        "attack_accuracy",
        "epsilon",
        "epsilon_rdp",
        "epsilon_lower_bound",
        "delta",
        "attack_accuracy_bound",
        "repeats",
        "objective",
        "objective_se",
    ):
        assert key in trial
    assert {"value", "low", "high"} <= set(trial["games"]["membership"]["attacks"]["rmia"]["tpr_at_1pct_fpr"])
    assert {"attack_accuracy", "reference_attack_accuracy"} <= set(trial["games"]["population"])


def test_overfitted_model_leaks_in_the_membership_game() -> None:
    """A non-private MLP trained far past fitting on a few hundred noisy rows: the calibrated attack finds
    members at 1 % FPR and proves an epsilon above 0."""
    data = _data(seed=1, n=200, external=False, d=20, noise=1.5)
    spec = ModelSpec(hidden=[128, 128], optimizer="adam", epochs=40, batch_size=32)
    baseline = run_baseline(data, spec, MeasurementSpec(audit_reference_models=6), seed=0)
    rmia = baseline.games.membership.attacks["rmia"]
    assert rmia.tpr_at_1pct_fpr.low > 0.01
    assert baseline.epsilon_lower_bound > 0
    assert baseline.games.population is None


def test_a_model_that_never_saw_the_members_scores_chance() -> None:
    data = _data(seed=2, n=200, external=False, d=20, noise=1.5)
    spec = ModelSpec(hidden=[64], optimizer="adam", epochs=20, batch_size=32)
    outsider = train(spec, data.x_test, data.y_test, 2, None, 0)  # trained on neither members nor holdout

    def train_like(x, y, seed):  # type: ignore[no-untyped-def]
        return train(spec, x, y, 2, None, seed).predict_proba

    probabilities = {
        name: outsider.predict_proba(getattr(data, f"x_{name}")) for name in ("members", "holdout", "validation")
    }
    game = membership_game(
        target_members=probabilities["members"],
        target_holdout=probabilities["holdout"],
        target_population=probabilities["validation"],
        x_members=data.x_members,
        y_members=data.y_members,
        x_holdout=data.x_holdout,
        y_holdout=data.y_holdout,
        x_population=data.x_validation,
        y_population=data.y_validation,
        n_classes=2,
        train_references=one_at_a_time(train_like),
        reference_models=4,
        delta=1e-5,
        seed=0,
    )
    for name in ("rmia", "loss"):
        auc = game.attacks[name].auc
        assert auc.low <= 0.5 <= auc.high, (name, auc)


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.6, 1.5, 4.0])
def test_dp_trials_stay_within_the_accountant(noise: float) -> None:
    data = _data(seed=3, n=200, external=False, d=20, noise=1.5)
    spec = ModelSpec(hidden=[64], epochs=10, batch_size=20, learning_rate=0.1)
    trial = run_trial(data, spec, 1.0, noise, delta=1e-5, measurement=MeasurementSpec(reference_models=2), seed=0)
    assert trial.epsilon is not None and trial.epsilon_lower_bound <= trial.epsilon
    for scores in trial.games.membership.attacks.values():
        assert scores.tpr_at_1pct_fpr.low <= trial.tpr_bound_at_1pct_fpr
        assert scores.tpr_at_0_1pct_fpr.low <= trial.tpr_bound_at_0_1pct_fpr
        assert scores.accuracy.low <= trial.attack_accuracy_bound


@pytest.mark.slow
def test_trial_is_reproducible_and_repeats_report_a_standard_error() -> None:
    data = _data(external=False)
    first = run_trial(data, SPEC, 1.0, 1.5, delta=1e-3, measurement=FAST, seed=7)
    second = run_trial(data, SPEC, 1.0, 1.5, delta=1e-3, measurement=FAST, seed=7)
    assert first.utility_test == pytest.approx(second.utility_test, abs=1e-6)
    assert first.attack_accuracy == pytest.approx(second.attack_accuracy)
    assert first.steps == 6 * 8 and first.sampling_rate == pytest.approx(16 / 120)
    repeated = run_trial(data, SPEC, 1.0, 1.5, delta=1e-3, measurement=FAST.model_copy(update={"repeats": 3}), seed=7)
    assert repeated.repeats == 3 and len(repeated.repeat_values) == 3
    assert repeated.repeat_values[0].utility_test == pytest.approx(first.utility_test, abs=1e-6)
    assert len({v.utility_test for v in repeated.repeat_values}) > 1  # new seeds each repeat
    assert repeated.utility_test == pytest.approx(np.mean([v.utility_test for v in repeated.repeat_values]))
    assert repeated.attack_accuracy_se is not None and repeated.attack_accuracy_se >= 0
    zero = run_trial(data, SPEC, 1.0, 0.0, delta=1e-3, measurement=FAST, seed=7)
    assert zero.epsilon is None and zero.attack_accuracy_bound is None


@pytest.mark.slow
def test_a_baseline_that_does_not_learn_is_not_tuned_unless_allowed() -> None:
    data = _data(external=False)
    rng = np.random.default_rng(0)
    noise_labels = PreparedData(
        data.x_members,
        rng.integers(0, 2, 120),
        data.x_holdout,
        rng.integers(0, 2, 120),
        data.x_validation,
        rng.integers(0, 2, 120),
        data.x_test,
        rng.integers(0, 2, 120),
        None,
        None,
        n_classes=2,
    )
    baseline = run_baseline(noise_labels, SPEC, FAST, seed=0)
    assert not baseline.learns and "includes chance" in baseline.weak_reasons[0]
    assert baseline.logistic_regression_utility_test is not None
    with pytest.raises(TuningError) as failure:
        check_baseline(baseline, FAST)
    assert failure.value.code == "baseline_not_learning" and "allow_weak_baseline" in failure.value.message
    with pytest.raises(TuningError):
        tune(noise_labels, SPEC, SearchSpec(trials=1), measurement=FAST, baseline=baseline)
    allowed = FAST.model_copy(update={"allow_weak_baseline": True})
    check_baseline(baseline, allowed)
    assert len(tune(noise_labels, SPEC, SearchSpec(trials=1), measurement=allowed, baseline=baseline).trials) == 1


def test_too_few_rare_class_records_fail_the_gate_and_population_needs_an_external_set() -> None:
    data = _data(external=False)
    few = np.zeros(120, dtype=np.int64)
    few[:10] = 1  # 10 positives in validation
    thin = PreparedData(
        data.x_members,
        data.y_members,
        data.x_holdout,
        data.y_holdout,
        data.x_validation,
        few,
        data.x_test,
        data.y_test,
        None,
        None,
        n_classes=2,
    )
    baseline = run_baseline(thin, SPEC, FAST, seed=0)
    assert not baseline.learns and any("validation split holds 10" in r for r in baseline.weak_reasons)
    with pytest.raises(TuningError) as failure:
        run_baseline(data, SPEC, FAST.model_copy(update={"privacy_game": "population"}), seed=0)
    assert failure.value.code == "no_external_set"


def test_a_test_auc_below_chance_is_named_as_such() -> None:
    from app.tuning.engine import weak_baseline_reasons
    from app.tuning.results import Estimate, Utility

    data = _data(external=False)

    def utility(value: float, low: float, high: float) -> Utility:
        return Utility(
            utility_members=0.9,
            utility_holdout=value,
            utility_validation=value,
            utility_test=value,
            utility_external=None,
            utility_test_interval=Estimate(value=value, low=low, high=high),
            accuracy_test=0.5,
        )

    assert weak_baseline_reasons(utility(0.80, 0.72, 0.88), data) == []
    [below] = weak_baseline_reasons(utility(0.35, 0.28, 0.42), data)
    assert "lies below chance" in below and "0.350" in below
    [around] = weak_baseline_reasons(utility(0.52, 0.45, 0.59), data)
    assert "includes chance" in around
