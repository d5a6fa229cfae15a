"""Reproduce the source study (chapter 6, Tables 11-14, Figures 41-46) with both privacy games, and go beyond it:
recommendations under the epsilon budget and at a target epsilon, and the search cost of bayes against random.

    python benchmarks/reproduce_study.py [--setup synthea-sgd|synthea-adam|hiv|all] [--quick] [--out DIR]
        [--workers 2] [--trials 30] [--target-trials N] [--seeds 5] [--grid-step S] [--grid-max M]
        [--tradeoffs 0.25 0.5 0.75] [--target-epsilons 1 3 8] [--bounds 5 10 20 100] [--audit-k 16]
        [--confirm-repeats 3]

Writes DIR/figures/*.png, DIR/results/reproduction.json (one block per setup, keeping the other setups' blocks),
DIR/results/reproduction-<setup>-trials.json (every trial) and DIR/reproduction.md (DIR defaults to docs/).

Measurement: the objective reads the membership game (dptune's default: members against holdout, what DP bounds);
the study's population game (members against the external set) is measured beside it in every trial. Search and
grid trials use K = 2 reference models for the calibrated attack; the baseline and the confirmations use --audit-k.
- The grid: the study's space (noise from 0), every point measured once (the study's Figures 41/42).
- Tables 13/14: one `engine.tune()` per t, as the product runs it: bayes, max_epsilon 10, the recommendation
  confirmed on --confirm-repeats fresh seeds. The target-epsilon rows: `tune()` at t = 0.5 with target_epsilon.
- Convergence (Figures 43/44/46): bayes at t = 0.5, seed 0, in the budget space bounded by each --bounds value.
- Search cost: bayes and random runs (seeds 0..S-1) in the budget space, scored against the grid's model (see
  SEARCH_COST_DEFINITION). A run that is the same as another (bayes, t = 0.5, seed 0, bound 10 is the t = 0.5
  tune()'s search) is run once.
--quick runs the same pipeline at tiny scale (a smoke test, not a measurement): 1-epoch [8] models, a 2 x 2 grid,
3 trials per search (2 for target epsilon), one seed, t = 0.5 and target epsilon 3 only, audit K 2, 2 confirmation
repeats.
Every unit (baseline, grid point, tune() run, search run) runs in `--workers` processes with one TensorFlow thread
each; the sequential runs are queued before the grid points so that the grid fills the tail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.datasets import ButinaSplit  # noqa: E402
from app.tuning.accounting import default_delta  # noqa: E402
from app.tuning.errors import TuningError  # noqa: E402
from app.tuning.model_spec import ModelSpec  # noqa: E402
from app.tuning.objective import MEANINGFUL_EPSILON, score  # noqa: E402
from app.tuning.prepared import PreparedData  # noqa: E402
from app.tuning.recommendation import EPSILON_SLACK, choose, observations, space_for  # noqa: E402
from app.tuning.results import (  # noqa: E402
    Baseline,
    FailedTrial,
    GuaranteeSpec,
    MeasurementSpec,
    Trial,
    TrialMeasurement,
    TuningResult,
)
from app.tuning.search import (  # noqa: E402
    SearchSpace,
    SearchSpec,
    grid_points,
    objective_model,
    scored_observations,
    search_step,
)

HIV_CSV = ROOT.parent / "shared" / "data" / "moleculenet-hiv" / "HIV.csv"
# The HIV split: the `outlying` grouping (docs/datasets.md, "Butina split"): the member side is HIV's dense core,
# the external group its least typical Butina clusters; `distant-groups` is the grouping before issue 14.
# --quick caps max_compounds.
HIV_SPLIT = ButinaSplit(grouping="outlying")
HIV_QUICK_MAX_COMPOUNDS = 1500
CALIBRATED = "rmia"  # the calibrated attack's key in games.membership.attacks
SEARCH_K = 2  # reference models of the calibrated attack in search and grid trials (each one is a training)
MAX_EPSILON = MEANINGFUL_EPSILON  # the budget of Tables 13/14 and of the search-cost runs
SEARCH_BOUND = 10.0  # max clip and max noise of the tune() runs and the search-cost runs
COST_TRADEOFF = 0.5  # the t of the convergence curves, the search cost and the target-epsilon rows
FIRST_PREFIX = 3  # choose() needs this many trials for its model (search.MIN_TRIALS_FOR_MODEL)

SEARCH_COST_DEFINITION = (
    "The grid's objective model is fitted (the Gaussian process of `search.objective_model`, as "
    "`search.posterior_at` fits it) on the grid points within the budget (epsilon <= {budget:g}), scored at "
    "t = {t:g} on the membership game, in the budget's search space. G* is its best posterior mean over those grid "
    "points and SE its posterior standard deviation there. Each search run (bayes and random, seeds 0..S-1, the "
    "same trial budget, in the budget space, driven by `search_step` as `tune()` drives it) is read at every prefix "
    "of i >= {first} trials: `recommendation.choose` picks its point from the first i trials, and the grid model's "
    "posterior mean at that point is taken as the truth for it (confirming the chosen point at every prefix would "
    "cost `confirm_repeats` trainings per prefix, so the grid's model stands in for the confirmation). "
    "trials_to_1se is the first i where that value is >= G* - SE; the median is over seeds, a run that never "
    "reaches it counts as budget + 1, and a median above the budget is reported as not reached (null)."
)

# The study's figures (Tables 11-14). Table 11's columns are SGD and Adam. The study's "utility on nonmembers" is
# utility on the other cluster, which dptune calls the external set: it is kept under utility_external. Its attack
# accuracy is the population game's (members against the other cluster).
STUDY = {
    "synthea_sgd": {
        "baseline": {
            "utility_members": 0.990,
            "utility_test": 0.984,
            "utility_external": 0.986,
            "attack_accuracy": 0.622,
        },
        "tradeoffs": {"0.25": (0.046, 0.496), "0.5": (0.037, 0.497), "0.75": (0.002, 0.518)},
    },
    "synthea_adam": {
        "baseline": {
            "utility_members": 0.998,
            "utility_test": 0.992,
            "utility_external": 0.995,
            "attack_accuracy": 0.639,
        },
        "tradeoffs": {"0.25": (0.003, 0.508), "0.5": (0.002, 0.504), "0.75": (0.0, 0.51)},
    },
    "hiv": {
        "baseline": {
            "utility_members": 0.978,
            "utility_test": 0.966,
            "utility_external": 0.987,
            "attack_accuracy": 0.767,
        },
        "tradeoffs": {"0.25": (0.012, 0.488), "0.5": (0.004, 0.494), "0.75": (0.001, 0.490)},
    },
}
RESULT_FORMAT = 2  # setups' blocks from before both games (no "format") are dropped when a run rewrites the file


@dataclass
class Setup:
    key: str
    spec: ModelSpec
    grid_step: float
    grid_max: float


SETUPS = {
    "synthea-sgd": Setup("synthea_sgd", ModelSpec(hidden=[50, 10], optimizer="sgd", epochs=10), 0.5, 10.0),
    "synthea-adam": Setup("synthea_adam", ModelSpec(hidden=[50, 10], optimizer="adam", epochs=5), 0.5, 10.0),
    # HIV: the study's step 0.2 over 0..10 is 2,500 trainings; step 0.5 over clip 0.1..5 and noise 0..5 is 100.
    "hiv": Setup("hiv", ModelSpec(hidden=[200, 100], dropout=0.1, optimizer="sgd", epochs=10), 0.5, 5.0),
}


@dataclass(frozen=True)
class Config:
    """How large a run is: everything a slow setup may be cut down by, written into the results."""

    quick: bool
    trials: int
    target_trials: int
    seeds: int
    grid_step: float
    grid_max: float
    tradeoffs: tuple[str, ...]
    target_epsilons: tuple[str, ...]
    bounds: tuple[float, ...]
    workers: int
    audit_k: int
    confirm_repeats: int
    search_k: int = SEARCH_K
    max_epsilon: float = MAX_EPSILON

    def measurement(self) -> MeasurementSpec:
        # The gate is recorded (baseline.learns), not enforced: a reproduction reports a weak baseline.
        return MeasurementSpec(
            privacy_game="membership",
            reference_models=self.search_k,
            audit_reference_models=self.audit_k,
            allow_weak_baseline=True,
        )

    def grid(self) -> SearchSpec:
        return SearchSpec(
            method="grid", min_clip=0.1, max_clip=self.grid_max, max_noise=self.grid_max, grid_step=self.grid_step
        )

    def search(self, method: str, bound: float = SEARCH_BOUND, trials: int | None = None) -> SearchSpec:
        return SearchSpec(method=method, trials=trials or self.trials, max_clip=bound, max_noise=bound)  # type: ignore[arg-type]

    def budget(self) -> GuaranteeSpec:
        return GuaranteeSpec(max_epsilon=self.max_epsilon, confirm_repeats=self.confirm_repeats)

    def target(self, epsilon: str) -> GuaranteeSpec:
        return GuaranteeSpec(
            max_epsilon=self.max_epsilon, target_epsilon=float(epsilon), confirm_repeats=self.confirm_repeats
        )


def make_config(args: argparse.Namespace, setup: Setup) -> Config:
    if args.quick:
        return Config(
            quick=True,
            trials=3,
            target_trials=2,
            seeds=1,
            grid_step=5.0,
            grid_max=10.0,
            tradeoffs=("0.5",),
            target_epsilons=("3",),
            bounds=(SEARCH_BOUND,),
            workers=args.workers,
            audit_k=2,
            confirm_repeats=2,
        )
    return Config(
        quick=False,
        trials=args.trials,
        target_trials=args.target_trials or args.trials,
        seeds=args.seeds,
        grid_step=args.grid_step or setup.grid_step,
        grid_max=args.grid_max or setup.grid_max,
        tradeoffs=tuple(f"{float(t):g}" for t in args.tradeoffs),
        target_epsilons=tuple(f"{float(e):g}" for e in args.target_epsilons),
        bounds=tuple(float(b) for b in args.bounds),
        workers=args.workers,
        audit_k=args.audit_k,
        confirm_repeats=args.confirm_repeats,
    )


def model_spec(setup: Setup, quick: bool) -> ModelSpec:
    return setup.spec.model_copy(update={"epochs": 1, "hidden": [8]}) if quick else setup.spec


def load_data(setup_name: str, quick: bool) -> tuple[PreparedData, dict]:
    from app.datasets import BUILTIN_DATASETS, prepare_dataset, read_table

    if setup_name.startswith("synthea"):
        builtin = BUILTIN_DATASETS["synthea-covid"]
        frame = builtin.load(0)
        data, report = prepare_dataset(frame, label=builtin.label, split=builtin.default_split, seed=0)
    else:
        frame = read_table(HIV_CSV)
        frame = frame[["smiles", "HIV_active"]]
        split = HIV_SPLIT
        if quick and "max_compounds" in type(split).model_fields:
            split = split.model_copy(update={"max_compounds": HIV_QUICK_MAX_COMPOUNDS})
        data, report = prepare_dataset(frame, label="HIV_active", split=split, smiles_column="smiles", seed=0)
    return data, report.model_dump(mode="json")


# ---- worker processes: the prepared data is sent once per process ----
_DATA: PreparedData | None = None
_SPEC: ModelSpec | None = None
_MEASUREMENT: MeasurementSpec | None = None


def _init_worker(data: PreparedData, spec: ModelSpec, measurement: MeasurementSpec) -> None:
    global _DATA, _SPEC, _MEASUREMENT
    from app.tuning.train import configure_threads

    configure_threads(1)
    _DATA, _SPEC, _MEASUREMENT = data, spec, measurement


def _baseline_task(delta: float) -> Baseline:
    from app.tuning.engine import run_baseline

    assert _DATA is not None and _SPEC is not None
    return run_baseline(_DATA, _SPEC, _MEASUREMENT, seed=0, delta=delta)


def _grid_task(point: tuple[float, float], index: int, delta: float) -> TrialMeasurement | str:
    """One grid point, seeded like search trial `index`; a failure is returned as its message."""
    from app.tuning.engine import run_trial, trial_seed

    assert _DATA is not None and _SPEC is not None
    try:
        return run_trial(
            _DATA, _SPEC, point[0], point[1], delta=delta, measurement=_MEASUREMENT, seed=trial_seed(0, index)
        )
    except Exception as exc:  # noqa: BLE001 - one point failing must not lose the other 399
        return f"{type(exc).__name__}: {exc}"


def _tune_task(
    search: SearchSpec, guarantee: GuaranteeSpec, tradeoff: float, baseline: Baseline, delta: float
) -> TuningResult | str:
    """The product's own path: search, choose, confirm. A job the product refuses is returned as its reason."""
    from app.tuning.engine import tune

    assert _DATA is not None and _SPEC is not None
    try:
        return tune(
            _DATA,
            _SPEC,
            search,
            measurement=_MEASUREMENT,
            guarantee=guarantee,
            tradeoff=tradeoff,
            baseline=baseline,
            seed=0,
            delta=delta,
        )
    except TuningError as exc:
        return f"{exc.code}: {exc.message}"


