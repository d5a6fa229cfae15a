"""Ratio of DP-SGD training time to the same non-private training, measured side by side in one process.

    python benchmarks/dp_overhead.py [--json OUT] [--epochs 10] [--repeats 2] [--threads N]

Variants: TF Privacy's DPKerasSGDOptimizer ("optimizer"); DPSequential without a layer registry ("vectorized");
DPSequential with the layer registry, TF Privacy's fast clipping ("ghost"); and dptune's training path
("fast": single-pass clipping for Dense stacks, noise drawn by the input pipeline, Poisson batches).
Shapes: HIV-sized (5,627 x 1,024, layers 200/100, dropout 0.1) and synthea-sized (1,088 x 40, 50/10).
Every variant runs once untimed first (tracing, allocator warm-up), then the best of --repeats counts.
The batch-size sweep times non-private and dptune's path at larger batches on the HIV shape.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential  # noqa: E402

from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.train import (  # noqa: E402
    DPParams,
    _mlp_layers,
    build_model,
    configure_threads,
    label_tensor,
    poisson_dataset,
    train,
)

SHAPES = {
    "hiv": dict(n=5627, d=1024, hidden=[200, 100], dropout=0.1, binary_features=True),
    "synthea": dict(n=1088, d=40, hidden=[50, 10], dropout=0.0, binary_features=False),
}


def _data(n: int, d: int, binary_features: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = (rng.random((n, d)) < 0.05) if binary_features else rng.normal(size=(n, d))
    x = x.astype(np.float32)
    y = (x[:, :8].sum(axis=1) + rng.normal(size=n) > np.median(x[:, :8].sum(axis=1))).astype(np.int64)
    return x, y


def _time(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _keras_fit(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, spec: ModelSpec) -> None:
    model.fit(x, label_tensor(y, 2), batch_size=spec.batch_size, epochs=spec.epochs, shuffle=True, verbose=0)


def measure(name: str, epochs: int, repeats: int, batch_size: int = 32, only_fast: bool = False) -> dict[str, float]:
    shape = SHAPES[name]
    x, y = _data(shape["n"], shape["d"], shape["binary_features"])
    spec = ModelSpec(hidden=shape["hidden"], dropout=shape["dropout"], epochs=epochs, batch_size=batch_size)
    dp = DPParams(clip=1.0, noise=1.0)

    def nonprivate() -> None:
        train(spec, x, y, 2, None, seed=0)

    def optimizer_path() -> None:
        tf.keras.backend.clear_session()
        model = build_model(spec, x.shape[1], 2, dp, clipping="per_example").model
        _keras_fit(model, x, y, spec)

    def ghost() -> None:
        tf.keras.backend.clear_session()
        trained = build_model(spec, x.shape[1], 2, dp, clipping="ghost")
        assert trained.clipping == "ghost"
        trained.model.fit(
            poisson_dataset(x, label_tensor(y, 2), spec.batch_size, spec.epochs, np.random.default_rng(0)), verbose=0
        )

    def vectorized() -> None:
        tf.keras.backend.clear_session()
        layers, _ = _mlp_layers(spec, x.shape[1], 2)
        model = DPSequential(l2_norm_clip=dp.clip, noise_multiplier=dp.noise, layers=layers, use_xla=False)
        model.compile(
            optimizer=tf.keras.optimizers.SGD(0.01), loss=tf.keras.losses.BinaryCrossentropy(from_logits=True)
        )
        _keras_fit(model, x, y, spec)

    def fast() -> None:
        pass  # the compiled loop is traced once per architecture
        assert train(spec, x, y, 2, dp, seed=0).clipping == "single_pass"

    variants = {
        "nonprivate": nonprivate,
        "optimizer": optimizer_path,
        "vectorized": vectorized,
        "ghost": ghost,
        "fast": fast,
    }
    if only_fast:
        variants = {"nonprivate": nonprivate, "fast": fast}
    for fn in variants.values():
        fn()  # untimed warm-up
    # Interleaved repeats, so a slow spell of the machine hits every variant alike.
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            times[k].append(_time(fn))
    seconds = {k: min(v) for k, v in times.items()}
    out: dict[str, float] = {"batch_size": batch_size}
    out.update({f"{k}_seconds": round(v, 3) for k, v in seconds.items()})
    for k in variants:
        if k != "nonprivate":
            out[f"{k}_ratio"] = round(seconds[k] / seconds["nonprivate"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shapes", default="hiv,synthea")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra/inter-op threads")
    parser.add_argument("--batch-sweep", default="64,128,256", help="batch sizes for the HIV sweep ('' = none)")
    args = parser.parse_args()
    configure_threads(args.threads)
    results: dict[str, object] = {
        "epochs": args.epochs,
        "threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(), "cpus": os.cpu_count()},
    }
    for name in args.shapes.split(","):
        results[name] = measure(name, args.epochs, args.repeats)
        print(name, json.dumps(results[name]), flush=True)
    sweep = [int(b) for b in args.batch_sweep.split(",") if b]
    if sweep:
        results["hiv_batch_sweep"] = [measure("hiv", args.epochs, args.repeats, b, only_fast=True) for b in sweep]
        for row in results["hiv_batch_sweep"]:
            print("hiv batch", json.dumps(row), flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
