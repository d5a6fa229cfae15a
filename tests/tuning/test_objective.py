import pytest

from app.tuning.model_spec import ModelSpec
from app.tuning.objective import objective, pareto_front, score
from app.tuning.recommendation import build_recommendation, choose, training_config
from app.tuning.results import GuaranteeSpec
from app.tuning.search import SearchSpace
from tests.factories import baseline as _baseline
from tests.factories import measurement as _measurement

SPACE = SearchSpace(min_clip=0.1, max_clip=10.0, min_noise=0.0, max_noise=10.0)


DEFAULT_GUARANTEE = GuaranteeSpec()


def recommend(trials, base, tradeoff, guarantee=DEFAULT_GUARANTEE):  # type: ignore[no-untyped-def]
    """Choose among the trials and build the (unconfirmed) recommendation, as the service does for another t."""
    choice = choose(trials, base, tradeoff, SPACE, guarantee)
    if choice.trial is None:
        return None
    config = training_config(ModelSpec(), choice.trial.clip, choice.trial.noise, 1000, 1e-5)
    return build_recommendation(choice, base, tradeoff, guarantee, config)


def test_objective_is_the_studys_formula() -> None:
    base = _baseline(utility=0.9, attack=0.7)
    # o = t (u_i - u_start) + (1 - t)(p_start - p_i)
    assert objective(0.85, 0.5, base, 0.5) == pytest.approx(0.5 * -0.05 + 0.5 * 0.2)
    assert objective(0.85, 0.5, base, 1.0) == pytest.approx(-0.05)
    assert objective(0.85, 0.5, base, 0.0) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        objective(0.85, 0.5, base, 1.5)


def test_score_sets_utility_loss_and_objective() -> None:
    trial = score(_measurement(0.8, 0.55), _baseline(0.9, 0.7), tradeoff=0.25, index=3)
    assert trial.index == 3
    assert trial.utility_loss == pytest.approx(0.1)
    assert trial.objective == pytest.approx(0.25 * -0.1 + 0.75 * 0.15)


def test_recommendation_follows_the_tradeoff_without_rerunning() -> None:
    base = _baseline(0.9, 0.7)
    private = score(_measurement(0.80, 0.50), base, 0.5, 0)  # safe, costly
    useful = score(_measurement(0.89, 0.62), base, 0.5, 1)  # useful, leaky
    assert recommend([private, useful], base, 0.1).index == 0
    assert recommend([private, useful], base, 0.9).index == 1
    rec = recommend([private, useful], base, 0.9)
    assert rec.tradeoff == 0.9 and rec.notes
    assert rec.attack_accuracy_bound == useful.attack_accuracy_bound
    assert recommend([], base, 0.5) is None


def test_objective_selects_on_validation_and_reports_test() -> None:
    base = _baseline(0.9, 0.7).model_copy(update={"utility_validation": 0.8, "utility_test": 0.95})
    trial = score(_measurement(0.7, 0.6, repeats=[(0.75, 0.6)], utility_validation=0.75), base, 0.5, 0)
    # u on validation: 0.5 * (0.75 - 0.8) + 0.5 * (0.7 - 0.6); the loss is read on test: 0.95 - 0.7
    assert trial.objective == pytest.approx(0.5 * -0.05 + 0.5 * 0.1)
    assert trial.utility_loss == pytest.approx(0.25)


def test_objective_over_repeats_is_the_mean_with_its_standard_error() -> None:
    base = _baseline(0.9, 0.7)
    m = _measurement(0.85, 0.6, repeats=[(0.84, 0.62), (0.86, 0.58), (0.85, 0.60)])
    trial = score(m, base, 0.5, 0)
    per_repeat = [0.5 * (u - 0.9) + 0.5 * (0.7 - a) for u, a in [(0.84, 0.62), (0.86, 0.58), (0.85, 0.60)]]
    mean = sum(per_repeat) / 3
    se = (sum((o - mean) ** 2 for o in per_repeat) / 2 / 3) ** 0.5
    assert trial.objective == pytest.approx(mean) and trial.objective_se == pytest.approx(se)
    assert score(_measurement(0.85, 0.6), base, 0.5, 0).objective_se is None


