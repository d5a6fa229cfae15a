"""Many models in one computation: per-model seconds of K stacked models against one model alone.

    python benchmarks/batched_training.py [--json OUT] [--ks 1,4,16] [--repeats 3] [--shapes synthea,hiv]

For each shape (dp_overhead.py's HIV and synthea shapes, 10 epochs, batch 32) and each mode (non-private, and
DP-SGD at clip 1, noise 1), times `train_many` with K seeds (each model its own seed, Poisson draws, dropout
masks and noise) and divides by K and by the time of K = 1 measured in the same run:
per_model_ratio_kK = (seconds(K) / K) / seconds(1). Below 1, stacking pays. The keys the issue names,
synthea.per_model_ratio_k16 and hiv.per_model_ratio_k16, are the DP mode's (reference models, repeats and a
batch of trials all train with DP). Each K runs once untimed (tracing), then the median of --repeats counts.
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

from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.train import DPParams, configure_threads, train_many  # noqa: E402
from benchmarks.common import emit_json  # noqa: E402
from benchmarks.dp_overhead import SHAPES, _data  # noqa: E402

MODES: dict[str, DPParams | None] = {"dp": DPParams(clip=1.0, noise=1.0), "nonprivate": None}


def measure(name: str, ks: list[int], repeats: int, epochs: int) -> dict[str, object]:
    shape = SHAPES[name]
    x, y = _data(shape["n"], shape["d"], shape["binary_features"])
    spec = ModelSpec(hidden=shape["hidden"], dropout=shape["dropout"], epochs=epochs, batch_size=32)
    out: dict[str, object] = {}
    for mode, dp in MODES.items():
        seconds: dict[int, list[float]] = {}
        for k in ks:
            seeds = list(range(k))
            train_many(spec, x, y, 2, dp, seeds)  # untimed: tracing for this K
            seconds[k] = []
            for _ in range(repeats):
                start = time.perf_counter()
                train_many(spec, x, y, 2, dp, seeds)
                seconds[k].append(time.perf_counter() - start)
        median = {k: statistics.median(v) for k, v in seconds.items()}
        single = median[ks[0]]
        out[mode] = {
            "seconds": {str(k): round(v, 3) for k, v in median.items()},
            "seconds_range": {str(k): [round(min(v), 3), round(max(v), 3)] for k, v in seconds.items()},
            **{f"per_model_ratio_k{k}": round(median[k] / k / single, 3) for k in ks if k != ks[0]},
        }
        print(name, mode, json.dumps(out[mode]), flush=True)
    dp_mode = out["dp"]
    assert isinstance(dp_mode, dict)
    out.update({key: value for key, value in dp_mode.items() if key.startswith("per_model_ratio")})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--ks", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--shapes", default="synthea,hiv")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    configure_threads(args.threads)
    ks = [int(k) for k in args.ks.split(",")]
    if ks[0] != 1:
        parser.error("--ks must start at 1 (the ratios are against one model alone)")
    results: dict[str, object] = {
        "epochs": args.epochs,
        "batch_size": 32,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "targets": {"synthea.per_model_ratio_k16": "<= 0.5"},
    }
    for name in args.shapes.split(","):
        results[name] = measure(name, ks, args.repeats, args.epochs)
    emit_json(results, args.json)


if __name__ == "__main__":
    main()
