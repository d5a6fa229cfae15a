"""What the jobs API accepts and returns. Results are the engine's models (app.tuning.results), never copies."""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from app.datasets.splits import SplitSpec
from app.jobs.models import JobStage, JobStatus
from app.tuning.model_spec import ModelSpec
from app.tuning.results import (
    Baseline,
    GuaranteeSpec,
    MeasurementSpec,
    PrivacyGame,
    PrunedTrial,
    Recommendation,
    Trial,
)
from app.tuning.search import SearchSpec

# JobCreate takes MeasurementSpec's and GuaranteeSpec's fields at its top level; their bounds and descriptions
# are the engine's own (one definition), copied so the models never share a FieldInfo.
MEASUREMENT_FIELDS = tuple(MeasurementSpec.model_fields)
GUARANTEE_FIELDS = tuple(GuaranteeSpec.model_fields)


def _measurement_field(name: str) -> Any:
    return copy.deepcopy(MeasurementSpec.model_fields[name])


def _guarantee_field(name: str) -> Any:
    return copy.deepcopy(GuaranteeSpec.model_fields[name])


# ---- A job's name and tags, to find it again (GET /v1/jobs?name=&tag=). One definition for JobCreate and JobRead.
MAX_JOB_NAME = 200
MAX_TAGS = 20
MAX_TAG_LENGTH = 50  # app.jobs.models.JobTagRecord.tag
# Words of letters, digits and - _ . : / = + @ #, single spaces between them: "cohort:2024", "ethics board".
TAG_PATTERN = r"^[\w.:/=+@#-]+( [\w.:/=+@#-]+)*$"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_LENGTH, pattern=TAG_PATTERN)]


def _job_name_field() -> Any:
    return Field(
        default=None,
        min_length=1,
        max_length=MAX_JOB_NAME,
        description="A name to find the job by (GET /v1/jobs?name= matches part of it, any case).",
    )


def _job_tags_field() -> Any:
    return Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description=f"Up to {MAX_TAGS} tags of up to {MAX_TAG_LENGTH} characters: letters, digits, "
        "- _ . : / = + @ # and single spaces inside; a repeated tag counts once "
        "(GET /v1/jobs?tag=a&tag=b finds the jobs that have all of them).",
    )


class JobCreate(BaseModel):
    """A tuning job. Every field but dataset_id has a default."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(
        min_length=1,
        max_length=64,
        description="The data set the model is for (an id from "
        "/v1/datasets): tuned on unless tune_dataset_id names a proxy; the final model trains "
        "on it.",
    )
    split: SplitSpec | None = Field(default=None, description="Default: the data set's own, else a random split.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="The model to train (default: an MLP).")
    search: SearchSpec = Field(default_factory=SearchSpec, description="How the (clip, noise) space is searched.")
    tradeoff: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="t in [0, 1]: weight of utility against "
        "privacy in the objective; t = 1 means utility only, t = 0 privacy only.",
    )
    delta: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Default: min(1e-5, 1/(10 n)), n the number of members."
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of the split, the models and the search.")
    privacy_game: PrivacyGame = _measurement_field("privacy_game")
    repeats: int = _measurement_field("repeats")
    reference_models: int = _measurement_field("reference_models")
    audit_reference_models: int = _measurement_field("audit_reference_models")
    allow_weak_baseline: bool = _measurement_field("allow_weak_baseline")
    max_epsilon: float | None = _guarantee_field("max_epsilon")
    target_epsilon: float | None = _guarantee_field("target_epsilon")
    confirm_repeats: int = _guarantee_field("confirm_repeats")
    max_utility_loss: float | None = _guarantee_field("max_utility_loss")
    tune_dataset_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A proxy data set of yours (public or synthetic data with the same label and split columns) "
        "to run the baseline, the search and the confirmation on; the data set of dataset_id is then read once, "
        "by the final training, so epsilon covers everything done to it. Null: tune on dataset_id itself.",
    )

    name: str | None = _job_name_field()
    tags: list[Tag] = _job_tags_field()

    @field_validator("tags")
    @classmethod
    def _distinct_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))

    def measurement(self) -> MeasurementSpec:
        return MeasurementSpec(**{name: getattr(self, name) for name in MEASUREMENT_FIELDS})

    def guarantee(self) -> GuaranteeSpec:
        return GuaranteeSpec(**{name: getattr(self, name) for name in GUARANTEE_FIELDS})

    @model_validator(mode="after")
    def _consistent_guarantee(self) -> JobCreate:
        """GuaranteeSpec's own cross-field check (target_epsilon above max_epsilon), as a validation error."""
        try:
            self.guarantee()
        except ValidationError as exc:
            raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        return self

    @field_validator("tradeoff", "delta")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value


