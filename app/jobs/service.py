"""The jobs API's logic: validate and queue jobs, and read them back as the engine's result models."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import DomainError, not_found
from app.core.pagination import Page, PageParams
from app.datasets import repository as dataset_repository
from app.datasets.errors import DatasetError
from app.datasets.models import DatasetRecord
from app.datasets.splits import SPLIT_ADAPTER, ButinaSplit, ColumnSplit, KMeansSplit, RandomSplit, SplitSpec
from app.db import utcnow
from app.jobs import queue, repository
from app.jobs.final_models import read_model_files
from app.jobs.models import ACTIVE_JOB_STATUSES, JobRecord, JobStage, JobStatus, TrialRecord, TrialStatus
from app.jobs.schemas import (
    JobCreate,
    JobRead,
    Progress,
    PrunedTrialRead,
    RecommendationRead,
    TrialFailure,
    TrialRead,
    TrialRow,
)
from app.owners import repository as owner_repository
from app.settings import Settings
from app.tuning.final_model import zip_final_model
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import pareto_front
from app.tuning.recommendation import NOT_CONFIRMED_NOTE, build_recommendation, build_result, training_config
from app.tuning.results import (
    Baseline,
    MeasurementSpec,
    PrivacyStatement,
    Recommendation,
    SplitSizes,
    Trial,
    TuningResult,
)
from app.tuning.search import SearchSpec
from app.tuning.trials_csv import trials_csv as trials_csv_text

SHOWN_FAILURES = 20


# ---------------------------------------------------------------------------------------------- create


def create_job(session: Session, settings: Settings, owner_id: str, request: JobCreate) -> JobRecord:
    """Validate everything a worker would trip over later, check the owner's limits, then queue the job."""
    search = request.search
    budget = search.budget()
    if search.trials is not None and budget > settings.max_trials_per_job:
        raise DomainError(
            422,
            "too_many_trials",
            f"the job asks for {budget} trials; the limit is {settings.max_trials_per_job}",
            {"trials": budget, "max": settings.max_trials_per_job},
        )
    if search.trials is None:
        budget = min(budget, settings.max_trials_per_job)  # a time-only search stops at the limit too
    # The owner's row lock serialises this owner's job creations, so two at once cannot both pass the limit.
    owner_repository.lock_owner(session, owner_id)
    dataset = dataset_repository.get_for_share(session, request.dataset_id, owner_id)
    if dataset is None:
        raise not_found("dataset", request.dataset_id)  # also another owner's: 404, not 403
    split = request.split or default_split(dataset)
    check_split(split, dataset)
    proxy = check_proxy(session, owner_id, request.tune_dataset_id, dataset, split)
    measurement = request.measurement()
    check_game(split, measurement)
    active = repository.count_active_jobs(session, owner_id)
    if active >= settings.max_active_jobs_per_owner:
        raise DomainError(
            429,
            "too_many_active_jobs",
            f"{active} of your jobs are queued or running, the most allowed; wait for one to finish or cancel one",
            {"active": active, "max": settings.max_active_jobs_per_owner},
        )
    job = JobRecord(
        id=str(uuid.uuid4()),
        name=request.name,
        dataset_id=dataset.id,
        owner_id=owner_id,
        status=JobStatus.queued.value,
        split=SPLIT_ADAPTER.dump_python(split, mode="json"),
        model=request.model.model_dump(mode="json"),
        search=search.model_dump(mode="json"),
        tradeoff=request.tradeoff,
        requested_delta=request.delta,
        measurement=measurement.model_dump(mode="json"),
        guarantee=request.guarantee().model_dump(mode="json"),
        tune_dataset_id=proxy.id if proxy is not None else None,
        stage=JobStage.baseline.value,
        finish_attempts=0,
        seed=request.seed,
        budget=budget,
        parallelism=search.parallelism,
        trials_version=0,
        baseline_attempts=0,
        created_at=utcnow(),
    )
    repository.add_job(session, job)
    repository.add_tags(session, job.id, request.tags)
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
        raise DatasetError("butina_needs_smiles", "the Butina split needs a data set uploaded with a smiles_column")
    missing = [c for c in named if c not in columns]
    if missing:
        raise DatasetError(
            "missing_column",
            f"split column(s) not in the data set: {', '.join(missing)}",
            {"columns": missing, "available": dataset.columns},
        )
    if dataset.label in named:
        raise DatasetError(
            "invalid_split", f"the label '{dataset.label}' cannot be a split column", {"column": dataset.label}
        )


def check_proxy(
    session: Session, owner_id: str, proxy_id: str | None, dataset: DatasetRecord, split: SplitSpec
) -> DatasetRecord | None:
    """The proxy data set: the owner's own (404 otherwise, as for dataset_id), another data set than the
    private one, with the same label column and the split's columns."""
    if proxy_id is None:
        return None
    proxy = dataset_repository.get_for_share(session, proxy_id, owner_id)
    if proxy is None:
        raise not_found("dataset", proxy_id)
    if proxy.id == dataset.id:
        raise DomainError(
            422,
            "proxy_is_private",
            "tune_dataset_id names the private data set itself; give a "
            "public or synthetic proxy of the same columns, or leave it out to tune on the data set",
        )
    if proxy.label != dataset.label:
        raise DomainError(
            422,
            "proxy_label_mismatch",
            f"the proxy's label column '{proxy.label}' is not the data set's '{dataset.label}'",
            {"label": dataset.label, "proxy_label": proxy.label},
        )
    try:
        check_split(split, proxy)
    except DatasetError as exc:
        raise DatasetError(
            f"proxy_{exc.code}", f"the proxy data set does not fit the split: {exc.message}", exc.details
        ) from None
    return proxy


def check_game(split: SplitSpec, measurement: MeasurementSpec) -> None:
    """The population game needs an external set. A random split never has one; k-means and Butina always do;
    a column split has one only when some rows say external, which the engine's check_game finds at the
    baseline (the job then fails with the same code)."""
    if measurement.privacy_game == "population" and isinstance(split, RandomSplit):
        raise DomainError(
            422,
            "no_external_set",
            "the population privacy game compares members with an external "
            "set, and a random split has none: use privacy_game 'membership', or a kmeans, butina or "
            "column split with external rows",
            {"privacy_game": "population", "split": split.kind},
        )


# ---------------------------------------------------------------------------------------------- read


def get_job(session: Session, owner_id: str, job_id: str) -> JobRecord:
    job = repository.get_job(session, job_id, owner_id)
    if job is None:
        raise not_found("job", job_id)  # also another owner's: 404, not 403
    return job


_NOT_READ = object()

# Part of every job ETag: a change to how jobs are shown (this module, app.jobs.schemas) bumps it.
JOB_VIEW_VERSION = "1"
# How long the clock-derived fields of an active job (elapsed_seconds, eta_seconds) may be stale in a 304.
ETAG_CLOCK_SECONDS = 1


def job_snapshot(session: Session, owner_id: str, job_id: str) -> repository.JobSnapshot:
    snapshot = repository.job_snapshot(session, job_id, owner_id)
    if snapshot is None:
        raise not_found("job", job_id)  # also another owner's: 404, not 403
    return snapshot


def job_etag(snapshot: repository.JobSnapshot, now: datetime | None = None) -> str:
    """A weak ETag of the job's view, from its stored state (no JSON decoded, no model built): every shown column,
    the trial counts by status and the tags. The trials' own changes reach it through the counts and the job's
    trials_version. While the job runs, its elapsed and remaining seconds follow the clock: they enter as a
    whole number of ETAG_CLOCK_SECONDS, which is why the tag is weak."""
    clock = None
    if snapshot.started_at is not None and snapshot.finished_at is None:
        clock = int((now or utcnow()).timestamp()) // ETAG_CLOCK_SECONDS
    digest = hashlib.blake2b(digest_size=16)
    for value in (JOB_VIEW_VERSION, *snapshot.stored, *sorted(snapshot.counts.items()), *snapshot.tags, clock):
        # Text as it is (repr would escape it, at a cost), after its length, which keeps neighbours apart.
        encoded = value.encode() if isinstance(value, str) else repr(value).encode()
        digest.update(len(encoded).to_bytes(8, "little"))
        digest.update(encoded)
    return f'W/"{digest.hexdigest()}"'


