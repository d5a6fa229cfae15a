import numpy as np
import pytest

from app.tuning.model_spec import ModelSpec
from app.tuning.train import DPParams, poisson_batches, poisson_dataset, train


def test_poisson_batches_have_binomial_sizes() -> None:
    n, batch, epochs = 2000, 50, 20
    sizes = np.array([len(b) for b in poisson_batches(n, batch, epochs, np.random.default_rng(0))])
    assert len(sizes) == epochs * n // batch
    assert sizes.mean() == pytest.approx(batch, rel=0.03)
    q = batch / n
    assert sizes.var() == pytest.approx(n * q * (1 - q), rel=0.2)  # fixed-size batches would have variance 0


def test_poisson_dataset_yields_the_sampled_rows() -> None:
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    y = np.arange(20, dtype=np.float32).reshape(20, 1)
    expected = list(poisson_batches(20, 5, 2, np.random.default_rng(3)))
    got = list(poisson_dataset(x, y, 5, 2, np.random.default_rng(3)).as_numpy_iterator())
    assert len(got) == len(expected)
    for idx, (xb, yb) in zip(expected, got):
        np.testing.assert_array_equal(yb.ravel(), idx)
        np.testing.assert_array_equal(xb, x[idx])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_reused_compiled_model_gives_the_result_of_a_fresh_one(optimizer: str) -> None:
    """Workers reuse one traced DP model across trials; a trial's result must not depend on the trials before it."""
    from app.tuning import train as train_module

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(np.int64)
    spec = ModelSpec(hidden=[8], optimizer=optimizer, epochs=2, batch_size=16)
    train_module._COMPILED.clear()
    fresh = train(spec, x, y, 2, DPParams(clip=1.0, noise=0.7), seed=3).predict_proba(x)
    first = train(spec, x, y, 2, DPParams(clip=1.0, noise=0.7), seed=3)
    assert len(train_module._COMPILED) == 1 and first.clipping == "single_pass"
    np.testing.assert_array_equal(first.predict_proba(x), fresh)
    other = train(spec, x, y, 2, DPParams(clip=0.2, noise=3.0), seed=4).predict_proba(x)
    assert not np.allclose(other, fresh)
    again = train(spec, x, y, 2, DPParams(clip=1.0, noise=0.7), seed=3)
    assert again.model is first.model  # compiled once
    np.testing.assert_array_equal(again.predict_proba(x), fresh)