def _search_task(
    search: SearchSpec, guarantee: GuaranteeSpec, seed: int, baseline: Baseline, delta: float
) -> list[Trial] | str:
    """tune()'s search loop without its confirmation (the same space, steps and trial seeds), scored at t = 0.5:
    a search-cost run is read at every prefix, so confirming only its last choice would not help."""
    from app.tuning.engine import run_trial, trial_seed

    assert _DATA is not None and _SPEC is not None
    try:
        space = space_for(search, guarantee, _SPEC, len(_DATA.y_members), delta)
    except TuningError as exc:  # e.g. a bound below the budget's noise floor: recorded, the other runs go on
        return f"{exc.code}: {exc.message}"
    trials: list[Trial] = []
    failed: list[FailedTrial] = []
    started = time.perf_counter()
    while (
        step := search_step(
            search, space, observations(trials, failed), [], seed=seed, elapsed_seconds=time.perf_counter() - started
        )
    ).point is not None:
        index = len(trials) + len(failed)
        try:
            measured = run_trial(
                _DATA, _SPEC, *step.point, delta=delta, measurement=_MEASUREMENT, seed=trial_seed(seed, index)
            )
        except TuningError as exc:  # the job's own configuration: every trial would fail alike
            return f"{exc.code}: {exc.message}"
        except Exception as exc:  # noqa: BLE001 - as tune(): the search moves away from a failed point
            failed.append(FailedTrial(index=index, clip=step.point[0], noise=step.point[1], error=str(exc)))
            continue
        trials.append(score(measured, baseline, COST_TRADEOFF, index=index))
    return trials


