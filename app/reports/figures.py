"""The project's one plotting code: a tuning result's trials in, matplotlib figures out (the report inlines them
as PNG; the reproduction benchmark saves them as files).

Figures are built on matplotlib.figure.Figure, never pyplot: no global figure registry, so the API can draw in
its request threads, and nothing needs a display. Every reader is defensive: a trial from an older result may
lack the calibrated attack or the accountant's TPR bounds, and the figure that needs them is skipped (Skipped
says why) rather than drawn from invented values."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from app.tuning.results import CALIBRATED_ATTACK, AttackScores, Baseline, Trial, TrialMeasurement, TuningResult

# Membership-attack FPRs whose TPR every attack stores (AttackScores) and the accountant bounds (REPORTED_FPRS).
STORED_FPRS = (0.001, 0.01)
# Log-log ROC axes start here; a TPR of 0 (or an interval reaching 0) is drawn at this floor.
ROC_FLOOR = 1e-4
DPI = 100


class Skipped(Exception):
    """A figure the result cannot support; the message says what is missing."""


# ---------------------------------------------------------------------------------------------- readers


def calibrated_attack(item: TrialMeasurement | Baseline) -> AttackScores | None:
    """The membership game's calibrated attack, or None where the result predates it."""
    games = getattr(item, "games", None)
    if games is None or getattr(games, "membership", None) is None:
        return None
    attack: AttackScores | None = games.membership.attacks.get(CALIBRATED_ATTACK)
    return attack


def calibrated_tpr(item: TrialMeasurement | Baseline) -> float:
    attack = calibrated_attack(item)
    return attack.tpr_at_1pct_fpr.value if attack is not None else math.nan


def membership_attack(item: TrialMeasurement | Baseline) -> float:
    games = getattr(item, "games", None)
    return games.membership.attack_accuracy if games is not None else math.nan


def population_attack(item: TrialMeasurement | Baseline) -> float:
    games = getattr(item, "games", None)
    return games.population.attack_accuracy if games is not None and games.population is not None else math.nan


@dataclass(frozen=True)
class Panel:
    """One quantity of a trial, drawn as one panel."""

    label: str
    value: Callable[[TrialMeasurement], float]


def surface_panels(baseline: Baseline) -> list[Panel]:
    """Utility and privacy over (clip, noise), as the study's Figures 41 and 45, plus both games."""
    return [
        Panel("utility (test AUC - baseline)", lambda m: m.utility_test - baseline.utility_test),
        Panel("population game (the study's): attack accuracy", population_attack),
        Panel("membership game: attack accuracy", membership_attack),
        Panel(f"membership game: calibrated ({CALIBRATED_ATTACK}) TPR at 1 % FPR", calibrated_tpr),
    ]


def _values(items: Sequence[Any], value: Callable[[Any], float]) -> npt.NDArray[np.float64]:
    return np.array([value(m) for m in items], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- output


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No Software entry: the PNG carries nothing but the picture.
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def png_data_uri(figure: Figure) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(figure)).decode("ascii")


def save_png(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(figure))


# ---------------------------------------------------------------------------------------------- surfaces


