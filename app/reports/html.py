"""A tuning result as one self-contained HTML page: the recommendation card, the figures inlined as PNG data
URIs, inline CSS, no script and no external URL. Every string from the result is escaped."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure

from app.reports import figures
from app.tuning.results import CALIBRATED_ATTACK, Estimate, Recommendation, TuningResult

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1d2330; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
     border-bottom: 1px solid #d6dae3; padding-bottom: .2em; }
.status { background: #eef3fb; border-left: 4px solid #3b6fc4; padding: .5em .8em; margin: 1em 0; }
.card { border: 1px solid #c9cfdb; border-radius: 6px; padding: 1em 1.2em; background: #fafbfd; }
.headline { font-weight: 600; font-size: 1.05em; }
.warning { border-left: 4px solid #c4493b; background: #fbefee; padding: .6em .8em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { text-align: left; padding: .25em .8em .25em 0; vertical-align: top; border-bottom: 1px solid #e6e9ef; }
th { font-weight: 600; color: #44506a; }
td.num { font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #e6e9ef; }
figcaption { font-size: .9em; color: #44506a; max-width: 60em; }
.skipped { color: #7a4b00; font-style: italic; }
.small { font-size: .88em; color: #44506a; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    tiny_or_huge = abs(value) >= 1000 or (value != 0 and abs(value) < 1e-3)
    return f"{value:.{digits}g}" if tiny_or_huge else f"{value:.{digits}f}"


def estimate(value: Estimate | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{num(value.value, digits)} [{num(value.low, digits)}, {num(value.high, digits)}]"


def epsilon_text(epsilon: float | None) -> str:
    return "∞ (no noise: no guarantee)" if epsilon is None else f"{epsilon:.4g}"


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head><body>\n<h1>{esc(title)}</h1>\n{body}\n</body></html>\n"
    )


def _status(status_line: str | None) -> str:
    return f'<p class="status">{esc(status_line)}</p>' if status_line else ""


def _table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...] | None = None) -> str:
    """Rows of a plain key and already-escaped cells."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join(
        f"<tr><th>{esc(key)}</th>{''.join(f'<td class=num>{c}</td>' for c in cells)}</tr>" for key, *cells in rows
    )
    return f"<table>{head}{body}</table>"


def render_status_page(title: str, status_line: str, message: str) -> str:
    """A page for a job with nothing to draw yet (no baseline)."""
    return _page(title, _status(status_line) + f"<p>{esc(message)}</p>")


# ---------------------------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class ReportFigure:
    title: str
    caption: str
    image: str | None  # a data URI, or None when skipped
    skipped: str | None = None


def _draw(title: str, draw: Callable[[], Figure], caption: Callable[[], str]) -> ReportFigure:
    try:
        figure = draw()
    except figures.Skipped as exc:
        return ReportFigure(title, "", None, f"{title}: not drawn, {exc}.")
    return ReportFigure(title, caption(), figures.png_data_uri(figure))


