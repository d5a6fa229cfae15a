"""The durable queue: which unit of work a worker runs next, and how its result is written.

Units of work, in the order a worker looks for them:
1. a trial whose lease expired (its worker died): run again, same index and point;
2. a job's baseline: the first unit of every job (also re-run when its lease expired);
3. a new trial of a running job with room under its budget and its `parallelism`.

Each claim is a short transaction. A new trial's point comes from `suggest()`, which rebuilds the optimizer
from the stored trials (running ones through the constant liar). It is computed outside any transaction
(a Gaussian process takes a second) and inserted only if the job's trials are unchanged meanwhile
(`trials_version`); otherwise it is computed again with the newcomer counted. With parallelism 1 the points
are exactly those of `app.tuning.engine.tune()` for the same seed.

The engine's functions compute; this module decides and writes. Every function takes the session of a
transaction the caller commits.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.datasets import repository as dataset_repository
from app.jobs import repository
from app.jobs.models import COUNTED_TRIAL_STATUSES, JobRecord, JobStatus, RecommendationRecord, TrialRecord, TrialStatus
from app.tuning.objective import pareto_front, recommend, score
from app.tuning.results import Baseline, MeasurementSpec, Trial, TrialMeasurement
from app.tuning.search import Point, SearchSpec, suggest

logger = logging.getLogger("dptune.queue")

# A unit whose worker died this many times is failed rather than re-run (it may be what kills workers).
MAX_ATTEMPTS = 3
OPEN_BUDGET = SearchSpec(trials=None, seconds=1.0).budget()  # what budget() gives for a time-only search
MAX_ERROR_CHARS = 2000
# error_code of a failed job when no more specific code is known (see fail_baseline).
BASELINE_FAILED = "baseline_failed"
BASELINE_ABANDONED = "baseline_abandoned"
NO_TRIAL_SUCCEEDED = "no_trial_succeeded"


@dataclass(frozen=True)
class DatasetRef:
    """Where a worker finds the data, and what identifies its prepared form."""

    dataset_id: str
    storage_key: str
    sha256: str
    label: str
    smiles_column: str | None


@dataclass(frozen=True)
class WorkUnit:
    kind: str  # "baseline" or "trial"
    job_id: str
    lease_token: str
    attempt: int
    dataset: DatasetRef
    split: dict[str, Any]
    model: dict[str, Any]
    seed: int
    requested_delta: float | None
    delta: float | None = None  # set for trials (fixed by the baseline)
    measurement: MeasurementSpec = field(default_factory=MeasurementSpec)  # the job's, for baseline and trials
    trial_index: int | None = None
    clip: float | None = None
    noise: float | None = None

    def describe(self) -> str:
        if self.kind == "baseline":
            return f"job {self.job_id} baseline"
        return f"job {self.job_id} trial {self.trial_index}"


@dataclass(frozen=True)
class TrialSnapshot:
    """A running job's trials as `suggest()` needs them, with the version they were read at."""

    job_id: str
    version: int
    search: SearchSpec
    seed: int
    started_at: datetime | None
    counted: int
    running: int
    budget: int
    parallelism: int
    observed: list[tuple[Point, float]]
    pending: list[Point]


# ---------------------------------------------------------------------------------------------- claims


def claim_leftover(session: Session, worker: str, now: datetime, lease: timedelta) -> WorkUnit | None:
    """Steps 1 and 2: an expired trial, or a baseline. Also finalises jobs that are complete."""
    finalize_ready_jobs(session, now)
    while (trial := repository.lock_expired_trial(session, now)) is not None:
        if trial.attempts >= MAX_ATTEMPTS:
            # Failing it changes the job: take the job's lock too, without waiting (trial-then-job is the
            # reverse of the usual order, so waiting here could deadlock).
            locked_job = repository.lock_running_job(session, trial.job_id)
            if locked_job is None:
                return None
            _fail_trial_row(session, locked_job, trial, f"abandoned: its worker stopped {trial.attempts} times", now)
            continue
        job = repository.get_job(session, trial.job_id)
        assert job is not None
        trial.attempts += 1
        trial.worker = worker
        trial.lease_token = _token()
        trial.lease_expires_at = now + lease
        logger.info("job %s trial %d: lease expired, running it again (attempt %d)",
                    job.id, trial.trial_index, trial.attempts)
        return _trial_unit(session, job, trial)
    while (job := repository.lock_job_needing_baseline(session, now)) is not None:
        if job.baseline_attempts >= MAX_ATTEMPTS:
            _finish_job(session, job, JobStatus.failed, now,
                        f"the baseline was abandoned: its worker stopped {job.baseline_attempts} times",
                        BASELINE_ABANDONED)
            continue
        job.status = JobStatus.running.value
        job.started_at = job.started_at or now
        job.baseline_attempts += 1
        job.baseline_worker = worker
        job.baseline_lease_token = _token()
        job.baseline_lease_expires_at = now + lease
        return _baseline_unit(session, job)
    return None