# ---- scheduling: every independent unit in the pool at once ----
Unit = tuple[tuple, Callable[..., Any], tuple]


def run_units(
    pool: ProcessPoolExecutor,
    workers: int,
    first: Sequence[Unit],
    after: dict[tuple, Callable[[Any], list[Unit]]],
    log: Callable[[tuple, Any, int, int], None],
) -> dict:
    """Runs the units; when unit `k` of `after` finishes, after[k](its result) units go to the front of the
    queue (long sequential runs before grid points, so the grid fills the tail). At most `workers` in flight."""
    queue: deque[Unit] = deque(first)
    running: dict[Future, tuple] = {}
    outcomes: dict[tuple, Any] = {}
    total = len(queue)
    while queue or running:
        while queue and len(running) < workers:
            key, fn, fargs = queue.popleft()
            running[pool.submit(fn, *fargs)] = key
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            key = running.pop(future)
            outcomes[key] = future.result()
            if key in after:
                more = after[key](outcomes[key])
                queue.extendleft(reversed(more))
                total += len(more)
            log(key, outcomes[key], len(outcomes), total)
    return outcomes


# ---- the grid's objective model, read at any point ----
@dataclass
class GridModel:
    """The objective model fitted on the feasible grid points (as search.posterior_at fits it), with its best
    posterior mean G* and that point's posterior standard deviation SE."""

    space: SearchSpace
    model: Any
    transformed: Any
    best: float
    se: float
    best_point: tuple[float, float]
    points: int

    def mean_at(self, point: tuple[float, float]) -> float:
        return float(self.means([point])[0])

    def means(self, points: Sequence[tuple[float, float]]) -> np.ndarray:
        mean = self.model.predict(self._x(points))
        return -np.asarray(mean, dtype=np.float64)

    def _x(self, points: Sequence[tuple[float, float]]) -> Any:
        s = self.space
        inside = [(min(max(c, s.min_clip), s.max_clip), min(max(z, s.min_noise), s.max_noise)) for c, z in points]
        return self.transformed.transform([s.to_values(p) for p in inside])


def fit_grid_model(space: SearchSpace, trials: Sequence[Trial], seed: int = 0) -> GridModel | None:
    """Fitted on every trial given (posterior_at's model; it is used here at any count, as the grid may leave
    only a few points within the budget at --quick)."""
    if not trials:
        return None
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    observed = observations(trials)
    scored = scored_observations(observed)
    losses = np.asarray([-o for _, o in scored], dtype=np.float64)
    model = objective_model(space, list(losses), observed, seed)
    grid = GridModel(space, model, Space(normalize_dimensions(space.dimensions())), 0.0, 0.0, (0.0, 0.0), len(scored))
    x = grid._x([p for p, _ in scored])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, losses)
        mean, std = model.predict(x, return_std=True)
    i = int(np.argmin(mean))
    grid.best, grid.se, grid.best_point = -float(mean[i]), float(std[i]), scored[i][0]
    return grid


def within_budget(m: TrialMeasurement, max_epsilon: float) -> bool:
    return m.epsilon is not None and m.epsilon <= max_epsilon * (1 + EPSILON_SLACK)


def chosen_values(
    trials: Sequence[Trial],
    baseline: Baseline,
    space: SearchSpace,
    guarantee: GuaranteeSpec,
    grid: GridModel,
    seed: int,
) -> list[dict]:
    """At every prefix i >= FIRST_PREFIX: the point choose() picks from the first i trials, and the grid model's
    posterior mean there."""
    rows = []
    for i in range(FIRST_PREFIX, len(trials) + 1):
        choice = choose(trials[:i], baseline, COST_TRADEOFF, space, guarantee, seed)
        if choice.trial is None:
            rows.append({"trials": i, "clip": None, "noise": None, "grid_mean": None})
            continue
        point = (choice.trial.clip, choice.trial.noise)
        rows.append({"trials": i, "clip": point[0], "noise": point[1], "grid_mean": grid.mean_at(point)})
    return rows


def first_reaching(rows: Sequence[dict], mark: float) -> int | None:
    return next((r["trials"] for r in rows if r["grid_mean"] is not None and r["grid_mean"] >= mark), None)


def median_reach(values: Sequence[int | None], budget: int) -> float | None:
    # A run that never reached the mark counts as budget + 1 (a lower bound on its true cost).
    med = float(np.median(sorted(v if v is not None else budget + 1 for v in values)))
    return None if med > budget else med


# ---- result rows ----
def _estimate(e: Any) -> dict:
    return {"value": e.value, "low": e.low, "high": e.high}


def recommendation_row(outcome: TuningResult | str) -> dict:
    """A Table 13/14 (or target-epsilon) row: the confirmed recommendation of one tune() run, or why there is none.
    utility_loss and the membership game's attack accuracy are the confirmation's means over its repeats (with
    their 95 % t-intervals); the TPRs and the population game are the first confirmation repeat's (K = audit K),
    with Clopper-Pearson intervals: run_trial keeps the games of its first repeat only."""
    if isinstance(outcome, str):
        return {"reason": outcome, "trials": 0}
    r = outcome.recommendation
    if r is None or r.confirmation is None:
        return {"reason": outcome.no_recommendation_reason or "not confirmed", "trials": len(outcome.trials)}
    c = r.confirmation
    calibrated = r.games.membership.attacks[CALIBRATED]
    population = r.games.population
    return {
        "utility_loss": c.utility_loss.value,
        "utility_loss_interval": _estimate(c.utility_loss),
        "utility_test": _estimate(c.utility_test),
        "epsilon": r.epsilon,
        "clip": r.clip,
        "noise": r.noise,
        "games": {
            "membership": {
                "attack_accuracy": c.attack_accuracy.value,
                "attack_accuracy_interval": _estimate(c.attack_accuracy),
                "attacks": {
                    CALIBRATED: {
                        "tpr_at_1pct_fpr": _estimate(calibrated.tpr_at_1pct_fpr),
                        "tpr_at_0_1pct_fpr": _estimate(calibrated.tpr_at_0_1pct_fpr),
                    }
                },
                "epsilon_lower_bound": c.epsilon_lower_bound,
            },
            "population": None
            if population is None
            else {
                "attack_accuracy": population.attack_accuracy,
                "reference_attack_accuracy": population.reference_attack_accuracy,
            },
        },
        "trials": len(outcome.trials),
        "index": r.index,
        "selection": r.selection.method,
        "confirm_repeats": c.repeats,
        "audit_k": c.reference_models,
        "reason": None,
    }


def _raw(m: TrialMeasurement) -> dict:
    """Every trial's measurement, enough to recompute the tables with another objective or target."""
    population = m.games.population
    calibrated = m.games.membership.attacks[CALIBRATED]
    row = {
        "clip": round(m.clip, 5),
        "noise": round(m.noise, 5),
        "utility_validation": round(m.utility_validation, 5),
        "utility_test": round(m.utility_test, 5),
        "attack_accuracy": round(m.attack_accuracy, 5),
        "membership_attack_accuracy": round(m.games.membership.attack_accuracy, 5),
        "population_attack_accuracy": None if population is None else round(population.attack_accuracy, 5),
        "calibrated_tpr_at_1pct_fpr": round(calibrated.tpr_at_1pct_fpr.value, 5),
        "calibrated_tpr_at_0_1pct_fpr": round(calibrated.tpr_at_0_1pct_fpr.value, 5),
        "epsilon": None if m.epsilon is None else round(m.epsilon, 5),
        "seconds": round(m.seconds, 2),
    }
    if isinstance(m, Trial):
        row.update(index=m.index, objective=round(m.objective, 6))
    return row


def _raw_tune(outcome: TuningResult | str) -> dict:
    if isinstance(outcome, str):
        return {"error": outcome}
    return {
        **outcome.model_dump(
            mode="json",
            include={
                "mode",
                "guarantee",
                "search_space",
                "tradeoff",
                "delta",
                "seed",
                "stop_reason",
                "no_recommendation_reason",
                "failed_trials",
                "seconds",
                "recommendation",
            },
        ),
        "trials": [_raw(t) for t in outcome.trials],
    }


def _git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=7"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 2) if values else None


def run_setup(name: str, setup: Setup, config: Config, args: argparse.Namespace, command: str) -> dict:
    started = time.perf_counter()
    commit = _git_commit()  # the code this run loads now, not whatever is checked out when it ends
    data, _ = load_data(name, config.quick)
    prep_seconds = time.perf_counter() - started
    spec = model_spec(setup, config.quick)
    n = len(data.y_members)
    delta = default_delta(n)  # the product's default
    grid_spec = config.grid()
    study_space = SearchSpace(
        min_clip=grid_spec.min_clip, max_clip=grid_spec.max_clip, min_noise=0.0, max_noise=grid_spec.max_noise
    )
    points = grid_points(grid_spec, study_space)
    budget_space = space_for(config.search("bayes"), config.budget(), spec, n, delta)
    print(f"[{name}] prepared {data.split_sizes()} in {prep_seconds:.0f} s; {len(points)} grid points", flush=True)

    cost_tune = f"{COST_TRADEOFF:g}" if f"{COST_TRADEOFF:g}" in config.tradeoffs else None

    def long_units(baseline: Baseline) -> list[Unit]:
        units: list[Unit] = []
        for t in config.tradeoffs:  # Tables 13/14 under the budget
            units.append(
                (("tune", t), _tune_task, (config.search("bayes"), config.budget(), float(t), baseline, delta))
            )
        for e in config.target_epsilons:  # beyond the study: target epsilon at t = 0.5
            units.append(
                (
                    ("target", e),
                    _tune_task,
                    (
                        config.search("bayes", trials=config.target_trials),
                        config.target(e),
                        COST_TRADEOFF,
                        baseline,
                        delta,
                    ),
                )
            )
        runs = [("bayes", b, 0) for b in config.bounds]  # convergence per bound
        runs += [(m, SEARCH_BOUND, s) for s in range(config.seeds) for m in ("bayes", "random")]  # search cost
        for method, bound, seed in dict.fromkeys(runs):
            if cost_tune is not None and (method, bound, seed) == ("bayes", SEARCH_BOUND, 0):
                continue  # the t = 0.5 tune() run's search
            units.append(
                (
                    ("search", method, bound, seed),
                    _search_task,
                    (config.search(method, bound), config.budget(), seed, baseline, delta),
                )
            )
        return units

    def log(key: tuple, outcome: Any, done: int, total: int) -> None:
        if key[0] != "grid" or done % 25 == 0 or done == total:
            print(f"[{name}] {done}/{total} units, {key} at {time.perf_counter() - started:.0f} s", flush=True)

    measurement = config.measurement()
    with ProcessPoolExecutor(
        max_workers=config.workers, initializer=_init_worker, initargs=(data, spec, measurement)
    ) as pool:
        outcomes = run_units(
            pool,
            config.workers,
            [(("baseline",), _baseline_task, (delta,))]
            + [(("grid", i), _grid_task, (p, i, delta)) for i, p in enumerate(points)],
            {("baseline",): long_units},
            log,
        )
        baseline: Baseline = outcomes[("baseline",)]
        grid_outcomes = [outcomes[("grid", i)] for i in range(len(points))]
        grid = [m for m in grid_outcomes if not isinstance(m, str)]
        tunes = {t: outcomes[("tune", t)] for t in config.tradeoffs}
        targets = {e: outcomes[("target", e)] for e in config.target_epsilons}
        searches: dict[tuple[str, float, int], list[Trial] | None] = {
            k[1:]: None if isinstance(v, str) else v for k, v in outcomes.items() if k[0] == "search"
        }
        search_errors = [
            {"method": k[1], "max_bound": k[2], "seed": k[3], "error": v}
            for k, v in outcomes.items()
            if k[0] == "search" and isinstance(v, str)
        ]
        if cost_tune is not None:
            first = tunes[cost_tune]
            searches[("bayes", SEARCH_BOUND, 0)] = None if isinstance(first, str) else first.trials

        # Search cost against the grid's model; each run's prefixes are read in the pool (a model fit each).
        feasible = [
            score(m, baseline, COST_TRADEOFF, i) for i, m in enumerate(grid) if within_budget(m, config.max_epsilon)
        ]
        grid_model = fit_grid_model(budget_space, feasible)
        per_seed: dict[str, list[int | None]] = {"bayes": [], "random": []}
        curves: dict[str, list[list[dict]]] = {"bayes": [], "random": []}
        if grid_model is not None:
            mark = grid_model.best - grid_model.se
            reads = {
                (method, seed): pool.submit(
                    chosen_values, run, baseline, budget_space, config.budget(), grid_model, seed
                )
                for method in ("bayes", "random")
                for seed in range(config.seeds)
                if (run := searches.get((method, SEARCH_BOUND, seed)))
            }
            for method in ("bayes", "random"):
                for seed in range(config.seeds):
                    rows = reads[(method, seed)].result() if (method, seed) in reads else []
                    curves[method].append(rows)
                    per_seed[method].append(first_reaching(rows, mark))
    grid_failed = [
        {"clip": p[0], "noise": p[1], "error": m}
        for p, m in zip(points, grid_outcomes, strict=True)
        if isinstance(m, str)
    ]
    search_efficiency = {
        "bayes_trials_to_1se": median_reach(per_seed["bayes"], config.trials) if grid_model else None,
        "random_trials_to_1se": median_reach(per_seed["random"], config.trials) if grid_model else None,
        "per_seed": per_seed,
        "budget": config.trials,
        "seeds": config.seeds,
        "grid_trials": len(points),
        "grid_trials_within_budget": len(feasible),
        "grid_best_posterior_mean": None if grid_model is None else grid_model.best,
        "grid_best_posterior_std": None if grid_model is None else grid_model.se,
        "grid_best_point": None
        if grid_model is None
        else {"clip": grid_model.best_point[0], "noise": grid_model.best_point[1]},
        "definition": SEARCH_COST_DEFINITION.format(budget=config.max_epsilon, t=COST_TRADEOFF, first=FIRST_PREFIX),
        **({} if grid_model else {"reason": f"no grid point within epsilon <= {config.max_epsilon:g}"}),
    }

    population = baseline.games.population
    from app.tuning.attacks.games import label_only_attack_accuracy

    search_trials = [t for run in searches.values() if run for t in run]
    confirmed = [
        o.recommendation.confirmation
        for o in (*tunes.values(), *targets.values())
        if not isinstance(o, str) and o.recommendation is not None and o.recommendation.confirmation
    ]
    out = {
        "format": RESULT_FORMAT,
        "command": command,
        "commit": commit,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "prep_seconds": round(prep_seconds, 1),
        "config": {
            **{k: getattr(config, k) for k in Config.__dataclass_fields__},
            "delta": delta,
            "privacy_game": "membership",
            "grid_points": len(points),
            "grid_note": f"clip {points[0][0]:g}..{points[-1][0]:g}, noise 0..{max(p[1] for p in points):g}, "
            f"step {config.grid_step:g} ({len(points)} trainings)",
        },
        "split_sizes": data.split_sizes().model_dump(),
        "model": spec.model_dump(exclude={"keras_json"}),
        "budget_space": budget_space.model_dump(),
        "baseline": {
            **baseline.model_dump(
                include={
                    "utility_members",
                    "utility_holdout",
                    "utility_validation",
                    "utility_test",
                    "utility_external",
                    "accuracy_test",
                    "privacy_game",
                    "attack_accuracy",
                    "epsilon_lower_bound",
                    "label_only_attack_accuracy",
                    "logistic_regression_utility_test",
                    "learns",
                    "weak_reasons",
                    "seconds",
                }
            ),
            "utility_test_interval": _estimate(baseline.utility_test_interval),
            # The study's label-only floor is the population game's (members against the external set).
            "population_label_only_attack_accuracy": None
            if data.y_external is None
            else label_only_attack_accuracy(data.y_members, data.y_external, data.n_classes),
            "games": {
                "membership": baseline.games.membership.model_dump(mode="json"),
                "population": None if population is None else population.model_dump(mode="json"),
            },
        },
        # Accuracy of always predicting the test split's most common class: the floor for accuracy_test.
        "test_majority_rate": float(np.bincount(data.y_test).max() / len(data.y_test)),
        "tradeoffs": {t: recommendation_row(o) for t, o in tunes.items()},
        "target_epsilon": {e: recommendation_row(o) for e, o in targets.items()},
        "search_efficiency": search_efficiency,
        "grid_failed": grid_failed,
        "search_errors": search_errors,
        "timing": {
            "baseline_seconds": round(baseline.seconds, 2),
            "grid_trial_seconds": _mean([m.seconds for m in grid]),
            "search_trial_seconds": _mean([t.seconds for t in search_trials]),
            "confirmation_seconds": _mean([c.seconds for c in confirmed]),
        },
    }
    plot_setup(
        name, baseline, grid, searches, curves, grid_model, config, out["config"]["grid_note"], args.out / "figures"
    )
    raw = {
        "baseline": baseline.model_dump(mode="json", exclude={"games"}),
        "grid": [_raw(m) for m in grid],
        "tunes": [{"kind": "tradeoff", "key": t, **_raw_tune(o)} for t, o in tunes.items()]
        + [{"kind": "target_epsilon", "key": e, **_raw_tune(o)} for e, o in targets.items()],
        "searches": [
            {
                "method": k[0],
                "max_bound": k[1],
                "tradeoff": COST_TRADEOFF,
                "seed": k[2],
                "trials": [_raw(m) for m in v or []],
            }
            for k, v in searches.items()
        ],
        "search_cost_curves": curves,
    }
    raw_path = args.out / "results" / f"reproduction-{name}-trials.json"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(raw, separators=(",", ":")))
    return out


