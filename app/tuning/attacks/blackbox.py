"""The study's attack: ART's MembershipInferenceBlackBox on probabilities we compute ourselves, cross-fitted."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
from art.estimators.classification import BlackBoxClassifier
from art.estimators.classification.classifier import ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier

BLACKBOX_MODELS = ("rf", "nn")
# Trees of the random-forest attack model: 50, not scikit-learn's 100, scores the same within a tenth of
# its sampling error at half the cost (benchmarks/attack_trees.py, docs/performance.md).
RF_TREES = 50


class MemberProbabilityModel(ClassifierMixin):
    """Hands a seeded scikit-learn classifier to ART as `attack_model`.

    ART fits a custom attack model on 0/1 membership labels and reads `predict()` as the membership score,
    so `predict` returns P(member) with shape (n, 1). This also keeps torch out: ART's own "nn" imports it.
    """

    def __init__(self, classifier: Any) -> None:
        super().__init__()
        self.classifier = classifier

    def fit(self, x: npt.NDArray[Any], y: npt.NDArray[Any], **kwargs: Any) -> None:
        self.classifier.fit(x, np.asarray(y).ravel())

    def predict(self, x: npt.NDArray[Any], **kwargs: Any) -> npt.NDArray[np.float64]:
        proba = self.classifier.predict_proba(x)
        member_probability: npt.NDArray[np.float64] = proba[:, list(self.classifier.classes_).index(1)].reshape(-1, 1)
        return member_probability


def _attack_model(kind: str, seed: int) -> MemberProbabilityModel:
    if kind == "rf":
        return MemberProbabilityModel(RandomForestClassifier(n_estimators=RF_TREES, random_state=seed, n_jobs=1))
    if kind == "nn":
        return MemberProbabilityModel(
            MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, early_stopping=False, random_state=seed)
        )
    raise ValueError(f"unknown attack model '{kind}'")


def _never_called(x: npt.NDArray[Any]) -> npt.NDArray[Any]:
    raise RuntimeError("the attack must be given precomputed probabilities")


def blackbox_scores(
    kind: str,
    proba: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    truth: npt.NDArray[np.int64],
    fold: npt.NDArray[np.int64],
    n_classes: int,
    seed: int,
) -> npt.NDArray[np.float64]:
    """P(member) for every record, cross-fitted: the attack fitted on one fold scores the other, then the
    folds swap, so no record is scored by an attack that saw its membership. Features: the target's
    probabilities and the true label, as in the study."""
    estimator = BlackBoxClassifier(predict_fn=_never_called, input_shape=(proba.shape[1],), nb_classes=n_classes)
    scores = np.empty(len(truth), dtype=np.float64)
    for scored in (0, 1):
        fit = fold != scored
        members, nonmembers = fit & (truth == 1), fit & (truth == 0)
        attack = MembershipInferenceBlackBox(estimator, attack_model=_attack_model(kind, seed + scored))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the MLP's ConvergenceWarning at max_iter: the budget is the study's
            attack.fit(
                None, labels[members], None, labels[nonmembers], pred=proba[members], test_pred=proba[nonmembers]
            )
        rows = fold == scored
        scores[rows] = attack.infer(None, labels[rows], pred=proba[rows], probabilities=True).ravel()
    return scores