def report_figures(result: TuningResult) -> list[ReportFigure]:
    trials = sorted(result.trials, key=lambda t: t.index)
    game = result.measurement.privacy_game
    no_epsilon = sum(1 for t in trials if t.epsilon is None)
    has_bound = any(t.tpr_bound_at_1pct_fpr is not None for t in trials)
    has_attack = any(figures.calibrated_attack(t) is not None for t in trials)
    spread = len(trials) >= 3 and len({t.clip for t in trials}) > 1 and len({t.noise for t in trials}) > 1

    def epsilon_caption() -> str:
        text = (
            "Left: each trial's test ROC-AUC with its 95 % Hanley-McNeil interval against its epsilon (PLD "
            f"accountant, delta {result.delta:.3g}); dashed: the non-private baseline; star: the "
            "recommendation (its confirmation's mean and 95 % t-interval when confirmed). "
        )
        if has_attack:
            text += (
                f"Right: the calibrated reference-model attack ({CALIBRATED_ATTACK}) in the membership game "
                "(members against holdout records): the share of members it finds at 1 % false positives, "
                "with a Clopper-Pearson interval; dotted: guessing. "
            )
            text += (
                "Orange: the accountant's bound on that TPR for any attack, min over ε' of e^ε'·1 % + δ(ε') "
                "from the privacy-loss distribution of the same training. The measured TPR is what one "
                "simulated attacker reaches; the bound holds for every attacker if training sampled as the "
                "accountant assumes (Poisson sampling, add/remove-one adjacency). "
                if has_bound
                else "The accountant's TPR bound is not in this result (recorded only by newer versions). "
            )
        else:
            text += f"The calibrated attack ({CALIBRATED_ATTACK}) is not in this result's trials, so no TPR panel. "
        if no_epsilon:
            text += f"{no_epsilon} trial(s) trained without noise have no finite epsilon and are not drawn."
        return text

    def surfaces_caption() -> str:
        text = (
            "Each panel: one quantity over the searched noise multiplier and clipping norm (log scale); dots "
            "are the trials. Utility is test ROC-AUC minus the baseline's; attack accuracy is the highest over "
            "the attacks (0.5 is guessing), in each game the result has; the calibrated attack's TPR at 1 % "
            "FPR is the membership game's. As the study's Figures 41 and 45, but from this search's own "
            "trials: the optimizer samples where it expects good objectives, so other regions are thinly "
            "covered. "
        )
        text += (
            "Colour between the dots is a linear interpolation over a triangulation, not a measurement."
            if spread
            else "Only the trials are drawn: fewer than 3, or a single clip or noise value (the "
            "target-epsilon mode fixes the noise), give no surface to interpolate."
        )
        return text

    def convergence_caption() -> str:
        return (
            f"Each new best objective against the trial (index + 1) that found it, with that trial's test "
            f"utility and attack accuracies, as the study's Figures 43 and 44. Objective at t = "
            f"{result.tradeoff:g}: t·(validation AUC gain) + (1 − t)·(attack accuracy reduction) against the "
            f"baseline, in the {game} game. Each trial is one noisy measurement (mean over its repeats), so "
            "an early lucky draw can stay best; the recommendation is chosen by the Gaussian process's "
            "posterior mean, not by this line."
        )

    def pareto_caption() -> str:
        return (
            f"Each trial's validation ROC-AUC (what selection sees; test is kept for reporting) against its "
            f"attack accuracy in the {game} game (the highest over the attacks; 0.5 is guessing). Blue: the "
            "Pareto front, the trials no other trial beats on both; cross: the baseline without DP; star: the "
            "search trial the recommendation was chosen at (its confirmed figures are in the card). Each point "
            "is one measurement with sampling noise, so close points are not reliably ordered."
        )

    def roc_caption() -> str:
        return (
            f"The calibrated attack ({CALIBRATED_ATTACK}, membership game) at the only operating points a "
            "result stores: its TPR at 0.1 % and 1 % FPR (threshold read from the ROC on the same records), "
            "with Clopper-Pearson intervals, for the baseline and the recommendation (the first confirmation "
            "repeat's attack when confirmed), on log-log axes. No full ROC curve is stored; lines only join "
            f"the two points. A TPR or interval end of 0 is drawn at {figures.ROC_FLOOR:g}. Dotted: guessing "
            "(TPR = FPR). Orange, when present: the accountant's TPR bound for any attack at the "
            "recommendation's (epsilon, delta)."
        )

    def histogram_caption() -> str:
        return (
            f"The calibrated attack's ({CALIBRATED_ATTACK}) per-record membership scores in the membership game, "
            "counted in equal bins over [0, 1]: members (trained on) against as many holdout records, for the "
            "baseline and the recommendation (its first repeat). Only counts per bin are stored: no record and "
            "no data value. A leaking model pushes members' scores above the nonmembers'; two overlapping "
            "distributions mean the attack cannot tell them apart. The score is the share of population "
            "records whose likelihood ratio the record's dominates."
        )

    baseline = result.baseline
    return [
        _draw("Utility and attack against epsilon", lambda: figures.epsilon_figure(result), epsilon_caption),
        _draw("Pareto front", lambda: figures.pareto_figure(result), pareto_caption),
        _draw(
            "Utility and privacy over (clip, noise)",
            lambda: figures.surfaces_figure(trials, figures.surface_panels(baseline), f"{len(trials)} trials"),
            surfaces_caption,
        ),
        _draw(
            "Convergence",
            lambda: figures.convergence_figure(
                {"search": trials},
                baseline,
                f"new best results over {len(trials)} trials",
                objective_label=f"objective (t = {result.tradeoff:g}, {game} game)",
            ),
            convergence_caption,
        ),
        _draw("Membership attack: ROC operating points", lambda: figures.roc_figure(result), roc_caption),
        _draw("Membership scores", lambda: figures.score_histogram_figure(result), histogram_caption),
    ]


