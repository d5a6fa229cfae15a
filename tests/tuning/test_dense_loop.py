"""The compiled loop (app/tuning/dense_loop.py): each of K stacked models equals the model trained alone, one DP
step equals a hand computation, the noise has the stated spread, and a seed reproduces its model bit for bit."""

import numpy as np
import pytest
from scipy import stats

from app.tuning.dense_loop import DenseTrainer, batches_for, initial_weights
from app.tuning.model_spec import ModelSpec
from app.tuning.train import DPParams, export_model, train, train_many


def _data(n: int = 240, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return x, y


@pytest.mark.parametrize(
    ("optimizer", "dropout", "dp"),
    [
        ("sgd", 0.0, DPParams(clip=0.5, noise=1.3)),
        ("adam", 0.2, DPParams(clip=1.0, noise=0.8)),
        ("sgd", 0.2, None),
        ("adam", 0.0, None),
    ],
)
def test_each_of_k_stacked_models_equals_the_model_trained_alone(
    optimizer: str, dropout: float, dp: DPParams | None
) -> None:
    x, y = _data()
    spec = ModelSpec(hidden=[16, 8], optimizer=optimizer, dropout=dropout, epochs=3, batch_size=16)
    rng = np.random.default_rng(1)
    rows = [rng.permutation(len(x))[:150] for _ in range(4)]
    seeds = [11, 12, 13, 14]
    stacked = train_many(spec, x, y, 2, dp, seeds, rows=rows)
    alone = [train(spec, x[r], y[r], 2, dp, s) for r, s in zip(rows, seeds, strict=True)]
    for together, single in zip(stacked, alone, strict=True):
        for a, b in zip(together.weights, single.weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
    # The models differ from each other (their own seeds, rows, batches and noise).
    assert not np.allclose(stacked[0].weights[0], stacked[1].weights[0], atol=1e-3)


def test_each_model_keeps_its_own_clip_and_noise() -> None:
    x, y = _data()
    spec = ModelSpec(hidden=[8], epochs=2, batch_size=16)
    together = DenseTrainer(spec, x, y, 2, [5, 5], clip=[0.2, 2.0], noise=[3.0, 0.5]).train()
    for k, (clip, noise) in enumerate([(0.2, 3.0), (2.0, 0.5)]):
        alone = DenseTrainer(spec, x, y, 2, [5], clip=[clip], noise=[noise]).train()[0]
        for a, b in zip(together[k].arrays, alone.arrays, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)


def test_a_seed_reproduces_its_model_bit_for_bit_whatever_ran_before() -> None:
    x, y = _data()
    spec = ModelSpec(hidden=[8], optimizer="adam", dropout=0.1, epochs=2, batch_size=16)
    first = train(spec, x, y, 2, DPParams(1.0, 0.7), seed=3).predict_proba(x)
    other = train(spec, x, y, 2, DPParams(0.2, 3.0), seed=4).predict_proba(x)
    again = train(spec, x, y, 2, DPParams(1.0, 0.7), seed=3).predict_proba(x)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_one_dp_step_matches_a_hand_computation() -> None:
    """A logistic model, SGD, one epoch of one Poisson step (batch_size = n): the update is
    -lr * (sum of clipped per-example gradients + noise) / (q n), with the noise drawn by the loop."""
    x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.1, 0.1, 0.1], [3.0, -1.0, 0.5]], dtype=np.float32)
    y = np.array([1, 0, 1, 0])
    clip, lr = 0.5, 0.1
    spec = ModelSpec(hidden=[], optimizer="sgd", learning_rate=lr, epochs=1, batch_size=4)
    trainer = DenseTrainer(spec, x, y, 2, [0], clip=[clip], noise=[0.0])
    batch = trainer.batches.rows[0][trainer.batches.weights[0] > 0]
    w0, b0 = initial_weights([3, 1], 0)
    kernel, bias = trainer.train()[0].arrays
    xd = x[batch].astype(np.float64)
    r = 1 / (1 + np.exp(-(xd @ w0[:, 0] + b0[0]))) - y[batch]
    per_example = np.column_stack([xd * r[:, None], r])
    norms = np.linalg.norm(per_example, axis=1)
    clipped = per_example * np.minimum(1.0, clip / norms)[:, None]
    step = lr * clipped.sum(axis=0) / 4.0  # q n = 4, whatever the realised size
    np.testing.assert_allclose(kernel[:, 0], w0[:, 0] - step[:3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bias, b0 - step[3], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("source", ["fast", "secure"])
def test_the_noise_is_gaussian_with_std_z_c_over_the_expected_batch(source: str) -> None:
    """Clip 1e-6 makes every gradient vanish next to the noise: after one step each of the 2,001 weights moved
    by -lr * N(0, (z C)^2) / (q n). Secure mode sums four draws; the sum must have the same spread."""
    x, y = _data(n=64, d=2000)
    spec = ModelSpec(hidden=[], optimizer="sgd", learning_rate=1.0, epochs=1, batch_size=64)
    clip, noise = 1e-6, 2.0e5
    trainer = DenseTrainer(spec, x, y, 2, [7], clip=[clip], noise=[noise], noise_source=source)  # type: ignore[arg-type]
    start = np.concatenate([a.ravel() for a in initial_weights([2000, 1], 7)])
    moved = np.concatenate([a.ravel() for a in trainer.train()[0].arrays]) - start
    expected_std = noise * clip / 64.0
    assert float(np.std(moved)) == pytest.approx(expected_std, rel=0.05)
    assert stats.normaltest(moved).pvalue > 1e-3  # D'Agostino-Pearson: no sign of a non-Gaussian shape


def test_secure_noise_is_not_reproducible_and_fast_noise_is() -> None:
    x, y = _data()
    spec = ModelSpec(hidden=[8], epochs=1, batch_size=16)
    fast = [DenseTrainer(spec, x, y, 2, [1], clip=[1.0], noise=[1.0]).train()[0].arrays[0] for _ in range(2)]
    secure = [
        DenseTrainer(spec, x, y, 2, [1], clip=[1.0], noise=[1.0], noise_source="secure").train()[0].arrays[0]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fast[0], fast[1])
    assert not np.allclose(secure[0], secure[1])


def test_baseline_batches_are_keras_fit_shuffles_and_dp_batches_are_poisson() -> None:
    rows = [np.arange(100)]
    shuffled = batches_for(rows, 32, 2, [0], private=False)
    assert shuffled.steps == 2 * 4
    widths = np.diff(shuffled.bounds, axis=1).ravel()
    assert widths.tolist() == [32, 32, 32, 4] * 2
    first_epoch = shuffled.rows[0][: shuffled.bounds[3, 1]]
    assert sorted(first_epoch.tolist()) == list(range(100))  # each example once per epoch
    # The baseline averages over the realised batch: the last, short batch weighs 1/4 per example.
    assert shuffled.weights[0][shuffled.bounds[3, 0]] == pytest.approx(0.25)
    poisson = batches_for(rows, 32, 2, [0], private=True)
    assert poisson.steps == 8
    assert len(set(np.diff(poisson.bounds, axis=1).ravel().tolist())) > 1  # sizes vary
    assert np.all(poisson.weights[0] == pytest.approx(1 / 32))


def test_multiclass_models_train_and_export() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = np.argmax(x[:, :3], axis=1).astype(np.int64)
    spec = ModelSpec(hidden=[16], optimizer="adam", epochs=20, batch_size=32)
    trained = train(spec, x, y, 3, None, seed=0)
    proba = trained.predict_proba(x)
    assert proba.shape == (300, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert (proba.argmax(axis=1) == y).mean() > 0.8
    exported = export_model(trained, spec, 5)
    np.testing.assert_allclose(exported(x).numpy(), proba, rtol=1e-4, atol=1e-5)