def surfaces_figure(
    measurements: Sequence[TrialMeasurement], panels: Sequence[Panel], title: str, *, style: str = "map"
) -> Figure:
    """Each panel's quantity over (noise, clip). style "map": a filled tricontour of the trials with the trials
    as dots (clip on a log scale, as searched); "3d": the study's surfaces (a regular grid as a surface,
    scattered trials as a triangulated one). With fewer than 3 trials, or one noise or clip value (target-epsilon
    mode fixes the noise), only the trials are drawn. Panels with no value in any trial are left out."""
    if not measurements:
        raise Skipped("no trial succeeded")
    clip = _values(measurements, lambda m: m.clip)
    noise = _values(measurements, lambda m: m.noise)
    drawn = [(p, _values(measurements, p.value)) for p in panels]
    drawn = [(p, v) for p, v in drawn if np.isfinite(v).any()]
    if not drawn:
        raise Skipped("no trial has the quantities drawn")
    columns = 2 if len(drawn) > 1 else 1
    rows = math.ceil(len(drawn) / columns)
    figure = Figure(figsize=(6 * columns, 4.5 * rows) if style == "3d" else (5.5 * columns, 4 * rows))
    spread = len(measurements) >= 3 and len(np.unique(clip)) > 1 and len(np.unique(noise)) > 1
    for i, (panel, values) in enumerate(drawn):
        if style == "3d":
            ax = figure.add_subplot(rows, columns, i + 1, projection="3d")
            _surface_3d(ax, clip, noise, values, spread)
        else:
            ax = figure.add_subplot(rows, columns, i + 1)
            _surface_map(figure, ax, clip, noise, values, spread)
        ax.set_title(panel.label, fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _surface_3d(
    ax: Any,
    clip: npt.NDArray[np.float64],
    noise: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    spread: bool,
) -> None:
    from matplotlib import cm

    nc, nn = len(np.unique(clip)), len(np.unique(noise))
    if nc * nn == len(values) and nc >= 2 and nn >= 2 and np.isfinite(values).all():  # a full grid
        order = np.lexsort((noise, clip))
        ax.plot_surface(
            noise[order].reshape(nc, nn),
            clip[order].reshape(nc, nn),
            values[order].reshape(nc, nn),
            cmap=cm.viridis,
            linewidth=0,
        )
    else:
        finite = np.isfinite(values)
        if spread and finite.sum() >= 3:
            try:
                ax.plot_trisurf(noise[finite], clip[finite], values[finite], cmap=cm.viridis, linewidth=0.1)
            except (ValueError, RuntimeError):  # collinear points: no triangulation, the dots remain
                pass
        ax.scatter(noise, clip, values, color="k", s=6)
    ax.set_xlabel("noise multiplier")
    ax.set_ylabel("clipping norm")


def _surface_map(
    figure: Figure,
    ax: Any,
    clip: npt.NDArray[np.float64],
    noise: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    spread: bool,
) -> None:
    finite = np.isfinite(values)
    log_clip = np.log10(clip)
    mappable = None
    if spread and finite.sum() >= 3 and np.ptp(values[finite]) > 0:
        try:
            mappable = ax.tricontourf(
                noise[finite], log_clip[finite], values[finite], levels=12, cmap="viridis", alpha=0.85
            )
        except (ValueError, RuntimeError):  # collinear points: no triangulation, the dots remain
            mappable = None
    dots = ax.scatter(
        noise[finite],
        log_clip[finite],
        c=values[finite],
        cmap="viridis",
        edgecolors="k",
        s=28,
        norm=mappable.norm if mappable is not None else None,
    )
    figure.colorbar(mappable if mappable is not None else dots, ax=ax)
    ax.margins(0.06)
    ax.set_xlabel("noise multiplier")
    ax.set_ylabel("clipping norm (log10)")


# ---------------------------------------------------------------------------------------------- convergence


def convergence_figure(
    runs: Mapping[str, Sequence[Trial]],
    baseline: Baseline,
    title: str,
    *,
    objective_label: str,
    last_trial: int | None = None,
) -> Figure:
    """Each new best objective of a run against its trial number (index + 1), with that trial's utility and
    attacks, as the study's Figures 43 and 44. One line per run."""
    keys: list[tuple[str, Callable[[Trial], float]]] = [
        (objective_label, lambda t: t.objective),
        ("utility (test AUC - baseline)", lambda t: t.utility_test - baseline.utility_test),
        ("membership game: attack accuracy", membership_attack),
        ("population game: attack accuracy", population_attack),
    ]
    trials = [t for run in runs.values() for t in run]
    if not trials:
        raise Skipped("no trial succeeded")
    keys = [(label, value) for label, value in keys if np.isfinite(_values(trials, value)).any()]
    figure = Figure(figsize=(4 * len(keys), 3.8))
    axes = figure.subplots(1, len(keys), squeeze=False)[0]
    for name, run in runs.items():
        ys: list[list[float]]
        best, xs, ys = -math.inf, [], [[] for _ in keys]
        for trial in sorted(run, key=lambda t: t.index):
            if trial.objective > best:  # only new bests, as the study's figures do
                best = trial.objective
                xs.append(trial.index + 1)
                for column, (_, value) in zip(ys, keys, strict=False):
                    column.append(value(trial))
        for ax, column in zip(axes, ys, strict=False):
            ax.plot(xs, column, marker="o", label=name)
    for ax, (label, _) in zip(axes, keys, strict=False):
        ax.set_xlabel("trial")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=9)
        if last_trial is not None:
            ax.set_xlim(0, last_trial + 1)
    if len(runs) > 1:
        axes[0].legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------- report figures


