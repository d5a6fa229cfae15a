"""DP-SGD correctness: single-pass and ghost clipping equal the reference DP optimizer, and noise has std = z * C."""

import numpy as np
import pytest
import tensorflow as tf

from app.tuning.model_spec import ModelSpec
from app.tuning.train import DPParams, build_model, label_tensor

SPEC = ModelSpec(hidden=[16], dropout=0.0, optimizer="sgd", learning_rate=1.0, epochs=1, batch_size=32)


def _batch(n: int = 32, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(n, d)) * 3).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.int64)
    return x, y


def _build(spec: ModelSpec, n_features: int, dp: DPParams, method: str, batch: int):  # type: ignore[no-untyped-def]
    """A DP model that divides the noisy sum by `batch`. TF Privacy (ghost, per-example) divides by the realised
    batch size; single pass divides by the expected one given to set_privacy (1.0 until then), so it is told the
    compared batch's size: like for like."""
    trained = build_model(spec, n_features, 2, dp, clipping=method)
    if trained.clipping == "single_pass":
        trained.model.set_privacy(dp.clip, dp.noise, float(batch))
    return trained


def _one_step_update(trained, weights, x, y) -> np.ndarray:  # type: ignore[no-untyped-def]
    trained.model.set_weights(weights)
    trained.model.train_on_batch(x, label_tensor(y, 2))
    after = trained.model.get_weights()
    # With SGD at learning rate 1 the update is minus the privatised mean gradient.
    return np.concatenate([(b - a).ravel() for a, b in zip(weights, after, strict=True)])


def _manual_clipped_mean_gradient(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, clip: float) -> np.ndarray:
    loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    total = None
    for i in range(len(x)):
        with tf.GradientTape() as tape:
            out = model(x[i : i + 1], training=True)
            value = loss(y[i : i + 1].reshape(-1, 1).astype(np.float32), out)
        grad = np.concatenate([g.numpy().ravel() for g in tape.gradient(value, model.trainable_variables)])
        grad = grad / max(1.0, np.linalg.norm(grad) / clip)
        total = grad if total is None else total + grad
    return total / len(x)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["single_pass", "ghost"])
@pytest.mark.parametrize("clip", [0.05, 100.0])
def test_fast_clipping_equals_dp_optimizer_at_noise_zero(method: str, clip: float) -> None:
    x, y = _batch()
    tf.keras.utils.set_random_seed(0)
    fast = _build(SPEC, x.shape[1], DPParams(clip=clip, noise=0.0), method, len(x))
    reference = _build(SPEC, x.shape[1], DPParams(clip=clip, noise=0.0), "per_example", len(x))
    assert fast.clipping == method and reference.clipping == "per_example"
    weights = fast.model.get_weights()
    expected = -_manual_clipped_mean_gradient(fast.model, x, y, clip)

    fast_update = _one_step_update(fast, weights, x, y)
    reference_update = _one_step_update(reference, weights, x, y)

    np.testing.assert_allclose(fast_update, reference_update, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fast_update, expected, rtol=1e-4, atol=1e-6)
    if clip < 1:  # clipping was active: every per-example norm was cut to `clip`
        assert np.linalg.norm(fast_update) <= clip + 1e-6


def test_single_pass_divides_by_the_expected_batch_size() -> None:
    """Told an expected batch twice the realised one, single pass moves the weights half as far as TF Privacy."""
    x, y = _batch()
    dp = DPParams(clip=0.05, noise=0.0)
    tf.keras.utils.set_random_seed(0)
    fast = _build(SPEC, x.shape[1], dp, "single_pass", 2 * len(x))
    reference = _build(SPEC, x.shape[1], dp, "per_example", len(x))
    weights = fast.model.get_weights()
    np.testing.assert_allclose(
        _one_step_update(fast, weights, x, y), 0.5 * _one_step_update(reference, weights, x, y), rtol=1e-4, atol=1e-7
    )


def test_single_pass_is_chosen_for_dense_stacks_and_ghost_otherwise() -> None:
    dense = build_model(SPEC.model_copy(update={"dropout": 0.1}), 6, 2, DPParams(clip=1.0, noise=1.0))
    assert dense.clipping == "single_pass"
    conv = tf.keras.Sequential(
        [
            tf.keras.Input(shape=(6,)),
            tf.keras.layers.Reshape((6, 1)),
            tf.keras.layers.Conv1D(2, 3),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(1),
        ]
    )
    other = build_model(SPEC.model_copy(update={"keras_json": conv.to_json()}), 6, 2, DPParams(clip=1.0, noise=1.0))
    assert other.clipping in {"ghost", "per_example"}
    assert build_model(SPEC, 6, 2, None).clipping == "none"


@pytest.mark.parametrize("method", ["single_pass", "ghost"])
def test_noise_standard_deviation_is_multiplier_times_clip(method: str) -> None:
    x, y = _batch(n=32, d=40)
    spec = SPEC.model_copy(update={"hidden": [64]})
    clip, noise = 0.5, 2.0
    tf.keras.utils.set_random_seed(0)
    clean = _build(spec, x.shape[1], DPParams(clip=clip, noise=0.0), method, len(x))
    noisy = _build(spec, x.shape[1], DPParams(clip=clip, noise=noise), method, len(x))
    weights = clean.model.get_weights()
    difference = _one_step_update(noisy, weights, x, y) - _one_step_update(clean, weights, x, y)
    # The sum of clipped gradients gets N(0, (z C)^2) per coordinate, then is divided by the batch size
    # (the realised one for ghost, the expected one, set to the same here, for single pass).
    measured = float(np.std(difference) * len(x))
    assert difference.size > 2000
    assert measured == pytest.approx(noise * clip, rel=0.08)
    assert abs(float(np.mean(difference))) * len(x) < 0.1 * noise * clip
