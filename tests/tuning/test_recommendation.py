"""Recommendation v2: the guarantee's space, noise calibration, the noise-aware choice, confirmation intervals,
and the final model's privacy statement against TensorFlow Privacy's."""

import math

import numpy as np
import pytest
from scipy import stats

from app.tuning.accounting import dp_sgd_guarantee, dp_sgd_steps, noise_for_epsilon, sampling_rate
from app.tuning.errors import TuningError
from app.tuning.objective import score
from app.tuning.recommendation import choose, mean_interval
from app.tuning.results import GuaranteeSpec
from app.tuning.search import (
    NOISE_CEILING_PER_SAMPLING_SE,
    Observation,
    SearchSpace,
    SearchSpec,
    posterior_at,
    search_space,
)
from tests.factories import baseline as _baseline
from tests.factories import measurement as _measurement

# The demo's shape: 1,206 members, batch 32, 10 epochs.
RATE, STEPS, DELTA = sampling_rate(1206, 32), dp_sgd_steps(1206, 32, 10), 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("target", [1.0, 8.0])
def test_calibrated_noise_meets_the_target_epsilon_within_one_percent_and_never_above(target: float) -> None:
    noise = noise_for_epsilon(epsilon=target, sampling_rate=RATE, steps=STEPS, delta=DELTA)
    epsilon = dp_sgd_guarantee(sampling_rate=RATE, noise_multiplier=noise, steps=STEPS, delta=DELTA).epsilon
    assert epsilon is not None and 0.99 * target <= epsilon <= target
    # The smallest such noise: 1 % less noise breaks the target.
    weaker = dp_sgd_guarantee(sampling_rate=RATE, noise_multiplier=noise * 0.99, steps=STEPS, delta=DELTA).epsilon
    assert weaker is not None and weaker > target


@pytest.mark.slow
def test_the_budget_sets_the_noise_floor_and_target_mode_fixes_the_noise() -> None:
    search = SearchSpec()
    budget = search_space(search, max_epsilon=10.0, target_epsilon=None, sampling_rate=RATE, steps=STEPS, delta=DELTA)
    assert budget.min_noise == pytest.approx(
        noise_for_epsilon(epsilon=10.0, sampling_rate=RATE, steps=STEPS, delta=DELTA)
    )
    assert 0.3 < budget.min_noise < 1.0 and budget.fixed_noise is None
    target = search_space(search, max_epsilon=10.0, target_epsilon=1.0, sampling_rate=RATE, steps=STEPS, delta=DELTA)
    assert target.fixed_noise is not None and target.fixed_noise > budget.min_noise
    assert len(target.dimensions()) == 1  # only clip is searched
    none = search_space(search, max_epsilon=None, target_epsilon=None, sampling_rate=RATE, steps=STEPS, delta=DELTA)
    assert none.min_noise == 0.0
    with pytest.raises(TuningError) as error:
        search_space(
            SearchSpec(max_noise=0.5),
            max_epsilon=1.0,
            target_epsilon=None,
            sampling_rate=RATE,
            steps=STEPS,
            delta=DELTA,
        )
    assert error.value.code == "max_noise_below_budget" and "raise max_noise" in error.value.message


def test_a_target_above_the_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="exceeds max_epsilon"):
        GuaranteeSpec(max_epsilon=2.0, target_epsilon=3.0)
    assert GuaranteeSpec(max_epsilon=None).mode == "no_guarantee"
    assert GuaranteeSpec(target_epsilon=1.0).mode == "target_epsilon"
    assert GuaranteeSpec().mode == "budget"


FIXED = SearchSpace(min_clip=0.1, max_clip=10.0, min_noise=2.0, max_noise=2.0, fixed_noise=2.0)


def _smooth(clip: float) -> float:
    """A true objective over log clip, peaking at clip 2."""
    return 0.05 - 0.01 * (math.log(clip) - math.log(2.0)) ** 2


def test_the_choice_is_the_best_posterior_mean_not_a_lucky_draw() -> None:
    base = _baseline(0.9, 0.7)
    clips = np.geomspace(0.1, 10.0, 12)
    rng = np.random.default_rng(0)
    draws = [_smooth(c) + rng.normal(0, 0.005) for c in clips]
    lucky = 3  # clip 0.35, truly 0.03 below the peak, drawn just above every other draw
    draws[lucky] = max(draws) + 0.005
    # Objective = draw: at t = 0.5 and the baseline's attack accuracy, o = 0.5 (u - 0.9).
    trials = [
        score(_measurement(0.9 + 2 * d, 0.7, clip=float(c), noise=2.0, epsilon=1.0), base, 0.5, i)
        for i, (c, d) in enumerate(zip(clips, draws, strict=True))
    ]
    assert max(trials, key=lambda t: t.objective).index == lucky
    choice = choose(trials, base, 0.5, FIXED, GuaranteeSpec(target_epsilon=1.0))
    assert choice.trial is not None and choice.selection is not None
    assert choice.selection.method == "posterior_mean"
    assert choice.trial.index != lucky
    assert _smooth(choice.trial.clip) > _smooth(clips[lucky]) + 0.01


