"""Where the rest of DP-SGD's time goes on the HIV shape: the Gaussian noise, and drawing it in the input pipeline.

    python benchmarks/noise_cost.py [--threads 1] [--repeats 2]

Prints, in one process (HIV-sized MLP: 5,627 x 1,024, layers 200/100, dropout 0.1, batch 32, 10 epochs):
- the seconds of a bare loop drawing N(0, 1) for every parameter (225,301) at every step (1,760);
- non-private training, single-pass DP at noise 0, and single-pass DP at noise 1 with the noise drawn in the
  training step or by the input pipeline (dptune's path), with wall and CPU seconds of each.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.tuning.train import configure_threads  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    configure_threads(args.threads)

    import numpy as np
    import tensorflow as tf
    from dp_overhead import SHAPES, _data

    from app.tuning.model_spec import ModelSpec
    from app.tuning.train import DPParams, build_model, label_tensor, poisson_dataset, train

    shape = SHAPES["hiv"]
    x, y = _data(shape["n"], shape["d"], shape["binary_features"])
    spec = ModelSpec(hidden=shape["hidden"], dropout=shape["dropout"], epochs=10, batch_size=32)
    steps = 10 * -(-len(x) // 32)
    sizes = [(1024, 200), (200,), (200, 100), (100,), (100, 1), (1,)]

    @tf.function
    def bare_noise() -> tf.Tensor:
        total = tf.constant(0.0)
        for _ in tf.range(steps):
            for size in sizes:
                total += tf.reduce_sum(tf.random.normal(size))
        return total

    def dp_fit(noise: float, pipelined: bool) -> None:
        tf.keras.backend.clear_session()
        tf.keras.utils.set_random_seed(0)
        trained = build_model(spec, x.shape[1], 2, DPParams(1.0, noise), clipping="single_pass")
        draws = (trained.model.noise_size(), noise) if pipelined and noise > 0 else None
        dataset = poisson_dataset(x, label_tensor(y, 2), 32, 10, np.random.default_rng(0), draws)
        trained.model.fit(dataset, epochs=1, verbose=0)

    variants = {
        "bare noise loop": lambda: bare_noise(),
        "non-private": lambda: train(spec, x, y, 2, None, seed=0),
        "single-pass, noise 0": lambda: dp_fit(0.0, False),
        "single-pass, noise 1, drawn in the step": lambda: dp_fit(1.0, False),
        "single-pass, noise 1, drawn by the input pipeline": lambda: dp_fit(1.0, True),
    }
    for fn in variants.values():
        fn()  # untimed warm-up
    print(f"threads {args.threads or 'default'}, {steps} steps, {sum(int(np.prod(s)) for s in sizes)} parameters")
    for _ in range(args.repeats):
        for name, fn in variants.items():
            wall, cpu = time.perf_counter(), _cpu()
            fn()
            print(f"{name}: wall {time.perf_counter() - wall:.2f} s, cpu {_cpu() - cpu:.2f} s", flush=True)


if __name__ == "__main__":
    main()
