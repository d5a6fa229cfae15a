"""The one definition of a tuning result: the CLI writes it as JSON, the database stores it, the API returns it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AttackScores(BaseModel):
    """One membership-inference attack model, scored on the held-out half of members and nonmembers."""

    accuracy: float
    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_0_1pct_fpr: float


class Utility(BaseModel):
    """ROC-AUC (binary) or macro one-vs-rest ROC-AUC (multi-class) on each split, and test accuracy."""

    utility_members: float
    utility_test: float
    utility_nonmembers: float
    accuracy_test: float


class Baseline(Utility):
    """The model trained without privacy: u_start = utility_test, p_start = attack_accuracy."""

    attack_accuracy: float = Field(description="Highest accuracy over the attack models; 0.5 is guessing.")
    attack: dict[str, AttackScores]
    label_only_attack_accuracy: float | None = Field(
        default=None,
        description="Accuracy of the best attack that sees only the true label (0.5 when members and nonmembers "
        "have the same label distribution): a floor no training can take the attacks below. Null for baselines "
        "measured before it was reported.",
    )
    seconds: float


class TrialMeasurement(Utility):
    """What one DP-SGD training at (clip, noise) measured; independent of the trade-off t."""

    model_config = ConfigDict(extra="ignore")

    clip: float
    noise: float
    attack_accuracy: float
    attack: dict[str, AttackScores]
    epsilon: float | None = Field(description="Epsilon at delta; null when noise is 0 (no finite guarantee).")
    delta: float
    steps: int
    sampling_rate: float
    seconds: float


class Trial(TrialMeasurement):
    """A measurement scored against the baseline for one trade-off."""

    index: int
    utility_loss: float = Field(description="u_start - u_i on the test split.")
    objective: float


class Recommendation(Trial):
    tradeoff: float
    attack_accuracy_bound: float | None = Field(
        description="Cap on any attack's accuracy implied by (epsilon, delta): (e^eps + delta) / (e^eps + 1)."
    )
    notes: list[str]


class TuningResult(BaseModel):
    dataset: dict[str, Any]
    model: dict[str, Any]
    search: dict[str, Any]
    tradeoff: float
    delta: float
    seed: int
    accounting: str
    baseline: Baseline
    trials: list[Trial]
    pareto_front: list[int] = Field(description="Indices of trials no other trial beats on both utility and attack.")
    recommendation: Recommendation | None
    seconds: float