def _figures_html(items: Sequence[ReportFigure]) -> str:
    parts = []
    for item in items:
        if item.image is None:
            parts.append(f'<p class="skipped">{esc(item.skipped)}</p>')
            continue
        parts.append(
            f'<figure><h3>{esc(item.title)}</h3><img alt="{esc(item.title)}" src="{item.image}">'
            f"<figcaption>{esc(item.caption)}</figcaption></figure>"
        )
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- the card


def _recommendation_card(result: TuningResult) -> str:
    rec = result.recommendation
    if rec is None:
        reason = result.no_recommendation_reason or "no reason was recorded"
        return f'<div class="card warning"><p class="headline">No recommendation.</p><p>{esc(reason)}</p></div>'
    return f'<div class="card">{_recommendation_body(result, rec)}</div>'


def _recommendation_body(result: TuningResult, rec: Recommendation) -> str:
    training = rec.training
    confirmation = rec.confirmation
    parts = [f'<p class="headline">{esc(rec.headline)}</p>']
    spec = training.model
    model = (
        f"Keras model JSON ({len(spec.keras_json)} characters)"
        if spec.keras_json
        else f"MLP hidden {spec.hidden}, {spec.activation}, dropout {spec.dropout:g}"
    )
    parts.append(
        "<h3>Training configuration the guarantee is for</h3>"
        + _table(
            [
                ("clipping norm", esc(f"{training.clip:.4g}")),
                ("noise multiplier", esc(f"{training.noise:.4g}")),
                ("epochs", esc(training.epochs)),
                ("batch size", esc(training.batch_size)),
                ("optimizer", esc(training.optimizer)),
                ("learning rate", esc(f"{training.learning_rate:g}")),
                ("records trained on (n)", esc(training.n)),
                ("sampling rate q", esc(f"{training.sampling_rate:.4g}")),
                ("steps", esc(training.steps)),
                ("model", esc(model)),
            ]
        )
    )
    parts.append(
        "<h3>Guarantee</h3>"
        + _table(
            [
                ("epsilon (PLD)", esc(epsilon_text(training.epsilon))),
                ("epsilon (RDP, cross-check)", esc(epsilon_text(training.epsilon_rdp))),
                ("delta", esc(f"{training.delta:.3g}")),
                ("attack accuracy bound (any attack)", esc(num(rec.attack_accuracy_bound))),
                ("TPR bound at 1 % FPR (any attack)", esc(num(rec.tpr_bound_at_1pct_fpr))),
                ("TPR bound at 0.1 % FPR (any attack)", esc(num(rec.tpr_bound_at_0_1pct_fpr))),
            ]
        )
        + f'<p class="small">Accountant and its assumptions: {esc(training.accountant)}</p>'
    )
    if result.final_model is not None:
        parts.append(
            f"<p>Final model trained once: epsilon {esc(epsilon_text(result.final_model.epsilon))} at "
            f"delta {esc(f'{result.final_model.delta:.3g}')} (privacy.json, tuned on "
            f"{esc(result.final_model.tuned_on)} data).</p>"
        )
    baseline = result.baseline
    attack = figures.calibrated_attack(rec)
    base_attack = figures.calibrated_attack(baseline)
    where = (
        f"means over {confirmation.repeats} fresh seeds with 95 % t-intervals (confirmation, K = "
        f"{confirmation.reference_models})"
        if confirmation is not None
        else "the search trial's own single measurement (not confirmed)"
    )
    rows = [
        (
            "test ROC-AUC",
            esc(estimate(baseline.utility_test_interval)),
            esc(estimate(confirmation.utility_test if confirmation else rec.utility_test_interval)),
        ),
        (
            "validation ROC-AUC",
            esc(
                estimate(baseline.utility_validation_interval)
                if baseline.utility_validation_interval
                else num(baseline.utility_validation)
            ),
            esc(estimate(confirmation.utility_validation) if confirmation else num(rec.utility_validation)),
        ),
        (
            "utility loss (test)",
            "",
            esc(estimate(confirmation.utility_loss) if confirmation else num(rec.utility_loss)),
        ),
        (
            f"attack accuracy ({rec.privacy_game} game)",
            esc(num(baseline.attack_accuracy)),
            esc(estimate(confirmation.attack_accuracy) if confirmation else num(rec.attack_accuracy)),
        ),
        (
            f"{CALIBRATED_ATTACK} TPR at 1 % FPR (membership game)",
            esc(estimate(base_attack.tpr_at_1pct_fpr) if base_attack else "–"),
            esc(estimate(attack.tpr_at_1pct_fpr) if attack else "–"),
        ),
        (
            "empirical epsilon lower bound",
            esc(num(baseline.epsilon_lower_bound)),
            esc(num(confirmation.epsilon_lower_bound if confirmation else rec.epsilon_lower_bound)),
        ),
    ]
    lower_bound_attack = rec.games.membership.epsilon_lower_bound_attack if rec.games is not None else None
    parts.append(
        "<h3>Utility and attack</h3>"
        + _table(rows, ("", "baseline (no DP)", "recommended"))
        + f'<p class="small">Recommended figures: {esc(where)}. The empirical epsilon lower bound is what '
        "the strongest label-free attack proves at 95 % confidence"
        + (f" (here {esc(lower_bound_attack)})" if lower_bound_attack else "")
        + "; the accountant's epsilon is an upper bound. Chosen by "
        f"{esc(rec.selection.method.replace('_', ' '))} among {esc(rec.selection.feasible)} feasible "
        f"trial(s); proposed by search trial #{esc(rec.index)}.</p>"
    )
    parts.append(f"<h3>Tuning cost</h3><p>{esc(rec.tuning_cost)}</p>")
    if rec.notes:
        parts.append("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(note)}</li>" for note in rec.notes) + "</ul>")
    return "\n".join(parts)


