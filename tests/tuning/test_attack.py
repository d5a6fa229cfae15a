import numpy as np
import pytest

from app.tuning.attack import balanced_attack_split, membership_attacks, tpr_at_fpr


def _probabilities(confidence: np.ndarray, y: np.ndarray) -> np.ndarray:
    p1 = np.where(y == 1, confidence, 1 - confidence)
    return np.column_stack([1 - p1, p1])


def test_balanced_split_has_equal_disjoint_halves() -> None:
    split = balanced_attack_split(300, 120, seed=0)
    assert len(split.members_fit) == len(split.members_eval) == len(split.nonmembers_fit) == 60
    assert not set(split.members_fit) & set(split.members_eval)
    assert not set(split.nonmembers_fit) & set(split.nonmembers_eval)
    with pytest.raises(ValueError):
        balanced_attack_split(3, 100, seed=0)


def test_attacks_detect_leaky_outputs_and_not_identical_ones() -> None:
    rng = np.random.default_rng(0)
    n = 400
    y_m, y_n = rng.integers(0, 2, n), rng.integers(0, 2, n)
    split = balanced_attack_split(n, n, seed=0)
    # Members get confident correct outputs, nonmembers hesitant ones: a memorising model.
    leaky = membership_attacks(
        _probabilities(rng.uniform(0.9, 1.0, n), y_m), y_m,
        _probabilities(rng.uniform(0.5, 0.9, n), y_n), y_n, 2, split, seed=0,
    )
    assert set(leaky) == {"rf", "nn"}
    assert all(a.accuracy > 0.9 and a.auc > 0.9 for a in leaky.values())
    same = membership_attacks(
        _probabilities(rng.uniform(0.5, 1.0, n), y_m), y_m,
        _probabilities(rng.uniform(0.5, 1.0, n), y_n), y_n, 2, split, seed=0,
    )
    assert all(0.4 < a.accuracy < 0.6 for a in same.values())
    assert all(0.0 <= a.tpr_at_0_1pct_fpr <= a.tpr_at_1pct_fpr <= 1.0 for a in same.values())


def test_tpr_at_fpr() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.75, 0.1, 0.1, 0.1])
    assert tpr_at_fpr(labels, scores, 0.0) == pytest.approx(0.5)
    assert tpr_at_fpr(labels, scores, 0.25) == pytest.approx(1.0)  # threshold 0.2 admits the one 0.75
