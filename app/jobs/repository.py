"""All SQL on jobs, trials and recommendations, including the queue's claims.

Claims lock with SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL, so concurrent workers never take the same
row and never wait for each other. SQLite ignores the clause; there the worker's write transaction starts
with BEGIN IMMEDIATE (app.db), which serialises claims across processes with the same effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ColumnElement, Text, and_, bindparam, cast, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.jobs.models import (
    ACTIVE_JOB_STATUSES,
    COUNTED_TRIAL_STATUSES,
    FINISHING_STAGES,
    JobRecord,
    JobStage,
    JobStatus,
    JobTagRecord,
    RecommendationRecord,
    TrialRecord,
    TrialStatus,
)

# ---------------------------------------------------------------------------------------------- jobs


def add_job(session: Session, job: JobRecord) -> None:
    session.add(job)
    session.flush()


def get_job(session: Session, job_id: str, owner_id: str | None = None) -> JobRecord | None:
    """The job, if it exists and (when `owner_id` is given) belongs to that owner."""
    job = session.get(JobRecord, job_id)
    if job is None or (owner_id is not None and job.owner_id != owner_id):
        return None
    return job


# Never in a tag (TAG_PATTERN allows no newline): joins a job's tags into one column of a query.
_TAG_SEPARATOR = "\n"
# Columns no API view shows: the leases, which every heartbeat renews.
_LEASE_COLUMNS = frozenset(
    {
        "baseline_worker",
        "baseline_lease_token",
        "baseline_lease_expires_at",
        "finish_worker",
        "finish_lease_token",
        "finish_lease_expires_at",
    }
)


def _trial_count(status: TrialStatus) -> ColumnElement[int]:
    return (
        select(func.count())
        .select_from(TrialRecord)
        .where(TrialRecord.job_id == JobRecord.id, TrialRecord.status == status.value)
        .scalar_subquery()
    )


# What a job's view reads besides the job row, as columns of the job's own query: trial counts and tags.
_SHOWN_TRIAL_STATUSES = (TrialStatus.running, TrialStatus.succeeded, TrialStatus.failed, TrialStatus.pruned)
_JOB_EXTRAS: tuple[ColumnElement[Any], ...] = (
    *(_trial_count(status) for status in _SHOWN_TRIAL_STATUSES),
    select(func.aggregate_strings(JobTagRecord.tag, _TAG_SEPARATOR))
    .where(JobTagRecord.job_id == JobRecord.id)
    .scalar_subquery(),
)


def _counts_and_tags(values: Sequence[Any]) -> tuple[dict[str, int], list[str]]:
    """The trial counts by status and the sorted tags, from the _JOB_EXTRAS columns of a row."""
    counts = {status.value: 0 for status in TrialStatus}
    counts.update({status.value: int(n or 0) for status, n in zip(_SHOWN_TRIAL_STATUSES, values, strict=False)})
    joined = values[len(_SHOWN_TRIAL_STATUSES)]
    return counts, sorted(joined.split(_TAG_SEPARATOR)) if joined else []


@dataclass(frozen=True)
class JobSnapshot:
    """A job's stored state as its poll shows it, read in one query without decoding the JSON columns:
    `stored` is every shown column's raw value (the ETag hashes it), with the trial counts and tags."""

    stored: tuple[Any, ...]
    counts: dict[str, int]
    tags: list[str]
    started_at: datetime | None
    finished_at: datetime | None


# Raw values: JSON columns as their text, so that nothing is decoded to fingerprint a job.
_SNAPSHOT_COLUMNS = [
    cast(column, Text) if isinstance(column.type, JSON) else column
    for column in JobRecord.__table__.columns
    if column.name not in _LEASE_COLUMNS
]
_SNAPSHOT_QUERY = select(*_SNAPSHOT_COLUMNS, *_JOB_EXTRAS).where(
    JobRecord.id == bindparam("job_id"), JobRecord.owner_id == bindparam("owner_id")
)  # built once: building it costs more than running it
_STARTED_AT = _SNAPSHOT_COLUMNS.index(JobRecord.__table__.c.started_at)
_FINISHED_AT = _SNAPSHOT_COLUMNS.index(JobRecord.__table__.c.finished_at)