def test_pareto_front_drops_dominated_trials() -> None:
    base = _baseline()
    trials = [
        score(_measurement(0.80, 0.50), base, 0.5, 0),
        score(_measurement(0.85, 0.55), base, 0.5, 1),
        score(_measurement(0.84, 0.56), base, 0.5, 2),  # dominated by 1
        score(_measurement(0.88, 0.65), base, 0.5, 3),
    ]
    assert pareto_front(trials) == [0, 1, 3]


def test_recommendation_flags_a_membership_attack_above_the_dp_bound_as_a_bug() -> None:
    base = _baseline(0.9, 0.7)
    trial = score(_measurement(0.85, 0.60), base, 0.5, 0)  # bound 0.9, attack 0.60 [0.55, 0.65]
    assert not any("report it as a bug" in n for n in recommend([trial], base, 0.5).notes)
    within = trial.model_copy(update={"attack_accuracy_bound": 0.58})  # the interval reaches below the bound
    assert not any("report it as a bug" in n for n in recommend([within], base, 0.5).notes)
    tight = trial.model_copy(update={"attack_accuracy_bound": 0.52})  # interval low 0.55 > 0.52
    assert any("report it as a bug" in n for n in recommend([tight], base, 0.5).notes)


def test_population_game_recommendation_states_the_shift_the_control_reaches() -> None:
    from app.tuning.results import PopulationGame
    from tests.factories import attack, games

    base = _baseline(0.9, 0.7).model_copy(update={"privacy_game": "population"})
    population = PopulationGame(
        attack_accuracy=0.62,
        attacks={"rf": attack(0.62)},
        reference_attack_accuracy=0.60,
        reference_attacks={"rf": attack(0.60)},
        shift=0.10,
        membership=0.02,
        members=100,
    )
    g = games(0.51).model_copy(update={"population": population})
    trial = score(
        _measurement(0.85, 0.62).model_copy(update={"privacy_game": "population", "games": g}), base, 0.5, 0
    )
    [note] = [n for n in recommend([trial], base, 0.5).notes if "control model" in n]
    assert "0.600" in note and "+0.020" in note and "0.510" in note


def test_recommendation_reports_a_label_only_floor_above_guessing() -> None:
    trial = score(_measurement(0.85, 0.57), _baseline(0.9, 0.6), 0.5, 0)

    def label_notes(floor: float | None) -> list[str]:
        base = _baseline(0.9, 0.6).model_copy(update={"label_only_attack_accuracy": floor})
        rec = recommend([trial], base, 0.5)
        assert rec is not None
        return [n for n in rec.notes if "sees only the label" in n]

    [note] = label_notes(0.543)
    assert "0.543" in note and "0.570" in note
    assert label_notes(0.505) == [] and label_notes(None) == []


def test_recommendation_warns_when_the_baseline_does_not_generalise() -> None:
    trial = score(_measurement(0.5, 0.5), _baseline(0.4, 0.6), 0.5, 0)
    assert any("near or below chance" in n for n in recommend([trial], _baseline(0.4, 0.6), 0.5).notes)
    assert not any("near or below chance" in n for n in recommend([trial], _baseline(0.9, 0.6), 0.5).notes)


def test_the_budget_excludes_trials_above_max_epsilon_and_no_guarantee_says_so_first() -> None:
    base = _baseline(0.9, 0.7)
    no_noise = score(_measurement(0.89, 0.55, clip=0.1, noise=0.0, epsilon=None), base, 0.5, 0)
    noisy = score(_measurement(0.86, 0.60, clip=2.0, noise=1.5), base, 0.5, 1)  # epsilon 2
    huge = score(_measurement(0.88, 0.58, noise=0.1, epsilon=500.0), base, 0.5, 2)
    rec = recommend([no_noise, noisy, huge], base, 0.5)  # max_epsilon 10 by default
    assert rec is not None and rec.index == 1 and rec.mode == "budget"
    assert rec.headline.startswith("Train with clip 2") and "-DP" in rec.headline
    assert recommend([no_noise, huge], base, 0.5) is None
    anything = recommend([no_noise, huge], base, 0.5, GuaranteeSpec(max_epsilon=None))  # best observed of two
    assert anything is not None and anything.index == 0 and anything.mode == "no_guarantee"
    assert anything.headline.startswith("NO PRIVACY GUARANTEE") and "adds no noise" in anything.headline