def job_poll_view(session: Session, owner_id: str, job_id: str, snapshot: repository.JobSnapshot) -> JobRead:
    """The job's view, reusing the counts and tags its snapshot read."""
    return job_view(session, get_job(session, owner_id, job_id), counts=snapshot.counts, tags=snapshot.tags)


def job_view(
    session: Session,
    job: JobRecord,
    now: datetime | None = None,
    counts: dict[str, int] | None = None,
    best: object = _NOT_READ,
    tags: list[str] | None = None,
) -> JobRead:
    """The job as the API shows it. `counts`, `best` and `tags` may come prefetched (listings read them for
    all jobs of a page in one query each); the failed trials are read only when there are some."""
    now = now or utcnow()
    if tags is None:
        tags = repository.tags_of_jobs(session, [job.id])[job.id]
    if counts is None:
        counts = repository.trial_counts(session, job.id)
    done = counts[TrialStatus.succeeded.value] + counts[TrialStatus.failed.value] + counts[TrialStatus.pruned.value]
    running = counts[TrialStatus.running.value]
    search = SearchSpec.model_validate(job.search)
    # A time-only search has no trial total while it runs (its budget is only the trial limit).
    open_ended = search.trials is None and job.status in [s.value for s in ACTIVE_JOB_STATUSES]
    total = None if open_ended or job.budget >= queue.OPEN_BUDGET else job.budget
    baseline = Baseline.model_validate(job.baseline) if job.baseline is not None else None
    if best is _NOT_READ:
        best = repository.best_trial(session, job.id) if counts[TrialStatus.succeeded.value] else None
    assert best is None or isinstance(best, TrialRecord)
    failures = (
        [
            TrialFailure(index=t.trial_index, clip=t.clip, noise=t.noise, error=t.error or "")
            for t in repository.failed_trials(session, job.id, SHOWN_FAILURES)
        ]
        if counts[TrialStatus.failed.value]
        else []
    )
    return JobRead(
        id=job.id,
        name=job.name,
        tags=tags,
        dataset_id=job.dataset_id,
        status=JobStatus(job.status),
        split=SPLIT_ADAPTER.validate_python(job.split),
        model=ModelSpec.model_validate(job.model),
        search=search,
        tradeoff=job.tradeoff,
        delta=job.delta if job.delta is not None else job.requested_delta,
        seed=job.seed,
        measurement=queue.job_measurement(job),
        guarantee=queue.job_guarantee(job),
        tune_dataset_id=job.tune_dataset_id,
        stage=JobStage(job.stage) if job.stage is not None else None,
        no_recommendation_reason=job.no_recommendation_reason,
        progress=Progress(
            done=done,
            running=running,
            total=total,
            failed=counts[TrialStatus.failed.value],
            pruned=counts[TrialStatus.pruned.value],
            baseline_done=baseline is not None,
        ),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        elapsed_seconds=_elapsed(job, now),
        eta_seconds=_eta(job, search, done, total, now),
        baseline=baseline,
        best_trial=queue.scored_trial(best, baseline, job.tradeoff)
        if best is not None and baseline is not None
        else None,
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


def list_jobs(
    session: Session,
    owner_id: str,
    status: JobStatus | None,
    dataset_id: str | None,
    page: PageParams,
    name: str | None = None,
    tags: list[str] | None = None,
) -> Page[JobRead]:
    listed, total = repository.list_jobs(
        session, owner_id, status, dataset_id, page.offset, page.limit, name, tags or []
    )
    now = utcnow()
    with_successes = [entry.job.id for entry in listed if entry.counts[TrialStatus.succeeded.value]]
    best = repository.best_trials_of_jobs(session, with_successes)
    items = [job_view(session, entry.job, now, entry.counts, best.get(entry.job.id), entry.tags) for entry in listed]
    return Page[JobRead](items=items, total=total, offset=page.offset, limit=page.limit)


def trials_page(session: Session, job: JobRecord, page: PageParams) -> Page[TrialRow]:
    rows, total = repository.listed_trials_page(session, job.id, page.offset, page.limit)
    return Page[TrialRow](items=_trial_reads(job, rows), total=total, offset=page.offset, limit=page.limit)


def trials_csv(session: Session, job: JobRecord) -> str:
    """Every succeeded and pruned trial in index order as CSV (app.tuning.trials_csv), with its status: no
    pages, as a job holds at most DPTUNE_MAX_TRIALS_PER_JOB trials."""
    rows = repository.trials_of_job(session, job.id, list(repository.LISTED_TRIAL_STATUSES))
    return trials_csv_text(_trial_reads(job, rows))


def _trial_reads(job: JobRecord, rows: list[TrialRecord]) -> list[TrialRead | PrunedTrialRead]:
    """Stored trials scored at the job's trade-off (pruned ones as stopped, with no objective), with when and
    how often they ran."""
    if job.baseline is None:
        return []
    baseline = Baseline.model_validate(job.baseline)
    reads: list[TrialRead | PrunedTrialRead] = []
    for row in rows:
        ran = {"attempts": row.attempts, "started_at": row.started_at, "finished_at": row.finished_at}
        if row.status == TrialStatus.pruned.value:
            reads.append(PrunedTrialRead(**queue.pruned_trials([row])[0].model_dump(), **ran))
        else:
            reads.append(TrialRead(**queue.scored_trial(row, baseline, job.tradeoff).model_dump(), **ran))
    return reads


def recommendation_view(session: Session, job: JobRecord, tradeoff: float | None) -> RecommendationRead:
    """The stored (confirmed) recommendation at the job's trade-off; at another trade-off, the point
    `choose` picks from the stored trials re-scored for it, not confirmed (its notes say so). Cancelled jobs
    with results get one too (their results are kept, unconfirmed); otherwise 409 until the job succeeds."""
    trials = queue.stored_trials(session, job)
    usable = job.status == JobStatus.succeeded.value or (job.status == JobStatus.cancelled.value and trials)
    if not usable or job.baseline is None:
        raise _not_coming_yet(job, "recommendation")
    t = job.tradeoff if tradeoff is None else tradeoff
    stored = repository.get_recommendation(session, job.id)
    if stored is not None and stored.tradeoff == t:
        recommendation = Recommendation.model_validate(stored.recommendation)
        front = list(stored.pareto_front)
    elif job.no_recommendation_reason is not None and t == job.tradeoff:
        raise _no_recommendation(job.no_recommendation_reason)
    else:
        recommendation = unconfirmed_recommendation(job, trials, t)
        front = pareto_front(trials)
    if job.status == JobStatus.cancelled.value:
        recommendation = _as_cancelled(recommendation, len(trials))
    return RecommendationRead(
        **recommendation.model_dump(), job_id=job.id, job_status=JobStatus(job.status), pareto_front=front
    )


CANCELLED_UNCONFIRMED_NOTE = (
    "The job was cancelled: this point is the best of the {count} trial(s) it finished, on their own figures "
    "(one draw each), never confirmed on fresh seeds; a confirmed recommendation and a final model will never "
    "come. Queue a new job for them."
)
CANCELLED_CONFIRMED_NOTE = (
    "The job was cancelled after this recommendation was confirmed: its final model will never come."
)


def _as_cancelled(recommendation: Recommendation, trials: int) -> Recommendation:
    """A cancelled job's recommendation says so first; the note that a confirmed one exists at the job's own
    trade-off, untrue here, is dropped."""
    if recommendation.confirmation is not None:
        first = CANCELLED_CONFIRMED_NOTE
    else:
        first = CANCELLED_UNCONFIRMED_NOTE.format(count=trials)
    dropped = NOT_CONFIRMED_NOTE.format(tradeoff=recommendation.tradeoff)
    return recommendation.model_copy(update={"notes": [first, *(n for n in recommendation.notes if n != dropped)]})


def unconfirmed_recommendation(job: JobRecord, trials: list[Trial], tradeoff: float) -> Recommendation:
    """`choose` at `tradeoff` over the stored trials, with the chosen trial's own figures (no confirmation)
    and its training configuration on the search data. 409 when no trial meets the guarantee's limits."""
    if not trials:
        raise DomainError(409, "no_trials", "the job has no successful trial to recommend", {"status": job.status})
    choice = queue.job_choice(job, trials, tradeoff)
    if choice.trial is None:
        raise _no_recommendation(choice.reason or "no trial meets the guarantee's limits")
    assert job.baseline is not None and job.delta is not None
    training = training_config(
        ModelSpec.model_validate(job.model),
        choice.trial.clip,
        choice.trial.noise,
        queue.search_members(job),
        job.delta,
    )  # its accounting is cached (accounting.py)
    return build_recommendation(
        choice,
        Baseline.model_validate(job.baseline),
        tradeoff,
        queue.job_guarantee(job),
        training,
        tuned_on=queue.job_tuned_on(job),
    )


def _not_coming_yet(job: JobRecord, what: str) -> DomainError:
    """409 for the recommendation, result or model of a job that has none: one that is still coming while the job
    is queued or running, and one that never will after it failed or was cancelled (so nobody polls for it)."""
    details = {"status": job.status}
    if job.status in [s.value for s in ACTIVE_JOB_STATUSES]:
        return DomainError(
            409,
            "job_not_finished",
            f"the job is {job.status}; the {what} comes when it succeeds",
            {**details, "stage": job.stage},
        )
    if job.status == JobStatus.cancelled.value:
        kept = " before any trial succeeded" if what == "recommendation" else ""
        return DomainError(
            409,
            "job_cancelled",
            f"the job was cancelled{kept}: its {what} will never come; queue a new job for one",
            details,
        )
    return DomainError(
        409,
        "job_failed",
        f"the job failed ({job.error_code or 'see its error'}): its {what} will never come",
        {**details, "error_code": job.error_code},
    )


def _no_recommendation(reason: str) -> DomainError:
    return DomainError(409, "no_recommendation", f"no point can be recommended: {reason}", {"reason": reason})


def tuning_result(session: Session, job: JobRecord) -> TuningResult:
    """The same document `dptune tune --json` writes, from the stored job (recommendation.build_result)."""
    if job.status != JobStatus.succeeded.value or job.baseline is None:
        raise _not_coming_yet(job, "result")
    trials = queue.stored_trials(session, job)
    stored = repository.get_recommendation(session, job.id)
    recommendation = Recommendation.model_validate(stored.recommendation) if stored is not None else None
    if recommendation is None and job.no_recommendation_reason is None:
        recommendation = unconfirmed_recommendation(job, trials, job.tradeoff)  # a job from before revision 0004
    return _job_result(
        session,
        job,
        trials,
        recommendation,
        job.no_recommendation_reason,
        _stop_reason(job, SearchSpec.model_validate(job.search)),
    )


def partial_result(session: Session, job: JobRecord, progress: Progress) -> TuningResult:
    """What a job that has not succeeded holds so far, in the result's shape: its baseline and stored trials,
    no recommendation, and a reason that says the job's state."""
    return _job_result(
        session, job, queue.stored_trials(session, job), None, _unfinished_reason(job, progress), stop_reason=None
    )


def _job_result(
    session: Session,
    job: JobRecord,
    trials: list[Trial],
    recommendation: Recommendation | None,
    no_recommendation_reason: str | None,
    stop_reason: str | None,
) -> TuningResult:
    """The one builder of a job's TuningResult, for /result and the report (needs the baseline)."""
    assert job.delta is not None and job.preparation is not None and job.baseline is not None
    dataset = dataset_repository.get(session, job.dataset_id)
    info: dict[str, Any] = {"dataset_id": job.dataset_id}
    if dataset is not None:
        info["source"] = f"builtin:{dataset.builtin_name}" if dataset.builtin_name else dataset.original_filename
    info.update(job.preparation or {})
    if job.tune_dataset_id is not None:
        info["tune_dataset_id"] = job.tune_dataset_id  # the preparation above is the proxy's
    return build_result(
        dataset=info,
        spec=ModelSpec.model_validate(job.model),
        search=SearchSpec.model_validate(job.search),
        space=queue.job_space(job),
        guarantee=queue.job_guarantee(job),
        measurement=queue.job_measurement(job),
        splits=SplitSizes.model_validate(job.preparation["split_sizes"]),
        tradeoff=job.tradeoff,
        delta=job.delta,
        seed=job.seed,
        baseline=Baseline.model_validate(job.baseline),
        trials=trials,
        failed=queue.failed_trials(repository.trials_of_job(session, job.id, [TrialStatus.failed.value])),
        pruned=queue.pruned_trials(repository.trials_of_job(session, job.id, [TrialStatus.pruned.value])),
        stop_reason=stop_reason,
        recommendation=recommendation,
        no_recommendation_reason=no_recommendation_reason,
        final_model=PrivacyStatement.model_validate(job.final_model) if job.final_model is not None else None,
        seconds=_elapsed(job, job.finished_at or utcnow()) or 0.0,
    )


def _trials_done(progress: Progress) -> str:
    return (
        f"{progress.done} of {progress.total} trials done"
        if progress.total is not None
        else f"{progress.done} trials done"
    )


def _unfinished_reason(job: JobRecord, progress: Progress) -> str:
    if job.status == JobStatus.failed.value:
        return f"the job failed: {job.error or 'no error was recorded'}"
    if job.status == JobStatus.cancelled.value:
        return f"the job was cancelled after {progress.done} trial(s); it will not confirm a recommendation"
    stage = f" (stage {job.stage})" if job.stage is not None else ""
    return f"the job is {job.status}{stage}: {_trials_done(progress)}; the recommendation comes when it succeeds"


def report_html(session: Session, job: JobRecord) -> str:
    """The job's HTML report (app.reports): the whole result once the job succeeded; before, or after it failed
    or was cancelled, what exists so far (from the baseline on), with a status line; without a baseline, a
    page that says the job's status. `job` is already owner-checked (get_job)."""
    from app.reports import render_report, render_status_page  # matplotlib: loaded when a report is first asked for

    progress = job_view(session, job).progress
    parts = [f"job {job.id}", job.status]
    if job.status in [s.value for s in ACTIVE_JOB_STATUSES] and job.stage is not None:
        parts.append(f"stage {job.stage}")
    parts.append(_trials_done(progress))
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    parts.append(f"as of {utcnow():%Y-%m-%d %H:%M:%S} UTC")
    status_line = " · ".join(parts)
    if job.baseline is None:
        if job.status == JobStatus.failed.value:
            message = f"The job failed before its baseline was trained: {job.error or 'no error was recorded'}"
        elif job.status == JobStatus.cancelled.value:
            message = "The job was cancelled before its baseline was trained: there is nothing to report."
        else:
            message = (
                f"The job is {job.status}. The report fills in once the non-private baseline is trained; "
                "reload this page to follow it."
            )
        return render_status_page(f"dptune job {job.id}", status_line, message)
    result = (
        tuning_result(session, job)
        if job.status == JobStatus.succeeded.value
        else partial_result(session, job, progress)
    )
    return render_report(result, status_line=status_line)


def _stop_reason(job: JobRecord, search: SearchSpec) -> str | None:
    """ "budget" when the job ran its whole trial budget; null when the search stopped early (the time budget
    or an exhausted grid: the job does not record which)."""
    return "budget" if search.trials is not None and job.budget == search.budget() else None


def model_zip(session: Session, job: JobRecord, settings: Settings) -> bytes:
    """The final model (model.keras and privacy.json) as one zip. 409 until it exists."""
    if job.final_model is None:
        if job.status == JobStatus.succeeded.value and job.no_recommendation_reason is not None:
            raise _no_recommendation(job.no_recommendation_reason)
        if job.status != JobStatus.succeeded.value:
            raise _not_coming_yet(job, "final model")
        raise DomainError(409, "no_model", "the job succeeded without a final model", {"status": job.status})
    files = read_model_files(session, settings, job.id)
    if files is None:
        raise DomainError(409, "no_model", "the final model's files are missing from storage", {"status": job.status})
    return zip_final_model(files)


# ---------------------------------------------------------------------------------------------- cancel


def cancel_job(session: Session, owner_id: str, job_id: str) -> JobRecord:
    """Cancel a queued or running job. Finished trials are kept; running ones are marked cancelled and their
    late results are refused."""
    job = repository.lock_job(session, job_id, owner_id)
    if job is None:
        raise not_found("job", job_id)
    if job.status not in [s.value for s in ACTIVE_JOB_STATUSES]:
        raise DomainError(409, "job_finished", f"the job is already {job.status}", {"status": job.status})
    now = utcnow()
    job.status = JobStatus.cancelled.value
    job.finished_at = now
    job.stage = None
    job.baseline_lease_token = None
    job.baseline_lease_expires_at = None
    job.finish_lease_token = None
    job.finish_lease_expires_at = None
    job.trials_version += 1
    repository.cancel_running_trials(session, job.id, now)
    session.flush()
    return job
