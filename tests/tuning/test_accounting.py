"""Accounting: our PLD/RDP numbers against dp_accounting called directly, and the attack bounds against closed forms."""

import math
import re

import pytest
from dp_accounting import dp_event, pld, rdp
from dp_accounting.pld import privacy_loss_distribution
from scipy.stats import norm
from tensorflow_privacy.privacy.analysis.compute_dp_sgd_privacy_lib import compute_dp_sgd_privacy_statement

from app.tuning.accounting import (
    REPORTED_FPRS,
    default_delta,
    dp_sgd_epsilon_rdp,
    dp_sgd_guarantee,
    dp_sgd_steps,
    sampling_rate,
)

# The DESIGN.md setting: q = 0.0288, 350 steps, delta = 1e-5.
Q, T, DELTA = 0.0288, 350, 1e-5


def _direct_event(q: float, z: float, steps: int) -> dp_event.DpEvent:
    return dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(z)), steps)


def _direct_pld_epsilon(q: float, z: float, steps: int, delta: float) -> float:
    accountant = pld.PLDAccountant()
    accountant.compose(_direct_event(q, z, steps))
    return float(accountant.get_epsilon(delta))


def _direct_rdp_epsilon(q: float, z: float, steps: int, delta: float) -> float:
    accountant = rdp.RdpAccountant()
    accountant.compose(_direct_event(q, z, steps))
    return float(accountant.get_epsilon(delta))


@pytest.fixture(scope="module")
def design_guarantee():  # type: ignore[no-untyped-def]
    """The composed PLD at T=350 costs seconds: build it once."""
    return dp_sgd_guarantee(sampling_rate=Q, noise_multiplier=1.51, steps=T, delta=DELTA)


@pytest.fixture(scope="module")
def design_profile():  # type: ignore[no-untyped-def]
    return privacy_loss_distribution.from_gaussian_mechanism(
        1.51, sampling_prob=Q, use_connect_dots=True
    ).self_compose(T)


def test_steps_and_sampling_rate() -> None:
    assert dp_sgd_steps(1000, 32, 3) == 3 * 32  # ceil(1000 / 32) = 32
    assert dp_sgd_steps(1000, 50, 5) == 100
    assert sampling_rate(1000, 32) == pytest.approx(0.032)
    assert sampling_rate(10, 32) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("z", [0.8, 1.51, 3.0])
def test_pld_epsilon_equals_dp_accounting_and_is_below_rdp(z: float) -> None:
    ours = dp_sgd_guarantee(sampling_rate=Q, noise_multiplier=z, steps=T, delta=DELTA).epsilon
    ours_rdp = dp_sgd_epsilon_rdp(sampling_rate=Q, noise_multiplier=z, steps=T, delta=DELTA)
    # The accountant's own epsilon at its fixed discretisation, or at most 0.002 % above it (ours coarsens it
    # in proportion to the loss, rounding pessimistically), never below.
    direct = _direct_pld_epsilon(Q, z, T, DELTA)
    assert ours is not None and direct * (1 - 1e-9) <= ours <= direct * (1 + 2e-5)
    assert ours_rdp == pytest.approx(_direct_rdp_epsilon(Q, z, T, DELTA), rel=1e-6)
    assert ours <= ours_rdp  # PLD is tight, RDP an upper bound on it
    assert ours > 0


def test_guarantee_epsilon_is_the_accountants(design_guarantee) -> None:  # type: ignore[no-untyped-def]
    direct = _direct_pld_epsilon(Q, 1.51, T, DELTA)
    assert direct * (1 - 1e-9) <= design_guarantee.epsilon <= direct * (1 + 2e-5)
    assert design_guarantee.epsilon_rdp == pytest.approx(_direct_rdp_epsilon(Q, 1.51, T, DELTA), rel=1e-6)


def test_design_figure(design_guarantee) -> None:  # type: ignore[no-untyped-def]
    """DESIGN.md: PLD ~ 1.68 against RDP ~ 1.86 at q = 0.0288, T = 350, z = 1.51, delta = 1e-5."""
    assert design_guarantee.epsilon == pytest.approx(1.68, abs=0.01)
    assert design_guarantee.epsilon_rdp == pytest.approx(1.86, abs=0.01)


@pytest.mark.parametrize("n, expected", [(1000, 1e-5), (10**7, 1e-8)])
def test_default_delta(n: int, expected: float) -> None:
    assert default_delta(n) == pytest.approx(expected, rel=1e-12)
    assert default_delta(n) == min(1e-5, 1 / (10 * n))


