"""Reproduce the source study (chapter 6): Tables 11-14, Figures 41-46, and the search cost vs grid and random.

    python benchmarks/reproduce_study.py [--setup synthea-sgd|synthea-adam|hiv|all] [--quick] [--out DIR]
                                         [--workers 2] [--trials 30] [--seeds 5]

Writes DIR/figures/*.png, DIR/results/reproduction.json and DIR/reproduction.md (DIR defaults to docs/).
--quick runs the same pipeline at tiny scale (a smoke test, not a measurement): a 2 x 2 grid, 3 trials per search,
one seed.
Trials run in `--workers` processes with one TensorFlow thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.objective import MEANINGFUL_EPSILON, objective  # noqa: E402
from app.tuning.prepared import PreparedData  # noqa: E402
from app.tuning.results import Baseline, MeasurementSpec, TrialMeasurement  # noqa: E402
from app.tuning.search import Observation, SearchSpace, SearchSpec, grid_points, search_step  # noqa: E402

HIV_CSV = ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv"
TRADEOFFS = ("0.25", "0.5", "0.75")
MAX_BOUNDS = (5.0, 10.0, 20.0, 100.0)
# The study's game is the population game (members against the other cluster, its "nonmembers"): the objective reads
# it. K of the calibrated attack (membership game, recorded next to it) kept small: each reference model is a training.
MEASUREMENT = MeasurementSpec(privacy_game="population", reference_models=2, audit_reference_models=4)

# The study's figures (Tables 11-14). Table 11's columns are SGD and Adam. The study's "utility on nonmembers" is
# utility on the other cluster, which dptune calls the external set: it is kept under utility_external.
STUDY = {
    "synthea_sgd": {
        "baseline": {"utility_members": 0.990, "utility_test": 0.984, "utility_external": 0.986, "attack_accuracy": 0.622},
        "tradeoffs": {"0.25": (0.046, 0.496), "0.5": (0.037, 0.497), "0.75": (0.002, 0.518)},
    },
    "synthea_adam": {
        "baseline": {"utility_members": 0.998, "utility_test": 0.992, "utility_external": 0.995, "attack_accuracy": 0.639},
        "tradeoffs": {"0.25": (0.003, 0.508), "0.5": (0.002, 0.504), "0.75": (0.0, 0.51)},
    },
    "hiv": {
        "baseline": {"utility_members": 0.978, "utility_test": 0.966, "utility_external": 0.987, "attack_accuracy": 0.767},
        "tradeoffs": {"0.25": (0.012, 0.488), "0.5": (0.004, 0.494), "0.75": (0.001, 0.490)},
    },
}


@dataclass
class Setup:
    key: str
    spec: ModelSpec
    grid: SearchSpec
    grid_note: str
    data: PreparedData | None = None
    prep_seconds: float = 0.0
    prep_report: dict = field(default_factory=dict)


def make_setups(quick: bool) -> dict[str, Setup]:
    study_grid = SearchSpec(method="grid", min_clip=0.1, max_clip=10.0, max_noise=10.0, grid_step=0.5)
    # HIV: the study's step 0.2 is 2,500 trainings; step 0.5 over clip 0.1..5 and noise 0..5 is 100.
    hiv_grid = SearchSpec(method="grid", min_clip=0.1, max_clip=5.0, max_noise=5.0, grid_step=0.5)
    setups = {
        "synthea-sgd": Setup("synthea_sgd", ModelSpec(hidden=[50, 10], optimizer="sgd", epochs=10), study_grid,
                             "the study's grid: clip 0.1..9.6, noise 0..9.5, step 0.5 (400 trainings)"),
        "synthea-adam": Setup("synthea_adam", ModelSpec(hidden=[50, 10], optimizer="adam", epochs=5), study_grid,
                              "the study's grid: clip 0.1..9.6, noise 0..9.5, step 0.5 (400 trainings)"),
        "hiv": Setup("hiv", ModelSpec(hidden=[200, 100], dropout=0.1, optimizer="sgd", epochs=10), hiv_grid,
                     "step 0.5 on the sub-range clip 0.1..4.6, noise 0..4.5 (100 trainings; the study's step "
                     "0.2 over 0..10 would be 2,500)"),
    }
    if quick:
        tiny = SearchSpec(method="grid", min_clip=0.1, max_clip=10.0, max_noise=10.0, grid_step=5.0)
        for s in setups.values():
            s.spec = s.spec.model_copy(update={"epochs": 1, "hidden": [8]})
            s.grid, s.grid_note = tiny, "quick: step 5 (4 trainings)"
    return setups


def load_data(setup_name: str, quick: bool) -> tuple[PreparedData, dict]:
    from app.datasets import BUILTIN_DATASETS, ButinaSplit, prepare_dataset, read_table

    if setup_name.startswith("synthea"):
        builtin = BUILTIN_DATASETS["synthea-covid"]
        frame = builtin.load(0)
        data, report = prepare_dataset(frame, label=builtin.label, split=builtin.default_split, seed=0)
    else:
        frame = read_table(HIV_CSV)
        frame = frame[["smiles", "HIV_active"]]
        split = ButinaSplit(max_compounds=1500) if quick else ButinaSplit()
        data, report = prepare_dataset(frame, label="HIV_active", split=split, smiles_column="smiles", seed=0)
    return data, report.model_dump(mode="json")


# ---- worker processes: the prepared data is sent once per process ----
_DATA: PreparedData | None = None
_SPEC: ModelSpec | None = None


def _init_worker(data: PreparedData, spec: ModelSpec) -> None:
    global _DATA, _SPEC
    from app.tuning.train import configure_threads

    configure_threads(1)
    _DATA, _SPEC = data, spec


def _measure(point: tuple[float, float], delta: float) -> TrialMeasurement:
    from app.tuning.engine import run_trial

    assert _DATA is not None and _SPEC is not None
    return run_trial(_DATA, _SPEC, point[0], point[1], delta=delta, measurement=MEASUREMENT, seed=0)


def _baseline_task(delta: float) -> Baseline:
    from app.tuning.engine import run_baseline

    assert _DATA is not None and _SPEC is not None
    return run_baseline(_DATA, _SPEC, MEASUREMENT, seed=0, delta=delta)


def _search_task(method: str, max_bound: float, tradeoff: float, trials: int, seed: int, baseline: Baseline,
                 delta: float) -> list[TrialMeasurement]:
    """One sequential search run (bayes or random) scored at `tradeoff`, through the product's search step, in the
    study's space (noise from 0: no guarantee asked); returns its trials in order."""
    spec = SearchSpec(method=method, trials=trials, max_clip=max_bound, max_noise=max_bound)  # type: ignore[arg-type]
    done: list[TrialMeasurement] = []
    observed: list[Observation] = []
    started = time.perf_counter()
    while (step := search_step(spec, study_space(spec), observed, [], seed=seed,
                               elapsed_seconds=time.perf_counter() - started)).point is not None:
        m = _measure(step.point, delta)
        done.append(m)
        observed.append(Observation(step.point, objective(m.utility_validation, m.attack_accuracy, baseline, tradeoff)))
    return done


