"""Where one trial's seconds go: data preparation, training, evaluation, attack, accounting.

    python benchmarks/trial_breakdown.py [--setup synthea|hiv] [--repeats 3] [--json OUT]

Runs the same steps as app.tuning.engine.run_trial, timing each (the median over --repeats trials), on the built-in synthea-covid data set
(default model, 50/10, SGD, 10 epochs) or on HIV.csv (Butina split, 200/100, dropout 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tuning.accounting import dp_sgd_epsilon  # noqa: E402
from app.tuning.attack import ATTACK_MODELS, balanced_attack_split, membership_attacks  # noqa: E402
from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.train import DPParams, train  # noqa: E402
from app.tuning.utility import accuracy, roc_auc  # noqa: E402


def prepare(setup: str):  # type: ignore[no-untyped-def]
    from app.datasets import BUILTIN_DATASETS, ButinaSplit, prepare_dataset, read_table

    if setup == "synthea":
        builtin = BUILTIN_DATASETS["synthea-covid"]
        data, _ = prepare_dataset(builtin.load(0), label=builtin.label, split=builtin.default_split, seed=0)
        return data, ModelSpec()
    frame = read_table(ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv")[["smiles", "HIV_active"]]
    data, _ = prepare_dataset(frame, label="HIV_active", split=ButinaSplit(), smiles_column="smiles", seed=0)
    return data, ModelSpec(hidden=[200, 100], dropout=0.1)


def one_trial(data, spec: ModelSpec) -> tuple[dict[str, float], float]:  # type: ignore[no-untyped-def]
    t = {}
    start = time.perf_counter()
    trained = train(spec, data.x_members, data.y_members, data.n_classes, DPParams(1.0, 1.0), seed=0)
    t["training"] = time.perf_counter() - start

    start = time.perf_counter()
    p_m, p_t, p_n = (trained.predict_proba(x) for x in (data.x_members, data.x_test, data.x_nonmembers))
    for p, y in ((p_m, data.y_members), (p_t, data.y_test), (p_n, data.y_nonmembers)):
        roc_auc(p, y)
        accuracy(p, y)
    t["evaluation"] = time.perf_counter() - start

    start = time.perf_counter()
    split = balanced_attack_split(len(data.y_members), len(data.y_nonmembers), 0)
    membership_attacks(p_m, data.y_members, p_n, data.y_nonmembers, data.n_classes, split, 0)
    t["attack"] = time.perf_counter() - start
    # The same two attack models one after the other, for comparison with the threads (not part of the total).
    start = time.perf_counter()
    for kind in ATTACK_MODELS:
        membership_attacks(p_m, data.y_members, p_n, data.y_nonmembers, data.n_classes, split, 0, (kind,))
    sequential = time.perf_counter() - start

    start = time.perf_counter()
    dp_sgd_epsilon(sampling_rate=spec.batch_size / len(data.y_members), noise_multiplier=1.0,
                   steps=trained.steps, delta=1 / len(data.y_members))
    t["accounting"] = time.perf_counter() - start
    return t, sequential


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=["synthea", "hiv"], default="synthea")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    data, spec = prepare(args.setup)
    preparation = time.perf_counter() - start
    timed = [one_trial(data, spec) for _ in range(args.repeats)]
    runs = [t for t, _ in timed]
    median = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
    attack_sequential = sorted(seq for _, seq in timed)[len(timed) // 2]
    total = sum(median.values())
    out = {
        "setup": args.setup,
        "split_sizes": data.split_sizes(),
        "data_preparation_seconds_once_per_job": round(preparation, 3),
        "trial_seconds_median": {k: round(v, 3) for k, v in median.items()},
        # The first trial of a worker builds and traces the model; later ones reuse it (models without dropout).
        "first_trial_training_seconds": round(runs[0]["training"], 3),
        "attack_models_one_after_the_other_seconds": round(attack_sequential, 3),
        "trial_total_seconds": round(total, 3),
        "attack_and_evaluation_share": round((median["attack"] + median["evaluation"]) / total, 3),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
