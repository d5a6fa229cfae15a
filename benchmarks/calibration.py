"""Noise calibration for a target epsilon: how close the accounted epsilon lands, and what it costs.

    python benchmarks/calibration.py [--n 1206] [--batch-size 32] [--epochs 10] [--delta 1e-5]

For each target, accounting.noise_for_epsilon (dp_accounting's calibrate_dp_mechanism, PLD) gives the noise; the
script prints it, the seconds it took (first call, uncached), and the epsilon dptune's accountant then reports
for that noise (PLD at its finer discretisation), which must be at most the target. Defaults: the demo's shape.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.tuning.accounting import dp_sgd_guarantee, dp_sgd_steps, noise_for_epsilon, sampling_rate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1206)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--delta", type=float, default=1e-5)
    args = parser.parse_args()
    rate, steps = sampling_rate(args.n, args.batch_size), dp_sgd_steps(args.n, args.batch_size, args.epochs)
    print(f"n {args.n}, q {rate:.5f}, {steps} steps, delta {args.delta:g}")
    print("target  noise     seconds  accounted epsilon  ratio")
    for target in (0.5, 1.0, 3.0, 10.0):
        started = time.perf_counter()
        noise = noise_for_epsilon(epsilon=target, sampling_rate=rate, steps=steps, delta=args.delta)
        seconds = time.perf_counter() - started
        epsilon = dp_sgd_guarantee(sampling_rate=rate, noise_multiplier=noise, steps=steps, delta=args.delta).epsilon
        assert epsilon is not None
        print(f"{target:6g}  {noise:.5f}  {seconds:7.2f}  {epsilon:17.5f}  {epsilon / target:.5f}")


if __name__ == "__main__":
    main()