def plot_setup(name, baseline, grid, searches, curves, grid_model, config, grid_note, figures: Path) -> None:  # type: ignore[no-untyped-def]
    """The surfaces and the convergence through app/reports (the product's one plotting code); the search-cost
    curves, which only this benchmark has, here."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from app.reports.figures import convergence_figure, save_png, surface_panels, surfaces_figure

    figures.mkdir(parents=True, exist_ok=True)
    panels = surface_panels(baseline)
    if grid:
        save_png(
            surfaces_figure(grid, panels, f"{name}: grid surfaces ({grid_note})", style="3d"),
            figures / f"{name}-grid-surfaces.png",
        )
    optimizer_trials = searches.get(("bayes", SEARCH_BOUND, 0)) or []
    if optimizer_trials:
        save_png(
            surfaces_figure(
                optimizer_trials,
                panels,
                f"{name}: surfaces from the optimizer's "
                f"{len(optimizer_trials)} trials alone (bayes, t = {COST_TRADEOFF:g}, epsilon <= "
                f"{config.max_epsilon:g})",
                style="3d",
            ),
            figures / f"{name}-optimizer-surfaces.png",
        )

    runs = {f"max clip/noise {bound:g}": searches.get(("bayes", bound, 0)) or [] for bound in config.bounds}
    if any(runs.values()):
        save_png(
            convergence_figure(
                runs,
                baseline,
                f"{name}: new best results over trials (bayes, epsilon <= {config.max_epsilon:g})",
                objective_label=f"objective (t = {COST_TRADEOFF:g}, membership game)",
                last_trial=config.trials,
            ),
            figures / f"{name}-convergence.png",
        )

    fig, ax = plt.subplots(figsize=(7, 4))
    for method, colour in (("bayes", "C0"), ("random", "C1")):
        for s, rows in enumerate(curves[method]):
            ax.plot(
                [r["trials"] for r in rows],
                [r["grid_mean"] for r in rows],
                color=colour,
                alpha=0.7,
                marker=".",
                label=method if s == 0 else None,
            )
    if grid_model is not None:
        ax.axhline(grid_model.best, color="k", lw=1, label="grid best posterior mean G*")
        ax.axhline(grid_model.best - grid_model.se, color="k", lw=1, ls="--", label="G* - SE")
    ax.set_xlabel("trials")
    ax.set_ylabel("grid model's posterior mean at the chosen point")
    ax.set_xlim(0, config.trials + 1)
    ax.legend(fontsize=7)
    ax.set_title(
        f"{name}: search cost (t = {COST_TRADEOFF:g}, epsilon <= {config.max_epsilon:g}), one line per seed",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(figures / f"{name}-search-cost.png", dpi=100)
    plt.close(fig)


ANALYSIS_START, ANALYSIS_END = "<!-- analysis: kept across runs -->", "<!-- /analysis -->"


def _kept_analysis(path: Path) -> str:
    """The hand-written reading of the figures between the analysis markers, which a re-run keeps."""
    text = path.read_text() if path.exists() else ""
    if ANALYSIS_START in text and ANALYSIS_END in text:
        return text[text.index(ANALYSIS_START) : text.index(ANALYSIS_END) + len(ANALYSIS_END)]
    return f"{ANALYSIS_START}\n{ANALYSIS_END}"


def _fmt(v: object, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "-" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def _fmt_estimate(e: dict | None, digits: int = 3) -> str:
    if e is None:
        return "-"
    return f"{_fmt(e['value'], digits)} [{_fmt(e['low'], digits)}, {_fmt(e['high'], digits)}]"


def _row_cells(row: dict) -> list[str]:
    """A recommendation row's cells: utility loss, epsilon, clip, noise, both games, the recommended trial."""
    if row.get("reason"):
        return [f"no recommendation: {row['reason']}", *["-"] * 8]
    membership, population = row["games"]["membership"], row["games"]["population"]
    calibrated = membership["attacks"][CALIBRATED]
    return [
        _fmt_estimate(row["utility_loss_interval"]),
        _fmt(row["epsilon"], 2),
        _fmt(row["clip"], 2),
        _fmt(row["noise"], 2),
        _fmt_estimate(membership["attack_accuracy_interval"]),
        _fmt_estimate(calibrated["tpr_at_1pct_fpr"]),
        _fmt_estimate(calibrated["tpr_at_0_1pct_fpr"]),
        _fmt(None if population is None else population["attack_accuracy"]),
        f"#{row['index']} of {row['trials']}",
    ]


