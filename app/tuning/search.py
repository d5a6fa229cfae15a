"""Where to train next: Bayesian optimisation (scikit-optimize GP), grid, or random search over (clip, noise).

Pure and stateless: the next point is a function of the search spec and the trials so far, so any process
can rebuild the optimizer from stored trials (running ones enter through a constant liar).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Point = tuple[float, float]
MAX_GRID_POINTS = 1_000_000


class SearchSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["bayes", "grid", "random"] = "bayes"
    trials: int | None = Field(default=25, ge=1, le=10_000, description="Trial budget; null for time only.")
    seconds: float | None = Field(default=None, gt=0, description="Time budget in seconds; null for none.")
    min_clip: float = Field(default=0.1, gt=0)
    max_clip: float = Field(default=10.0, gt=0, le=1e6)
    max_noise: float = Field(default=10.0, ge=0, le=1e6)
    grid_step: float = Field(default=0.5, gt=0)
    initial_points: int = Field(default=8, ge=1, le=1000, description="Space-filling (LHS) points before the GP.")
    parallelism: int = Field(default=1, ge=1, le=256, description="Trials of one job running at once.")

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

    def grid_axes(self) -> tuple[np.ndarray, np.ndarray]:
        clips = np.arange(self.min_clip, self.max_clip, self.grid_step)
        noises = np.arange(0.0, self.max_noise, self.grid_step) if self.max_noise > 0 else np.array([0.0])
        return clips, noises

    def grid_size(self) -> int:
        """Points of the grid, counted without listing them (a tiny step must not exhaust memory)."""
        clips = math.ceil((self.max_clip - self.min_clip) / self.grid_step)
        noises = math.ceil(self.max_noise / self.grid_step) if self.max_noise > 0 else 1
        if clips * noises > MAX_GRID_POINTS:
            return clips * noises
        axis_clips, axis_noises = self.grid_axes()  # exact where float steps land on a bound
        return len(axis_clips) * len(axis_noises)

    def budget(self) -> int:
        """Trial count: the budget, capped by the grid's size for grid search (time-only budgets are unbounded)."""
        cap = self.grid_size() if self.method == "grid" else 10**9
        return min(self.trials, cap) if self.trials is not None else cap


def grid_points(spec: SearchSpec) -> list[Point]:
    """The study's grid: clip from min_clip and noise from 0, in steps of grid_step, below the maxima.
    Defaults give 20 x 20 = 400 points, as in the study."""
    clips, noises = spec.grid_axes()
    return [(round(float(c), 6), round(float(z), 6)) for c in clips for z in noises]


def random_points(spec: SearchSpec, count: int, seed: int) -> list[Point]:
    """Row-wise draws, so the first k points do not depend on how many are asked for."""
    unit = np.random.default_rng(seed).random((count, 2))
    clips = spec.min_clip + unit[:, 0] * (spec.max_clip - spec.min_clip)
    noises = unit[:, 1] * spec.max_noise
    return [(float(c), float(z)) for c, z in zip(clips, noises)]


def suggest(
    spec: SearchSpec,
    observed: Sequence[tuple[Point, float]],
    pending: Sequence[Point],
    seed: int,
) -> Point | None:
    """The next (clip, noise) to try given finished (point, objective) pairs and running points.
    None when the search space is exhausted (grid)."""
    position = len(observed) + len(pending)
    if spec.method == "grid":
        points = grid_points(spec)
        return points[position] if position < len(points) else None
    if spec.method == "random":
        return random_points(spec, position + 1, seed)[position]
    return _bayes_suggest(spec, observed, pending, seed)


def _bayes_suggest(
    spec: SearchSpec, observed: Sequence[tuple[Point, float]], pending: Sequence[Point], seed: int
) -> Point:
    from skopt import Optimizer
    from skopt.space import Real

    optimizer = Optimizer(
        dimensions=[Real(spec.min_clip, spec.max_clip, name="clip"), Real(0.0, max(spec.max_noise, 1e-9), name="noise")],
        base_estimator="GP",
        acq_func="EI",
        n_initial_points=spec.initial_points,
        initial_point_generator="lhs",
        random_state=seed,
    )
    points = [list(p) for p, _ in observed]
    losses = [-float(o) for _, o in observed]  # skopt minimises; the objective is maximised
    if pending:
        # Constant liar: running trials count as already scored at the best value so far, so parallel
        # suggestions spread out instead of piling onto one point.
        lie = min(losses) if losses else 0.0
        points += [list(p) for p in pending]
        losses += [lie] * len(pending)
    if points:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # skopt warns when it re-proposes a known point
            optimizer.tell(points, losses)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clip, noise = optimizer.ask()
    noise = noise if spec.max_noise > 0 else 0.0
    return float(clip), float(noise)