def jobs_wanting_trials(session: Session, limit: int = 8) -> list[tuple[str, int]]:
    return repository.jobs_wanting_trials(session, limit)


def read_snapshot(session: Session, job_id: str) -> TrialSnapshot | None:
    job = repository.get_job(session, job_id)
    if job is None or job.status != JobStatus.running.value or job.baseline is None:
        return None
    trials = repository.trials_of_job(session, job_id, [s.value for s in COUNTED_TRIAL_STATUSES])
    return TrialSnapshot(
        job_id=job.id,
        version=job.trials_version,
        search=SearchSpec.model_validate(job.search),
        seed=job.seed,
        started_at=job.started_at,
        counted=len(trials),
        running=sum(1 for t in trials if t.status == TrialStatus.running.value),
        budget=job.budget,
        parallelism=job.parallelism,
        observed=observed_points(trials),
        pending=[(t.clip, t.noise) for t in trials if t.status == TrialStatus.running.value],
    )


def observed_points(trials: list[TrialRecord]) -> list[tuple[Point, float]]:
    """Finished trials in index order. A failed trial enters with the worst objective seen, so the search
    moves away from it (and grid or random search moves on past it)."""
    finished = [t for t in trials if t.status in (TrialStatus.succeeded.value, TrialStatus.failed.value)]
    objectives = [t.objective for t in finished if t.status == TrialStatus.succeeded.value and t.objective is not None]
    penalty = min(objectives) if objectives else 0.0
    return [
        ((t.clip, t.noise), t.objective if t.status == TrialStatus.succeeded.value and t.objective is not None
         else penalty)
        for t in finished
    ]


def time_is_up(snapshot: TrialSnapshot, now: datetime) -> bool:
    seconds = snapshot.search.seconds
    if seconds is None or snapshot.started_at is None:
        return False
    return (now - snapshot.started_at).total_seconds() >= seconds


def next_point(snapshot: TrialSnapshot) -> Point | None:
    """Pure: the engine's suggestion for this snapshot (None when a grid is exhausted)."""
    return suggest(snapshot.search, snapshot.observed, snapshot.pending, snapshot.seed)


def insert_trial(
    session: Session, snapshot: TrialSnapshot, point: Point, worker: str, now: datetime, lease: timedelta
) -> WorkUnit | None:
    """Step 3: insert the suggested trial, if the job's trials did not change since the snapshot."""
    job = repository.lock_running_job(session, snapshot.job_id, snapshot.version)
    if job is None:
        return None  # another worker added or finished a trial meanwhile, or the job ended: suggest again
    trial = TrialRecord(
        job_id=job.id,
        trial_index=snapshot.counted,
        status=TrialStatus.running.value,
        clip=float(point[0]),
        noise=float(point[1]),
        worker=worker,
        lease_token=_token(),
        lease_expires_at=now + lease,
        attempts=1,
        started_at=now,
    )
    repository.add_trial(session, trial)
    job.trials_version += 1
    return _trial_unit(session, job, trial)


def close_budget(session: Session, snapshot: TrialSnapshot, now: datetime, reason: str) -> None:
    """The time budget is spent or the grid exhausted: the job ends at the trials started so far."""
    job = repository.lock_running_job(session, snapshot.job_id)
    if job is None:
        return
    counted = len(repository.trials_of_job(session, job.id, [s.value for s in COUNTED_TRIAL_STATUSES]))
    if counted < job.budget:
        logger.info("job %s: %s; ending at %d trials", job.id, reason, counted)
        job.budget = counted
        job.trials_version += 1
    maybe_finalize(session, job, now)


