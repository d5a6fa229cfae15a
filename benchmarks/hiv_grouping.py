"""HIV Butina groupings compared (issue 14): does the study's 10-epoch SGD baseline learn, and how strong are
the attacks, under each grouping?

For every seed (split seed = training seed) and grouping: prepare HIV.csv as benchmarks/reproduce_study.py
does, run the baseline of the study's HIV model with the population game (K = 4 audit reference models),
and report test / members ROC-AUC, the population- and membership-game attack accuracies, the label-only
floor, actives per part and mean Tanimoto similarities within and between parts (on seeded samples).

    python benchmarks/hiv_grouping.py --seeds 0,1,2 --out docs/results/hiv_grouping.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HIV_CSV = Path("/work/shared/data/moleculenet-hiv/HIV.csv")
MODEL = {"hidden": [200, 100], "dropout": 0.1, "optimizer": "sgd", "epochs": 10}
SIMILARITY_SAMPLE = 1000  # compounds per part for the mean pairwise Tanimoto similarities


def mean_similarity(a: np.ndarray, b: np.ndarray, same: bool) -> float:
    from app.datasets.smiles import tanimoto

    s = tanimoto(a, b).astype(np.float64)
    if same:  # leave out each compound's similarity to itself
        np.fill_diagonal(s, np.nan)
    return float(np.nanmean(s))


def distances(data, seed: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    sample = {}
    for part in ("members", "test", "external"):
        x = getattr(data, f"x_{part}")
        sample[part] = x[rng.choice(len(x), min(SIMILARITY_SAMPLE, len(x)), replace=False)]
    m, t, e = sample["members"], sample["test"], sample["external"]
    return {
        "members_members": mean_similarity(m, m, True),
        "test_test": mean_similarity(t, t, True),
        "external_external": mean_similarity(e, e, True),
        "members_test": mean_similarity(m, t, False),
        "members_external": mean_similarity(m, e, False),
        "test_external": mean_similarity(t, e, False),
    }


def measure(frame, grouping: str, seed: int) -> dict:  # type: ignore[no-untyped-def]
    from app.datasets import ButinaSplit, prepare_dataset
    from app.tuning.engine import run_baseline
    from app.tuning.model_spec import ModelSpec
    from app.tuning.results import MeasurementSpec

    split = ButinaSplit(grouping=grouping)
    start = time.perf_counter()
    data, report = prepare_dataset(frame, label="HIV_active", split=split, smiles_column="smiles", seed=seed)
    prep_seconds = time.perf_counter() - start
    measurement = MeasurementSpec(privacy_game="population", reference_models=2, audit_reference_models=4)
    b = run_baseline(data, ModelSpec(**MODEL), measurement, seed=seed, delta=1 / len(data.y_members))
    assert b.games.population is not None
    return {
        "grouping": grouping,
        "seed": seed,
        "split": split.model_dump(mode="json"),
        "compounds_clustered": report.split_details["compounds_clustered"],
        "butina_clusters": report.split_details["butina_clusters"],
        "split_sizes": report.split_sizes.model_dump(),
        "actives": {part: int(counts.get("1", 0)) for part, counts in report.class_counts.items()},
        "utility_test": b.utility_test,
        "utility_test_interval": [b.utility_test_interval.low, b.utility_test_interval.high],
        "utility_members": b.utility_members,
        "utility_external": b.utility_external,
        "logistic_regression_utility_test": b.logistic_regression_utility_test,
        "population_attack_accuracy": b.games.population.attack_accuracy,
        "population_reference_attack_accuracy": b.games.population.reference_attack_accuracy,
        "membership_attack_accuracy": b.games.membership.attack_accuracy,
        "label_only_attack_accuracy": b.label_only_attack_accuracy,
        "learns": b.learns,
        "mean_tanimoto": distances(data, seed),
        "prep_seconds": round(prep_seconds, 1),
        "baseline_seconds": round(b.seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated split and training seeds")
    parser.add_argument("--groupings", default="outlying,distant-groups")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()

    from app.datasets import read_table
    from app.tuning.train import configure_threads

    configure_threads(1)
    frame = read_table(HIV_CSV)[["smiles", "HIV_active"]]
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for grouping in args.groupings.split(","):
            runs.append(measure(frame, grouping, seed))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    summary = {}
    for grouping in args.groupings.split(","):
        mine = [r for r in runs if r["grouping"] == grouping]
        summary[grouping] = {
            key: [round(r[key], 3) for r in mine]
            for key in (
                "utility_test",
                "utility_members",
                "population_attack_accuracy",
                "membership_attack_accuracy",
                "label_only_attack_accuracy",
            )
        }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {
        "command": "python benchmarks/hiv_grouping.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "model": MODEL,
        "measurement": {
            "privacy_game": "population",
            "reference_models": 2,
            "audit_reference_models": 4,
            "delta": "1 / members",
        },
        "summary": summary,
        "runs": runs,
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
