"""Jobs, trials and recommendations: the database is the single source of truth and the queue.

A job's baseline is its first unit of work (leased through the baseline_* columns); each trial row is one
unit of work after that (leased through its lease_* columns). Measured results are stored as the engine's
pydantic models (app.tuning.results) in JSON text, with a few columns derived from them for queries.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, JsonText, UtcDateTime


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ACTIVE_JOB_STATUSES = (JobStatus.queued, JobStatus.running)


class JobStage(StrEnum):
    """Where an active job is. confirm and final are job-level units, leased like the baseline."""

    baseline = "baseline"
    search = "search"
    confirm = "confirm"
    final = "final"


FINISHING_STAGES = (JobStage.confirm, JobStage.final)


class TrialStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"  # was running when its job was cancelled; does not count
    # Stopped at its checkpoint by the pruning rule (search.pruning; app/tuning/pruning.py): measurement holds a
    # PrunedMeasurement, objective is NULL. Counts in the budget; never recommended nor confirmed.
    pruned = "pruned"


# Trials that use up the budget: a failed trial is not retried (it would fail again) but still counts; a pruned
# trial spent its training up to the checkpoint, and a search that did not count it could prune forever.
COUNTED_TRIAL_STATUSES = (TrialStatus.running, TrialStatus.succeeded, TrialStatus.failed, TrialStatus.pruned)


class JobRecord(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))  # its tags are in job_tags (JobTagRecord)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    # A proxy (public or synthetic data of the same columns) the baseline, search and confirmation run on;
    # the private data set (dataset_id) is then read once, by the final training. NULL: tune on dataset_id.
    tune_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"), index=True)  # the data set's owner
    status: Mapped[str] = mapped_column(String(16), index=True)
    split: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    search: Mapped[dict[str, Any]] = mapped_column(JSON)
    tradeoff: Mapped[float] = mapped_column(Float)
    requested_delta: Mapped[float | None] = mapped_column(Float)
    # app.tuning.results.MeasurementSpec; NULL (rows from before revision 0003) means its defaults.
    measurement: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # app.tuning.results.GuaranteeSpec; NULL means its defaults (revision 0004 writes the no-guarantee spec
    # to jobs from before it, which searched noise from 0).
    guarantee: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(BigInteger)
    # Trial count the job ends at: search.budget() at first, lowered to the trials started so far once the
    # time budget is spent or a grid is exhausted.
    budget: Mapped[int] = mapped_column(BigInteger)
    parallelism: Mapped[int] = mapped_column(Integer)
    # Bumped on every change to the job's trials, so a suggestion computed outside a transaction is only
    # inserted if no trial started or finished meanwhile (optimistic concurrency).
    trials_version: Mapped[int] = mapped_column(Integer, default=0)

    baseline: Mapped[dict[str, Any] | None] = mapped_column(JsonText)  # app.tuning.results.Baseline
    delta: Mapped[float | None] = mapped_column(Float)  # requested_delta or default_delta(n), set with the baseline
    preparation: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # PreparationReport of the split
    # app.tuning.search.SearchSpace, set with the baseline: its noise floor costs seconds of accounting to compute
    search_space: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    baseline_worker: Mapped[str | None] = mapped_column(String(128))
    baseline_lease_token: Mapped[str | None] = mapped_column(String(36))
    baseline_lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    baseline_attempts: Mapped[int] = mapped_column(Integer, default=0)

    # Where a queued or running job is: baseline, search, confirm or final (JobStage); NULL once it ended.
    stage: Mapped[str | None] = mapped_column(String(16))
    # After the search: the trial `choose` picked, its confirmation ({"measured": TrialMeasurement,
    # "confirmation": Confirmation}) and the final model's privacy statement (PrivacyStatement).
    recommended_index: Mapped[int | None] = mapped_column(Integer)
    confirmation: Mapped[dict[str, Any] | None] = mapped_column(JsonText)
    final_model: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Why a succeeded job has no recommendation (no trial met max_utility_loss or max_epsilon).
    no_recommendation_reason: Mapped[str | None] = mapped_column(Text)
    # The lease of the job-level finishing units (confirm, then final), leased like the baseline.
    finish_worker: Mapped[str | None] = mapped_column(String(128))
    finish_lease_token: Mapped[str | None] = mapped_column(String(36))
    finish_lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finish_attempts: Mapped[int] = mapped_column(Integer, default=0)

    error: Mapped[str | None] = mapped_column(Text)
    # Why a failed job failed, for programs: the engine's TuningError code (baseline_not_learning,
    # no_external_set), a DatasetError code, or baseline_failed / baseline_abandoned / no_trial_succeeded.
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    baseline_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class JobTagRecord(Base):
    """One tag of a job. A table, not a JSON list: filtering on tags is then the same SQL on every backend."""

    __tablename__ = "job_tags"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class TrialRecord(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("job_id", "trial_index", name="uq_trials_job_index"),
        Index("ix_trials_status_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial_index: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    clip: Mapped[float] = mapped_column(Float)
    noise: Mapped[float] = mapped_column(Float)
    measurement: Mapped[dict[str, Any] | None] = mapped_column(JsonText)  # app.tuning.results.TrialMeasurement
    objective: Mapped[float | None] = mapped_column(Float)  # at the job's trade-off
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(128))
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RecommendationRecord(Base):
    """Written once, when the job is finalised, at the job's trade-off. Other trade-offs are re-scored."""

    __tablename__ = "recommendations"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    tradeoff: Mapped[float] = mapped_column(Float)
    trial_index: Mapped[int] = mapped_column(Integer)
    recommendation: Mapped[dict[str, Any]] = mapped_column(JsonText)  # app.tuning.results.Recommendation
    pareto_front: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
