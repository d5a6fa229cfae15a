"""The jobs API's logic: validate and queue jobs, and read them back as the engine's result models."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from app.api.errors import ApiError, not_found
from app.api.pagination import Page, PageParams
from app.datasets import repository as dataset_repository
from app.datasets.models import DatasetRecord
from app.datasets.splits import ButinaSplit, ColumnSplit, KMeansSplit, RandomSplit, SplitSpec
from app.db import utcnow
from app.jobs import queue, repository
from app.jobs.models import ACTIVE_JOB_STATUSES, JobRecord, JobStatus, TrialRecord, TrialStatus
from app.jobs.schemas import JobCreate, JobRead, Progress, RecommendationRead, TrialFailure, TrialRead
from app.owners import repository as owner_repository
from app.settings import Settings
from app.tuning.accounting import SAMPLING_ASSUMPTION
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import pareto_front, recommend, score
from app.tuning.results import (
    Baseline,
    MeasurementSpec,
    Recommendation,
    SplitSizes,
    Trial,
    TrialMeasurement,
    TuningResult,
)
from app.tuning.search import SearchSpec

SPLIT_ADAPTER: TypeAdapter[SplitSpec] = TypeAdapter(SplitSpec)
SHOWN_FAILURES = 20


# ---------------------------------------------------------------------------------------------- create


def create_job(session: Session, settings: Settings, owner_id: str, request: JobCreate) -> JobRecord:
    """Validate everything a worker would trip over later, check the owner's limits, then queue the job."""
    search = request.search
    budget = search.budget()
    if search.trials is not None and budget > settings.max_trials_per_job:
        raise ApiError(422, "too_many_trials", f"the job asks for {budget} trials; the limit is "
                       f"{settings.max_trials_per_job}", {"trials": budget, "max": settings.max_trials_per_job})
    if search.trials is None:
        budget = min(budget, settings.max_trials_per_job)  # a time-only search stops at the limit too
    # The owner's row lock serialises this owner's job creations, so two at once cannot both pass the limit.
    owner_repository.lock_owner(session, owner_id)
    dataset = dataset_repository.get_for_share(session, request.dataset_id, owner_id)
    if dataset is None:
        raise not_found("dataset", request.dataset_id)  # also another owner's: 404, not 403
    split = request.split or default_split(dataset)
    check_split(split, dataset)
    measurement = request.measurement()
    check_game(split, measurement)
    active = repository.count_active_jobs(session, owner_id)
    if active >= settings.max_active_jobs_per_owner:
        raise ApiError(429, "too_many_active_jobs", f"{active} of your jobs are queued or running, the most allowed; "
                       "wait for one to finish or cancel one", {"active": active,
                                                                "max": settings.max_active_jobs_per_owner})
    job = JobRecord(
        id=str(uuid.uuid4()),
        dataset_id=dataset.id,
        owner_id=owner_id,
        status=JobStatus.queued.value,
        split=SPLIT_ADAPTER.dump_python(split, mode="json"),
        model=request.model.model_dump(mode="json"),
        search=search.model_dump(mode="json"),
        tradeoff=request.tradeoff,
        requested_delta=request.delta,
        measurement=measurement.model_dump(mode="json"),
        seed=request.seed,
        budget=budget,
        parallelism=search.parallelism,
        trials_version=0,
        baseline_attempts=0,
        created_at=utcnow(),
    )
    repository.add_job(session, job)
    return job


def default_split(dataset: DatasetRecord) -> SplitSpec:
    if dataset.default_split is not None:
        return SPLIT_ADAPTER.validate_python(dataset.default_split)
    return RandomSplit()


def check_split(split: SplitSpec, dataset: DatasetRecord) -> None:
    """The split's columns exist in the data set and are not the label (the table itself was validated at
    upload). What only the data can tell (a part too small) is found by the baseline, which then fails."""
    columns = set(dataset.columns)
    named: list[str] = []
    if isinstance(split, KMeansSplit):
        named = list(split.columns)
    elif isinstance(split, ColumnSplit):
        named = [split.column]
    elif isinstance(split, ButinaSplit) and dataset.smiles_column is None:
        raise ApiError(422, "butina_needs_smiles", "the Butina split needs a data set uploaded with a smiles_column")
    missing = [c for c in named if c not in columns]
    if missing:
        raise ApiError(422, "missing_column", f"split column(s) not in the data set: {', '.join(missing)}",
                       {"columns": missing, "available": dataset.columns})
    if dataset.label in named:
        raise ApiError(422, "invalid_split", f"the label '{dataset.label}' cannot be a split column",
                       {"column": dataset.label})


def check_game(split: SplitSpec, measurement: MeasurementSpec) -> None:
    """The population game needs an external set. A random split never has one; k-means and Butina always do;
    a column split has one only when some rows say external, which the engine's check_game finds at the
    baseline (the job then fails with the same code)."""
    if measurement.privacy_game == "population" and isinstance(split, RandomSplit):
        raise ApiError(422, "no_external_set", "the population privacy game compares members with an external "
                       "set, and a random split has none: use privacy_game 'membership', or a kmeans, butina or "
                       "column split with external rows", {"privacy_game": "population", "split": split.kind})


# ---------------------------------------------------------------------------------------------- read


def get_job(session: Session, owner_id: str, job_id: str) -> JobRecord:
    job = repository.get_job(session, job_id, owner_id)
    if job is None:
        raise not_found("job", job_id)  # also another owner's: 404, not 403
    return job


_NOT_READ = object()


def job_view(session: Session, job: JobRecord, now: datetime | None = None, counts: dict[str, int] | None = None,
             best: object = _NOT_READ) -> JobRead:
    """The job as the API shows it. `counts` and `best` may come prefetched (listings read them for all
    jobs of a page in one query each); the failed trials are read only when there are some."""
    now = now or utcnow()
    if counts is None:
        counts = repository.trial_counts(session, job.id)
    done = counts[TrialStatus.succeeded.value] + counts[TrialStatus.failed.value]
    running = counts[TrialStatus.running.value]
    search = SearchSpec.model_validate(job.search)
    # A time-only search has no trial total while it runs (its budget is only the trial limit).
    open_ended = search.trials is None and job.status in [s.value for s in ACTIVE_JOB_STATUSES]
    total = None if open_ended or job.budget >= queue.OPEN_BUDGET else job.budget
    baseline = Baseline.model_validate(job.baseline) if job.baseline is not None else None
    if best is _NOT_READ:
        best = repository.best_trial(session, job.id) if counts[TrialStatus.succeeded.value] else None
    assert best is None or isinstance(best, TrialRecord)
    failures = [
        TrialFailure(index=t.trial_index, clip=t.clip, noise=t.noise, error=t.error or "")
        for t in repository.failed_trials(session, job.id, SHOWN_FAILURES)
    ] if counts[TrialStatus.failed.value] else []
    return JobRead(
        id=job.id,
        dataset_id=job.dataset_id,
        status=JobStatus(job.status),
        split=SPLIT_ADAPTER.validate_python(job.split),
        model=ModelSpec.model_validate(job.model),
        search=search,
        tradeoff=job.tradeoff,
        delta=job.delta if job.delta is not None else job.requested_delta,
        seed=job.seed,
        measurement=queue.job_measurement(job),
        progress=Progress(done=done, running=running, total=total, failed=counts[TrialStatus.failed.value],
                          baseline_done=baseline is not None),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        elapsed_seconds=_elapsed(job, now),
        eta_seconds=_eta(job, search, done, total, now),
        baseline=baseline,
        best_trial=_as_trial(best, baseline, job.tradeoff) if best is not None and baseline is not None else None,
        failures=failures,
        error=job.error,
        error_code=job.error_code,
    )