def test_within_one_standard_error_the_lowest_epsilon_wins() -> None:
    base = _baseline(0.9, 0.7)
    space = SearchSpace(min_clip=0.1, max_clip=10.0, min_noise=0.6, max_noise=10.0)
    # A flat objective (differences far below one SE) over points of different noise, hence epsilon.
    points = [(0.5, 0.7, 9.0), (1.0, 2.0, 2.5), (2.0, 4.0, 1.1), (4.0, 8.0, 0.5), (8.0, 1.0, 4.0)]
    trials = [
        score(_measurement(0.85 + 0.0005 * i, 0.6, clip=c, noise=z, epsilon=e), base, 0.5, i)
        for i, (c, z, e) in enumerate(points)
    ]
    choice = choose(trials, base, 0.5, space, GuaranteeSpec())
    assert choice.selection is not None and choice.trial is not None
    assert choice.selection.best_posterior_index in choice.selection.within_one_se
    close = [t for t in trials if t.index in choice.selection.within_one_se]
    assert len(close) > 1
    assert choice.trial.epsilon == min(t.epsilon for t in close)
    assert choice.trial.index == 3


def test_max_utility_loss_that_no_point_meets_gives_no_recommendation_and_the_best_figures() -> None:
    base = _baseline(0.9, 0.7)
    trials = [
        score(_measurement(u, 0.55, epsilon=e), base, 0.5, i)
        for i, (u, e) in enumerate([(0.80, 2.0), (0.85, 3.0), (0.89, 50.0)])
    ]
    choice = choose(trials, base, 0.5, FIXED, GuaranteeSpec(max_utility_loss=0.02))
    assert choice.trial is None and choice.reason is not None
    # Trial 2 loses least but breaks the budget; trial 1 is the best feasible one (loss 0.05).
    assert "0.050" in choice.reason and "trial #1" in choice.reason
    met = choose(trials, base, 0.5, FIXED, GuaranteeSpec(max_utility_loss=0.06))
    assert met.trial is not None and met.trial.index == 1


def test_the_gp_never_assumes_less_noise_than_measured() -> None:
    observed = [Observation((c, 2.0), _smooth(c), 0.02) for c in np.geomspace(0.1, 10.0, 8)]
    posterior = posterior_at(FIXED, observed, seed=0)
    assert posterior is not None and posterior.noise_se >= 0.02 * 0.999
    assert posterior_at(FIXED, observed[:2], seed=0) is None  # too few points for a model


# The README demo's 12 trials (seed 0, 2026-12-06): clip, noise, objective, its sampling SE. Free to learn any
# noise level, the GP called the objective's noise 0.051 (1.9x the sampling SE; the recommended point's
# confirmation measured 0.026 over seeds), flattened the surface, and its one-SE set held 5 of the 12 trials,
# down to #1 (objective -0.109 against the leader #8's -0.044): the job recommended #1, whose confirmed test
# AUC was 0.495.
DEMO_TRIALS = [
    (1.757, 5.374, -0.2174, 0.0248),
    (0.3791, 2.037, -0.1090, 0.0277),
    (2.549, 1.436, -0.0693, 0.0269),
    (0.8238, 8.075, -0.1248, 0.0276),
    (9.421, 4.088, -0.1385, 0.0275),
    (3.754, 9.568, -0.1155, 0.0277),
    (0.1881, 7.472, -0.1721, 0.0268),
    (0.1029, 4.636, -0.2091, 0.0251),
    (10.0, 0.6368, -0.0436, 0.0261),
    (0.1, 0.6368, -0.1252, 0.0277),
    (10.0, 1.559, -0.1826, 0.0264),
    (0.3658, 10.0, -0.2263, 0.0240),
]


def test_the_gp_never_assumes_more_noise_than_the_records_and_seeds_give() -> None:
    space = SearchSpace(min_clip=0.1, max_clip=10.0, min_noise=0.6368, max_noise=10.0)
    observed = [Observation((c, z), o, None, se) for c, z, o, se in DEMO_TRIALS]
    posterior = posterior_at(space, observed, seed=0)
    assert posterior is not None
    rms_sampling_se = math.sqrt(np.mean([se**2 for *_, se in DEMO_TRIALS]))
    assert posterior.noise_se <= NOISE_CEILING_PER_SAMPLING_SE * rms_sampling_se * 1.001
    leader = int(np.argmax(posterior.means))
    assert leader == 8
    # Trial #1 lies 2.4 sampling SEs below the leader: not within one posterior SE of it.
    assert posterior.means[1] < posterior.means[leader] - posterior.stds[leader]
    # Without sampling SEs the GP's noise is bounded by the objective's spread alone, as before.
    unbounded = posterior_at(space, [Observation(o.point, o.objective) for o in observed], seed=0)
    assert unbounded is not None and unbounded.noise_se > posterior.noise_se


def test_confirmation_intervals_are_student_t_over_the_repeats() -> None:
    estimate = mean_interval([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)
    assert (
        estimate.value == 2.0
        and estimate.low == pytest.approx(2.0 - half)
        and estimate.high == pytest.approx(2.0 + half)
    )
    assert mean_interval([0.9, 0.99, 1.0], (0.0, 1.0)).high == 1.0
    single = mean_interval([0.7])
    assert single.low == single.high == 0.7