def job_snapshot(session: Session, job_id: str, owner_id: str) -> JobSnapshot | None:
    row = session.connection().execute(_SNAPSHOT_QUERY, {"job_id": job_id, "owner_id": owner_id}).first()
    if row is None:
        return None
    stored = tuple(row[: len(_SNAPSHOT_COLUMNS)])
    counts, tags = _counts_and_tags(row[len(_SNAPSHOT_COLUMNS) :])
    return JobSnapshot(stored, counts, tags, stored[_STARTED_AT], stored[_FINISHED_AT])


def lock_job(session: Session, job_id: str, owner_id: str) -> JobRecord | None:
    """Waits for the row lock: for the API's state changes (cancel), which must not be skipped."""
    return session.scalars(
        select(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.owner_id == owner_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def count_active_jobs(session: Session, owner_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(JobRecord)
            .where(JobRecord.owner_id == owner_id, JobRecord.status.in_([s.value for s in ACTIVE_JOB_STATUSES]))
        )
        or 0
    )


def list_jobs(
    session: Session,
    owner_id: str,
    status: JobStatus | None,
    dataset_id: str | None,
    offset: int,
    limit: int,
    name: str | None = None,
    tags: Sequence[str] = (),
) -> tuple[list[ListedJob], int]:
    """The owner's jobs, newest first, with their trial counts and tags, and how many jobs match in all;
    `name` matches part of the name in any case, and each of `tags` must be one of the job's tags."""
    conditions = [JobRecord.owner_id == owner_id]
    if status is not None:
        conditions.append(JobRecord.status == status.value)
    if dataset_id is not None:
        conditions.append(JobRecord.dataset_id == dataset_id)
    if name is not None:
        conditions.append(JobRecord.name.icontains(name, autoescape=True))
    for tag in dict.fromkeys(tags):
        conditions.append(
            select(JobTagRecord.job_id).where(JobTagRecord.job_id == JobRecord.id, JobTagRecord.tag == tag).exists()
        )
    rows = session.execute(
        select(JobRecord, func.count().over(), *_JOB_EXTRAS)
        .where(*conditions)
        .order_by(JobRecord.created_at.desc(), JobRecord.id)
        .offset(offset)
        .limit(limit)
    ).all()
    if rows:
        total = int(rows[0][1])
    else:  # a page past the end: the window count came with no row
        total = int(session.scalar(select(func.count()).select_from(JobRecord).where(*conditions)) or 0)
    jobs = [ListedJob(row[0], *_counts_and_tags(row[2:])) for row in rows]
    return jobs, total


@dataclass(frozen=True)
class ListedJob:
    """A job of a listing, with what its view needs besides the row (read in the same query)."""

    job: JobRecord
    counts: dict[str, int]
    tags: list[str]


def add_tags(session: Session, job_id: str, tags: Sequence[str]) -> None:
    session.add_all(JobTagRecord(job_id=job_id, tag=tag) for tag in dict.fromkeys(tags))
    session.flush()


def tags_of_jobs(session: Session, job_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each job's tags in alphabetical order, for many jobs in one query."""
    tags: dict[str, list[str]] = {job_id: [] for job_id in job_ids}
    if job_ids:
        rows = session.execute(
            select(JobTagRecord.job_id, JobTagRecord.tag)
            .where(JobTagRecord.job_id.in_(list(job_ids)))
            .order_by(JobTagRecord.tag)
        )
        for job_id, tag in rows:
            tags[str(job_id)].append(str(tag))
    return tags


def _uses_dataset(dataset_id: str) -> Any:
    """Jobs that read the data set: as their private data set or as their proxy."""
    return or_(JobRecord.dataset_id == dataset_id, JobRecord.tune_dataset_id == dataset_id)


def job_ids_of_dataset(session: Session, dataset_id: str, active_only: bool = False) -> list[str]:
    conditions = [_uses_dataset(dataset_id)]
    if active_only:
        conditions.append(JobRecord.status.in_([s.value for s in ACTIVE_JOB_STATUSES]))
    return list(session.scalars(select(JobRecord.id).where(*conditions).order_by(JobRecord.id)).all())


def active_job_ids_for_dataset(session: Session, dataset_id: str) -> list[str]:
    return job_ids_of_dataset(session, dataset_id, active_only=True)


def delete_jobs_of_dataset(session: Session, dataset_id: str) -> int:
    """Everything derived from a data set: the jobs that read it (private or proxy), their trials and
    recommendations."""
    job_ids = select(JobRecord.id).where(_uses_dataset(dataset_id)).scalar_subquery()
    session.execute(delete(RecommendationRecord).where(RecommendationRecord.job_id.in_(job_ids)))
    session.execute(delete(TrialRecord).where(TrialRecord.job_id.in_(job_ids)))
    session.execute(delete(JobTagRecord).where(JobTagRecord.job_id.in_(job_ids)))
    result = session.execute(delete(JobRecord).where(_uses_dataset(dataset_id)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult


def dataset_ids_with_active_jobs(session: Session) -> set[str]:
    """Data sets an active job reads (its private data set or its proxy)."""
    rows = session.execute(
        select(JobRecord.dataset_id, JobRecord.tune_dataset_id)
        .where(JobRecord.status.in_([s.value for s in ACTIVE_JOB_STATUSES]))
        .distinct()
    ).all()
    return {dataset_id for row in rows for dataset_id in row if dataset_id is not None}


# ---------------------------------------------------------------------------------------------- trials


def trial_counts(session: Session, job_id: str) -> dict[str, int]:
    rows = session.execute(
        select(TrialRecord.status, func.count()).where(TrialRecord.job_id == job_id).group_by(TrialRecord.status)
    ).all()
    counts = {status.value: 0 for status in TrialStatus}
    counts.update({str(status): int(n) for status, n in rows})
    return counts


def trial_counts_of_jobs(session: Session, job_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """trial_counts for many jobs in one query (job listings)."""
    counts = {job_id: {status.value: 0 for status in TrialStatus} for job_id in job_ids}
    if not job_ids:
        return counts
    rows = session.execute(
        select(TrialRecord.job_id, TrialRecord.status, func.count())
        .where(TrialRecord.job_id.in_(list(job_ids)))
        .group_by(TrialRecord.job_id, TrialRecord.status)
    ).all()
    for job_id, status, n in rows:
        counts[str(job_id)][str(status)] = int(n)
    return counts


def best_trials_of_jobs(session: Session, job_ids: Sequence[str]) -> dict[str, TrialRecord]:
    """best_trial for many jobs in one query: the first succeeded trial of each by objective, then index."""
    if not job_ids:
        return {}
    ranked = (
        select(
            TrialRecord.id,
            func.row_number()
            .over(
                partition_by=TrialRecord.job_id,
                order_by=(TrialRecord.objective.desc().nulls_last(), TrialRecord.trial_index),
            )
            .label("rank"),
        )
        .where(TrialRecord.job_id.in_(list(job_ids)), TrialRecord.status == TrialStatus.succeeded.value)
        .subquery()
    )
    rows = session.scalars(select(TrialRecord).join(ranked, ranked.c.id == TrialRecord.id).where(ranked.c.rank == 1))
    return {row.job_id: row for row in rows}


def trials_of_job(session: Session, job_id: str, statuses: Sequence[str] | None = None) -> list[TrialRecord]:
    query = select(TrialRecord).where(TrialRecord.job_id == job_id)
    if statuses is not None:
        query = query.where(TrialRecord.status.in_(list(statuses)))
    return list(session.scalars(query.order_by(TrialRecord.trial_index)).all())


LISTED_TRIAL_STATUSES = (TrialStatus.succeeded.value, TrialStatus.pruned.value)


def listed_trials_page(session: Session, job_id: str, offset: int, limit: int) -> tuple[list[TrialRecord], int]:
    """A page of the job's succeeded and pruned trials in index order, and how many there are (one query, but
    for a page past the end)."""
    condition = and_(TrialRecord.job_id == job_id, TrialRecord.status.in_(LISTED_TRIAL_STATUSES))
    rows = session.execute(
        select(TrialRecord, func.count().over())
        .where(condition)
        .order_by(TrialRecord.trial_index)
        .offset(offset)
        .limit(limit)
    ).all()
    if not rows:
        return [], int(session.scalar(select(func.count()).select_from(TrialRecord).where(condition)) or 0)
    return [row[0] for row in rows], int(rows[0][1])


def failed_trials(session: Session, job_id: str, limit: int) -> list[TrialRecord]:
    return list(
        session.scalars(
            select(TrialRecord)
            .where(TrialRecord.job_id == job_id, TrialRecord.status == TrialStatus.failed.value)
            .order_by(TrialRecord.trial_index)
            .limit(limit)
        ).all()
    )


def trial_by_index(session: Session, job_id: str, index: int | None) -> TrialRecord | None:
    return session.scalars(
        select(TrialRecord).where(TrialRecord.job_id == job_id, TrialRecord.trial_index == index)
    ).first()


def best_trial(session: Session, job_id: str) -> TrialRecord | None:
    return session.scalars(
        select(TrialRecord)
        .where(TrialRecord.job_id == job_id, TrialRecord.status == TrialStatus.succeeded.value)
        .order_by(TrialRecord.objective.desc().nulls_last(), TrialRecord.trial_index)
        .limit(1)
    ).first()


def add_trial(session: Session, trial: TrialRecord) -> None:
    session.add(trial)
    session.flush()


def cancel_running_trials(session: Session, job_id: str, now: datetime) -> None:
    session.execute(
        update(TrialRecord)
        .where(TrialRecord.job_id == job_id, TrialRecord.status == TrialStatus.running.value)
        .values(status=TrialStatus.cancelled.value, lease_token=None, finished_at=now)
    )


# ---------------------------------------------------------------------------------------------- recommendations


def get_recommendation(session: Session, job_id: str) -> RecommendationRecord | None:
    return session.get(RecommendationRecord, job_id)


def add_recommendation(session: Session, record: RecommendationRecord) -> None:
    session.add(record)
    session.flush()


# ---------------------------------------------------------------------------------------------- queue: claims


def lock_expired_trial(session: Session, now: datetime) -> TrialRecord | None:
    """A running trial of a running job whose worker stopped renewing its lease."""
    return session.scalars(
        select(TrialRecord)
        .join(JobRecord, JobRecord.id == TrialRecord.job_id)
        .where(
            TrialRecord.status == TrialStatus.running.value,
            TrialRecord.lease_expires_at < now,
            JobRecord.status == JobStatus.running.value,
        )
        .order_by(TrialRecord.lease_expires_at)
        .limit(1)
        .with_for_update(skip_locked=True, of=TrialRecord)
        .execution_options(populate_existing=True)
    ).first()


def lock_job_needing_baseline(session: Session, now: datetime) -> JobRecord | None:
    """The oldest queued job, or a running one whose baseline's lease expired."""
    return session.scalars(
        select(JobRecord)
        .where(
            or_(
                JobRecord.status == JobStatus.queued.value,
                and_(
                    JobRecord.status == JobStatus.running.value,
                    JobRecord.baseline_finished_at.is_(None),
                    JobRecord.baseline_lease_expires_at < now,
                ),
            )
        )
        .order_by(JobRecord.created_at, JobRecord.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()


def lock_job_needing_finish(session: Session, now: datetime) -> JobRecord | None:
    """The oldest running job at a finishing stage (confirm, final) whose unit is not leased, or whose
    lease expired."""
    return session.scalars(
        select(JobRecord)
        .where(
            JobRecord.status == JobStatus.running.value,
            JobRecord.stage.in_([s.value for s in FINISHING_STAGES]),
            or_(JobRecord.finish_lease_token.is_(None), JobRecord.finish_lease_expires_at < now),
        )
        .order_by(JobRecord.created_at, JobRecord.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).first()


def _count_trials(status_values: Sequence[str]) -> Any:
    return (
        select(func.count())
        .select_from(TrialRecord)
        .where(TrialRecord.job_id == JobRecord.id, TrialRecord.status.in_(list(status_values)))
        .correlate(JobRecord)
        .scalar_subquery()
    )


def jobs_wanting_trials(session: Session, limit: int) -> list[tuple[str, int]]:
    """(job id, trials_version) of running jobs past their baseline with room for one more trial:
    below the budget and below `parallelism` running trials. Oldest first. No lock: the insert checks."""
    running = _count_trials([TrialStatus.running.value])
    counted = _count_trials([s.value for s in COUNTED_TRIAL_STATUSES])
    rows = session.execute(
        select(JobRecord.id, JobRecord.trials_version)
        .where(
            JobRecord.status == JobStatus.running.value,
            JobRecord.stage == JobStage.search.value,
            running < JobRecord.parallelism,
            counted < JobRecord.budget,
        )
        .order_by(JobRecord.created_at, JobRecord.id)
        .limit(limit)
    ).all()
    return [(str(job_id), int(version)) for job_id, version in rows]


def jobs_ready_to_finalize(session: Session, limit: int) -> list[str]:
    """Running jobs in their search with no running trial and the budget used up."""
    running = _count_trials([TrialStatus.running.value])
    counted = _count_trials([s.value for s in COUNTED_TRIAL_STATUSES])
    rows = session.scalars(
        select(JobRecord.id)
        .where(
            JobRecord.status == JobStatus.running.value,
            JobRecord.stage == JobStage.search.value,
            running == 0,
            counted >= JobRecord.budget,
        )
        .limit(limit)
    ).all()
    return [str(job_id) for job_id in rows]


def lock_running_job(session: Session, job_id: str, version: int | None = None) -> JobRecord | None:
    """Lock a running job unless another worker holds it (then None); with `version`, only if its trials
    are unchanged since the caller read them."""
    query = select(JobRecord).where(JobRecord.id == job_id, JobRecord.status == JobStatus.running.value)
    if version is not None:
        query = query.where(JobRecord.trials_version == version)
    return session.scalars(query.with_for_update(skip_locked=True).execution_options(populate_existing=True)).first()


def lock_running_job_blocking(session: Session, job_id: str) -> JobRecord | None:
    """Wait for a running job's lock: to write a result, which must not be skipped."""
    return session.scalars(
        select(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.status == JobStatus.running.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


# ---------------------------------------------------------------------------------------------- queue: leases


def renew_trial_lease(session: Session, token: str, expires_at: datetime) -> bool:
    result = session.execute(
        update(TrialRecord)
        .where(TrialRecord.lease_token == token, TrialRecord.status == TrialStatus.running.value)
        .values(lease_expires_at=expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult


def renew_baseline_lease(session: Session, token: str, expires_at: datetime) -> bool:
    result = session.execute(
        update(JobRecord)
        .where(
            JobRecord.baseline_lease_token == token,
            JobRecord.status == JobStatus.running.value,
            JobRecord.baseline_finished_at.is_(None),
        )
        .values(baseline_lease_expires_at=expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult


def renew_finish_lease(session: Session, token: str, stage: str, expires_at: datetime) -> bool:
    result = session.execute(
        update(JobRecord)
        .where(
            JobRecord.finish_lease_token == token,
            JobRecord.status == JobStatus.running.value,
            JobRecord.stage == stage,
        )
        .values(finish_lease_expires_at=expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult


def lock_trial_by_token(session: Session, token: str) -> TrialRecord | None:
    """The caller's own running trial, if it still holds the lease (a late worker's result is refused)."""
    return session.scalars(
        select(TrialRecord)
        .where(TrialRecord.lease_token == token, TrialRecord.status == TrialStatus.running.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def lock_job_by_baseline_token(session: Session, token: str) -> JobRecord | None:
    return session.scalars(
        select(JobRecord)
        .where(
            JobRecord.baseline_lease_token == token,
            JobRecord.status == JobStatus.running.value,
            JobRecord.baseline_finished_at.is_(None),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def lock_job_by_finish_token(session: Session, token: str, stage: str) -> JobRecord | None:
    """The running job whose finishing unit at `stage` the caller still holds."""
    return session.scalars(
        select(JobRecord)
        .where(
            JobRecord.finish_lease_token == token,
            JobRecord.status == JobStatus.running.value,
            JobRecord.stage == stage,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def mark_job_finished(
    session: Session, job_id: str, status: JobStatus, now: datetime, error: str | None, error_code: str | None = None
) -> bool:
    """The one transition out of running; conditional, so a job is finalised exactly once."""
    result = session.execute(
        update(JobRecord)
        .where(JobRecord.id == job_id, JobRecord.status == JobStatus.running.value)
        .values(
            status=status.value,
            finished_at=now,
            error=error,
            error_code=error_code,
            stage=None,
            baseline_lease_token=None,
            baseline_lease_expires_at=None,
            finish_lease_token=None,
            finish_lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult
