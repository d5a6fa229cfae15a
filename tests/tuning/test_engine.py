"""A tiny end-to-end tuning run on synthetic data with a membership leak from a distribution shift."""

import json

import numpy as np
import pytest

from app.tuning.engine import run_trial, tune
from app.tuning.model_spec import ModelSpec
from app.tuning.prepared import PreparedData
from app.tuning.results import TuningResult
from app.tuning.search import SearchSpec


def _data(seed: int = 0) -> PreparedData:
    rng = np.random.default_rng(seed)

    def part(n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, 8)).astype(np.float32)
        x[:, 1] += shift
        y = (x[:, 0] + x[:, 1] + 0.5 * rng.normal(size=n) > shift).astype(np.int64)
        return x, y

    xm, ym = part(240, 0.0)
    xt, yt = part(120, 0.0)
    xn, yn = part(240, 1.5)
    return PreparedData(xm, ym, xt, yt, xn, yn, n_classes=2)


SPEC = ModelSpec(hidden=[8], epochs=2, batch_size=16, learning_rate=0.05)


def test_tiny_tuning_run_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seen = []
    result = tune(_data(), SPEC, SearchSpec(trials=3, initial_points=2), tradeoff=0.5, seed=0,
                  on_trial=lambda trial, best, budget: seen.append((trial.index, best.index, budget)))
    assert [s[0] for s in seen] == [0, 1, 2] and all(s[2] == 3 for s in seen)
    assert len(result.trials) == 3
    assert result.delta == pytest.approx(1 / 240)
    for trial in result.trials:
        assert 0.1 <= trial.clip <= 10 and 0 <= trial.noise <= 10
        assert set(trial.attack) == {"rf", "nn"}
        assert trial.attack_accuracy == max(a.accuracy for a in trial.attack.values())
        assert trial.utility_loss == pytest.approx(result.baseline.utility_test - trial.utility_test)
        assert trial.epsilon is None or trial.epsilon > 0
    best = max(result.trials, key=lambda t: t.objective)
    assert result.recommendation is not None and result.recommendation.index == best.index
    assert set(result.pareto_front) <= {t.index for t in result.trials}
    # The JSON the CLI writes round-trips into the same result model.
    path = tmp_path / "out.json"
    path.write_text(result.model_dump_json())
    again = TuningResult.model_validate(json.loads(path.read_text()))
    assert again.recommendation == result.recommendation
    assert "utility_members" in json.loads(path.read_text())["baseline"]


def test_trial_is_reproducible_for_a_seed_and_reports_epsilon() -> None:
    data = _data()
    first = run_trial(data, SPEC, 1.0, 1.5, delta=1e-3, seed=7)
    second = run_trial(data, SPEC, 1.0, 1.5, delta=1e-3, seed=7)
    assert first.utility_test == pytest.approx(second.utility_test, abs=1e-6)
    assert first.attack_accuracy == pytest.approx(second.attack_accuracy)
    assert first.epsilon is not None and np.isfinite(first.epsilon)
    assert first.steps == 2 * 15 and first.sampling_rate == pytest.approx(16 / 240)
    assert run_trial(data, SPEC, 1.0, 0.0, delta=1e-3, seed=7).epsilon is None
