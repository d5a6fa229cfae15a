"""Where to train next: Bayesian optimisation (scikit-optimize GP), grid, or random search, inside the space
the privacy guarantee allows; and the one search loop's step.

Pure and stateless: the next point is a function of the search spec, the space and the trials so far, so any
process can rebuild the optimizer from stored trials (running ones enter through a constant liar). The CLI's
`tune()`, the service's queue and the benchmarks all call `search_step`.

The space: clip on a log scale in [min_clip, max_clip]; noise in [min_noise, max_noise], where min_noise is the
noise whose training is max_epsilon-DP (0 only when the user asks for no guarantee), or one calibrated noise
(target-epsilon mode), in which case only clip is searched.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.tuning.errors import TuningError

Point = tuple[float, float]
StopReason = Literal["budget", "time", "grid_exhausted"]
MAX_GRID_POINTS = 1_000_000
# One trial's objective has an SD of 0.010-0.014 over seeds on the study's data (DESIGN.md); the Gaussian
# process's noise floor when trials have no repeats to give a standard error of their own.
DEFAULT_OBJECTIVE_SE = 0.01
# The GP's learned noise may reach this multiple of the trials' sampling SE (from the records measured) and no
# more. On the demo the objective's SD over seeds at the recommended point was 0.026 against a sampling SE of
# 0.028; the margin leaves room for points whose training varies more (docs/engine.md).
NOISE_CEILING_PER_SAMPLING_SE = 1.5
# The random stream (seed + this) from which a Bayesian step draws when the GP proposes an evaluated point.
DUPLICATE_DRAWS = 7919
# Fewer finished trials than this give the Gaussian process nothing to smooth: the best observation is used.
MIN_TRIALS_FOR_MODEL = 3


PruningRule = Literal["none", "median"]


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["bayes", "grid", "random"] = Field(
        default="bayes",
        description="bayes (a Gaussian process after initial_points space-filling points), grid or random.",
    )
    trials: int | None = Field(default=25, ge=1, le=10_000, description="Trial budget; null for time only.")
    seconds: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Time budget in seconds, counted from the job's start (baseline included); the search always runs at "
            "least one trial. Null for none."
        ),
    )
    min_clip: float = Field(
        default=0.1, gt=0, description="Smallest clipping norm (clip is searched on a log scale)."
    )
    max_clip: float = Field(default=10.0, gt=0, le=1e6, description="Largest clipping norm.")
    max_noise: float = Field(
        default=10.0,
        ge=0,
        le=1e6,
        description="Largest noise multiplier. The smallest "
        "follows from max_epsilon (the accountant's noise for that epsilon).",
    )
    grid_step: float = Field(
        default=0.5, gt=0, description="Grid search: step of clip and noise (linear, as in the study)."
    )
    initial_points: int = Field(default=8, ge=1, le=1000, description="Space-filling (LHS) points before the GP.")
    parallelism: int = Field(default=1, ge=1, le=256, description="Trials of one job running at once.")
    pruning: PruningRule = Field(
        default="none",
        description="none, or median: a trial of the built-in MLP whose validation ROC-AUC at half its steps is "
        "more than one standard error below the median of the earlier completed trials' at the same step (after "
        "4 completed trials, and never at or above the best feasible trial's) stops there, is stored as pruned, "
        "counts in the budget and is never recommended (app/tuning/pruning.py). A user's Keras model is never "
        "pruned.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpec:
        if self.trials is None and self.seconds is None:
            raise ValueError("give a budget: trials, seconds, or both")
        if self.min_clip >= self.max_clip:
            raise ValueError("min_clip must be smaller than max_clip")
        for name in ("min_clip", "max_clip", "max_noise", "grid_step", "seconds"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite")
        if self.method == "grid" and self.grid_size() > MAX_GRID_POINTS:
            raise ValueError(f"the grid would have over {MAX_GRID_POINTS:,} points; use a larger grid_step")
        return self

    def grid_size(self) -> int:
        """Points of the widest grid (noise from 0), counted without listing them (a tiny step must not exhaust
        memory)."""
        clips = max(1, math.ceil((self.max_clip - self.min_clip) / self.grid_step))
        noises = math.ceil(self.max_noise / self.grid_step) if self.max_noise > 0 else 1
        if clips * noises > MAX_GRID_POINTS:
            return clips * noises
        # Exact where float steps land on a bound, as np.arange lists them.
        clips = len(np.arange(self.min_clip, self.max_clip, self.grid_step))
        if self.max_noise > 0:
            noises = len(np.arange(0.0, self.max_noise, self.grid_step))
        return clips * noises

    def budget(self) -> int:
        """Trial count: the budget, capped by the widest grid for grid search (time-only budgets are unbounded).
        The grid the guarantee allows may be smaller; the search then stops with grid_exhausted."""
        cap = self.grid_size() if self.method == "grid" else 10**9
        return min(self.trials, cap) if self.trials is not None else cap


class SearchSpace(BaseModel):
    """Where the search looks, as the guarantee allows: clip on a log scale, noise in a range or fixed."""

    min_clip: float = Field(description="Smallest clipping norm searched.")
    max_clip: float = Field(description="Largest clipping norm searched.")
    min_noise: float = Field(description="The accountant's noise for max_epsilon; 0 only without a guarantee.")
    max_noise: float = Field(description="Largest noise multiplier searched.")
    fixed_noise: float | None = Field(
        default=None,
        description="Target-epsilon mode: the calibrated noise "
        "multiplier every trial trains with (only clip is searched).",
    )

    def dimensions(self) -> list[Any]:
        from skopt.space import Real

        clip = Real(self.min_clip, self.max_clip, prior="log-uniform", name="clip")
        if self.fixed_noise is not None:
            return [clip]
        return [clip, Real(self.min_noise, max(self.max_noise, self.min_noise + 1e-9), name="noise")]

    def to_point(self, values: Sequence[float]) -> Point:
        noise = self.fixed_noise if self.fixed_noise is not None else float(values[1])
        return float(values[0]), float(noise)

    def to_values(self, point: Point) -> list[float]:
        return [point[0]] if self.fixed_noise is not None else [point[0], point[1]]


def search_space(
    search: SearchSpec,
    *,
    max_epsilon: float | None,
    target_epsilon: float | None,
    sampling_rate: float,
    steps: int,
    delta: float,
) -> SearchSpace:
    """The space for the guarantee asked for. Raises TuningError when max_noise cannot meet max_epsilon."""
    # Imported here: dp_accounting takes seconds to load, and the specs above are read where that must be fast
    # (the CLI checks its options with them before anything heavy loads).
    from app.tuning.accounting import noise_for_epsilon

    if target_epsilon is not None:
        noise = noise_for_epsilon(epsilon=target_epsilon, sampling_rate=sampling_rate, steps=steps, delta=delta)
        return SearchSpace(
            min_clip=search.min_clip, max_clip=search.max_clip, min_noise=noise, max_noise=noise, fixed_noise=noise
        )
    min_noise = 0.0
    if max_epsilon is not None:
        min_noise = noise_for_epsilon(epsilon=max_epsilon, sampling_rate=sampling_rate, steps=steps, delta=delta)
        if min_noise > search.max_noise:
            raise TuningError(
                "max_noise_below_budget",
                f"max_epsilon {max_epsilon:g} needs a noise multiplier of at least {min_noise:.3f} at this sampling "
                f"rate ({sampling_rate:.4g}) and step count ({steps}), above max_noise {search.max_noise:g}; raise "
                "max_noise or max_epsilon",
                {"min_noise": min_noise, "max_noise": search.max_noise, "max_epsilon": max_epsilon},
            )
    return SearchSpace(
        min_clip=search.min_clip,
        max_clip=search.max_clip,
        min_noise=min_noise,
        max_noise=max(search.max_noise, min_noise),
    )


@dataclass(frozen=True)
class Observation:
    """A finished trial as the search sees it: its objective (None: it failed), that objective's SE over repeats,
    and its SE from the records measured."""

    point: Point
    objective: float | None
    objective_se: float | None = None
    sampling_se: float | None = None  # the objective's SE from the records measured (objective_sampling_se)


@dataclass(frozen=True)
class SearchStep:
    """The next point to train, or why the search stops."""

    point: Point | None
    stop: StopReason | None = None


def search_step(
    spec: SearchSpec,
    space: SearchSpace,
    observed: Sequence[Observation],
    pending: Sequence[Point],
    *,
    seed: int,
    elapsed_seconds: float,
    budget: int | None = None,
) -> SearchStep:
    """The one search loop's step: stop for the trial budget (`budget`, default spec.budget()), the time
    budget or an exhausted grid; otherwise the next point. The time budget counts from the job's start (the
    baseline and the accountant's noise calibration included) but never ends a search before its first trial:
    a job with no measured point has nothing to recommend."""
    started = len(observed) + len(pending)
    if started >= (spec.budget() if budget is None else budget):
        return SearchStep(None, "budget")
    if spec.seconds is not None and started > 0 and elapsed_seconds >= spec.seconds:
        return SearchStep(None, "time")
    point = suggest(spec, space, observed, pending, seed)
    return SearchStep(point, None) if point is not None else SearchStep(None, "grid_exhausted")


def grid_points(spec: SearchSpec, space: SearchSpace) -> list[Point]:
    """The study's grid: clip from min_clip and noise from the space's smallest noise, in steps of grid_step,
    below the maxima. Without a guarantee the defaults give 20 x 20 = 400 points, as in the study."""
    clips = np.arange(spec.min_clip, spec.max_clip, spec.grid_step)
    if space.fixed_noise is not None:
        noises = np.array([space.fixed_noise])
    elif space.max_noise > space.min_noise:
        noises = np.arange(space.min_noise, space.max_noise, spec.grid_step)
    else:
        noises = np.array([space.min_noise])
    return [
        (round(float(c), 6), float(z) if space.fixed_noise is not None else round(float(z), 6))
        for c in clips
        for z in noises
    ]


def random_points(space: SearchSpace, count: int, seed: int) -> list[Point]:
    """Row-wise draws (clip log-uniform), so the first k points do not depend on how many are asked for."""
    unit = np.random.default_rng(seed).random((count, 2))
    clips = np.exp(math.log(space.min_clip) + unit[:, 0] * (math.log(space.max_clip) - math.log(space.min_clip)))
    noises = space.min_noise + unit[:, 1] * (space.max_noise - space.min_noise)
    return [space.to_point([c, z]) for c, z in zip(clips, noises, strict=True)]


def suggest(
    spec: SearchSpec,
    space: SearchSpace,
    observed: Sequence[Observation],
    pending: Sequence[Point],
    seed: int,
) -> Point | None:
    """The next (clip, noise) to try given finished trials and running points. None when a grid is exhausted."""
    position = len(observed) + len(pending)
    if spec.method == "grid":
        points = grid_points(spec, space)
        return points[position] if position < len(points) else None
    if spec.method == "random":
        return random_points(space, position + 1, seed)[position]
    return _bayes_suggest(spec, space, observed, pending, seed)


def scored_observations(observed: Sequence[Observation]) -> list[tuple[Point, float]]:
    """(point, objective) pairs; a failed trial enters with the worst objective seen, so the search moves away
    from it (and grid or random search moves on past it)."""
    objectives = [o.objective for o in observed if o.objective is not None]
    penalty = min(objectives) if objectives else 0.0
    return [(o.point, o.objective if o.objective is not None else penalty) for o in observed]


def objective_noise(observed: Sequence[Observation]) -> float:
    """The objective's standard error for the GP: the root mean square of the trials' own, else the default."""
    errors = [o.objective_se for o in observed if o.objective_se is not None and o.objective_se > 0]
    return float(math.sqrt(np.mean(np.square(errors)))) if errors else DEFAULT_OBJECTIVE_SE


def objective_noise_ceiling(observed: Sequence[Observation]) -> float | None:
    """The most noise the GP may assume: NOISE_CEILING_PER_SAMPLING_SE times the root mean square of the trials'
    sampling SEs; None when no trial has one."""
    errors = [o.sampling_se for o in observed if o.sampling_se is not None and o.sampling_se > 0]
    return NOISE_CEILING_PER_SAMPLING_SE * float(math.sqrt(np.mean(np.square(errors)))) if errors else None


def objective_model(space: SearchSpace, losses: Sequence[float], observed: Sequence[Observation], seed: int) -> Any:
    """skopt's GP (Matern 5/2 with a learned amplitude, as its "GP" default) plus a white-noise term whose
    level is learned between two measured bounds: never below the repeats' standard error (the objective is
    noisy, and a GP that interpolates single draws recommends lucky ones), and never above
    objective_noise_ceiling (a GP free to call every difference noise fits a flat surface on a dozen rough
    trials, and its one-SE set then holds nearly all of them). skopt fits on normalised targets, so both
    bounds are scaled by the targets' variance."""
    from skopt.learning import GaussianProcessRegressor
    from skopt.learning.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    n_dims = len(space.dimensions())
    variance = float(np.var(losses)) if len(losses) > 1 else 0.0
    noise_se, ceiling = objective_noise(observed), objective_noise_ceiling(observed)
    floor = min(max(noise_se**2 / variance, 1e-6), 1e3) if variance > 0 else 1e-2
    if ceiling is not None and variance > 0:
        top = max(ceiling**2 / variance, floor * 1.01)
    else:
        top = max(10.0, 10 * floor)
    kernel = ConstantKernel(1.0, (0.01, 1000.0)) * Matern(
        length_scale=np.ones(n_dims), length_scale_bounds=[(0.01, 100.0)] * n_dims, nu=2.5
    ) + WhiteKernel(noise_level=floor, noise_level_bounds=(floor, top))
    return GaussianProcessRegressor(
        kernel=kernel, normalize_y=True, noise="gaussian", n_restarts_optimizer=2, random_state=seed
    )