# ---------------------------------------------------------------------------------------------- leases


def renew_lease(session: Session, unit: WorkUnit, expires_at: datetime) -> bool:
    """Heartbeat. False when the lease is gone (expired and taken over, or the job was cancelled)."""
    if unit.kind == "baseline":
        return repository.renew_baseline_lease(session, unit.lease_token, expires_at)
    return repository.renew_trial_lease(session, unit.lease_token, expires_at)


def release(session: Session, unit: WorkUnit, now: datetime) -> None:
    """Give the unit back unfinished (worker stopping): expire the lease so another worker takes it now."""
    if unit.kind == "baseline":
        job = repository.lock_job_by_baseline_token(session, unit.lease_token)
        if job is not None:
            job.baseline_lease_expires_at = now
            job.baseline_attempts = max(0, job.baseline_attempts - 1)  # a release is not a crash
        return
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if trial is not None:
        trial.lease_expires_at = now
        trial.attempts = max(0, trial.attempts - 1)


# ---------------------------------------------------------------------------------------------- results


def complete_baseline(
    session: Session, unit: WorkUnit, baseline: Baseline, delta: float, preparation: dict[str, Any], now: datetime
) -> bool:
    job = repository.lock_job_by_baseline_token(session, unit.lease_token)
    if job is None:
        return False  # lease lost or job cancelled: the result is not ours to write
    job.baseline = baseline.model_dump(mode="python")
    job.delta = delta
    job.preparation = preparation
    job.baseline_finished_at = now
    job.baseline_lease_token = None
    job.baseline_lease_expires_at = None
    job.trials_version += 1
    return True


def fail_baseline(session: Session, unit: WorkUnit, message: str, now: datetime, code: str | None = None,
                  prefix: bool = True) -> bool:
    """Fail the job. `code` is the error's own (a TuningError's or DatasetError's), else baseline_failed.
    `prefix=False` for a TuningError, whose message is written to stand alone."""
    job = repository.lock_job_by_baseline_token(session, unit.lease_token)
    if job is None:
        return False
    error = f"the baseline failed: {_clip(message)}" if prefix else _clip(message)
    _finish_job(session, job, JobStatus.failed, now, error, code or BASELINE_FAILED)
    return True


def complete_trial(session: Session, unit: WorkUnit, measurement: TrialMeasurement, now: datetime) -> bool:
    job = _lock_job_of(session, unit)
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if job is None or trial is None:
        return False  # lease lost (another worker re-ran it) or job cancelled: never counted twice
    baseline = Baseline.model_validate(job.baseline)
    scored = score(measurement, baseline, job.tradeoff, trial.trial_index)
    trial.status = TrialStatus.succeeded.value
    trial.measurement = measurement.model_dump(mode="python")
    trial.objective = scored.objective
    trial.error = None
    trial.lease_token = None
    trial.lease_expires_at = None
    trial.finished_at = now
    job.trials_version += 1
    maybe_finalize(session, job, now)
    return True


def fail_trial(session: Session, unit: WorkUnit, message: str, now: datetime) -> bool:
    job = _lock_job_of(session, unit)
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if job is None or trial is None:
        return False
    _fail_trial_row(session, job, trial, message, now)
    return True


def _fail_trial_row(session: Session, job: JobRecord, trial: TrialRecord, message: str, now: datetime) -> None:
    trial.status = TrialStatus.failed.value
    trial.error = _clip(message)
    trial.lease_token = None
    trial.lease_expires_at = None
    trial.finished_at = now
    job.trials_version += 1
    maybe_finalize(session, job, now)


# ---------------------------------------------------------------------------------------------- the end of a job


def finalize_ready_jobs(session: Session, now: datetime) -> None:
    for job_id in repository.jobs_ready_to_finalize(session, limit=16):
        job = repository.lock_running_job(session, job_id)
        if job is not None:
            maybe_finalize(session, job, now)