def _elapsed(job: JobRecord, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    return ((job.finished_at or now) - job.started_at).total_seconds()


def _eta(job: JobRecord, search: SearchSpec, done: int, total: int | None, now: datetime) -> float | None:
    """Remaining trials times the wall time per finished trial so far (which already reflects parallelism),
    capped by what is left of a time budget."""
    if job.status != JobStatus.running.value or job.started_at is None:
        return None
    estimates: list[float] = []
    if total is not None and done > 0 and job.baseline_finished_at is not None:
        per_trial = (now - job.baseline_finished_at).total_seconds() / done
        estimates.append(max(0.0, per_trial * (total - done)))
    if search.seconds is not None:
        estimates.append(max(0.0, search.seconds - (now - job.started_at).total_seconds()))
    return min(estimates) if estimates else None


def _as_trial(record: TrialRecord, baseline: Baseline, tradeoff: float) -> Trial:
    return score(TrialMeasurement.model_validate(record.measurement), baseline, tradeoff, record.trial_index)


def list_jobs(session: Session, owner_id: str, status: JobStatus | None, dataset_id: str | None,
              page: PageParams) -> Page[JobRead]:
    jobs, total = repository.list_jobs(session, owner_id, status, dataset_id, page.offset, page.limit)
    now = utcnow()
    ids = [job.id for job in jobs]
    counts = repository.trial_counts_of_jobs(session, ids)
    best = repository.best_trials_of_jobs(session, ids)
    items = [job_view(session, job, now, counts[job.id], best.get(job.id)) for job in jobs]
    return Page[JobRead](items=items, total=total, offset=page.offset, limit=page.limit)


def trials_page(session: Session, job: JobRecord, page: PageParams) -> Page[TrialRead]:
    rows, total = repository.succeeded_trials_page(session, job.id, page.offset, page.limit)
    baseline = Baseline.model_validate(job.baseline) if job.baseline is not None else None
    items: list[TrialRead] = []
    if baseline is not None:
        for row in rows:
            trial = _as_trial(row, baseline, job.tradeoff)
            items.append(TrialRead(**trial.model_dump(), attempts=row.attempts, started_at=row.started_at,
                                   finished_at=row.finished_at))
    return Page[TrialRead](items=items, total=total, offset=page.offset, limit=page.limit)


def recommendation_view(session: Session, job: JobRecord, tradeoff: float | None) -> RecommendationRead:
    """The stored recommendation at the job's trade-off, or stored trials re-scored for another one.
    Cancelled jobs with results get one too (their results are kept); otherwise 409 until the job succeeds."""
    trials = queue.stored_trials(session, job)
    usable = job.status == JobStatus.succeeded.value or (job.status == JobStatus.cancelled.value and trials)
    if not usable or job.baseline is None:
        raise ApiError(409, "job_not_finished", f"the job is {job.status}; the recommendation comes when it succeeds",
                       {"status": job.status})
    baseline = Baseline.model_validate(job.baseline)
    t = job.tradeoff if tradeoff is None else tradeoff
    stored = repository.get_recommendation(session, job.id)
    if stored is not None and stored.tradeoff == t:
        recommendation = Recommendation.model_validate(stored.recommendation)
        front = list(stored.pareto_front)
    else:
        rescored = recommend(trials, baseline, t)
        if rescored is None:
            raise ApiError(409, "no_trials", "the job has no successful trial to recommend", {"status": job.status})
        recommendation = rescored
        front = pareto_front(trials)
    return RecommendationRead(**recommendation.model_dump(), job_id=job.id, job_status=JobStatus(job.status),
                              pareto_front=front)


def tuning_result(session: Session, job: JobRecord) -> TuningResult:
    """The same document `dptune tune --json` writes, from the stored job."""
    if job.status != JobStatus.succeeded.value or job.baseline is None:
        raise ApiError(409, "job_not_finished", f"the job is {job.status}; the result comes when it succeeds",
                       {"status": job.status})
    trials = queue.stored_trials(session, job)
    baseline = Baseline.model_validate(job.baseline)
    dataset = dataset_repository.get(session, job.dataset_id)
    info: dict[str, Any] = {"dataset_id": job.dataset_id}
    if dataset is not None:
        info["source"] = f"builtin:{dataset.builtin_name}" if dataset.builtin_name else dataset.original_filename
    info.update(job.preparation or {})
    assert job.delta is not None and job.preparation is not None
    return TuningResult(
        dataset=info,
        model=ModelSpec.model_validate(job.model).model_dump(),
        search=SearchSpec.model_validate(job.search).model_dump(),
        measurement=queue.job_measurement(job),
        splits=SplitSizes.model_validate(job.preparation["split_sizes"]),
        tradeoff=job.tradeoff,
        delta=job.delta,
        seed=job.seed,
        accounting=SAMPLING_ASSUMPTION,
        baseline=baseline,
        trials=trials,
        pareto_front=pareto_front(trials),
        recommendation=recommend(trials, baseline, job.tradeoff),
        seconds=_elapsed(job, job.finished_at or utcnow()) or 0.0,
    )


# ---------------------------------------------------------------------------------------------- cancel


def cancel_job(session: Session, owner_id: str, job_id: str) -> JobRecord:
    """Cancel a queued or running job. Finished trials are kept; running ones are marked cancelled and their
    late results are refused."""
    job = repository.lock_job(session, job_id, owner_id)
    if job is None:
        raise not_found("job", job_id)
    if job.status not in [s.value for s in ACTIVE_JOB_STATUSES]:
        raise ApiError(409, "job_finished", f"the job is already {job.status}", {"status": job.status})
    now = utcnow()
    job.status = JobStatus.cancelled.value
    job.finished_at = now
    job.baseline_lease_token = None
    job.baseline_lease_expires_at = None
    job.trials_version += 1
    repository.cancel_running_trials(session, job.id, now)
    session.flush()
    return job