def test_attack_accuracy_bound_is_half_of_one_plus_delta_at_zero(design_guarantee, design_profile) -> None:  # type: ignore[no-untyped-def]
    delta0 = float(design_profile.get_delta_for_epsilon(0.0))
    assert 0 < delta0 < 1
    # From our coarser (pessimistic) discretisation: at or just above the fixed one's figure.
    assert (1 + delta0) / 2 - 1e-12 <= design_guarantee.attack_accuracy_bound <= (1 + delta0) / 2 + 1e-5


def test_tpr_bound_lies_between_fpr_and_the_dp_line(design_guarantee) -> None:  # type: ignore[no-untyped-def]
    eps = design_guarantee.epsilon
    assert set(design_guarantee.tpr_bounds) == set(REPORTED_FPRS)
    for fpr, bound in design_guarantee.tpr_bounds.items():
        assert bound is not None
        assert bound >= fpr  # random guessing reaches TPR = FPR
        assert bound <= math.exp(eps) * fpr + DELTA + 1e-12  # the (eps, delta) line is one of the eps minimised over
        # ... and the whole profile does strictly better than that one line here.
        assert bound < math.exp(eps) * fpr


@pytest.mark.parametrize("z", [1.0, 2.0])
def test_single_gaussian_matches_gaussian_dp(z: float) -> None:
    """One Gaussian mechanism of sensitivity 1 and noise z is exactly mu-GDP with mu = 1/z (Dong et al. 2019):
    TPR_max(f) = Phi(Phi^-1(f) + mu), and the best balanced accuracy is Phi(mu / 2) (delta(0) = 2 Phi(mu/2) - 1)."""
    mu = 1.0 / z
    g = dp_sgd_guarantee(sampling_rate=1.0, noise_multiplier=z, steps=1, delta=DELTA)
    for fpr, bound in g.tpr_bounds.items():
        assert bound == pytest.approx(norm.cdf(norm.ppf(fpr) + mu), abs=0.005)
    assert g.attack_accuracy_bound == pytest.approx(norm.cdf(mu / 2), abs=1e-3)

    # epsilon of mu-GDP at delta: solve delta = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2)
    def gdp_delta(eps: float) -> float:
        return norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * norm.cdf(-eps / mu - mu / 2)

    assert gdp_delta(g.epsilon) == pytest.approx(DELTA, rel=0.02)


def test_no_noise_gives_none_everywhere() -> None:
    g = dp_sgd_guarantee(sampling_rate=Q, noise_multiplier=0.0, steps=T, delta=DELTA)
    assert g.epsilon is None and g.epsilon_rdp is None and g.attack_accuracy_bound is None
    assert g.tpr_bounds == {fpr: None for fpr in REPORTED_FPRS}
    assert math.isinf(dp_sgd_epsilon_rdp(sampling_rate=Q, noise_multiplier=0.0, steps=T, delta=DELTA))


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.6, 1.1, 3.0])
def test_epsilon_matches_tensorflow_privacys_statement(noise: float) -> None:
    n, batch, epochs, delta = 1000, 50, 5, 1e-3  # n divisible by batch: both count 100 steps
    statement = compute_dp_sgd_privacy_statement(
        number_of_examples=n,
        batch_size=batch,
        num_epochs=epochs,
        noise_multiplier=noise,
        delta=delta,
        used_microbatching=False,
    )
    match = re.search(r"Epsilon assuming Poisson sampling \(\*\):\s+([0-9.]+)", statement)
    assert match, statement
    # TF Privacy's statement is RDP; ours is PLD (tighter) and its RDP cross-check must match it.
    ours_rdp = dp_sgd_epsilon_rdp(
        sampling_rate=batch / n, noise_multiplier=noise, steps=dp_sgd_steps(n, batch, epochs), delta=delta
    )
    ours = dp_sgd_guarantee(
        sampling_rate=batch / n, noise_multiplier=noise, steps=dp_sgd_steps(n, batch, epochs), delta=delta
    ).epsilon
    assert ours_rdp == pytest.approx(float(match.group(1)), rel=1e-2)
    assert ours <= ours_rdp * (1 + 1e-6)


@pytest.mark.slow
def test_epsilon_decreases_with_noise() -> None:
    kwargs = dict(sampling_rate=0.03, steps=300, delta=1e-4)
    assert (
        dp_sgd_guarantee(noise_multiplier=0.8, **kwargs).epsilon  # type: ignore[arg-type]
        > dp_sgd_guarantee(noise_multiplier=2.0, **kwargs).epsilon
    )  # type: ignore[arg-type]
