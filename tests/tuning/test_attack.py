import numpy as np
import pytest

from app.tuning.attack import balanced_attack_split, label_only_attack_accuracy, membership_attacks, tpr_at_fpr


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


def test_label_only_floor_is_half_the_total_variation_above_guessing() -> None:
    same = np.array([0, 1, 1, 0])
    assert label_only_attack_accuracy(same, same[::-1], 2) == pytest.approx(0.5)
    assert label_only_attack_accuracy(np.zeros(5, int), np.ones(7, int), 2) == pytest.approx(1.0)
    # 10 % against 40 % positives: TV 0.3. Three classes: TV = (0.5 + 0.5) / 2 = 0.5.
    assert label_only_attack_accuracy(np.repeat([0, 1], [90, 10]), np.repeat([0, 1], [60, 40]), 2) == pytest.approx(0.65)
    assert label_only_attack_accuracy(np.repeat([0, 1], [50, 50]), np.repeat([1, 2], [50, 50]), 3) == pytest.approx(0.75)


def test_attacks_on_uninformative_outputs_reach_the_label_only_floor() -> None:
    """A model whose outputs say nothing still 'leaks' when the splits' label rates differ: the floor is real."""
    rng = np.random.default_rng(1)
    n = 2000
    y_m = (rng.random(n) < 0.1).astype(int)
    y_n = (rng.random(n) < 0.4).astype(int)
    constant = np.tile([0.7, 0.3], (n, 1))
    floor = label_only_attack_accuracy(y_m, y_n, 2)
    attacks = membership_attacks(constant, y_m, constant, y_n, 2, balanced_attack_split(n, n, seed=0), seed=0)
    assert 0.62 < floor < 0.68
    assert all(abs(a.accuracy - floor) < 0.03 for a in attacks.values())