def epsilon_figure(result: TuningResult) -> Figure:
    """Test AUC, and the calibrated attack's TPR at 1 % FPR with the accountant's bound, against epsilon."""
    trials = sorted((t for t in result.trials if t.epsilon is not None), key=lambda t: t.epsilon or 0.0)
    if not trials:
        raise Skipped("no trial has a finite epsilon (all trained without noise)")
    eps = _values(trials, lambda t: t.epsilon)
    rec = result.recommendation
    with_attack = [t for t in trials if calibrated_attack(t) is not None]
    figure = Figure(figsize=(11 if with_attack else 5.5, 4))
    axes = figure.subplots(1, 2 if with_attack else 1, squeeze=False)[0]
    ax = axes[0]
    _errorbar(ax, eps, [t.utility_test_interval for t in trials], "trials", "C0")
    ax.axhline(result.baseline.utility_test, color="k", ls="--", lw=1, label="baseline (no DP)")
    if rec is not None and rec.epsilon is not None:
        utility = rec.confirmation.utility_test if rec.confirmation is not None else rec.utility_test_interval
        _errorbar(ax, np.array([rec.epsilon]), [utility], "recommendation", "C3", marker="*", size=14)
    ax.set_xlabel(f"epsilon (PLD, at delta {result.delta:.2g})")
    ax.set_ylabel("test ROC-AUC")
    ax.set_title("utility", fontsize=9)
    ax.legend(fontsize=7)
    if with_attack:
        ax = axes[1]
        attack_eps = _values(with_attack, lambda t: t.epsilon)
        measured = [attack.tpr_at_1pct_fpr for attack in map(calibrated_attack, with_attack) if attack is not None]
        _errorbar(ax, attack_eps, measured, f"{CALIBRATED_ATTACK} (measured)", "C0")
        bounded = [t for t in trials if t.tpr_bound_at_1pct_fpr is not None]
        if bounded:
            ax.plot(
                _values(bounded, lambda t: t.epsilon),
                _values(bounded, lambda t: t.tpr_bound_at_1pct_fpr),
                color="C1",
                lw=2,
                label="accountant's bound (any attack)",
            )
        base = calibrated_attack(result.baseline)
        if base is not None:
            ax.axhline(base.tpr_at_1pct_fpr.value, color="k", ls="--", lw=1, label="baseline (no DP)")
        ax.axhline(0.01, color="grey", ls=":", lw=1, label="guessing (1 %)")
        rec_attack = calibrated_attack(rec) if rec is not None else None
        if rec is not None and rec.epsilon is not None and rec_attack is not None:
            _errorbar(
                ax, np.array([rec.epsilon]), [rec_attack.tpr_at_1pct_fpr], "recommendation", "C3", marker="*", size=14
            )
        ax.set_xlabel(f"epsilon (PLD, at delta {result.delta:.2g})")
        ax.set_ylabel("TPR at 1 % FPR")
        ax.set_title("membership game: calibrated attack", fontsize=9)
        ax.legend(fontsize=7)
    if eps.max() > 20 * eps.min():
        for ax in axes:
            ax.set_xscale("log")
    figure.tight_layout()
    return figure


def _errorbar(
    ax: Any,
    xs: npt.NDArray[np.float64],
    estimates: Sequence[Any],
    label: str,
    colour: str,
    marker: str = "o",
    size: int = 5,
) -> None:
    values = np.array([e.value for e in estimates])
    low = values - np.array([e.low for e in estimates])
    high = np.array([e.high for e in estimates]) - values
    ax.errorbar(xs, values, yerr=[low, high], fmt=marker, color=colour, ms=size, capsize=2, lw=1, label=label)


