"""Best posterior mean against best single observation: which recommendation is truly better?

    python benchmarks/recommendation_choice.py [--searches 5] [--trials 12] [--remeasure 3] [--out FILE]

On the built-in synthea-covid data with the demo's settings (SGD at learning rate 0.1, budget mode max_epsilon 10,
membership game, K = 4 per trial and 16 for the baseline), each of `--searches` Bayesian searches (seeds
0..S-1) runs `--trials` trials through the product's search step. From the same trials, three rules choose:
- best_observed: the trial with the highest single measured objective (dptune before recommendation v2);
- posterior_mean: recommendation.choose (the GP's best posterior mean, then the lowest epsilon within one SE);
- posterior_mean_unbounded_noise: the same before the GP's noise ceiling (the trials' sampling SEs withheld,
  so the GP may call any spread noise).
Each chosen point is then measured again on `--remeasure` fresh seeds; their mean objective is the point's "true"
objective. The script prints, per search and over searches, the rules' true objectives, their paired
differences, and how far each rule's own (search-time) figure was from the truth.

The stored reproduction trials (docs/results/reproduction-*-trials.json) cannot serve as the truth here: they were
measured before measurement v2, on the 2,420-patient generator, with the population game.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from unittest.mock import patch

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RULES = ("best_observed", "posterior_mean", "posterior_mean_unbounded_noise")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--remeasure", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "recommendation_choice.json")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse the searches' trials and the re-measured "
        "objectives stored in --out (same settings): only newly chosen points are trained",
    )
    args = parser.parse_args()
    stored = json.loads(args.out.read_text()) if args.reuse and args.out.exists() else {}

    from app.cli import DEMO_LEARNING_RATE
    from app.datasets import BUILTIN_DATASETS, prepare_dataset
    from app.tuning import recommendation
    from app.tuning.accounting import default_delta
    from app.tuning.engine import run_baseline, run_trial, space_for, trial_seed
    from app.tuning.model_spec import ModelSpec
    from app.tuning.objective import score
    from app.tuning.recommendation import choose, observations
    from app.tuning.results import GuaranteeSpec, MeasurementSpec, Trial
    from app.tuning.search import Observation, SearchSpec, search_step

    started = time.perf_counter()
    builtin = BUILTIN_DATASETS["synthea-covid"]
    data, _ = prepare_dataset(builtin.load(0), label=builtin.label, split=builtin.default_split, seed=0)
    spec, search, guarantee = (
        ModelSpec(learning_rate=DEMO_LEARNING_RATE),
        SearchSpec(trials=args.trials),
        GuaranteeSpec(),
    )
    measurement = MeasurementSpec()  # the demo's: K = 4 per trial, 16 for the baseline's audit
    delta = default_delta(len(data.y_members))
    space = space_for(search, guarantee, spec, len(data.y_members), delta)
    baseline = run_baseline(data, spec, measurement, seed=0, delta=delta)
    print(
        f"baseline: validation AUC {baseline.utility_validation:.3f}, attack {baseline.attack_accuracy:.3f}; "
        f"noise floor {space.min_noise:.3f} (max_epsilon 10)",
        flush=True,
    )

    truth_cache: dict[str, float] = dict(stored.get("true_objectives", {}))

    def true_objective(point: tuple[float, float]) -> float:
        """Mean objective over fresh seeds (disjoint from every search's)."""
        key = f"{point[0]!r},{point[1]!r}"
        if key not in truth_cache:
            measured = run_trial(
                data,
                spec,
                point[0],
                point[1],
                delta=delta,
                measurement=measurement.model_copy(update={"repeats": args.remeasure}),
                seed=9_000_000,
            )
            truth_cache[key] = score(measured, baseline, 0.5, 0).objective
        return truth_cache[key]

    def unbounded(trials: list[Trial]) -> list[Observation]:
        """The trials as the GP saw them before its noise ceiling (no sampling SEs: the noise is unbounded)."""
        return [Observation(o.point, o.objective, o.objective_se) for o in observations(trials)]

    def entry(trial: Trial, posterior_mean: float | None) -> dict[str, float | int | None]:
        return {
            "index": trial.index,
            "clip": trial.clip,
            "noise": trial.noise,
            "epsilon": trial.epsilon,
            "search_objective": trial.objective,
            "posterior_mean": posterior_mean,
            "true_objective": true_objective((trial.clip, trial.noise)),
        }

    rows, searches = [], {}
    for seed in range(args.searches):
        trials = [Trial.model_validate(t) for t in stored.get("searches", {}).get(str(seed), [])]
        while (step := search_step(search, space, observations(trials), [], seed=seed, elapsed_seconds=0)).point:
            measured = run_trial(
                data, spec, *step.point, delta=delta, measurement=measurement, seed=trial_seed(seed, len(trials))
            )
            trials.append(score(measured, baseline, 0.5, len(trials)))
        searches[str(seed)] = [t.model_dump(mode="json") for t in trials]
        observed = max(trials, key=lambda t: (t.objective, -t.index))
        row: dict[str, object] = {"seed": seed, "best_observed": entry(observed, None)}
        for rule, observe in (("posterior_mean", observations), ("posterior_mean_unbounded_noise", unbounded)):
            with patch.object(recommendation, "observations", observe):
                choice = choose(trials, baseline, 0.5, space, guarantee, seed)
            assert choice.trial is not None and choice.selection is not None
            row[rule] = entry(choice.trial, choice.selection.posterior_mean)
        rows.append(row)
        print(
            f"seed {seed}: "
            + " | ".join(
                f"{rule} #{row[rule]['index']} (eps {row[rule]['epsilon']:.2f}) search "  # type: ignore[index]
                f"{row[rule]['search_objective']:+.4f} true {row[rule]['true_objective']:+.4f}"  # type: ignore[index]
                for rule in RULES
            ),
            flush=True,
        )

    def median(rule: str, key: str) -> float:
        return statistics.median(r[rule][key] for r in rows)  # type: ignore[index]

    def own_figure(rule: str, r: dict) -> float:
        return r[rule]["search_objective"] if rule == "best_observed" else r[rule]["posterior_mean"]

    summary = {
        "median_true_objective": {rule: median(rule, "true_objective") for rule in RULES},
        "mean_true_objective": {
            rule: statistics.mean(r[rule]["true_objective"] for r in rows)
            for rule in RULES  # type: ignore[index]
        },
        "worst_true_objective": {
            rule: min(r[rule]["true_objective"] for r in rows)
            for rule in RULES  # type: ignore[index]
        },
        "median_paired_difference_vs_best_observed": {
            rule: statistics.median(
                r[rule]["true_objective"] - r["best_observed"]["true_objective"]
                for r in rows  # type: ignore[index]
            )
            for rule in RULES[1:]
        },
        "median_optimism": {  # how much the rule's own figure over-states the truth
            rule: statistics.median(own_figure(rule, r) - r[rule]["true_objective"] for r in rows) for rule in RULES
        },
        "median_epsilon": {rule: median(rule, "epsilon") for rule in RULES},
    }
    out = {
        "command": " ".join(["python", *sys.argv]),
        "search_count": args.searches,
        "trials": args.trials,
        "remeasure_seeds": args.remeasure,
        "rows": rows,
        "summary": summary,
        "seconds": time.perf_counter() - started,
        "true_objectives": truth_cache,
        "searches": searches,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} ({out['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
