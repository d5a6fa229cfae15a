import math
import re

import pytest
from tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib import compute_dp_sgd_privacy_statement

from app.tuning.accounting import dp_sgd_epsilon, dp_sgd_steps


@pytest.mark.parametrize("noise", [0.6, 1.1, 3.0])
def test_epsilon_matches_tensorflow_privacys_statement(noise: float) -> None:
    n, batch, epochs, delta = 1000, 50, 5, 1e-3  # n divisible by batch: both count 100 steps
    statement = compute_dp_sgd_privacy_statement(
        number_of_examples=n, batch_size=batch, num_epochs=epochs, noise_multiplier=noise, delta=delta,
        used_microbatching=False,
    )
    match = re.search(r"Epsilon assuming Poisson sampling \(\*\):\s+([0-9.]+)", statement)
    assert match, statement
    ours = dp_sgd_epsilon(
        sampling_rate=batch / n, noise_multiplier=noise, steps=dp_sgd_steps(n, batch, epochs), delta=delta
    )
    assert ours == pytest.approx(float(match.group(1)), rel=1e-2)


def test_epsilon_decreases_with_noise_and_is_infinite_without() -> None:
    kwargs = dict(sampling_rate=0.03, steps=300, delta=1e-4)
    assert math.isinf(dp_sgd_epsilon(noise_multiplier=0.0, **kwargs))
    assert dp_sgd_epsilon(noise_multiplier=0.8, **kwargs) > dp_sgd_epsilon(noise_multiplier=2.0, **kwargs)