def _with_calibrated_tpr(games, low: float):  # type: ignore[no-untyped-def]
    from app.tuning.results import Estimate

    rmia = games.membership.attacks["rmia"].model_copy(
        update={"tpr_at_1pct_fpr": Estimate(value=low + 0.01, low=low, high=low + 0.02)}
    )
    membership = games.membership.model_copy(update={"attacks": {**games.membership.attacks, "rmia": rmia}})
    return games.model_copy(update={"membership": membership})


@pytest.mark.parametrize(
    ("base_low", "rec_low", "verdict"),
    [
        (0.03, 0.004, "within the noise of guessing"),  # leak removed
        (0.03, 0.02, "still finds more members than guessing"),  # leak left
        (0.008, 0.004, "finds no membership leak"),  # nothing to remove
        (0.008, 0.02, "still finds more members than guessing"),  # the recommended model's own figure decides
    ],
)
def test_the_membership_reading_says_whether_dp_removed_a_leak(base_low: float, rec_low: float, verdict: str) -> None:
    base = _baseline(0.9, 0.6)
    base = base.model_copy(update={"games": _with_calibrated_tpr(base.games, base_low)})
    measured = _measurement(0.85, 0.52, epsilon=2.5)
    trial = score(measured.model_copy(update={"games": _with_calibrated_tpr(measured.games, rec_low)}), base, 0.5, 0)
    [note] = [n for n in recommend([trial], base, 0.5).notes if n.startswith("Membership game")]
    assert verdict in note and "epsilon 2.5 at delta 1e-05" in note
    assert f"{base_low + 0.01:.1%} [{base_low:.1%}," in note


def test_the_population_reading_says_dp_does_not_remove_a_population_difference() -> None:
    from app.tuning.results import PopulationGame
    from tests.factories import attack

    def with_population(accuracy: float, control: float):  # type: ignore[no-untyped-def]
        return PopulationGame(
            attack_accuracy=accuracy,
            attacks={"rf": attack(accuracy)},
            reference_attack_accuracy=control,
            reference_attacks={"rf": attack(control)},
            shift=control - 0.5,
            membership=accuracy - control,
            members=100,
        )

    base = _baseline(0.9, 0.6)
    base = base.model_copy(
        update={"games": base.games.model_copy(update={"population": with_population(0.61, 0.58)})}
    )
    measured = _measurement(0.85, 0.52)
    g = measured.games.model_copy(update={"population": with_population(0.59, 0.585)})
    trial = score(measured.model_copy(update={"games": g}), base, 0.5, 0)
    [note] = [n for n in recommend([trial], base, 0.5).notes if n.startswith("Population game")]
    assert "0.610 on the baseline and 0.590 on the recommended model" in note and "reaches 0.585" in note
    assert "noise does not remove it" in note
    # Without an external set there is no population game to read.
    assert not any(
        n.startswith("Population game") for n in recommend([score(measured, base, 0.5, 0)], base, 0.5).notes
    )


def test_a_recommended_model_no_better_than_chance_is_flagged_first() -> None:
    from app.tuning.results import Estimate

    base = _baseline(0.9, 0.6)
    useless = score(
        _measurement(0.55, 0.5).model_copy(
            update={"utility_test_interval": Estimate(value=0.45, low=0.36, high=0.54)}
        ),
        base,
        0.5,
        0,
    )
    useful = score(
        _measurement(0.8, 0.5).model_copy(update={"utility_test_interval": Estimate(value=0.8, low=0.72, high=0.88)}),
        base,
        0.5,
        0,
    )
    notes = recommend([useless], base, 0.5).notes
    assert notes[0].startswith("The recommended model's test ROC-AUC is 0.450 (95 % interval 0.360-0.540)")
    assert not any("chance (0.5): no configuration" in n for n in recommend([useful], base, 0.5).notes)
