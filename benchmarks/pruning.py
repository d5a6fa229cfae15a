"""Pruning hopeless trials, measured: the same job with search.pruning "none" and "median", on the synthea-sgd
setup of benchmarks/reproduce_study.py, for several seeds.

    python benchmarks/pruning.py --json docs/results/pruning.json [--seeds 5] [--trials 20] [--threads 1] [--quick]

Each seed s runs engine.tune() twice with the same data (the built-in synthea-covid cohort, its default split,
seed 0), model (synthea-sgd: MLP [50, 10], SGD, 10 epochs), budget (--trials, the demo's 20 by default), seed s,
max_epsilon 10, t = 0.5, K = 2 reference models in search trials and 16 in the baseline and the confirmation
(as the reproduction), once without pruning and once with the median rule. The baseline is measured once per
seed and given to both runs (it is the same computation); the job's wall time is the baseline's plus the run's.
Reported per seed and in summary: wall seconds, trials pruned, and the confirmed recommendation's objective,
test utility, attack accuracy and epsilon (the confirmation's means over fresh seeds), and the ratios.
--quick is a smoke test at tiny scale (1-epoch [8] model, 6 trials, 1 seed), not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.reproduce_study import MAX_EPSILON, SEARCH_BOUND, SEARCH_K, SETUPS, load_data, model_spec  # noqa: E402

SETUP = "synthea-sgd"
TRADEOFF = 0.5
AUDIT_K = 16
CONFIRM_REPEATS = 3
RULES = ("none", "median")


def run_seed(seed: int, trials: int, quick: bool) -> dict[str, Any]:
    from app.tuning.engine import default_delta, run_baseline, tune
    from app.tuning.results import GuaranteeSpec, MeasurementSpec
    from app.tuning.search import SearchSpec

    data, _ = load_data(SETUP, quick)
    spec = model_spec(SETUPS[SETUP], quick)
    measurement = MeasurementSpec(
        reference_models=SEARCH_K, audit_reference_models=2 if quick else AUDIT_K, allow_weak_baseline=True
    )
    guarantee = GuaranteeSpec(max_epsilon=MAX_EPSILON, confirm_repeats=2 if quick else CONFIRM_REPEATS)
    delta = default_delta(len(data.y_members))
    start = time.perf_counter()
    baseline = run_baseline(data, spec, measurement, seed, delta)
    baseline_seconds = time.perf_counter() - start
    row: dict[str, Any] = {"seed": seed, "baseline_seconds": baseline_seconds}
    # Alternate which rule runs first, so neither always meets a colder process (caches, allocator).
    for rule in RULES if seed % 2 == 0 else tuple(reversed(RULES)):
        search = SearchSpec(trials=trials, max_clip=SEARCH_BOUND, max_noise=SEARCH_BOUND, pruning=rule)
        start = time.perf_counter()
        result = tune(
            data,
            spec,
            search,
            measurement=measurement,
            guarantee=guarantee,
            tradeoff=TRADEOFF,
            delta=delta,
            seed=seed,
            baseline=baseline,
        )
        seconds = time.perf_counter() - start
        rec = result.recommendation
        confirmation = rec.confirmation if rec is not None else None
        row[rule] = {
            "wall_seconds": baseline_seconds + seconds,
            "trials_completed": len(result.trials),
            "trials_pruned": len(result.pruned_trials),
            "pruned_indices": [p.index for p in result.pruned_trials],
            "trial_seconds_completed": sum(t.seconds for t in result.trials),
            "trial_seconds_pruned": sum(p.seconds for p in result.pruned_trials),
            "recommended_index": rec.index if rec is not None else None,
            "clip": rec.clip if rec is not None else None,
            "noise": rec.noise if rec is not None else None,
            "objective": confirmation.objective.value if confirmation is not None else None,
            "utility_test": confirmation.utility_test.value if confirmation is not None else None,
            "attack_accuracy": confirmation.attack_accuracy.value if confirmation is not None else None,
            "epsilon": rec.epsilon if rec is not None else None,
            "no_recommendation_reason": result.no_recommendation_reason,
        }
        print(
            f"seed {seed} pruning {rule}: {row[rule]['wall_seconds']:.1f} s, {len(result.pruned_trials)} pruned, "
            f"objective {row[rule]['objective']}",
            file=sys.stderr,
        )
    none, median = row["none"], row["median"]
    row["wall_ratio"] = median["wall_seconds"] / none["wall_seconds"]
    row["objective_difference"] = (
        median["objective"] - none["objective"]
        if median["objective"] is not None and none["objective"] is not None
        else None
    )
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(values: list[float]) -> float:
        return float(statistics.fmean(values))

    def sd(values: list[float]) -> float | None:
        return float(statistics.stdev(values)) if len(values) > 1 else None

    out: dict[str, Any] = {}
    for rule in RULES:
        objectives = [r[rule]["objective"] for r in rows if r[rule]["objective"] is not None]
        out[rule] = {
            "wall_seconds_total": sum(r[rule]["wall_seconds"] for r in rows),
            "wall_seconds_mean": mean([r[rule]["wall_seconds"] for r in rows]),
            "trials_pruned_mean": mean([r[rule]["trials_pruned"] for r in rows]),
            "objective_mean": mean(objectives) if objectives else None,
            "objective_sd": sd(objectives) if objectives else None,
            "utility_test_mean": mean([r[rule]["utility_test"] for r in rows if r[rule]["utility_test"] is not None]),
            "attack_accuracy_mean": mean(
                [r[rule]["attack_accuracy"] for r in rows if r[rule]["attack_accuracy"] is not None]
            ),
            "epsilon_mean": mean([r[rule]["epsilon"] for r in rows if r[rule]["epsilon"] is not None]),
        }
    differences = [r["objective_difference"] for r in rows if r["objective_difference"] is not None]
    out["wall_ratio_of_totals"] = out["median"]["wall_seconds_total"] / out["none"]["wall_seconds_total"]
    out["wall_ratio_per_seed"] = [r["wall_ratio"] for r in rows]
    out["objective_difference_mean"] = mean(differences) if differences else None
    out["objective_difference_sd"] = sd(differences) if differences else None
    out["same_recommended_point"] = sum(
        (r["none"]["clip"], r["none"]["noise"]) == (r["median"]["clip"], r["median"]["noise"]) for r in rows
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20, help="trial budget of every job (the demo's: 20)")
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads (1: one core, as a worker)")
    parser.add_argument("--quick", action="store_true", help="smoke test at tiny scale, not a measurement")
    args = parser.parse_args()
    from app.tuning.train import configure_threads

    configure_threads(args.threads)
    seeds, trials = (1, 6) if args.quick else (args.seeds, args.trials)
    start = time.perf_counter()
    warm_up(args.quick)
    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        rows.append(run_seed(seed, trials, args.quick))
        write(args, rows, seeds, trials, start)  # after every seed: a cut-off run keeps what it measured
    print(json.dumps(summary(rows), indent=2))


def warm_up(quick: bool) -> None:
    """One untimed DP trial first: the compiled loops are traced once per process, and the first job timed must
    not pay for it."""
    from app.tuning.engine import default_delta, run_trial
    from app.tuning.results import MeasurementSpec

    data, _ = load_data(SETUP, quick)
    measurement = MeasurementSpec(reference_models=SEARCH_K, audit_reference_models=2 if quick else AUDIT_K)
    spec = model_spec(SETUPS[SETUP], quick)
    run_trial(data, spec, 1.0, 1.0, delta=default_delta(len(data.y_members)), measurement=measurement, seed=12345)


def write(args: argparse.Namespace, rows: list[dict[str, Any]], seeds: int, trials: int, start: float) -> None:
    from app.tuning.pruning import CHECKPOINT_FRACTION, MARGIN_SE, WARMUP_TRIALS

    out = {
        "command": "python benchmarks/pruning.py " + " ".join(sys.argv[1:]),
        "setup": SETUP,
        "quick": args.quick,
        "trials": trials,
        "seeds": seeds,
        "seeds_done": len(rows),
        "threads": args.threads,
        "tradeoff": TRADEOFF,
        "max_epsilon": MAX_EPSILON,
        "search_reference_models": SEARCH_K,
        "audit_reference_models": 2 if args.quick else AUDIT_K,
        "rule": {"checkpoint_fraction": CHECKPOINT_FRACTION, "warmup_trials": WARMUP_TRIALS, "margin_se": MARGIN_SE},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "seconds": time.perf_counter() - start,
        "per_seed": rows,
        "summary": summary(rows),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