def study_space(spec: SearchSpec) -> SearchSpace:
    """The study's space: clip in [min_clip, max_clip], noise in [0, max_noise] (max_epsilon null)."""
    return SearchSpace(min_clip=spec.min_clip, max_clip=spec.max_clip, min_noise=0.0, max_noise=spec.max_noise)


def trials_to_reach(measurements: list[TrialMeasurement], baseline: Baseline, target: float) -> int | None:
    for i, m in enumerate(measurements, start=1):
        if objective(m.utility_validation, m.attack_accuracy, baseline, 0.5) >= target:
            return i
    return None


def objective_standard_error(attack_accuracy: float, n_eval: int, tradeoff: float = 0.5) -> float:
    """Standard error of one trial's objective from the attack's finite evaluation set alone (binomial), a lower
    bound on its noise: (1 - t) * sqrt(p (1 - p) / n)."""
    return (1 - tradeoff) * float(np.sqrt(attack_accuracy * (1 - attack_accuracy) / n_eval))


def best_at(measurements: list[TrialMeasurement], baseline: Baseline, tradeoff: float) -> TrialMeasurement:
    return max(measurements, key=lambda m: objective(m.utility_validation, m.attack_accuracy, baseline, tradeoff))


def run_setup(name: str, setup: Setup, args: argparse.Namespace, command: str) -> dict:
    started = time.perf_counter()
    commit = _git_commit()  # the code this run loads now, not whatever is checked out when it ends
    data, report = load_data(name, args.quick)
    prep_seconds = time.perf_counter() - started
    delta = 1.0 / len(data.y_members)
    trials = 3 if args.quick else args.trials
    seeds = list(range(1 if args.quick else args.seeds))
    bounds = (10.0,) if args.quick else MAX_BOUNDS
    print(f"[{name}] prepared {data.split_sizes()} in {prep_seconds:.0f} s", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker, initargs=(data, setup.spec)) as pool:
        baseline = pool.submit(_baseline_task, delta).result()
        print(f"[{name}] baseline {baseline.model_dump(include={'utility_validation', 'utility_test', 'attack_accuracy'})}"
              f" (membership game {baseline.games.membership.attack_accuracy:.3f})", flush=True)
        points = grid_points(setup.grid, study_space(setup.grid))
        grid_future = [pool.submit(_measure, p, delta) for p in points]
        runs: dict[tuple[str, float, float, int], object] = {}

        def submit(method: str, bound: float, tradeoff: float, seed: int) -> None:
            if (method, bound, tradeoff, seed) not in runs:  # the same run is needed by several tables: run it once
                runs[(method, bound, tradeoff, seed)] = pool.submit(_search_task, method, bound, tradeoff, trials, seed,
                                                                    baseline, delta)

        for t in TRADEOFFS:  # Tables 13/14: one optimizer run per t (seed 0, max 10)
            submit("bayes", 10.0, float(t), 0)
        for bound in bounds:  # Figures 43/44/46: convergence per max clip/noise at t = 0.5
            submit("bayes", bound, 0.5, 0)
        for seed in seeds:  # search cost: bayes vs random on the same budget
            for method in ("bayes", "random"):
                submit(method, 10.0, 0.5, seed)
        grid = [f.result() for f in grid_future]
        print(f"[{name}] grid done ({len(grid)} trainings) at {time.perf_counter() - started:.0f} s", flush=True)
        results = {k: f.result() for k, f in runs.items()}  # type: ignore[attr-defined]
    grid_best = best_at(grid, baseline, 0.5)
    grid_best_objective = objective(grid_best.utility_validation, grid_best.attack_accuracy, baseline, 0.5)
    target = grid_best_objective - 0.02 * abs(grid_best_objective)  # 98 % of it (also when it is negative)

    tradeoffs = {}
    for t in TRADEOFFS:
        run = results[("bayes", 10.0, float(t), 0)]
        best = best_at(run, baseline, float(t))
        guaranteed = [m for m in run if m.epsilon is not None and m.epsilon <= MEANINGFUL_EPSILON]
        best_guaranteed = best_at(guaranteed, baseline, float(t)) if guaranteed else None
        tradeoffs[t] = {
            "utility_loss": baseline.utility_test - best.utility_test,
            "attack_accuracy": best.attack_accuracy,
            "epsilon": best.epsilon,
            "clip": best.clip,
            "noise": best.noise,
            "trials": len(run),
            "trial_of_best": run.index(best) + 1,
            # What dptune's recommendation note names when the best point has no meaningful epsilon.
            "best_with_epsilon_le_10": None if best_guaranteed is None else {
                "utility_loss": baseline.utility_test - best_guaranteed.utility_test,
                "attack_accuracy": best_guaranteed.attack_accuracy, "epsilon": best_guaranteed.epsilon,
                "clip": best_guaranteed.clip, "noise": best_guaranteed.noise,
            },
        }
    reach = {m: [trials_to_reach(results[(m, 10.0, 0.5, s)], baseline, target) for s in seeds] for m in ("bayes", "random")}
    # The grid best is the best of hundreds of noisy trials; "within one standard error of it" is a target the
    # noise does not decide.
    assert baseline.games.population is not None
    n_eval = 2 * baseline.games.population.members  # the population game scores every member and external record once
    se = objective_standard_error(grid_best.attack_accuracy, n_eval)
    reach_se = {m: [trials_to_reach(results[(m, 10.0, 0.5, s)], baseline, grid_best_objective - se) for s in seeds]
                for m in ("bayes", "random")}

    def median_reach(values: list[int | None]) -> float | None:
        # A run that never reached the target counts as budget + 1 (a lower bound on its true cost).
        filled = sorted(v if v is not None else trials + 1 for v in values)
        med = float(np.median(filled))
        return None if med > trials else med

    out = {
        "command": command,
        "commit": commit,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "prep_seconds": round(prep_seconds, 1),
        "split_sizes": data.split_sizes().model_dump(),
        "model": setup.spec.model_dump(exclude={"keras_json"}),
        "grid": {"note": setup.grid_note, "points": len(points)},
        "baseline": {
            **baseline.model_dump(include={"utility_members", "utility_holdout", "utility_validation", "utility_test",
                                           "utility_external", "attack_accuracy", "privacy_game", "accuracy_test",
                                           "label_only_attack_accuracy"}),
            # The control model (never saw the members) in the same game, and the membership game next to it.
            "reference_attack_accuracy": baseline.games.population.reference_attack_accuracy,
            "membership_attack_accuracy": baseline.games.membership.attack_accuracy,
        },
        # Accuracy of always predicting the test split's most common class: the floor for accuracy_test.
        "test_majority_rate": float(np.bincount(data.y_test).max() / len(data.y_test)),
        "tradeoffs": tradeoffs,
        "grid_best_objective": grid_best_objective,
        "grid_best": {"clip": grid_best.clip, "noise": grid_best.noise, "utility_loss": baseline.utility_test - grid_best.utility_test,
                      "attack_accuracy": grid_best.attack_accuracy, "epsilon": grid_best.epsilon},
        "search_efficiency": {
            "bayes_trials_to_98pct": median_reach(reach["bayes"]),
            "random_trials_to_98pct": median_reach(reach["random"]),
            "grid_trials": len(points),
            "per_seed": reach,
            "budget": trials,
            "within_one_standard_error": {
                "objective_standard_error": se,
                "bayes_trials": median_reach(reach_se["bayes"]),
                "random_trials": median_reach(reach_se["random"]),
                "per_seed": reach_se,
            },
        },
    }
    plot_setup(name, setup, baseline, grid, results, bounds, trials, args.out / "figures")
    raw = {"baseline": {**baseline.model_dump(exclude={"games"}),
                        "membership_attack_accuracy": baseline.games.membership.attack_accuracy}, "grid": [_raw(m) for m in grid],
           "searches": [{"method": k[0], "max_bound": k[1], "tradeoff": k[2], "seed": k[3],
                         "trials": [_raw(m) for m in v]} for k, v in results.items()]}
    raw_path = args.out / "results" / f"reproduction-{name}-trials.json"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(raw, separators=(",", ":")))
    return out