def pareto_figure(result: TuningResult) -> Figure:
    """Validation AUC against the objective game's attack accuracy; the front joined, the recommendation starred."""
    if not result.trials:
        raise Skipped("no trial succeeded")
    figure = Figure(figsize=(6, 4.5))
    ax = figure.subplots()
    attack = _values(result.trials, lambda t: t.attack_accuracy)
    utility = _values(result.trials, lambda t: t.utility_validation)
    ax.scatter(attack, utility, color="0.6", s=20, label="trials")
    front = sorted((t for t in result.trials if t.index in set(result.pareto_front)), key=lambda t: t.attack_accuracy)
    if front:
        ax.plot(
            [t.attack_accuracy for t in front],
            [t.utility_validation for t in front],
            color="C0",
            marker="o",
            label="Pareto front",
        )
    b = result.baseline
    ax.scatter([b.attack_accuracy], [b.utility_validation], color="k", marker="x", s=60, label="baseline (no DP)")
    rec = result.recommendation
    proposed = next((t for t in result.trials if rec is not None and t.index == rec.index), None)
    if proposed is not None:
        ax.scatter(
            [proposed.attack_accuracy],
            [proposed.utility_validation],
            color="C3",
            marker="*",
            s=220,
            zorder=5,
            label=f"recommended (trial #{proposed.index})",
        )
    ax.set_xlabel(f"attack accuracy ({result.measurement.privacy_game} game; lower is more private)")
    ax.set_ylabel("validation ROC-AUC")
    ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def roc_figure(result: TuningResult) -> Figure:
    """The calibrated attack's stored operating points (TPR at 0.1 % and 1 % FPR) on log-log axes, baseline
    against recommendation, with the accountant's TPR bounds for the recommendation."""
    base = calibrated_attack(result.baseline)
    rec = result.recommendation
    rec_attack = calibrated_attack(rec) if rec is not None else None
    if base is None and rec_attack is None:
        raise Skipped(f"neither the baseline nor the recommendation has the calibrated ({CALIBRATED_ATTACK}) attack")
    figure = Figure(figsize=(5.5, 4.5))
    ax = figure.subplots()
    grid = np.logspace(math.log10(ROC_FLOOR), 0, 50)
    ax.plot(grid, grid, color="grey", ls=":", lw=1, label="guessing (TPR = FPR)")
    fprs = np.array(STORED_FPRS)
    for name, attack, colour in (("baseline (no DP)", base, "k"), ("recommendation", rec_attack, "C3")):
        if attack is None:
            continue
        estimates = [attack.tpr_at_0_1pct_fpr, attack.tpr_at_1pct_fpr]
        values = np.array([max(e.value, ROC_FLOOR) for e in estimates])
        low = values - np.array([max(e.low, ROC_FLOOR) for e in estimates])
        high = np.array([max(e.high, ROC_FLOOR) for e in estimates]) - values
        ax.errorbar(
            fprs,
            values,
            yerr=[low, high],
            color=colour,
            marker="o",
            capsize=3,
            lw=1,
            label=f"{name}, attack AUC {attack.auc.value:.3f}",
        )
    if rec is not None and rec.tpr_bound_at_1pct_fpr is not None and rec.tpr_bound_at_0_1pct_fpr is not None:
        ax.plot(
            fprs,
            [rec.tpr_bound_at_0_1pct_fpr, rec.tpr_bound_at_1pct_fpr],
            color="C1",
            marker="s",
            lw=2,
            label="accountant's bound at the recommendation",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(ROC_FLOOR, 1)
    ax.set_ylim(ROC_FLOOR, 1.05)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def score_histogram_figure(result: TuningResult) -> Figure:
    """The calibrated attack's binned per-record scores, members against nonmembers, baseline and recommendation."""
    panels = [
        (name, _histogram(item))
        for name, item in (("baseline (no DP)", result.baseline), ("recommendation", result.recommendation))
    ]
    panels = [(name, histogram) for name, histogram in panels if histogram is not None]
    if not panels:
        raise Skipped(f"the result stores no binned {CALIBRATED_ATTACK} scores (recorded only by newer versions)")
    figure = Figure(figsize=(5.5 * len(panels), 3.8))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, histogram) in zip(axes, panels, strict=False):
        edges = np.array(histogram.edges)
        ax.stairs(histogram.nonmembers, edges, color="C0", lw=2, label="nonmembers (holdout)")
        ax.stairs(histogram.members, edges, color="C3", lw=2, label="members")
        ax.set_xlabel(f"{CALIBRATED_ATTACK} membership score")
        ax.set_ylabel("records")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    figure.tight_layout()
    return figure


def _histogram(item: TrialMeasurement | Baseline | None) -> Any:
    games = getattr(item, "games", None)
    return getattr(games.membership, "score_histogram", None) if games is not None else None
