"""The empirical epsilon (app/tuning/attacks/lower_bound.py).

The code's convention: confidence 0.95 jointly, alpha = 0.025 one-sided for each of TPR (lower bound) and FPR
(upper bound), so each bound is the matching end of a two-sided 95 % Clopper-Pearson interval."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from app.tuning.attacks.lower_bound import empirical_epsilon, epsilon_bounds

DELTA = 1e-5


def _perfect(n: int, delta: float = DELTA) -> float:
    """tp = n, fp = 0: TPR >= 0.025^(1/n), FPR <= 1 - 0.025^(1/n)."""
    a = 0.025 ** (1 / n)
    return math.log((a - delta) / (1 - a))


def test_perfect_separation_has_a_closed_form() -> None:
    n = 500
    bound = epsilon_bounds(np.array([n]), np.array([0]), n, n, DELTA)
    assert bound.shape == (1,)
    assert bound[0] == pytest.approx(_perfect(n), rel=1e-9)
    assert bound[0] == pytest.approx(math.log(0.025 ** (1 / 500) / (1 - 0.025 ** (1 / 500))), abs=1e-3)  # ~ 4.99


def test_bounds_are_the_clopper_pearson_ends_of_each_rate() -> None:
    tp, fp, n = np.array([400, 300, 60]), np.array([50, 10, 5]), 500
    bounds = epsilon_bounds(tp, fp, n, n, DELTA)
    for k, (t, f) in enumerate(zip(tp, fp, strict=True)):
        tpr_low = binomtest(int(t), n).proportion_ci(0.95, method="exact").low
        fpr_high = binomtest(int(f), n).proportion_ci(0.95, method="exact").high
        direct = math.log((tpr_low - DELTA) / fpr_high)
        complement = math.log((1 - fpr_high - DELTA) / (1 - tpr_low))
        assert bounds[k] == pytest.approx(max(direct, complement, 0.0), rel=1e-9)
    assert np.all(bounds > 0)


def test_no_advantage_proves_nothing() -> None:
    n = 1000
    tp = np.array([0, 100, 500, 900, 1000])
    bounds = epsilon_bounds(tp, tp, n, n, DELTA)  # TPR = FPR at every threshold
    np.testing.assert_array_equal(bounds, 0.0)
    # Fewer records prove less from the same rates.
    assert (
        epsilon_bounds(np.array([90]), np.array([10]), 100, 100, DELTA)[0]
        < epsilon_bounds(np.array([900]), np.array([100]), 1000, 1000, DELTA)[0]
    )


def _halves(n_per_side: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """truth (members first) and a `choose` mask holding exactly half of each side."""
    truth = np.concatenate([np.ones(n_per_side, dtype=np.int64), np.zeros(n_per_side, dtype=np.int64)])
    half = np.arange(n_per_side) % 2 == 0
    choose = np.concatenate([rng.permutation(half), rng.permutation(half)])
    return truth, choose


def test_scores_without_membership_signal_prove_nothing() -> None:
    zeros = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        truth, choose = _halves(2000, rng)
        scores = {"loss": rng.normal(size=len(truth)), "rmia": rng.random(len(truth))}
        epsilon, attack = empirical_epsilon(scores, truth, choose, DELTA)
        assert epsilon >= 0.0
        if epsilon == 0.0:
            assert attack is None
            zeros += 1
    assert zeros >= 18  # a 95 % lower bound


def test_perfect_scores_prove_the_closed_form_of_the_evaluated_half() -> None:
    # 300 per side: the 300 choosing scores are fewer than the MAX_THRESHOLDS quantile candidates, so one
    # candidate falls in the gap. (With more records the quantile grid can miss the exact cut by a record or two.)
    rng = np.random.default_rng(0)
    truth, choose = _halves(300, rng)
    scores = np.where(truth == 1, 2 + rng.random(len(truth)), rng.random(len(truth)))  # a gap between 1 and 2
    epsilon, attack = empirical_epsilon({"loss": scores}, truth, choose, DELTA)
    assert attack == "loss"
    assert epsilon == pytest.approx(_perfect(150), rel=1e-9)  # 150 per side evaluated, not 300
    assert epsilon < _perfect(300) - 0.5


def test_threshold_is_chosen_on_the_choosing_half_only() -> None:
    """On the choosing half members score in [10, 11] (best cut ~ 5.5); on the other half three members in four score
    in [3, 4], below that cut though above every nonmember. The bound is what cut 5.5 proves there: tp = n/8."""
    rng = np.random.default_rng(1)
    n = 400  # per side; 200 evaluated per side
    truth, choose = _halves(n, rng)
    scores = rng.random(2 * n)  # nonmembers everywhere: [0, 1]
    members = truth == 1
    scores[members & choose] = 10 + rng.random(int((members & choose).sum()))
    evaluated_members = np.flatnonzero(members & ~choose)
    high = evaluated_members[::4]
    low = np.setdiff1d(evaluated_members, high)
    scores[low] = 3 + rng.random(len(low))
    scores[high] = 10 + rng.random(len(high))

    epsilon, attack = empirical_epsilon({"loss": scores}, truth, choose, DELTA)
    expected = epsilon_bounds(np.array([len(high)]), np.array([0]), n // 2, n // 2, DELTA)[0]
    assert attack == "loss"
    assert epsilon == pytest.approx(expected, rel=1e-9)
    # A cut chosen on the evaluated half itself (anywhere in (1, 3)) would have separated it perfectly.
    assert epsilon < _perfect(n // 2) - 1.0


def test_an_attack_that_only_works_on_the_choosing_half_proves_nothing() -> None:
    """'a' is perfect on the choosing half and useless on the other; it is chosen (it proves most where the choice
    is made) and then proves nothing. 'b', which would prove something on both halves, is not consulted."""
    rng = np.random.default_rng(2)
    n = 400
    truth, choose = _halves(n, rng)
    a = rng.random(2 * n)
    a[(truth == 1) & choose] += 5
    b = rng.random(2 * n) + 0.5 * truth
    assert empirical_epsilon({"b": b}, truth, choose, DELTA)[0] > 0
    assert empirical_epsilon({"a": a, "b": b}, truth, choose, DELTA) == (0.0, None)
