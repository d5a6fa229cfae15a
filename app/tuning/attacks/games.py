"""The two games, each with every attack, on probabilities computed once per model.

membership: members against holdout records of the same population (what DP bounds).
population: members against the external set (the study's game), next to a control model trained like the
target on the holdout records: what the control reaches is the shift between the populations, not membership.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from app.tuning.attacks.blackbox import BLACKBOX_MODELS, blackbox_scores
from app.tuning.attacks.calibrated import loss_scores, rmia_scores, true_label_probability
from app.tuning.attacks.lower_bound import empirical_epsilon
from app.tuning.attacks.statistics import attack_scores, best_accuracy_threshold
from app.tuning.results import CALIBRATED_ATTACK, AttackScores, MembershipGame, PopulationGame, ScoreHistogram

# A trained model's x -> class probabilities.
Predict = Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
# Trains a model like the target on (x, y) with the given seed and returns a function x -> probabilities.
TrainLike = Callable[[npt.NDArray[np.float32], npt.NDArray[np.int64], int], Predict]
# Reference models: (pool x, pool y, each model's rows of the pool, each model's seed) -> their predictions.
TrainReferences = Callable[
    [npt.NDArray[np.float32], npt.NDArray[np.int64], list[npt.NDArray[np.int64]], list[int]], list[Predict]
]


def one_at_a_time(train_like: TrainLike) -> TrainReferences:
    """Reference models trained one after the other by a single-model trainer."""

    def train_references(
        x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], rows: list[npt.NDArray[np.int64]], seeds: list[int]
    ) -> list[Predict]:
        return [train_like(x[r], y[r], seed) for r, seed in zip(rows, seeds, strict=True)]

    return train_references


LABEL_FREE_ATTACKS = ("loss", CALIBRATED_ATTACK)
# Bins of the calibrated attack's score histogram: 2 x 20 counts per game, a few hundred bytes per trial.
SCORE_BINS = 20


@dataclass(frozen=True)
class GameRecords:
    """A balanced game: `truth` 1 for members, 0 for nonmembers; `fold` splits both halves at random."""

    member_rows: npt.NDArray[np.int64]
    nonmember_rows: npt.NDArray[np.int64]
    truth: npt.NDArray[np.int64]
    fold: npt.NDArray[np.int64]


def balanced_records(n_members: int, n_nonmembers: int, rng: np.random.Generator) -> GameRecords:
    """Equal numbers of members and nonmembers (a balanced prior), each side cut into two random folds."""
    n = min(n_members, n_nonmembers)
    if n < 4:
        raise ValueError(f"a membership game needs at least 4 members and 4 nonmembers, got {n}")
    members = np.sort(rng.permutation(n_members)[:n])
    nonmembers = np.sort(rng.permutation(n_nonmembers)[:n])
    fold = np.concatenate([rng.permutation(np.arange(n) % 2), rng.permutation(np.arange(n) % 2)])
    truth = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    return GameRecords(members, nonmembers, truth, fold)


def cross_fitted_decisions(
    scores: npt.NDArray[np.float64],
    truth: npt.NDArray[np.int64],
    fold: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Member decisions with each fold's threshold chosen (best accuracy) on the other fold."""
    decisions = np.zeros(len(scores), dtype=bool)
    for scored in (0, 1):
        rows = fold == scored
        threshold = best_accuracy_threshold(truth[~rows], scores[~rows])
        decisions[rows] = scores[rows] >= threshold
    return decisions


def score_histogram(scores: npt.NDArray[np.float64], truth: npt.NDArray[np.int64]) -> ScoreHistogram:
    """Counts of scores in [0, 1] (RMIA's range) in SCORE_BINS equal bins, members and nonmembers apart."""
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    members, _ = np.histogram(np.clip(scores[truth == 1], 0.0, 1.0), bins=edges)
    nonmembers, _ = np.histogram(np.clip(scores[truth == 0], 0.0, 1.0), bins=edges)
    return ScoreHistogram(
        edges=[float(e) for e in edges], members=[int(c) for c in members], nonmembers=[int(c) for c in nonmembers]
    )


def _fitted_attacks(
    proba: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], games: GameRecords, n_classes: int, seed: int
) -> dict[str, npt.NDArray[np.float64]]:
    scores = {
        kind: blackbox_scores(kind, proba, labels, games.truth, games.fold, n_classes, seed)
        for kind in BLACKBOX_MODELS
    }
    scores["loss"] = loss_scores(proba, labels)
    return scores


def _scored(scores: dict[str, npt.NDArray[np.float64]], games: GameRecords) -> dict[str, AttackScores]:
    out = {}
    for name, values in scores.items():
        # ART's attack models give P(member): 0.5 is their own decision. Label-free scores get a cross-fitted one.
        decisions = (
            values >= 0.5 if name in BLACKBOX_MODELS else cross_fitted_decisions(values, games.truth, games.fold)
        )
        out[name] = attack_scores(games.truth, values, decisions)
    return out


