import numpy as np
import pytest
import tensorflow as tf

from app.tuning.accounting import dp_sgd_steps
from app.tuning.model_spec import ModelSpec
from app.tuning.train import DPParams, build_model, label_tensor, poisson_batches, poisson_dataset

LR = 0.1
EXPECTED_BATCH = 8.0  # what set_privacy is told: deliberately not the realised 4
W0 = np.array([[0.5], [-1.0], [2.0]], dtype=np.float32)
B0 = np.array([0.25], dtype=np.float32)


def test_poisson_batches_have_binomial_sizes() -> None:
    n, batch, epochs = 2000, 50, 20
    sizes = np.array([len(b) for b in poisson_batches(n, batch, epochs, np.random.default_rng(0))])
    assert len(sizes) == epochs * n // batch
    assert sizes.mean() == pytest.approx(batch, rel=0.03)
    q = batch / n
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.2)  # fixed-size batches would have variance 0


def test_poisson_batches_keep_empty_draws_as_noise_only_steps() -> None:
    # n = 5, batch 1: each step is empty with probability 0.8^5 = 0.33.
    n, batch, epochs = 5, 1, 6
    kept = list(poisson_batches(n, batch, epochs, np.random.default_rng(0), keep_empty=True))
    skipped = list(poisson_batches(n, batch, epochs, np.random.default_rng(0), keep_empty=False))
    assert len(kept) == dp_sgd_steps(n, batch, epochs) == 30
    empty = sum(len(b) == 0 for b in kept)
    assert empty > 0
    assert len(skipped) == len(kept) - empty
    assert all(len(b) > 0 for b in skipped)
    for a, b in zip([b for b in kept if len(b)], skipped, strict=True):  # the same draws, the empty ones left out
        np.testing.assert_array_equal(a, b)
    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    y = np.arange(5, dtype=np.float32).reshape(5, 1)
    got = list(poisson_dataset(x, y, batch, epochs, np.random.default_rng(0)).as_numpy_iterator())
    assert [len(yb) for _, yb in got] == [len(b) for b in kept]
    assert all(xb.shape[1] == 2 for xb, _ in got)


def test_poisson_dataset_yields_the_sampled_rows() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20, dtype=np.float32).reshape(20, 1)
    expected = list(poisson_batches(20, 5, 2, np.random.default_rng(3)))
    got = list(poisson_dataset(x, y, 5, 2, np.random.default_rng(3)).as_numpy_iterator())
    assert len(got) == len(expected)
    for idx, (xb, yb) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(yb.ravel(), idx)
        np.testing.assert_array_equal(xb, x[idx])


def _logistic(clip: float, noise: float, d: int = 3):  # type: ignore[no-untyped-def]
    """One Dense(1) layer on logits, SGD at LR, single-pass DP, told the expected batch is EXPECTED_BATCH."""
    spec = ModelSpec(hidden=[], optimizer="sgd", learning_rate=LR, epochs=1, batch_size=8)
    trained = build_model(spec, d, 2, DPParams(clip, noise), clipping="single_pass")
    assert trained.clipping == "single_pass"
    trained.model.set_privacy(clip, noise, EXPECTED_BATCH)
    return trained


def test_one_single_pass_step_matches_a_hand_computation() -> None:
    clip = 0.5
    x = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.1, 0.1, 0.1], [3.0, -1.0, 0.5]], dtype=np.float32)
    y = np.array([1, 0, 1, 0])
    trained = _logistic(clip, 0.0)
    trained.model.set_weights([W0, B0])
    trained.model.train_on_batch(x, label_tensor(y, 2))
    kernel, bias = trained.model.get_weights()

    # By hand: d loss / d logit = sigmoid(z) - y; the example's gradient is (x_i r_i, r_i), norm |r_i| sqrt(|x_i|^2 + 1).
    xd = x.astype(np.float64)
    z = xd @ W0.astype(np.float64)[:, 0] + float(B0[0])
    r = 1 / (1 + np.exp(-z)) - y
    per_example = np.column_stack([xd * r[:, None], r])  # (4, 4): kernel then bias
    norms = np.linalg.norm(per_example, axis=1)
    assert np.sum(norms > clip) >= 2 and np.sum(norms < clip) >= 1  # clipping is active for some, not all
    clipped = per_example * np.minimum(1.0, clip / norms)[:, None]
    step = LR * clipped.sum(axis=0) / EXPECTED_BATCH  # the expected batch size, not the realised 4
    np.testing.assert_allclose(kernel[:, 0], W0[:, 0] - step[:3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bias, B0 - step[3], rtol=1e-5, atol=1e-7)
    # Dividing by the realised size would have moved the weights twice as far.
    assert not np.allclose(kernel[:, 0], W0[:, 0] - 2 * step[:3], rtol=1e-3, atol=1e-6)


def test_an_empty_batch_is_a_noise_only_step() -> None:
    empty_x, empty_y = np.zeros((0, 3), dtype=np.float32), np.zeros((0, 1), dtype=np.float32)

    quiet = _logistic(0.5, 0.0)
    quiet.model.set_weights([W0, B0])
    out = quiet.model.train_on_batch(empty_x, empty_y)
    kernel, bias = quiet.model.get_weights()
    np.testing.assert_array_equal(kernel, W0)  # no examples, no noise: nothing moves
    np.testing.assert_array_equal(bias, B0)
    assert np.isfinite(out) and out == 0.0  # the empty batch's loss is reported as 0, not NaN

    # With the noise drawn by the input pipeline (as train.py does it) the step is exactly -lr * noise / expected.
    noisy = _logistic(0.5, 2.0)
    noisy.model.set_weights([W0, B0])
    assert noisy.model.noise_size() == 4
    noise = np.array([0.3, -0.2, 0.7, 1.1], dtype=np.float32)
    dataset = tf.data.Dataset.from_tensors((empty_x, empty_y, noise))
    noisy.model.fit(dataset, epochs=1, verbose=0)
    kernel, bias = noisy.model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], W0[:, 0] - LR * noise[:3] / EXPECTED_BATCH, rtol=1e-6)
    np.testing.assert_allclose(bias, B0 - LR * noise[3] / EXPECTED_BATCH, rtol=1e-6)


def test_an_empty_batch_draws_noise_of_std_z_c_over_the_expected_batch() -> None:
    d, clip, noise = 400, 0.5, 2.0
    trained = _logistic(clip, noise, d=d)
    start = [np.zeros((d, 1), np.float32), np.zeros(1, np.float32)]
    trained.model.set_weights(start)
    trained.model.train_on_batch(np.zeros((0, d), np.float32), np.zeros((0, 1), np.float32))
    moved = np.concatenate([w.ravel() for w in trained.model.get_weights()])
    assert np.all(moved != 0)
    assert float(np.std(moved)) == pytest.approx(LR * noise * clip / EXPECTED_BATCH, rel=0.15)
