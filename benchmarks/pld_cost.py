"""What the PLD accountant costs per trial, and why its discretisation is coarsened for weak guarantees.

    python benchmarks/pld_cost.py

At the demo's shape (q = 32/1,206, 380 steps) it times, each in a fresh process (peak memory is per process):
the PLD at the fixed discretisation 1e-4 and the coarsened one dptune uses (in proportion to RDP's epsilon above
accounting.COARSE_PLD_ABOVE_EPSILON), at each noise of NOISES, with their epsilons; and dp_sgd_guarantee
(epsilon, RDP, accuracy and TPR bounds) as a trial calls it. docs/privacy.md quotes the figures.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RATE, STEPS, DELTA = 32 / 1206, 380, 1e-5
NOISES = (0.1, 0.5, 0.637, 1.0, 2.0)  # 0.637: the demo's noise floor (epsilon 10)


def case(kind: str, noise: float) -> dict:
    from dp_accounting.pld import privacy_loss_distribution

    from app.tuning import accounting

    started = time.perf_counter()
    if kind == "guarantee":
        epsilon = accounting.dp_sgd_guarantee(
            sampling_rate=RATE, noise_multiplier=noise, steps=STEPS, delta=DELTA
        ).epsilon
    else:
        interval = accounting.PLD_DISCRETIZATION
        if kind == "coarsened":
            rdp = accounting.dp_sgd_epsilon_rdp(sampling_rate=RATE, noise_multiplier=noise, steps=STEPS, delta=DELTA)
            interval *= max(1.0, rdp / accounting.COARSE_PLD_ABOVE_EPSILON)
        epsilon = (
            privacy_loss_distribution.from_gaussian_mechanism(
                noise, sampling_prob=RATE, use_connect_dots=True, value_discretization_interval=interval
            )
            .self_compose(STEPS)
            .get_epsilon_for_delta(DELTA)
        )
    return {
        "kind": kind,
        "noise": noise,
        "epsilon": epsilon,
        "seconds": round(time.perf_counter() - started, 2),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--case":
        print(json.dumps(case(sys.argv[2], float(sys.argv[3]))))
        return
    for kind in ("exact", "coarsened", "guarantee"):
        for noise in NOISES:
            done = subprocess.run(
                [sys.executable, __file__, "--case", kind, str(noise)], capture_output=True, text=True, check=True
            )
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