ROW_HEADER = (
    "utility loss (confirmed, 95 %) | epsilon | clip | noise | membership: attack acc. (confirmed) | "
    f"membership: {CALIBRATED} TPR @ 1 % FPR | {CALIBRATED} TPR @ 0.1 % FPR | population: attack acc. | "
    "recommended trial"
)


def write_markdown(results: dict) -> str:
    lines = [
        "# Reproducing the study (chapter 6, Tables 11-14, Figures 41-46), with both games",
        "",
        "Made by `benchmarks/reproduce_study.py`, one run per setup (each section gives its command, commit, wall "
        "time and sizes); each run rewrites this file and `docs/results/reproduction.json`, keeping the other "
        "setups' results, and writes its figures to `docs/figures/` and every trial to "
        "`docs/results/reproduction-<setup>-trials.json`. The study's figures are in brackets.",
        "",
        "The objective reads the membership game (members against holdout, what DP bounds); the study's game, the "
        "population game (members against the external set), is measured beside it in every trial. Tables 13/14 "
        "and the target-epsilon rows are each one `engine.tune()` run, as the product runs it: bayes within the "
        "budget, the recommendation (best posterior mean, then the lowest epsilon within one standard error) "
        "confirmed on fresh seeds with the audit's K. Confirmed figures are means over the confirmation's repeats "
        "with 95 % t-intervals; the TPRs and the population game are the first confirmation repeat's, with "
        "Clopper-Pearson intervals.",
        "",
        f"Search cost: {SEARCH_COST_DEFINITION.format(budget=MAX_EPSILON, t=COST_TRADEOFF, first=FIRST_PREFIX)}",
        "",
        ANALYSIS_START,
        "",
    ]
    for key, res in results.items():
        if key == "search_efficiency":
            continue
        study = STUDY[key]
        b, sb, c = res["baseline"], study["baseline"], res["config"]
        games = b["games"]
        calibrated = games["membership"]["attacks"][CALIBRATED]
        pop = games["population"]
        figure = key.replace("_", "-")
        lines += [
            f"## {key} ({res['wall_seconds']:.0f} s wall, data preparation {res['prep_seconds']:.0f} s)",
            "",
            f"`{res['command']}` at commit {res['commit']}.",
            "",
            f"Splits: {res['split_sizes']}. Model: hidden {res['model']['hidden']}, dropout {res['model']['dropout']}, "
            f"{res['model']['optimizer']}, {res['model']['epochs']} epochs, batch {res['model']['batch_size']}. "
            f"delta {c['delta']:.3g}.",
            "",
            f"Sizes: grid {c['grid_note']}; {c['trials']} trials per search (target-epsilon runs "
            f"{c['target_trials']}); t in {', '.join(c['tradeoffs'])}; target epsilon in "
            f"{', '.join(c['target_epsilons']) or '-'}; convergence bounds {', '.join(f'{x:g}' for x in c['bounds'])}; "
            f"{c['seeds']} seeds for the search cost; K = {c['search_k']} in search and grid trials, audit K = "
            f"{c['audit_k']} for the baseline and the confirmations ({c['confirm_repeats']} repeats); "
            f"{c['workers']} workers.{' QUICK: a smoke test, not a measurement.' if c['quick'] else ''}",
            "",
            f"Timing: baseline {_fmt(res['timing']['baseline_seconds'], 1)} s, grid trial "
            f"{_fmt(res['timing']['grid_trial_seconds'], 1)} s, search trial "
            f"{_fmt(res['timing']['search_trial_seconds'], 1)} s, "
            f"confirmation {_fmt(res['timing']['confirmation_seconds'], 1)} s (means, one worker each).",
            "",
            f"Utility is ROC-AUC. Baseline test accuracy {_fmt(b['accuracy_test'])}; always predicting the most common "
            f"class scores {_fmt(res['test_majority_rate'])} on the test split. The baseline gate: "
            + ("it learns." if b["learns"] else f"it does not learn ({'; '.join(b['weak_reasons'])})."),
            "",
            "| baseline (Tables 11/12) | ours | study |",
            "|---|---|---|",
            f"| utility_members | {_fmt(b['utility_members'])} | [{_fmt(sb['utility_members'])}] |",
            f"| utility_test | {_fmt_estimate(b['utility_test_interval'])} | [{_fmt(sb['utility_test'])}] |",
            f"| utility_external (the study's nonmembers) | {_fmt(b['utility_external'])} "
            f"| [{_fmt(sb['utility_external'])}] |",
            f"| population game: attack accuracy (the study's) | "
            f"{_fmt(None if pop is None else pop['attack_accuracy'])} "
            f"| [{_fmt(sb['attack_accuracy'])}] |",
            f"| population game: control model (never saw the members) | "
            f"{_fmt(None if pop is None else pop['reference_attack_accuracy'])} | - |",
            f"| population game: label-only floor | {_fmt(b['population_label_only_attack_accuracy'])} | - |",
            f"| membership game: attack accuracy | {_fmt(games['membership']['attack_accuracy'])} | - |",
            f"| membership game: {CALIBRATED} TPR at 1 % FPR (K = {games['membership']['reference_models']}) | "
            f"{_fmt_estimate(calibrated['tpr_at_1pct_fpr'])} | - |",
            f"| membership game: {CALIBRATED} TPR at 0.1 % FPR | "
            f"{_fmt_estimate(calibrated['tpr_at_0_1pct_fpr'])} | - |",
            f"| membership game: epsilon lower bound | {_fmt(b['epsilon_lower_bound'], 2)} | - |",
            "",
            f"Tables 13/14 under the budget (epsilon <= {MAX_EPSILON:g}):",
            "",
            f"| t | {ROW_HEADER} | study: utility loss | study: attack acc. |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for t, row in res["tradeoffs"].items():
            su, sp = study["tradeoffs"].get(t, (None, None))
            lines.append(f"| {t} | {' | '.join(_row_cells(row))} | [{_fmt(su)}] | [{_fmt(sp)}] |")
        lines += [
            "",
            f"Beyond the study: target epsilon (only the clip is searched), t = {COST_TRADEOFF:g}:",
            "",
            f"| target epsilon | {ROW_HEADER} |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e, row in res["target_epsilon"].items():
            lines.append(f"| {e} | {' | '.join(_row_cells(row))} |")
        e = res["search_efficiency"]
        point = e["grid_best_point"]
        lines += [
            "",
            (
                f"Search cost: G* = {_fmt(e['grid_best_posterior_mean'], 4)} (SE {_fmt(e['grid_best_posterior_std'], 4)}) "
                f"at clip {_fmt(point['clip'], 2)}, noise {_fmt(point['noise'], 2)}, from {e['grid_trials_within_budget']} "
                f"of the {e['grid_trials']} grid points. Trials to 1 SE (median over {e['seeds']} seeds, budget "
                f"{e['budget']}; '-' = not reached): bayes {_fmt(e['bayes_trials_to_1se'], 1)}, random "
                f"{_fmt(e['random_trials_to_1se'], 1)}. Per seed: bayes {e['per_seed']['bayes']}, random "
                f"{e['per_seed']['random']}."
            )
            if point
            else f"Search cost: not measured ({e.get('reason')}).",
            "",
            f"![grid](figures/{figure}-grid-surfaces.png) ![optimizer](figures/{figure}-optimizer-surfaces.png) "
            f"![convergence](figures/{figure}-convergence.png) ![search cost](figures/{figure}-search-cost.png)",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", choices=[*SETUPS, "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="tiny smoke test (overrides the sizes below)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=30, help="trial budget of each search and tune() run")
    parser.add_argument(
        "--target-trials",
        type=int,
        default=None,
        help="budget of the target-epsilon runs (only the clip is searched; default --trials)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the search-cost comparison")
    parser.add_argument("--grid-step", type=float, default=None, help="grid step (default 0.5, the study's)")
    parser.add_argument(
        "--grid-max", type=float, default=None, help="grid's max clip and noise (default 10, the study's; HIV 5)"
    )
    parser.add_argument("--tradeoffs", nargs="+", default=["0.25", "0.5", "0.75"])
    parser.add_argument("--target-epsilons", nargs="*", default=["1", "3", "8"])
    parser.add_argument(
        "--bounds",
        nargs="+",
        type=float,
        default=[5.0, 10.0, 20.0, 100.0],
        help="max clip/noise of the convergence runs",
    )
    parser.add_argument(
        "--audit-k", type=int, default=16, help="K of the calibrated attack for the baseline and the confirmations"
    )
    parser.add_argument("--confirm-repeats", type=int, default=3)
    args = parser.parse_args()
    command = "python benchmarks/reproduce_study.py " + " ".join(sys.argv[1:])
    names = list(SETUPS) if args.setup == "all" else [args.setup]
    results_path = args.out / "results" / "reproduction.json"
    kept = json.loads(results_path.read_text()) if results_path.exists() and not args.quick else {}
    results = {k: v for k, v in kept.items() if isinstance(v, dict) and v.get("format") == RESULT_FORMAT}
    for name in names:
        setup = SETUPS[name]
        results[setup.key] = run_setup(name, setup, make_config(args, setup), args, command)
        results["search_efficiency"] = {
            k: v["search_efficiency"] for k, v in results.items() if k != "search_efficiency"
        }
        results_path.parent.mkdir(parents=True, exist_ok=True)
        results_path.write_text(json.dumps(results, indent=2))
        markdown_path = args.out / "reproduction.md"
        analysis = _kept_analysis(markdown_path)
        markdown_path.write_text(write_markdown(results).replace(ANALYSIS_START, analysis, 1))
        print(
            json.dumps(
                {k: results[setup.key][k] for k in ("tradeoffs", "target_epsilon", "search_efficiency", "timing")},
                indent=1,
                default=str,
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