def _raw(m: TrialMeasurement) -> dict:
    """Every trial's measurement, enough to recompute the tables with another objective or target."""
    return {"clip": round(m.clip, 5), "noise": round(m.noise, 5), "utility_validation": round(m.utility_validation, 5),
            "utility_test": round(m.utility_test, 5), "attack_accuracy": round(m.attack_accuracy, 5),
            "membership_attack_accuracy": round(m.games.membership.attack_accuracy, 5),
            "epsilon": None if m.epsilon is None else round(m.epsilon, 5)}


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def plot_setup(name, setup, baseline, grid, results, bounds, trials, figures: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm

    figures.mkdir(parents=True, exist_ok=True)

    def surfaces(measurements, title: str, path: Path, interpolate: bool) -> None:
        clip = np.array([m.clip for m in measurements])
        noise = np.array([m.noise for m in measurements])
        util = np.array([m.utility_test - baseline.utility_test for m in measurements])
        priv = np.array([m.attack_accuracy for m in measurements])
        fig = plt.figure(figsize=(11, 4.5))
        for i, (values, label) in enumerate(((util, "utility (AUC - baseline AUC)"), (priv, "privacy loss (attack accuracy)"))):
            ax = fig.add_subplot(1, 2, i + 1, projection="3d")
            if interpolate:
                ax.plot_trisurf(noise, clip, values, cmap=cm.viridis, linewidth=0.1, antialiased=True)
                ax.scatter(noise, clip, values, color="k", s=6)
            else:
                nc, nn = len(np.unique(clip)), len(np.unique(noise))
                order = np.lexsort((noise, clip))
                ax.plot_surface(noise[order].reshape(nc, nn), clip[order].reshape(nc, nn),
                                values[order].reshape(nc, nn), cmap=cm.viridis, linewidth=0)
            ax.set_xlabel("noise multiplier")
            ax.set_ylabel("clipping norm")
            ax.set_zlabel(label, fontsize=8)
            ax.set_title(label, fontsize=9)
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)

    surfaces(grid, f"{name}: grid search surfaces ({setup.grid_note.split(':')[0]})", figures / f"{name}-grid-surfaces.png",
             interpolate=False)
    optimizer_trials = results[("bayes", 10.0, 0.5, 0)]
    surfaces(optimizer_trials, f"{name}: surfaces from the optimizer's {len(optimizer_trials)} trials alone",
             figures / f"{name}-optimizer-surfaces.png", interpolate=True)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for bound in bounds:
        run = results[("bayes", bound, 0.5, 0)]
        best, xs, ys = -np.inf, [], {"objective": [], "utility": [], "privacy": []}
        for i, m in enumerate(run, start=1):
            o = objective(m.utility_validation, m.attack_accuracy, baseline, 0.5)
            if o > best:  # mark only new bests, as the study's figures do
                best = o
                xs.append(i)
                ys["objective"].append(o)
                ys["utility"].append(m.utility_test - baseline.utility_test)
                ys["privacy"].append(m.attack_accuracy)
        for ax, key in zip(axes, ("objective", "utility", "privacy")):
            ax.plot(xs, ys[key], marker="o", label=f"max clip/noise {bound:g}")
    for ax, key in zip(axes, ("objective (t = 0.5)", "utility (AUC - baseline)", "privacy loss (attack acc.)")):
        ax.set_xlabel("trial")
        ax.set_title(key, fontsize=9)
        ax.set_xlim(0, trials + 1)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{name}: new best results over trials (Bayesian optimisation)")
    fig.tight_layout()
    fig.savefig(figures / f"{name}-convergence.png", dpi=110)
    plt.close(fig)


