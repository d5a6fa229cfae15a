"""DP-SGD training time against non-private training, measured side by side in one process.

    python benchmarks/dp_overhead.py [--json OUT] [--epochs 10] [--repeats 5] [--threads N] [--tf-privacy]

Variants, each on the same data, spec (batch 32, 10 epochs) and seed:
- "keras_fit": the non-private baseline as Keras `fit` trains it (the issue's reference, and how a user's own
  Keras model still trains);
- "same_loop": dptune's compiled loop (app/tuning/dense_loop.py) without DP;
- "fast_noiseless": the compiled loop with single-pass clipping and Poisson batches at noise 0 (no draws);
- "fast": the same at noise 1, the Gaussian noise drawn in the graph (stateless Philox);
- "secure": the same with the secure noise source the final model trains with;
- with --tf-privacy also TF Privacy's DPKerasSGDOptimizer, DPSequential and ghost clipping under Keras fit.
Ratios: fast_ratio = fast / keras_fit; fast_ratio_same_loop = fast / same_loop; noise_share = (fast -
fast_noiseless) / fast. normals_per_second divides the draws (parameters x steps) by the time a bare loop of
the same stateless draws takes, and by the extra time the noise costs in the step.
Every variant runs once untimed (tracing), then --repeats interleaved repeats; the medians count, and the
spread (min, max) and CPU seconds (process time) are reported beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_privacy.privacy.keras_models.dp_keras_model import DPSequential  # noqa: E402

from app.tuning.accounting import dp_sgd_steps  # noqa: E402
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
from benchmarks.common import emit_json  # noqa: E402

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


def _timed(fn: Callable[[], None]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def parameter_count(d: int, hidden: list[int]) -> int:
    sizes = [d, *hidden, 1]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def bare_noise_loop(size: int, steps: int) -> Callable[[], None]:
    """The noise alone: `steps` stateless draws of `size` normals, as the compiled loop draws them."""

    @tf.function
    def draw() -> tf.Tensor:
        def body(t: tf.Tensor, acc: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            noise = tf.random.stateless_normal([size], seed=tf.stack([tf.constant(7, tf.int64), t]))
            return t + 1, acc + noise[0]

        return tf.while_loop(lambda t, _: t < steps, body, (tf.constant(0, tf.int64), tf.constant(0.0)))[1]

    def run() -> None:
        draw().numpy()

    return run


def measure(name: str, epochs: int, repeats: int, tf_privacy: bool) -> dict[str, object]:
    shape = SHAPES[name]
    x, y = _data(shape["n"], shape["d"], shape["binary_features"])
    spec = ModelSpec(hidden=shape["hidden"], dropout=shape["dropout"], epochs=epochs, batch_size=32)
    dp = DPParams(clip=1.0, noise=1.0)
    steps = dp_sgd_steps(len(x), spec.batch_size, spec.epochs)
    draws = parameter_count(shape["d"], shape["hidden"]) * steps

    def keras_fit() -> None:
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(0)
        model = build_model(spec, x.shape[1], 2, None).model
        model.fit(x, label_tensor(y, 2), batch_size=spec.batch_size, epochs=spec.epochs, shuffle=True, verbose=0)

    def same_loop() -> None:
        assert train(spec, x, y, 2, None, seed=0).clipping == "none"

    def fast_noiseless() -> None:
        train(spec, x, y, 2, DPParams(clip=1.0, noise=0.0), seed=0)

    def fast() -> None:
        assert train(spec, x, y, 2, dp, seed=0).clipping == "single_pass"

    def secure() -> None:
        assert train(spec, x, y, 2, dp, seed=0, noise_source="secure").noise_source == "secure"

    variants: dict[str, Callable[[], None]] = {
        "keras_fit": keras_fit,
        "same_loop": same_loop,
        "fast_noiseless": fast_noiseless,
        "fast": fast,
        "secure": secure,
        "bare_noise": bare_noise_loop(parameter_count(shape["d"], shape["hidden"]), steps),
    }
    if tf_privacy:

        def optimizer_path() -> None:
            tf.keras.backend.clear_session()
            model = build_model(spec, x.shape[1], 2, dp, clipping="per_example").model
            model.fit(x, label_tensor(y, 2), batch_size=spec.batch_size, epochs=spec.epochs, verbose=0)

        def ghost() -> None:
            tf.keras.backend.clear_session()
            trained = build_model(spec, x.shape[1], 2, dp, clipping="ghost")
            dataset = poisson_dataset(x, label_tensor(y, 2), spec.batch_size, spec.epochs, np.random.default_rng(0))
            trained.model.fit(dataset, verbose=0)

        def vectorized() -> None:
            tf.keras.backend.clear_session()
            layers, _ = _mlp_layers(spec, x.shape[1], 2)
            model = DPSequential(l2_norm_clip=dp.clip, noise_multiplier=dp.noise, layers=layers, use_xla=False)
            model.compile(optimizer=tf.keras.optimizers.SGD(0.01), loss=tf.keras.losses.BinaryCrossentropy(True))
            model.fit(x, label_tensor(y, 2), batch_size=spec.batch_size, epochs=spec.epochs, verbose=0)

        variants.update({"optimizer": optimizer_path, "vectorized": vectorized, "ghost": ghost})
    for fn in variants.values():
        fn()  # untimed: tracing, allocator warm-up
    # Interleaved repeats, so a slow spell of the machine hits every variant alike.
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    ratios: list[float] = []
    for _ in range(repeats):
        for k, fn in variants.items():
            w, c = _timed(fn)
            wall[k].append(w)
            cpu[k].append(c)
        ratios.append(wall["fast"][-1] / wall["keras_fit"][-1])
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    out: dict[str, object] = {
        "steps": steps,
        "repeats": repeats,
        "fast_ratio": round(med["fast"] / med["keras_fit"], 3),
        "fast_ratio_per_repeat": [round(r, 3) for r in ratios],
        "fast_ratio_cpu": round(med_cpu["fast"] / med_cpu["keras_fit"], 3),
        "fast_ratio_same_loop": round(med["fast"] / med["same_loop"], 3),
        "same_loop_ratio": round(med["same_loop"] / med["keras_fit"], 3),
        "secure_ratio_same_loop": round(med["secure"] / med["same_loop"], 3),
        "noise_share": round(max(0.0, med["fast"] - med["fast_noiseless"]) / med["fast"], 3),
        "noise_draws": draws,
        "normals_per_second_bare": round(draws / med["bare_noise"]),
        "normals_per_second_in_step": (
            round(draws / (med["fast"] - med["fast_noiseless"])) if med["fast"] > med["fast_noiseless"] else None
        ),
        "wall_seconds": {k: round(v, 3) for k, v in med.items()},
        "wall_seconds_range": {k: [round(min(v), 3), round(max(v), 3)] for k, v in wall.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in med_cpu.items()},
    }
    for k in ("optimizer", "vectorized", "ghost"):
        if k in med:
            out[f"{k}_ratio"] = round(med[k] / med["keras_fit"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", default="hiv,synthea")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow intra/inter-op threads")
    parser.add_argument("--tf-privacy", action="store_true", help="also time TF Privacy's own DP paths (slow)")
    args = parser.parse_args()
    configure_threads(args.threads)
    results: dict[str, object] = {
        "epochs": args.epochs,
        "batch_size": 32,
        "threads": {"intra": tf.config.threading.get_intra_op_parallelism_threads(), "cpus": os.cpu_count()},
        "targets": {"hiv.fast_ratio": "<= 1.2", "synthea.fast_ratio": "<= 0.3"},
    }
    for name in args.shapes.split(","):
        results[name] = measure(name, args.epochs, args.repeats, args.tf_privacy)
        print(name, json.dumps(results[name]), flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    emit_json(results, args.json)


if __name__ == "__main__":
    main()
