"""Does the random-forest attack score the same with fewer trees? Paired comparison on the same games.

    python benchmarks/attack_trees.py [--trees 100,50,25] [--seeds 4] [--json OUT]

On the built-in synthea-covid cohort (the demo's data and model), trains targets: non-private and DP-SGD at
(clip 1, noise 0.6) and (clip 1, noise 2), --seeds each. For each target and each game (membership: members
against holdout; population: members against the external set) it runs the cross-fitted RF attack
(blackbox_scores) with each tree count on the same records and the same folds, and reports the attack's
accuracy (its own decision at P(member) >= 0.5) and AUC, the paired differences against the first tree count
(mean, standard deviation, largest), the accuracy's own sampling standard error, and the fit seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from app.cli import DEMO_LEARNING_RATE  # noqa: E402
from app.datasets import BUILTIN_DATASETS, prepare_dataset  # noqa: E402
from app.tuning.attacks import blackbox  # noqa: E402
from app.tuning.attacks.games import balanced_records  # noqa: E402
from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.train import DPParams, train  # noqa: E402
from benchmarks.common import emit_json  # noqa: E402

TARGETS: dict[str, DPParams | None] = {
    "nonprivate": None,
    "dp_noise_0.6": DPParams(clip=1.0, noise=0.6),
    "dp_noise_2": DPParams(clip=1.0, noise=2.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default="100,50,25")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    trees = [int(t) for t in args.trees.split(",")]
    builtin = BUILTIN_DATASETS["synthea-covid"]
    data, _ = prepare_dataset(builtin.load(0), label=builtin.label, split=builtin.default_split, seed=0)
    assert data.x_external is not None and data.y_external is not None
    spec = ModelSpec(learning_rate=DEMO_LEARNING_RATE)
    rows: list[dict[str, object]] = []
    for target_name, dp in TARGETS.items():
        for seed in range(args.seeds):
            model = train(spec, data.x_members, data.y_members, data.n_classes, dp, seed)
            games = {
                "membership": (data.x_holdout, data.y_holdout),
                "population": (data.x_external, data.y_external),
            }
            for game, (x_out, y_out) in games.items():
                records = balanced_records(len(data.y_members), len(y_out), np.random.default_rng([seed, 2]))
                proba = np.concatenate(
                    [
                        model.predict_proba(data.x_members[records.member_rows]),
                        model.predict_proba(x_out[records.nonmember_rows]),
                    ]
                )
                labels = np.concatenate([data.y_members[records.member_rows], y_out[records.nonmember_rows]])
                row: dict[str, object] = {"target": target_name, "seed": seed, "game": game, "n": len(labels)}
                for count in trees:
                    blackbox.RF_TREES = count
                    start = time.perf_counter()
                    scores = blackbox.blackbox_scores(
                        "rf", proba, labels, records.truth, records.fold, data.n_classes, seed
                    )
                    row[f"seconds_{count}"] = round(time.perf_counter() - start, 3)
                    row[f"accuracy_{count}"] = round(float(np.mean((scores >= 0.5) == records.truth)), 4)
                    row[f"auc_{count}"] = round(float(roc_auc_score(records.truth, scores)), 4)
                rows.append(row)
                print(json.dumps(row), flush=True)
    reference = trees[0]
    summary: dict[str, object] = {}
    n = statistics.median(int(r["n"]) for r in rows)  # type: ignore[call-overload]
    summary["accuracy_sampling_se"] = round(0.5 / np.sqrt(n), 4)
    for count in trees[1:]:
        for metric in ("accuracy", "auc"):
            diffs = [float(r[f"{metric}_{count}"]) - float(r[f"{metric}_{reference}"]) for r in rows]  # type: ignore[arg-type]
            summary[f"{metric}_diff_{count}_vs_{reference}"] = {
                "mean": round(statistics.mean(diffs), 4),
                "sd": round(statistics.stdev(diffs), 4),
                "max_abs": round(max(abs(d) for d in diffs), 4),
            }
        seconds = sum(float(r[f"seconds_{count}"]) for r in rows) / sum(
            float(r[f"seconds_{reference}"]) for r in rows
        )  # type: ignore[arg-type]
        summary[f"seconds_ratio_{count}_vs_{reference}"] = round(seconds, 3)
    out = {"trees": trees, "seeds": args.seeds, "summary": summary, "rows": rows}
    emit_json(out, args.json)


if __name__ == "__main__":
    main()