ANALYSIS_START, ANALYSIS_END = "<!-- analysis: kept across runs -->", "<!-- /analysis -->"


def _kept_analysis(path: Path) -> str:
    """The hand-written reading of the figures between the analysis markers, which a re-run keeps."""
    text = path.read_text() if path.exists() else ""
    if ANALYSIS_START in text and ANALYSIS_END in text:
        return text[text.index(ANALYSIS_START) : text.index(ANALYSIS_END) + len(ANALYSIS_END)]
    return f"{ANALYSIS_START}\n{ANALYSIS_END}"


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def write_markdown(results: dict, args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Reproducing the study (chapter 6, Tables 11-14, Figures 41-46)",
        "",
        f"Made by `benchmarks/reproduce_study.py` on {os.cpu_count()} cores, one run per setup (each section gives",
        "its command and commit); each run rewrites this file and `docs/results/reproduction.json`, keeping the other",
        "setups' results, and writes its figures to `docs/figures/`. The study's figures are in brackets.",
        "",
        ANALYSIS_START,
        "",
    ]
    for key, res in results.items():
        if key == "search_efficiency":
            continue
        study = STUDY[key]
        b, sb = res["baseline"], study["baseline"]
        lines += [
            f"## {key} ({res['wall_seconds']:.0f} s wall, data preparation {res['prep_seconds']:.0f} s)",
            "",
            f"`{res.get('command', '?')}` at commit {res.get('commit', '?')}.",
            "",
            f"Splits: {res['split_sizes']}. Model: hidden {res['model']['hidden']}, dropout {res['model']['dropout']}, "
            f"{res['model']['optimizer']}, {res['model']['epochs']} epochs, batch {res['model']['batch_size']}. "
            f"Grid: {res['grid']['note']}.",
            "",
            *([f"Utility is ROC-AUC. Baseline test accuracy {_fmt(b['accuracy_test'])}; always predicting the most "
               f"common class scores {_fmt(res['test_majority_rate'])} on the test split.", ""]
              if "accuracy_test" in b else []),
            "| baseline (Table 11/12) | ours | study |",
            "|---|---|---|",
            # Results written before the external set was named keep the study's name, utility_nonmembers.
            *(f"| {name} | {_fmt(b.get(name, b.get('utility_nonmembers') if name == 'utility_external' else None))} "
              f"| [{_fmt(sb[name])}] |" for name in ("utility_members", "utility_test", "utility_external", "attack_accuracy")),
            "",
            *([f"Label-only floor (beyond the study): an attack that sees only the true label reaches "
               f"{_fmt(b['label_only_attack_accuracy'])} on these members and nonmembers; no privacy setting takes "
               f"the attacks below it.", ""] if b.get("label_only_attack_accuracy") is not None else []),
            "| t (Table 13/14) | utility loss | attack accuracy | epsilon | clip | noise | best at trial | study: utility loss | study: attack acc. |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t, row in res["tradeoffs"].items():
            su, sp = study["tradeoffs"][t]
            lines.append(
                f"| {t} | {_fmt(row['utility_loss'])} | {_fmt(row['attack_accuracy'])} | {_fmt(row['epsilon'], 2)} | "
                f"{_fmt(row['clip'], 2)} | {_fmt(row['noise'], 2)} | {row['trial_of_best']}/{row['trials']} | [{su}] | [{sp}] |"
            )
        guaranteed = {t: row.get("best_with_epsilon_le_10") for t, row in res["tradeoffs"].items()}
        if any((row["epsilon"] is None or row["epsilon"] > MEANINGFUL_EPSILON) and guaranteed[t] is not None
               for t, row in res["tradeoffs"].items()):
            lines += ["", "Where the best point has no meaningful epsilon (noise 0, or epsilon > 10), the best trial of the "
                      "same run with epsilon <= 10 (what dptune's recommendation note names):", ""]
            for t, g in guaranteed.items():
                if g is not None:
                    lines.append(f"- t = {t}: utility loss {_fmt(g['utility_loss'])}, attack accuracy "
                                 f"{_fmt(g['attack_accuracy'])}, epsilon {_fmt(g['epsilon'], 2)} (clip {_fmt(g['clip'], 2)}, "
                                 f"noise {_fmt(g['noise'], 2)})")
        g = res["grid_best"]
        e = res["search_efficiency"]
        lines += [
            "",
            f"Grid best at t = 0.5: objective {_fmt(res['grid_best_objective'], 4)} at clip {_fmt(g['clip'], 2)}, "
            f"noise {_fmt(g['noise'], 2)} (utility loss {_fmt(g['utility_loss'])}, attack accuracy {_fmt(g['attack_accuracy'])}).",
            "",
            f"Search cost to reach 98 % of the grid-best objective (median over {len(e['per_seed']['bayes'])} seeds, "
            f"budget {e['budget']} trials; '-' = median run did not reach it): bayes {_fmt(e['bayes_trials_to_98pct'], 1)}, "
            f"random {_fmt(e['random_trials_to_98pct'], 1)}, grid {e['grid_trials']}. Per seed: bayes {e['per_seed']['bayes']}, "
            f"random {e['per_seed']['random']}.",
            "",
            *([f"Trials to come within one standard error of the grid best (the objective's noise from the attack's "
               f"evaluation set alone: {_fmt(e['within_one_standard_error']['objective_standard_error'], 4)}): bayes "
               f"{_fmt(e['within_one_standard_error']['bayes_trials'], 1)}, random "
               f"{_fmt(e['within_one_standard_error']['random_trials'], 1)}. Per seed: bayes "
               f"{e['within_one_standard_error']['per_seed']['bayes']}, random "
               f"{e['within_one_standard_error']['per_seed']['random']}.", ""] if "within_one_standard_error" in e else []),
            f"![grid]({'figures/' + key.replace('_', '-') + '-grid-surfaces.png'}) "
            f"![optimizer]({'figures/' + key.replace('_', '-') + '-optimizer-surfaces.png'}) "
            f"![convergence]({'figures/' + key.replace('_', '-') + '-convergence.png'})",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=["synthea-sgd", "synthea-adam", "hiv", "all"], default="all")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=30, help="budget of each optimizer run")
    parser.add_argument("--seeds", type=int, default=5, help="seeds for the search-cost comparison")
    args = parser.parse_args()
    command = "python benchmarks/reproduce_study.py " + " ".join(sys.argv[1:])
    setups = make_setups(args.quick)
    names = list(setups) if args.setup == "all" else [args.setup]
    results_path = args.out / "results" / "reproduction.json"
    results: dict = json.loads(results_path.read_text()) if results_path.exists() and not args.quick else {}
    for name in names:
        results[setups[name].key] = run_setup(name, setups[name], args, command)
        results["search_efficiency"] = {
            k: v["search_efficiency"] for k, v in results.items() if k != "search_efficiency"
        }
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
        markdown_path = args.out / "reproduction.md"
        analysis = _kept_analysis(markdown_path)
        markdown_path.write_text(write_markdown(results, args, command).replace(ANALYSIS_START, analysis, 1))
        print(json.dumps({k: results[setups[name].key][k] for k in ("baseline", "tradeoffs", "search_efficiency")},
                         indent=1, default=str), flush=True)


if __name__ == "__main__":
    main()
