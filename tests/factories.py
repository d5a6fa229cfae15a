"""Valid result objects of a chosen utility and attack accuracy, for tests that do not train."""

from __future__ import annotations

from app.tuning.results import (
    AttackScores,
    Baseline,
    Estimate,
    Games,
    MembershipGame,
    RepeatValues,
    TrialMeasurement,
)


def point(value: float) -> Estimate:
    return Estimate(value=value, low=max(0.0, value - 0.05), high=min(1.0, value + 0.05))


def attack(accuracy: float) -> AttackScores:
    return AttackScores(
        accuracy=point(accuracy), auc=point(accuracy), tpr_at_1pct_fpr=point(0.01), tpr_at_0_1pct_fpr=point(0.001)
    )


def games(accuracy: float, reference_models: int = 2) -> Games:
    return Games(
        membership=MembershipGame(
            attack_accuracy=accuracy,
            attacks={"rf": attack(accuracy), "rmia": attack(accuracy)},
            members=100,
            reference_models=reference_models,
            calibration_seconds=0.1,
            epsilon_lower_bound=0.0,
            epsilon_lower_bound_attack=None,
        ),
        population=None,
    )


def utilities(utility: float) -> dict[str, object]:
    return dict(
        utility_members=utility,
        utility_holdout=utility,
        utility_validation=utility,
        utility_test=utility,
        utility_external=None,
        utility_test_interval=point(utility),
        accuracy_test=0.8,
    )


def baseline(utility: float = 0.9, attack_accuracy: float = 0.7, **overrides: object) -> Baseline:
    fields: dict[str, object] = dict(
        **utilities(utility),
        privacy_game="membership",
        attack_accuracy=attack_accuracy,
        games=games(attack_accuracy),
        epsilon_lower_bound=0.0,
        label_only_attack_accuracy=0.5,
        logistic_regression_utility_test=utility,
        learns=True,
        weak_reasons=[],
        seconds=1.0,
    )
    fields.update(overrides)
    return Baseline(**fields)


def measurement(
    utility: float,
    attack_accuracy: float,
    clip: float = 1.0,
    noise: float = 1.0,
    epsilon: float | None = 2.0,
    repeats: list[tuple[float, float]] | None = None,
    **overrides: object,
) -> TrialMeasurement:
    """`repeats`: (utility_validation, attack_accuracy) of each repeat; default one repeat at the means."""
    values = [
        RepeatValues(utility_validation=u, utility_test=u, attack_accuracy=a)
        for u, a in (repeats or [(utility, attack_accuracy)])
    ]
    fields: dict[str, object] = dict(
        **utilities(utility),
        clip=clip,
        noise=noise,
        privacy_game="membership",
        attack_accuracy=attack_accuracy,
        attack_accuracy_se=None,
        utility_validation_se=None,
        utility_test_se=None,
        games=games(attack_accuracy),
        repeats=len(values),
        repeat_values=values,
        epsilon=epsilon,
        epsilon_rdp=epsilon,
        epsilon_lower_bound=0.0,
        delta=1e-5,
        attack_accuracy_bound=0.9 if epsilon is not None else None,
        tpr_bound_at_1pct_fpr=None,
        tpr_bound_at_0_1pct_fpr=None,
        steps=10,
        sampling_rate=0.1,
        seconds=0.5,
    )
    fields.update(overrides)
    return TrialMeasurement(**fields)
