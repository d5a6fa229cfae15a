"""Membership inference with ART's MembershipInferenceBlackBox, on probabilities we compute ourselves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
from art.estimators.classification import BlackBoxClassifier
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.neural_network import MLPClassifier

from app.tuning.results import AttackScores

ATTACK_MODELS = ("rf", "nn")


class MemberProbabilityModel(ClassifierMixin):
    """Hands a seeded scikit-learn classifier to ART as `attack_model`.

    ART fits a custom attack model on 0/1 membership labels and reads `predict()` as the membership score,
    so `predict` returns P(member) with shape (n, 1). This also keeps torch out: ART's own "nn" imports it.
    """

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.classifier = classifier

    def fit(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
        self.classifier.fit(x, np.asarray(y).ravel())

    def predict(self, x: np.ndarray, **kwargs: Any) -> np.ndarray:
        proba = self.classifier.predict_proba(x)
        return proba[:, list(self.classifier.classes_).index(1)].reshape(-1, 1)


def _attack_model(kind: str, seed: int) -> MemberProbabilityModel:
    if kind == "rf":
        return MemberProbabilityModel(RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1))
    if kind == "nn":
        return MemberProbabilityModel(
            MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, early_stopping=False, random_state=seed)
        )
    raise ValueError(f"unknown attack model '{kind}'")


@dataclass(frozen=True)
class AttackSplit:
    """Balanced halves: the attack fits on *_fit and is scored on *_eval (indices into members / nonmembers)."""

    members_fit: np.ndarray
    members_eval: np.ndarray
    nonmembers_fit: np.ndarray
    nonmembers_eval: np.ndarray


def balanced_attack_split(n_members: int, n_nonmembers: int, seed: int) -> AttackSplit:
    """Equal numbers of members and nonmembers; half of each fits the attack, the other half tests it."""
    rng = np.random.default_rng(seed)
    n = min(n_members, n_nonmembers)
    half = n // 2
    if half < 2:
        raise ValueError(f"membership attack needs at least 4 members and 4 nonmembers, got {n}")
    members = rng.permutation(n_members)[: 2 * half]
    nonmembers = rng.permutation(n_nonmembers)[: 2 * half]
    return AttackSplit(members[:half], members[half:], nonmembers[:half], nonmembers[half:])


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    allowed = tpr[fpr <= max_fpr]
    return float(allowed.max()) if allowed.size else 0.0


def membership_attacks(
    proba_members: np.ndarray,
    y_members: np.ndarray,
    proba_nonmembers: np.ndarray,
    y_nonmembers: np.ndarray,
    n_classes: int,
    split: AttackSplit,
    seed: int,
    models: tuple[str, ...] = ATTACK_MODELS,
) -> dict[str, AttackScores]:
    """Run each attack model; features are the target's probabilities and the true label, as in the study."""
    estimator = BlackBoxClassifier(
        predict_fn=_never_called, input_shape=(proba_members.shape[1],), nb_classes=n_classes
    )
    eval_pred = np.vstack([proba_members[split.members_eval], proba_nonmembers[split.nonmembers_eval]])
    eval_y = np.concatenate([y_members[split.members_eval], y_nonmembers[split.nonmembers_eval]])
    truth = np.concatenate([np.ones(len(split.members_eval)), np.zeros(len(split.nonmembers_eval))])

    def run(kind: str) -> AttackScores:
        attack = MembershipInferenceBlackBox(estimator, attack_model=_attack_model(kind, seed))
        attack.fit(
            None,
            y_members[split.members_fit],
            None,
            y_nonmembers[split.nonmembers_fit],
            pred=proba_members[split.members_fit],
            test_pred=proba_nonmembers[split.nonmembers_fit],
        )
        scores = attack.infer(None, eval_y, pred=eval_pred, probabilities=True).ravel()
        return AttackScores(
            accuracy=float(np.mean((scores >= 0.5) == truth)),
            auc=float(roc_auc_score(truth, scores)),
            tpr_at_1pct_fpr=tpr_at_fpr(truth, scores, 0.01),
            tpr_at_0_1pct_fpr=tpr_at_fpr(truth, scores, 0.001),
        )

    # One after the other: running the two models in threads measured no faster (docs/performance.md).
    return {kind: run(kind) for kind in models}


def label_only_attack_accuracy(y_members: np.ndarray, y_nonmembers: np.ndarray, n_classes: int) -> float:
    """Accuracy of the best membership attack that sees only the true label, with equal numbers of members and
    nonmembers: 0.5 + TV / 2, TV the total variation distance between the two splits' label distributions.

    The black-box attacks are given the label too, so no training can push their accuracy below this floor: the
    part above it is what the model leaks, the part below it is a difference between the splits.
    """
    p_members = np.bincount(y_members, minlength=n_classes) / len(y_members)
    p_nonmembers = np.bincount(y_nonmembers, minlength=n_classes) / len(y_nonmembers)
    return float(0.5 + 0.25 * np.abs(p_members - p_nonmembers).sum())


def _never_called(x: np.ndarray) -> np.ndarray:
    raise RuntimeError("the attack must be given precomputed probabilities")