def _bayes_suggest(
    spec: SearchSpec, space: SearchSpace, observed: Sequence[Observation], pending: Sequence[Point], seed: int
) -> Point:
    from skopt import Optimizer

    scored = scored_observations(observed)
    points = [space.to_values(p) for p, _ in scored]
    losses = [-float(o) for _, o in scored]  # skopt minimises; the objective is maximised
    noise_se = objective_noise(observed)
    optimizer = Optimizer(
        dimensions=space.dimensions(),
        base_estimator=objective_model(space, losses, observed, seed),
        acq_func="EI",
        # EI's exploration in objective units: skopt's fixed 0.01 is twice the best objective on the study's
        # grid; one standard error of the objective is the improvement worth looking for.
        acq_func_kwargs={"xi": noise_se},
        n_initial_points=spec.initial_points,
        initial_point_generator="lhs",
        random_state=seed,
    )
    if pending:
        # Constant liar: running trials count as already scored at the best value so far, so parallel
        # suggestions spread out instead of piling onto one point.
        lie = min(losses) if losses else 0.0
        points += [space.to_values(p) for p in pending]
        losses += [lie] * len(pending)
    if points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skopt warns when it re-proposes a known point
            optimizer.tell(points, losses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = optimizer.ask()
    if optimizer.models and list(values) != list(optimizer._next_x):
        # skopt replaced a proposal that was already evaluated with a random point from its generator; rebuilt
        # from `seed` at every step, that generator gives the same point every time, and a 25-trial HIV job
        # spent 13 trials on it. A draw of this step's own is what skopt means.
        return random_points(space, len(observed) + len(pending) + 1, seed + DUPLICATE_DRAWS)[-1]
    return space.to_point(values)


@dataclass(frozen=True)
class Posterior:
    """The GP's posterior mean of the objective at each tried point, and its estimate of one trial's noise."""

    means: list[float]
    stds: list[float]
    noise_se: float


def posterior_at(space: SearchSpace, observed: Sequence[Observation], seed: int) -> Posterior | None:
    """The objective model fitted on the finished trials, read at the same points; None with too few trials."""
    scored = scored_observations(observed)
    if len(scored) < MIN_TRIALS_FOR_MODEL:
        return None
    from skopt.space import Space
    from skopt.utils import normalize_dimensions

    transformed = Space(normalize_dimensions(space.dimensions()))
    x = transformed.transform([space.to_values(p) for p, _ in scored])
    losses = np.asarray([-o for _, o in scored], dtype=np.float64)
    model = objective_model(space, list(losses), observed, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at a bound of the kernel's hyperparameters
        model.fit(x, losses)
        mean, std = model.predict(x, return_std=True)
    scale = float(np.std(losses)) or 1.0
    noise_se = (
        math.sqrt(max(float(model.noise_ or 0.0), 0.0)) * scale
        if model.noise_ is not None
        else objective_noise(observed)
    )
    return Posterior(means=[-float(m) for m in mean], stds=[float(s) for s in std], noise_se=noise_se)