def maybe_finalize(session: Session, job: JobRecord, now: datetime) -> bool:
    """Finalise a locked running job whose budget is used up and no trial runs. Exactly once: the status
    change is conditional on `running` and the caller holds the job's row lock."""
    if job.status != JobStatus.running.value or job.baseline is None:
        return False
    session.flush()
    counts = repository.trial_counts(session, job.id)
    counted = sum(counts[s.value] for s in COUNTED_TRIAL_STATUSES)
    if counts[TrialStatus.running.value] or counted < job.budget:
        return False
    trials = stored_trials(session, job)
    if not trials:
        failures = repository.failed_trials(session, job.id, limit=1)
        first = f"; the first: {failures[0].error}" if failures else ""
        return _finish_job(session, job, JobStatus.failed, now, f"no trial succeeded ({counted} ran){first}",
                           NO_TRIAL_SUCCEEDED)
    baseline = Baseline.model_validate(job.baseline)
    recommendation = recommend(trials, baseline, job.tradeoff)
    assert recommendation is not None
    if not _finish_job(session, job, JobStatus.succeeded, now, None):
        return False
    repository.add_recommendation(session, RecommendationRecord(
        job_id=job.id,
        tradeoff=job.tradeoff,
        trial_index=recommendation.index,
        recommendation=recommendation.model_dump(mode="python"),
        pareto_front=pareto_front(trials),
        created_at=now,
    ))
    logger.info("job %s succeeded: %d trials, recommended trial %d", job.id, len(trials), recommendation.index)
    return True


def _finish_job(session: Session, job: JobRecord, status: JobStatus, now: datetime, error: str | None,
                error_code: str | None = None) -> bool:
    session.flush()
    if not repository.mark_job_finished(session, job.id, status, now, error, error_code):
        return False
    session.refresh(job)
    if status != JobStatus.succeeded:
        logger.info("job %s %s: %s", job.id, status.value, error)
    return True


def stored_trials(session: Session, job: JobRecord) -> list[Trial]:
    """The job's succeeded trials as the engine's Trial models, scored at the job's trade-off."""
    if job.baseline is None:
        return []
    baseline = Baseline.model_validate(job.baseline)
    return [
        score(TrialMeasurement.model_validate(t.measurement), baseline, job.tradeoff, t.trial_index)
        for t in repository.trials_of_job(session, job.id, [TrialStatus.succeeded.value])
    ]


# ---------------------------------------------------------------------------------------------- helpers


def _lock_job_of(session: Session, unit: WorkUnit) -> JobRecord | None:
    # Job before trial, the order every path takes, so two transactions never wait on each other in a cycle.
    return repository.lock_running_job_blocking(session, unit.job_id)


def _trial_unit(session: Session, job: JobRecord, trial: TrialRecord) -> WorkUnit:
    return WorkUnit(
        kind="trial",
        job_id=job.id,
        lease_token=str(trial.lease_token),
        attempt=trial.attempts,
        dataset=_dataset_ref(session, job),
        split=dict(job.split),
        model=dict(job.model),
        seed=job.seed,
        requested_delta=job.requested_delta,
        delta=job.delta,
        measurement=job_measurement(job),
        trial_index=trial.trial_index,
        clip=trial.clip,
        noise=trial.noise,
    )


def _baseline_unit(session: Session, job: JobRecord) -> WorkUnit:
    return WorkUnit(
        kind="baseline",
        job_id=job.id,
        lease_token=str(job.baseline_lease_token),
        attempt=job.baseline_attempts,
        dataset=_dataset_ref(session, job),
        split=dict(job.split),
        model=dict(job.model),
        seed=job.seed,
        requested_delta=job.requested_delta,
        measurement=job_measurement(job),
    )


def job_measurement(job: JobRecord) -> MeasurementSpec:
    """The job's MeasurementSpec; NULL (a job from before revision 0003) means its defaults."""
    return MeasurementSpec.model_validate(job.measurement) if job.measurement is not None else MeasurementSpec()


def _dataset_ref(session: Session, job: JobRecord) -> DatasetRef:
    dataset = dataset_repository.get(session, job.dataset_id)
    assert dataset is not None  # a data set with active jobs cannot be deleted
    return DatasetRef(
        dataset_id=dataset.id,
        storage_key=dataset.storage_key,
        sha256=dataset.sha256,
        label=dataset.label,
        smiles_column=dataset.smiles_column,
    )


def _token() -> str:
    return str(uuid.uuid4())


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
