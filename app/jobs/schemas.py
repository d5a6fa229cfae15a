"""What the jobs API accepts and returns. Results are the engine's models (app.tuning.results), never copies."""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.datasets.splits import SplitSpec
from app.jobs.models import JobStatus
from app.tuning.model_spec import ModelSpec
from app.tuning.results import Baseline, MeasurementSpec, PrivacyGame, Recommendation, Trial
from app.tuning.search import SearchSpec

# JobCreate takes MeasurementSpec's fields at its top level; their bounds and descriptions are MeasurementSpec's
# own (one definition), copied so the two models never share a FieldInfo.
MEASUREMENT_FIELDS = tuple(MeasurementSpec.model_fields)


def _measurement_field(name: str) -> Any:
    return copy.deepcopy(MeasurementSpec.model_fields[name])


class JobCreate(BaseModel):
    """A tuning job. Every field but dataset_id has a default."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=64)
    split: SplitSpec | None = Field(default=None, description="Default: the data set's own, else a random split.")
    model: ModelSpec = Field(default_factory=ModelSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    tradeoff: float = Field(default=0.5, ge=0.0, le=1.0, description="t: weight of utility against privacy.")
    delta: float | None = Field(default=None, gt=0.0, lt=1.0,
                                description="Default: min(1e-5, 1/(10 n)), n the number of members.")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    privacy_game: PrivacyGame = _measurement_field("privacy_game")
    repeats: int = _measurement_field("repeats")
    reference_models: int = _measurement_field("reference_models")
    audit_reference_models: int = _measurement_field("audit_reference_models")
    allow_weak_baseline: bool = _measurement_field("allow_weak_baseline")

    def measurement(self) -> MeasurementSpec:
        return MeasurementSpec(**{name: getattr(self, name) for name in MEASUREMENT_FIELDS})

    @field_validator("tradeoff", "delta")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class Progress(BaseModel):
    done: int = Field(description="Trials finished, succeeded or failed.")
    running: int
    total: int | None = Field(description="The trial budget; null while only a time budget bounds the job.")
    failed: int = 0
    baseline_done: bool


class TrialFailure(BaseModel):
    index: int
    clip: float
    noise: float
    error: str


class JobRead(BaseModel):
    id: str
    dataset_id: str
    status: JobStatus
    split: SplitSpec
    model: ModelSpec
    search: SearchSpec
    tradeoff: float
    delta: float | None = Field(description="The delta epsilon is reported at (known once the baseline ran).")
    seed: int
    measurement: MeasurementSpec = Field(description="How privacy is measured (the job's privacy_game, repeats, "
                                         "reference_models, audit_reference_models, allow_weak_baseline).")
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    eta_seconds: float | None = Field(description="Estimated seconds to the end; null when unknown.")
    baseline: Baseline | None
    best_trial: Trial | None = Field(description="The trial with the best objective at the job's trade-off so far.")
    failures: list[TrialFailure] = Field(default_factory=list, description="Failed trials (first 20).")
    error: str | None
    error_code: str | None = Field(
        description="Why a failed job failed: baseline_not_learning, no_external_set (the engine's checks), a data "
        "set error's code (e.g. split_too_small), baseline_failed (any other baseline error), baseline_abandoned "
        "or no_trial_succeeded; null unless the job failed.")


class TrialRead(Trial):
    """The engine's Trial (same fields as in the result JSON), plus when and how often it ran."""

    attempts: int = Field(description="Runs it took: more than 1 when a worker died and another re-ran it.")
    started_at: datetime
    finished_at: datetime | None


class RecommendationRead(Recommendation):
    """The engine's Recommendation for `tradeoff`, plus the Pareto front of all stored trials."""

    job_id: str
    job_status: JobStatus
    pareto_front: list[int] = Field(description="Indices of trials no other trial beats on utility and attack.")
