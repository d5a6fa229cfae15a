"""Where one trial's seconds go: target training, evaluation, the control model, the K reference models, each
attack of each game, the empirical epsilon, and the PLD guarantee.

    python benchmarks/trial_breakdown.py [--setup synthea|hiv] [--repeats 3] [--reference-models 4] [--json OUT]

Runs app.tuning.engine.run_trial itself (one repeat, noise 1, clip 1) with its steps timed in place (the median
over --repeats trials), on the built-in synthea-covid data set (its k-means split, which has an external set, so
both games are played; default model, 50/10, SGD, 10 epochs) or on HIV.csv (Butina split, 200/100, dropout 0.1).
Smallest: --repeats 1 --reference-models 2.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.tuning import engine  # noqa: E402
from app.tuning.accounting import default_delta  # noqa: E402
from app.tuning.attacks import games  # noqa: E402
from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.results import MeasurementSpec  # noqa: E402

# Steps that are attack work (for the share); the rest is training, evaluation and accounting.
ATTACK_PREFIXES = ("membership.", "population.")


def prepare(setup: str):  # type: ignore[no-untyped-def]
    from app.datasets import BUILTIN_DATASETS, ButinaSplit, prepare_dataset, read_table

    if setup == "synthea":
        builtin = BUILTIN_DATASETS["synthea-covid"]
        data, _ = prepare_dataset(builtin.load(0), label=builtin.label, split=builtin.default_split, seed=0)
        return data, ModelSpec()
    frame = read_table(ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv")[["smiles", "HIV_active"]]
    data, _ = prepare_dataset(frame, label="HIV_active", split=ButinaSplit(), smiles_column="smiles", seed=0)
    return data, ModelSpec(hidden=[200, 100], dropout=0.1)


class Timers:
    """Wraps the engine's and the games' steps in place, so the trial that runs is run_trial's own code."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.game: str | None = None  # the game being played, while one is
        self.trainings_outside_games = 0

    def _timed(self, module, name: str, label) -> None:  # type: ignore[no-untyped-def]
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            key = label(args, kwargs)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if key is not None:
                    self.seconds[key] += time.perf_counter() - start

        setattr(module, name, wrapper)

    def _game(self, module, name: str, game: str) -> None:  # type: ignore[no-untyped-def]
        original = getattr(module, name)

        @functools.wraps(original)
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.game = game
            try:
                return original(*args, **kwargs)
            finally:
                self.game = None

        setattr(module, name, wrapper)

    def _training(self, args, kwargs) -> str:  # type: ignore[no-untyped-def]
        if self.game == "membership":
            return "reference_models_training"  # the calibrated attack's K models (train_like)
        self.trainings_outside_games += 1
        # _measure_once trains the target, then (with an external set) the control model on the holdout.
        return "target_training" if self.trainings_outside_games == 1 else "control_training"

    def install(self) -> None:
        self._timed(engine, "train", self._training)
        self._timed(engine, "_probabilities", lambda a, k: "evaluation")
        self._timed(engine, "_utility", lambda a, k: "evaluation")
        self._timed(engine, "dp_sgd_guarantee", lambda a, k: "pld_guarantee")
        self._timed(games, "blackbox_scores", lambda a, k: f"{self.game}.{a[0]}")
        self._timed(games, "loss_scores", lambda a, k: f"{self.game}.loss" if self.game else None)
        self._timed(games, "rmia_scores", lambda a, k: f"{self.game}.rmia_scores")
        self._timed(games, "empirical_epsilon", lambda a, k: f"{self.game}.epsilon_lower_bound")
        self._timed(games, "_scored", lambda a, k: f"{self.game}.intervals")
        self._game(engine, "membership_game", "membership")
        self._game(engine, "population_game", "population")

    def reset(self) -> None:
        self.seconds.clear()
        self.trainings_outside_games = 0


def one_trial(timers: Timers, data, spec: ModelSpec, measurement: MeasurementSpec) -> dict[str, float]:  # type: ignore[no-untyped-def]
    timers.reset()
    start = time.perf_counter()
    engine.run_trial(data, spec, 1.0, 1.0, delta=default_delta(len(data.y_members)), measurement=measurement, seed=0)
    total = time.perf_counter() - start
    t = dict(timers.seconds)
    # other: predictions of the control and reference models, drawing the games' records.
    t["other"] = total - sum(t.values())
    t["total"] = total
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=["synthea", "hiv"], default="synthea")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reference-models",
        type=int,
        default=MeasurementSpec().reference_models,
        help="K of the calibrated attack (the search trials' default unless given)",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    data, spec = prepare(args.setup)
    preparation = time.perf_counter() - start
    measurement = MeasurementSpec(reference_models=args.reference_models)
    timers = Timers()
    timers.install()
    runs = [one_trial(timers, data, spec, measurement) for _ in range(args.repeats)]
    keys = sorted({k for r in runs for k in r})
    median = {k: sorted(r.get(k, 0.0) for r in runs)[len(runs) // 2] for k in keys}
    total = median["total"]
    attacks = sum(v for k, v in median.items() if k.startswith(ATTACK_PREFIXES))
    out = {
        "setup": args.setup,
        "split_sizes": data.split_sizes().model_dump(),
        "reference_models": args.reference_models,
        "data_preparation_seconds_once_per_job": round(preparation, 3),
        # membership.* / population.*: each attack (population: on the target and the control model together).
        "trial_seconds_median": {k: round(v, 3) for k, v in median.items()},
        # The first trial of a worker builds and traces the model; later ones reuse it (models without dropout).
        "first_trial_training_seconds": round(runs[0]["target_training"], 3),
        "trial_total_seconds": round(total, 3),
        # Attacks (not their models' training) and evaluation, as a share of the trial.
        "attack_and_evaluation_share": round((attacks + median.get("evaluation", 0.0)) / total, 3),
        "training_share": round(sum(v for k, v in median.items() if k.endswith("_training")) / total, 3),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