def membership_game(
    *,
    target_members: npt.NDArray[np.float64],
    target_holdout: npt.NDArray[np.float64],
    target_population: npt.NDArray[np.float64],
    x_members: npt.NDArray[np.float32],
    y_members: npt.NDArray[np.int64],
    x_holdout: npt.NDArray[np.float32],
    y_holdout: npt.NDArray[np.int64],
    x_population: npt.NDArray[np.float32],
    y_population: npt.NDArray[np.int64],
    n_classes: int,
    train_references: TrainReferences,
    reference_models: int,
    delta: float,
    seed: int,
) -> MembershipGame:
    """Members against holdout. `target_*` are the target's probabilities on members, holdout and the RMIA
    population (records neither the target nor any reference model trains on: the validation split)."""
    rng = np.random.default_rng([seed, 1])
    games = balanced_records(len(y_members), len(y_holdout), rng)
    proba = np.vstack([target_members[games.member_rows], target_holdout[games.nonmember_rows]])
    labels = np.concatenate([y_members[games.member_rows], y_holdout[games.nonmember_rows]])
    scores = _fitted_attacks(proba, labels, games, n_classes, seed)

    # RMIA: K reference models on random halves of members + holdout, each as large as the target's training
    # set; complementary pairs put every record in exactly half of them when the halves fit.
    pool_x = np.vstack([x_members, x_holdout])
    pool_y = np.concatenate([y_members, y_holdout])
    size = len(y_members)
    game_x = np.vstack([x_members[games.member_rows], x_holdout[games.nonmember_rows]])
    started = time.perf_counter()
    model_rows, seeds = [], []
    permutation = np.arange(len(pool_y))
    for k in range(reference_models):
        if k % 2 == 0:
            permutation = rng.permutation(len(pool_y))
            model_rows.append(permutation[:size])
        else:
            model_rows.append(permutation[size : 2 * size] if 2 * size <= len(pool_y) else permutation[-size:])
        seeds.append(int(rng.integers(0, 2**31 - 1)))
    predictors = train_references(pool_x, pool_y, model_rows, seeds) if reference_models else []
    references = [true_label_probability(predict(game_x), labels) for predict in predictors]
    population_references = [true_label_probability(predict(x_population), y_population) for predict in predictors]
    scores[CALIBRATED_ATTACK] = rmia_scores(
        true_label_probability(proba, labels),
        np.array(references),
        true_label_probability(target_population, y_population),
        np.array(population_references),
        break_ties=True,
    )
    calibration_seconds = time.perf_counter() - started
    epsilon, attack = empirical_epsilon(
        {name: scores[name] for name in LABEL_FREE_ATTACKS}, games.truth, games.fold == 0, delta
    )
    attacks = _scored(scores, games)
    return MembershipGame(
        attack_accuracy=max(a.accuracy.value for a in attacks.values()),
        attacks=attacks,
        members=len(games.member_rows),
        reference_models=reference_models,
        calibration_seconds=calibration_seconds,
        epsilon_lower_bound=epsilon,
        epsilon_lower_bound_attack=attack,
        score_histogram=score_histogram(scores[CALIBRATED_ATTACK], games.truth),
    )


def population_game(
    *,
    target_members: npt.NDArray[np.float64],
    target_external: npt.NDArray[np.float64],
    control_members: npt.NDArray[np.float64],
    control_external: npt.NDArray[np.float64],
    y_members: npt.NDArray[np.int64],
    y_external: npt.NDArray[np.int64],
    n_classes: int,
    seed: int,
) -> PopulationGame:
    """Members against external, on the target and on the control (trained on holdout, never on members)."""
    rng = np.random.default_rng([seed, 2])
    games = balanced_records(len(y_members), len(y_external), rng)
    labels = np.concatenate([y_members[games.member_rows], y_external[games.nonmember_rows]])

    def attacks_on(members: npt.NDArray[np.float64], external: npt.NDArray[np.float64]) -> dict[str, AttackScores]:
        proba = np.vstack([members[games.member_rows], external[games.nonmember_rows]])
        return _scored(_fitted_attacks(proba, labels, games, n_classes, seed), games)

    target, control = attacks_on(target_members, target_external), attacks_on(control_members, control_external)
    accuracy = max(a.accuracy.value for a in target.values())
    reference = max(a.accuracy.value for a in control.values())
    return PopulationGame(
        attack_accuracy=accuracy,
        attacks=target,
        reference_attack_accuracy=reference,
        reference_attacks=control,
        shift=reference - 0.5,
        membership=accuracy - reference,
        members=len(games.member_rows),
    )


def label_only_attack_accuracy(
    y_members: npt.NDArray[np.int64],
    y_nonmembers: npt.NDArray[np.int64],
    n_classes: int,
) -> float:
    """Accuracy of the best membership attack that sees only the true label, with equal numbers of members and
    nonmembers: 0.5 + TV / 2, TV the total variation distance between the two splits' label distributions.

    The black-box attacks are given the label too, so no training can push their accuracy below this floor: the
    part above it is what the model leaks, the part below it is a difference between the splits.
    """
    p_members = np.bincount(y_members, minlength=n_classes) / len(y_members)
    p_nonmembers = np.bincount(y_nonmembers, minlength=n_classes) / len(y_nonmembers)
    return float(0.5 + 0.25 * np.abs(p_members - p_nonmembers).sum())
