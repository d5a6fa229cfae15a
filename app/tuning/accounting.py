"""Formal privacy accounting for DP-SGD with dp_accounting: the PLD accountant (tight), RDP as a cross-check,
and the attack bounds the privacy-loss distribution implies.

dp_accounting is imported where it is used: it loads its PLD, hence scipy.signal (about 1 s), and the API
imports this module for the step arithmetic alone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from dp_accounting import dp_event

SAMPLING_ASSUMPTION = (
    "PLD accountant (dp_accounting; RDP reported as epsilon_rdp for cross-checking), Poisson subsampling at rate "
    "batch_size/n for epochs*ceil(n/batch_size) steps, add/remove-one adjacency, per-example clipping (no "
    "microbatches). DP trials train on Poisson-sampled batches; for the built-in MLP and Dense stacks (single-pass "
    "clipping) the noisy sum is divided by the expected batch size and an empty draw is a noise-only step, so the "
    "epsilon holds for the training as run. Other Keras models are clipped by TF Privacy, which divides by the "
    "realised batch size and cannot take an empty batch (skipped; probability about e^-batch_size), which the "
    "accountant does not model exactly. It covers one training (what else it covers: tuning_cost)."
)
# FPRs the TPR bound is given at: the ones every attack reports.
REPORTED_FPRS = (0.01, 0.001)


def dp_sgd_steps(n_examples: int, batch_size: int, epochs: int) -> int:
    return epochs * math.ceil(n_examples / batch_size)


def sampling_rate(n_examples: int, batch_size: int) -> float:
    return min(1.0, batch_size / n_examples)


def default_delta(n_members: int) -> float:
    """min(1e-5, 1/(10 n)): well below 1/n, so a mechanism that releases one whole record is not DP."""
    return min(1e-5, 1.0 / (10 * n_members))


def _event(rate: float, noise_multiplier: float, steps: int) -> dp_event.DpEvent:
    from dp_accounting import dp_event

    return dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(rate, dp_event.GaussianDpEvent(noise_multiplier)), steps
    )


def dp_sgd_epsilon_rdp(*, sampling_rate: float, noise_multiplier: float, steps: int, delta: float) -> float:
    """RDP epsilon (looser than PLD): the cross-check."""
    if noise_multiplier <= 0:
        return math.inf
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    accountant.compose(_event(sampling_rate, noise_multiplier, steps))
    return float(accountant.get_epsilon(delta))


@dataclass(frozen=True)
class Guarantee:
    """What the accountant proves for one DP-SGD training; None everywhere when there is no noise."""

    epsilon: float | None
    epsilon_rdp: float | None
    attack_accuracy_bound: float | None
    tpr_bounds: Mapping[float, float | None]  # read-only: dp_sgd_guarantee caches the instance


# The PLD's support, hence its cost, grows with the privacy loss (28 s and 1.7 GB at noise 0.1 on the demo's
# shape, 1.6 s at its epsilon-10 noise floor), so its discretisation grows in proportion to the loss above this
# RDP epsilon. Rounding stays pessimistic, so epsilon is still an upper bound, and its excess over the fixed
# 1e-4's is 0.001 % at epsilon 10 and 20, 0.0004 % at 1.6, none below 1 (delta(0) within 1e-5), and 0.3 % at
# epsilon 1,217 (noise 0.1), where nothing is guaranteed anyway; at the demo's epsilon-10 floor the PLD takes
# 0.22 s instead of 1.54 s (benchmarks/pld_cost.py).
COARSE_PLD_ABOVE_EPSILON = 1.0
PLD_DISCRETIZATION = 1e-4


# Points of the privacy profile the TPR bounds are minimised over. dp_accounting evaluates delta(eps) for a
# whole array in one pass over the PLD (about 0.5 s for T = 370 steps), so one call serves every point.
PROFILE_POINTS = 400


def tpr_bounds(
    epsilons: npt.NDArray[np.float64],
    deltas: npt.NDArray[np.float64],
    fprs: tuple[float, ...],
) -> dict[float, float]:
    """min over the given eps of e^eps * fpr + delta(eps), for each fpr: the largest TPR any attack reaches at
    `fpr` against a mechanism whose privacy profile is delta(eps). A minimum over a grid is at least the true
    minimum, so the bound stays a valid upper bound."""
    return {fpr: float(min(1.0, np.min(np.exp(epsilons) * fpr + deltas))) for fpr in fprs}


@lru_cache(maxsize=1024)  # 1-7 s each; trials, confirmation and the final model ask for the same ones
def dp_sgd_guarantee(*, sampling_rate: float, noise_multiplier: float, steps: int, delta: float) -> Guarantee:
    """Epsilon (PLD and RDP) and the tight PLD bounds: attack accuracy <= (1 + delta(0)) / 2 with a balanced
    prior, and TPR <= min over eps of (e^eps FPR + delta(eps)) at REPORTED_FPRS."""
    if noise_multiplier <= 0:
        return Guarantee(None, None, None, {fpr: None for fpr in REPORTED_FPRS})
    from dp_accounting.pld import privacy_loss_distribution

    epsilon_rdp = dp_sgd_epsilon_rdp(
        sampling_rate=sampling_rate, noise_multiplier=noise_multiplier, steps=steps, delta=delta
    )
    # The PLD object itself (the accountant keeps it private), for the whole privacy profile delta(eps); the
    # same construction as pld.PLDAccountant, whose epsilon it matches (tests/tuning/test_accounting.py).
    coarsening = epsilon_rdp / COARSE_PLD_ABOVE_EPSILON if math.isfinite(epsilon_rdp) else 1e4
    interval = PLD_DISCRETIZATION * max(1.0, coarsening)
    profile = privacy_loss_distribution.from_gaussian_mechanism(
        noise_multiplier, sampling_prob=sampling_rate, use_connect_dots=True, value_discretization_interval=interval
    ).self_compose(steps)
    epsilon = float(profile.get_epsilon_for_delta(delta))
    # Past eps = log(1 / fpr), e^eps * fpr alone exceeds 1, so the grid stops there; it starts at 0 for delta(0).
    epsilons = np.linspace(0.0, math.log(1.0 / min(REPORTED_FPRS)), PROFILE_POINTS)
    deltas = np.asarray(profile.get_delta_for_epsilon(epsilons), dtype=np.float64)
    delta_at_zero = float(deltas[0])
    tpr = tpr_bounds(epsilons, deltas, REPORTED_FPRS)
    return Guarantee(
        epsilon=epsilon if math.isfinite(epsilon) else None,
        epsilon_rdp=epsilon_rdp if math.isfinite(epsilon_rdp) else None,
        attack_accuracy_bound=min(1.0, (1.0 + delta_at_zero) / 2.0),
        tpr_bounds=tpr,
    )


# Calibration runs the PLD at this discretisation (about 4-8 s on the demo's shape, against 30 s and more at
# PLD_DISCRETIZATION); a coarser PLD only over-states epsilon, so the noise it finds is safe, and at 1e-3 the
# finely accounted epsilon lands within 0.1 % of the target (0.9995 for a target of 1).
CALIBRATION_DISCRETIZATION = 1e-3
# Relative tolerance of the noise multiplier calibration's bisection.
CALIBRATION_TOLERANCE = 1e-4


@lru_cache(maxsize=256)
def noise_for_epsilon(*, epsilon: float, sampling_rate: float, steps: int, delta: float) -> float:
    """The smallest noise multiplier whose DP-SGD training (Poisson rate, steps) is (epsilon, delta)-DP by the
    PLD accountant: dp_accounting's calibrate_dp_mechanism, as Opacus' make_private_with_epsilon and TF
    Privacy's compute_noise do with RDP. RDP's (fast) answer brackets the PLD's, so the PLD bisects a narrow
    interval and never evaluates a tiny noise, whose PLD is huge."""
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive finite number, got {epsilon}")
    from dp_accounting import mechanism_calibration, pld, rdp

    def event(noise: float) -> dp_event.DpEvent:
        return _event(sampling_rate, noise, steps)

    def calibrate(discretization: float, bracket: mechanism_calibration.BracketInterval) -> float:
        return float(
            mechanism_calibration.calibrate_dp_mechanism(
                lambda: pld.PLDAccountant(value_discretization_interval=discretization),
                event,
                epsilon,
                delta,
                bracket,
                tol=CALIBRATION_TOLERANCE,
            )
        )

    # RDP over-states epsilon, so its noise is an upper end; the PLD's lies below it (0.8-0.95 of it here).
    upper = float(
        mechanism_calibration.calibrate_dp_mechanism(
            rdp.RdpAccountant,
            event,
            epsilon,
            delta,
            mechanism_calibration.LowerEndpointAndGuess(0.05, 1.0),
            tol=CALIBRATION_TOLERANCE,
        )
    )
    return calibrate(CALIBRATION_DISCRETIZATION, mechanism_calibration.ExplicitBracketInterval(upper * 0.5, upper))
