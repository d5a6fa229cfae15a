"""A whole tuning job's wall time, end to end, and where it goes.

    python benchmarks/job_time.py [--setup demo|hiv|all] [--hiv-trials 25] [--json OUT]

demo: the README's demo job, `dptune demo --trials 12 --save-model DIR` (the built-in synthea-covid cohort:
baseline and its audit, 12 trials, confirmation, the final model and its files).
hiv: a default 25-trial job on MoleculeNet's HIV.csv (`dptune tune HIV.csv --label HIV_active --smiles smiles
--split butina --hidden 200,100 --dropout 0.1 --trials 25 --save-model DIR`).
Both run the CLI's own code in this process, after start-up (imports, and one untimed tiny training that
traces the compiled loop's first graph), so the figure is the job's, not Python's. Seconds are split
exclusively (a nested call's time is its own category's): training (the compiled loop, Keras fit), prediction
(models' outputs for evaluation and attacks), attacks (scores, thresholds, the epsilon lower bound), accounting
(the PLD and RDP accountants, noise calibration), search (the Bayesian optimiser), and other (data preparation,
the remaining numpy, writing files); the *_overlapped keys ran on a thread beside these (a trial's
accountant) and are not part of their sum. The CLI runs the job without a queue: queue_seconds is 0 here by
construction; benchmarks/workers_scaling.py measures the service's queue.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import cli  # noqa: E402
from app.tuning import accounting, train  # noqa: E402
from app.tuning.attacks import blackbox, calibrated, games, lower_bound, statistics  # noqa: E402
from benchmarks.common import emit_json  # noqa: E402

HIV_CSV = ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv"
TARGETS = {"demo_job_seconds": 30.0, "hiv_job_seconds": 600.0}


class ExclusiveTimers:
    """Wall seconds per category; time inside a nested timed call counts for the innermost category only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.stack: list[str] = ["other"]
        self.mark = time.perf_counter()

    def _switch(self) -> None:
        now = time.perf_counter()
        self.seconds[self.stack[-1]] += now - self.mark
        self.mark = now

    def wrap(self, category: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():
                # Beside the main thread (the trial's accountant): its time overlaps the others'.
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.seconds[f"{category}_overlapped"] += time.perf_counter() - start
            self._switch()
            self.stack.append(category)
            try:
                return original(*args, **kwargs)
            finally:
                self._switch()
                self.stack.pop()

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.mark = time.perf_counter()

    def split(self) -> dict[str, float]:
        self._switch()
        return {k: round(v, 3) for k, v in sorted(self.seconds.items())}


def _patch_everywhere(original: Callable[..., Any], replacement: Callable[..., Any]) -> None:
    """Replace a function in every app module that bound it by name (from X import f)."""
    for name, module in list(sys.modules.items()):
        if name.startswith("app.") or name == "app":
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, replacement)


def install(timers: ExclusiveTimers) -> None:
    """Time the job's steps in place. Names an older checkout lacks are skipped (its split is then partial;
    the job's total stands), so the same script times the code before and after a change."""
    try:
        from app.tuning import dense_loop
    except ImportError:
        dense_loop = None  # type: ignore[assignment]
    if dense_loop is not None:
        for owner, name, category in (
            (dense_loop.DenseTrainer, "__init__", "training"),
            (dense_loop.DenseTrainer, "train_until", "training"),
            (dense_loop.DenseWeights, "logits", "prediction"),
        ):
            setattr(owner, name, timers.wrap(category, getattr(owner, name)))
    functions = {
        "training": [train.train, getattr(train, "train_many", None), getattr(train, "_train_keras", None)],
        "prediction": [getattr(train, "keras_outputs", None)],
        "attacks": [
            blackbox.blackbox_scores,
            calibrated.loss_scores,
            calibrated.rmia_scores,
            lower_bound.empirical_epsilon,
            statistics.attack_scores,
            statistics.best_accuracy_threshold,
            games._scored,
            games.cross_fitted_decisions,
            games.label_only_attack_accuracy,
        ],
        "accounting": [
            accounting.dp_sgd_guarantee,
            accounting.dp_sgd_epsilon_rdp,
            accounting.noise_for_epsilon,
        ],
    }
    from app.tuning import search

    functions["search"] = [search.search_step, search.posterior_at]
    for category, originals in functions.items():
        for original in originals:
            if original is not None:
                _patch_everywhere(original, timers.wrap(category, original))


def warm_up() -> None:
    """Start-up, untimed: the compiled loop's first trace and TensorFlow's thread pools."""
    import numpy as np

    from app.tuning.model_spec import ModelSpec

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    train.train(ModelSpec(hidden=[4], epochs=1), x, (x[:, 0] > 0).astype(np.int64), 2, None, seed=0)


def run_job(timers: ExclusiveTimers, argv: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        full = [*argv, "--json", str(out), "--save-model", str(Path(folder) / "model")]
        timers.reset()
        start = time.perf_counter()
        code = cli.main(full)
        seconds = time.perf_counter() - start
        split = timers.split()
        if code != 0:
            raise SystemExit(f"the job failed (exit {code}): {' '.join(full)}")
        result = json.loads(out.read_text())
        saved = sorted(p.name for p in (Path(folder) / "model").iterdir())
    recommendation = result.get("recommendation") or {}
    return {
        "command": "dptune " + " ".join(argv) + " --json OUT --save-model DIR",
        "seconds": round(seconds, 2),
        "split_seconds": split,
        "queue_seconds": 0.0,
        "trials": len(result.get("trials", [])),
        "final_model_files": saved,
        "recommended": {k: recommendation.get(k) for k in ("clip", "noise", "epsilon")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=["demo", "hiv", "all"], default="all")
    parser.add_argument("--demo-trials", type=int, default=12)
    parser.add_argument("--hiv-trials", type=int, default=25)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    warm_up()
    timers = ExclusiveTimers()
    install(timers)
    results: dict[str, Any] = {
        "startup_seconds": round(time.perf_counter() - started, 2),
        "cpus": os.cpu_count(),
        "targets": {k: f"<= {v:g}" for k, v in TARGETS.items()},
    }
    if args.setup in ("demo", "all"):
        results["demo"] = run_job(timers, ["demo", "--trials", str(args.demo_trials)])
        results["demo_job_seconds"] = results["demo"]["seconds"]
        print("demo", json.dumps(results["demo"]), flush=True)
    if args.setup in ("hiv", "all"):
        hiv = [str(HIV_CSV), "--label", "HIV_active", "--smiles", "smiles", "--split", "butina"]
        hiv += ["--hidden", "200,100", "--dropout", "0.1", "--trials", str(args.hiv_trials)]
        results["hiv"] = run_job(timers, ["tune", *hiv])
        results["hiv_job_seconds"] = results["hiv"]["seconds"]
        print("hiv", json.dumps(results["hiv"]), flush=True)
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    emit_json(results, args.json)


if __name__ == "__main__":
    main()
