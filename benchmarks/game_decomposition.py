"""How much of the study's attack is membership: the population game against its control, next to the
membership game, for the non-private baseline and one DP point, on the demo data and on HIV.

    python benchmarks/game_decomposition.py --setup synthea|hiv|all [--audit-k 16] [--trial-k 4]

Prints each figure and writes docs/results/game_decomposition.json. The numbers are quoted in docs/privacy.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HIV_CSV = ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv"
OUT = ROOT / "docs" / "results" / "game_decomposition.json"


def load(setup: str):  # type: ignore[no-untyped-def]
    from app.datasets import BUILTIN_DATASETS, ButinaSplit, prepare_dataset, read_table
    from app.tuning.model_spec import ModelSpec

    if setup == "synthea":
        builtin = BUILTIN_DATASETS["synthea-covid"]
        data, _ = prepare_dataset(builtin.load(0), label=builtin.label, split=builtin.default_split, seed=0)
        return data, ModelSpec(hidden=[50, 10], epochs=10, batch_size=32)
    frame = read_table(HIV_CSV)[["smiles", "HIV_active"]]
    data, _ = prepare_dataset(frame, label="HIV_active", split=ButinaSplit(), smiles_column="smiles", seed=0)
    return data, ModelSpec(hidden=[200, 100], dropout=0.1, epochs=10, batch_size=32)


def summary(item) -> dict:  # type: ignore[no-untyped-def]
    membership = item.games.membership
    out = {
        "utility_test": item.utility_test,
        "membership_attack_accuracy": membership.attack_accuracy,
        "membership_attacks": {
            k: {
                "accuracy": v.accuracy.model_dump(),
                "auc": v.auc.model_dump(),
                "tpr_at_1pct_fpr": v.tpr_at_1pct_fpr.model_dump(),
            }
            for k, v in membership.attacks.items()
        },
        "epsilon_lower_bound": membership.epsilon_lower_bound,
        "reference_models": membership.reference_models,
        "calibration_seconds": membership.calibration_seconds,
        "seconds": item.seconds,
    }
    population = item.games.population
    if population is not None:
        out.update(
            population_attack_accuracy=population.attack_accuracy,
            control_attack_accuracy=population.reference_attack_accuracy,
            shift=population.shift,
            membership_part=population.membership,
        )
    return out


def run(setup: str, audit_k: int, trial_k: int) -> dict:
    from app.tuning.accounting import default_delta
    from app.tuning.engine import run_baseline, run_trial
    from app.tuning.results import MeasurementSpec

    started = time.perf_counter()
    data, spec = load(setup)
    prepared = time.perf_counter() - started
    print(f"[{setup}] prepared {data.split_sizes().model_dump()} in {prepared:.0f} s", flush=True)
    delta = default_delta(len(data.y_members))
    measurement = MeasurementSpec(reference_models=trial_k, audit_reference_models=audit_k)
    baseline = run_baseline(data, spec, measurement, seed=0, delta=delta)
    result = {
        "setup": setup,
        "splits": data.split_sizes().model_dump(),
        "model": spec.model_dump(),
        "delta": delta,
        "baseline": summary(baseline),
    }
    print(f"[{setup}] baseline {json.dumps(result['baseline'], indent=1)}", flush=True)
    trial = run_trial(data, spec, 1.0, 1.0, delta=delta, measurement=measurement, seed=0)
    result["dp_trial"] = {"clip": 1.0, "noise": 1.0, "epsilon": trial.epsilon, **summary(trial)}
    print(f"[{setup}] DP trial {json.dumps(result['dp_trial'], indent=1)}", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setup", choices=["synthea", "hiv", "all"], default="all")
    parser.add_argument("--audit-k", type=int, default=16)
    parser.add_argument("--trial-k", type=int, default=4)
    args = parser.parse_args()
    from app.tuning.train import configure_threads

    configure_threads(2)
    setups = ["synthea", "hiv"] if args.setup == "all" else [args.setup]
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    for setup in setups:
        previous[setup] = {
            **run(setup, args.audit_k, args.trial_k),
            "commit": commit,
            "command": f"python benchmarks/game_decomposition.py --setup {setup} --audit-k "
            f"{args.audit_k} --trial-k {args.trial_k}",
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(previous, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