def _summary(result: TuningResult) -> str:
    dataset = result.dataset
    source = dataset.get("source") or dataset.get("dataset_id") or "–"
    splits = result.splits
    guarantee = result.guarantee
    limit = {
        "budget": f"max epsilon {guarantee.max_epsilon:g}" if guarantee.max_epsilon is not None else "",
        "target_epsilon": f"target epsilon {guarantee.target_epsilon:g}"
        if guarantee.target_epsilon is not None
        else "",
        "no_guarantee": "no guarantee asked (noise 0 searched)",
    }[result.mode]
    rows = [
        ("data set", esc(source)),
        (
            "splits",
            esc(
                f"members {splits.members}, holdout {splits.holdout}, validation {splits.validation}, "
                f"test {splits.test}, external {splits.external if splits.external is not None else '–'}"
            ),
        ),
        ("mode", esc(f"{result.mode} ({limit})")),
        ("trade-off t", esc(f"{result.tradeoff:g} (1 = utility only, 0 = privacy only)")),
        ("privacy game of the objective", esc(result.measurement.privacy_game)),
        (
            "trials",
            esc(
                f"{len(result.trials)} succeeded, {len(result.failed_trials)} failed"
                + (f", {len(result.pruned_trials)} pruned" if result.pruned_trials else "")
                + (f"; stopped by {result.stop_reason}" if result.stop_reason else "")
            ),
        ),
        (
            "baseline (no DP)",
            esc(
                f"test ROC-AUC {result.baseline.utility_test:.3f}, attack accuracy "
                f"{result.baseline.attack_accuracy:.3f}"
            ),
        ),
        ("seconds", esc(f"{result.seconds:.0f}")),
    ]
    return _table(rows)


def render_report(result: TuningResult, *, title: str | None = None, status_line: str | None = None) -> str:
    """The whole report: status, recommendation card, run summary, figures."""
    source = result.dataset.get("source") or result.dataset.get("dataset_id") or "data set"
    page_title = title or f"dptune report: {source}"
    drawn = report_figures(result)
    body = [
        _status(status_line),
        "<h2>Recommendation</h2>",
        _recommendation_card(result),
        "<h2>Run</h2>",
        _summary(result),
        "<h2>Figures</h2>",
        _figures_html(drawn),
    ]
    return _page(page_title, "\n".join(body))
