"""Formal privacy accounting for DP-SGD with TensorFlow Privacy's RDP accountant (dp_accounting)."""

from __future__ import annotations

import math

from dp_accounting import dp_event, rdp

SAMPLING_ASSUMPTION = (
    "RDP accountant, Poisson subsampling at rate batch_size/n for epochs*ceil(n/batch_size) steps, "
    "add/remove-one adjacency, per-example clipping (no microbatches). DP trials train on Poisson-sampled "
    "batches, so the epsilon holds for the training as run."
)


def dp_sgd_steps(n_examples: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(n_examples / batch_size)


def dp_sgd_epsilon(*, sampling_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """Epsilon of `steps` Poisson-subsampled Gaussian mechanisms; inf when there is no noise."""
    if noise_multiplier <= 0:
        return math.inf
    accountant = rdp.RdpAccountant()
    event = dp_event.PoissonSampledDpEvent(sampling_rate, dp_event.GaussianDpEvent(noise_multiplier))
    accountant.compose(dp_event.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))
