"""The report from TuningResults built with the engine's builders (no training): figures, escaping, no external
URL, the card's contents, no recommendation, older and smaller results."""

from __future__ import annotations

import html
import re

import pytest

from app.reports import render_report, render_status_page
from app.reports.figures import Skipped, surface_panels, surfaces_figure
from app.tuning.results import CALIBRATED_ATTACK, TuningResult
from tests.reports import builders


def _images(page: str) -> list[str]:
    return re.findall(r'<img alt="[^"]*" src="(data:image/png;base64,[A-Za-z0-9+/=]+)">', page)


def _skipped(page: str) -> list[str]:
    return re.findall(r'<p class="skipped">([^<]*)</p>', page)


def test_a_full_result_has_six_inline_figures_and_the_whole_card() -> None:
    result = builders.result()
    page = render_report(result, status_line="job 1 · succeeded")
    assert len(_images(page)) == 6 and _skipped(page) == []
    assert page.count("<img") == 6 and "<svg" not in page
    assert "http://" not in page and "https://" not in page and "<script" not in page and " href=" not in page
    rec = result.recommendation
    assert rec is not None and rec.confirmation is not None
    card = page[page.index("<h2>Recommendation</h2>") : page.index("<h2>Run</h2>")]
    # The headline first, then the training configuration, the guarantee and the accountant's assumptions.
    assert card.index("Train with clip") < card.index("Training configuration") < card.index("Guarantee")
    assert "learning rate</th><td class=num>0.1<" in card and "steps</th><td class=num>14<" in card
    assert f"epsilon (PLD)</th><td class=num>{rec.training.epsilon:.4g}<" in card
    assert "PLD accountant (dp_accounting" in card and "Poisson subsampling" in card
    # Utility and attack with the confirmation's intervals, the lower bound, the tuning cost, every note.
    u = rec.confirmation.utility_test
    assert f"{u.value:.3f} [{u.low:.3f}, {u.high:.3f}]" in card
    assert "empirical epsilon lower bound" in card and "means over 3 fresh seeds" in card
    assert "Papernot &amp; Steinke 2022" in card
    assert rec.notes and all(f"<li>{html.escape(note)}</li>" in card for note in rec.notes)
    assert card.count("<li>") == len(rec.notes)


@pytest.mark.slow
def test_every_string_from_the_result_is_escaped() -> None:
    hostile = "<script>alert('x')</script>"
    result = builders.result(hostile)
    assert result.recommendation is not None
    result = result.model_copy(
        update={
            "recommendation": result.recommendation.model_copy(
                update={"headline": hostile, "notes": [hostile], "tuning_cost": hostile}
            )
        }
    )
    page = render_report(result, title=f"title {hostile}", status_line=f"status {hostile}")
    assert "<script" not in page
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;"
    # <title> and <h1>, the status line, the data set row, the headline, the note and the tuning cost
    assert page.count(escaped) == 7
    assert f"<title>title {escaped}</title>" in page
    no_recommendation = builders.result(recommend=False).model_copy(update={"no_recommendation_reason": hostile})
    page = render_report(no_recommendation)
    assert escaped in page and "<script" not in page


def test_no_recommendation_shows_its_reason() -> None:
    result = builders.result(recommend=False)
    assert result.recommendation is None
    page = render_report(result)
    assert 'class="card warning"><p class="headline">No recommendation.</p>' in page
    assert "no trial loses at most 0.001 validation ROC-AUC" in page
    assert len(_images(page)) == 6  # the figures do not need a recommendation


def test_an_older_result_without_the_calibrated_attack_or_bounds_renders_and_names_what_it_skips() -> None:
    raw = builders.result().model_dump(mode="json")
    for item in [raw["baseline"], raw["recommendation"], *raw["trials"]]:
        del item["games"]["membership"]["attacks"][CALIBRATED_ATTACK]
        del item["games"]["membership"]["score_histogram"]
    for item in [raw["recommendation"], *raw["trials"]]:
        item["tpr_bound_at_1pct_fpr"] = item["tpr_bound_at_0_1pct_fpr"] = None
    del raw["baseline"]["utility_validation_interval"]  # recorded only by newer versions
    page = render_report(TuningResult.model_validate(raw))
    assert _skipped(page) == [
        "Membership attack: ROC operating points: not drawn, neither the baseline nor the recommendation has the "
        f"calibrated ({CALIBRATED_ATTACK}) attack.",
        f"Membership scores: not drawn, the result stores no binned {CALIBRATED_ATTACK} scores (recorded only by "
        "newer versions).",
    ]
    assert len(_images(page)) == 4
    assert f"The calibrated attack ({CALIBRATED_ATTACK}) is not in this result&#x27;s trials" in page


def test_trials_without_games_at_all_render() -> None:
    result = builders.result()
    assert result.recommendation is not None
    old = result.model_copy(
        update={
            "trials": [t.model_copy(update={"games": None}) for t in result.trials],
            "baseline": result.baseline.model_copy(update={"games": None}),
            "recommendation": result.recommendation.model_copy(update={"games": None}),
        }
    )
    page = render_report(old)
    assert len(_images(page)) == 4 and len(_skipped(page)) == 2
    assert "empirical epsilon lower bound" in page


@pytest.mark.slow
def test_few_trials_draw_dots_and_no_trials_skip_with_a_reason() -> None:
    two = builders.result(points=[(1.0, 1.0), (2.0, 2.0)])
    page = render_report(two)
    assert len(_images(page)) == 6
    assert "Only the trials are drawn: fewer than 3" in page
    empty = builders.result(points=[], recommend=False)
    page = render_report(empty)
    assert _skipped(page)[:4] == [
        "Utility and attack against epsilon: not drawn, no trial has a finite epsilon (all trained without noise).",
        "Pareto front: not drawn, no trial succeeded.",
        "Utility and privacy over (clip, noise): not drawn, no trial succeeded.",
        "Convergence: not drawn, no trial succeeded.",
    ]
    assert len(_images(page)) == 2  # the baseline's ROC operating points and scores remain


def test_surfaces_leave_out_panels_without_values_and_need_a_trial() -> None:
    result = builders.result()
    figure = surfaces_figure(result.trials, surface_panels(result.baseline), "t")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [
        "utility (test AUC - baseline)",
        "membership game: attack accuracy",
        f"membership game: calibrated ({CALIBRATED_ATTACK}) TPR at 1 % FPR",
    ]  # no population game
    with pytest.raises(Skipped, match="no trial succeeded"):
        surfaces_figure([], surface_panels(result.baseline), "t")


def test_a_status_page_escapes_and_has_no_figure() -> None:
    page = render_status_page("dptune job <1>", "job <1> · queued", "The job is <queued>.")
    assert "&lt;1&gt;" in page and "&lt;queued&gt;" in page and "<img" not in page