class Progress(BaseModel):
    done: int = Field(description="Trials finished: succeeded, failed or pruned.")
    running: int = Field(description="Trials running now.")
    total: int | None = Field(description="The trial budget; null while only a time budget bounds the job.")
    failed: int = Field(default=0, description="Trials that failed (counted in done).")
    pruned: int = Field(
        default=0,
        description="Trials the pruning rule stopped at their checkpoint (search.pruning; counted in done).",
    )
    baseline_done: bool = Field(description="Whether the non-private baseline has been measured.")


class TrialFailure(BaseModel):
    index: int = Field(description="The trial's number in the job.")
    clip: float = Field(description="Its clipping norm.")
    noise: float = Field(description="Its noise multiplier.")
    error: str = Field(description="What went wrong: the error's type and message.")


class JobRead(BaseModel):
    id: str = Field(description="The job's id.")
    name: str | None = _job_name_field()
    tags: list[str] = _job_tags_field()
    dataset_id: str = Field(description="The data set it tunes for.")
    status: JobStatus = Field(description="queued, running, succeeded, failed or cancelled.")
    split: SplitSpec = Field(description="The split used (the data set's default when the job gave none).")
    model: ModelSpec = Field(description="The model trained.")
    search: SearchSpec = Field(description="The search spec.")
    tradeoff: float = Field(description="t: t = 1 means utility only, t = 0 privacy only.")
    delta: float | None = Field(description="The delta epsilon is reported at (known once the baseline ran).")
    seed: int = Field(description="Seed of the split, the models and the search.")
    measurement: MeasurementSpec = Field(
        description="How privacy is measured (the job's privacy_game, repeats, "
        "reference_models, audit_reference_models, allow_weak_baseline)."
    )
    guarantee: GuaranteeSpec = Field(
        description="What the recommendation must guarantee (the job's max_epsilon, "
        "target_epsilon, confirm_repeats, max_utility_loss)."
    )
    tune_dataset_id: str | None = Field(description="The proxy data set the search runs on; null: dataset_id.")
    stage: JobStage | None = Field(
        description="baseline, search, confirm (the chosen point measured again on "
        "fresh seeds) or final (the final model's one training); null once the job ended."
    )
    no_recommendation_reason: str | None = Field(
        default=None, description="Why a succeeded job has no recommendation (no trial met max_utility_loss)."
    )
    progress: Progress = Field(description="Trials done, running and failed, against the budget.")
    created_at: datetime = Field(description="When it was queued (UTC).")
    started_at: datetime | None = Field(description="When a worker started it; null while queued.")
    finished_at: datetime | None = Field(description="When it succeeded, failed or was cancelled; null before.")
    elapsed_seconds: float | None = Field(
        description="Seconds from start to end (to now while it runs); null until it starts."
    )
    eta_seconds: float | None = Field(description="Estimated seconds to the end; null when unknown.")
    baseline: Baseline | None = Field(description="The non-private baseline; null until measured.")
    best_trial: Trial | None = Field(description="The trial with the best objective at the job's trade-off so far.")
    failures: list[TrialFailure] = Field(default_factory=list, description="Failed trials (first 20).")
    error: str | None = Field(description="Why the job failed, for a person; null unless it failed.")
    error_code: str | None = Field(
        description="Why a failed job failed: baseline_not_learning, no_external_set (the engine's checks), a data "
        "set error's code (e.g. split_too_small), baseline_failed (any other baseline error), baseline_abandoned "
        "or no_trial_succeeded; confirm_failed, final_failed, confirm_abandoned or final_abandoned (the stages "
        "after the search); null unless the job failed."
    )


class TrialRead(Trial):
    """The engine's Trial (same fields as in the result JSON), plus its status and when and how often it ran."""

    status: Literal["succeeded"] = Field(default="succeeded", description="succeeded: measured to the end.")
    attempts: int = Field(description="Runs it took: more than 1 when a worker died and another re-ran it.")
    started_at: datetime = Field(description="When a worker first started it (UTC).")
    finished_at: datetime | None = Field(description="When it finished (UTC).")


class PrunedTrialRead(PrunedTrial):
    """The engine's PrunedTrial (as in the result JSON's pruned_trials): stopped at its checkpoint, with the
    epsilon of its full configuration; plus its status and when and how often it ran."""

    status: Literal["pruned"] = Field(default="pruned", description="pruned: stopped at its checkpoint.")
    attempts: int = Field(description="Runs it took: more than 1 when a worker died and another re-ran it.")
    started_at: datetime = Field(description="When a worker first started it (UTC).")
    finished_at: datetime | None = Field(description="When it was stopped (UTC).")


# A row of a job's trial listing: succeeded trials and, in a job that prunes, pruned ones, told apart by status.
TrialRow = Annotated[TrialRead | PrunedTrialRead, Field(discriminator="status")]


class RecommendationRead(Recommendation):
    """The engine's Recommendation for `tradeoff`, plus the Pareto front of all stored trials."""

    job_id: str = Field(description="The job it is for.")
    job_status: JobStatus = Field(
        description="The job's status: succeeded, or cancelled (its trials so far, unconfirmed)."
    )
    pareto_front: list[int] = Field(description="Indices of trials no other trial beats on utility and attack.")
