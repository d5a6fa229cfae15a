import numpy as np
import pytest

from app.tuning.train import poisson_batches, poisson_dataset


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
