"""The durable queue: which unit of work a worker runs next, and how its result is written.

A job goes through stages (jobs.stage): baseline, search, confirm, final. Units of work, in the order a worker
looks for them:
1. a trial whose lease expired (its worker died): run again, same index and point;
2. a job's finishing unit (confirm, then final), leased like the baseline: the chosen point measured again on
   fresh seeds, then the final model's one training on the private data set;
3. a job's baseline: the first unit of every job (also re-run when its lease expired);
4. a new trial of a running job in its search, with room under its budget and its `parallelism`.

Each claim is a short transaction. A new trial's point comes from the engine's one search step
(`app.tuning.search.search_step`), which rebuilds the optimizer from the stored trials (running ones through
the constant liar). It is computed outside any transaction (a Gaussian process takes a second) and inserted
only if the job's trials are unchanged meanwhile (`trials_version`); otherwise it is computed again with the
newcomer counted. With parallelism 1 the points are exactly those of `app.tuning.engine.tune()` for the same
seed. When the budget is used up and no trial runs, `recommendation.choose` picks the point to confirm.

The engine's functions compute; this module decides and writes. Every function takes the session of a
transaction the caller commits.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from sqlalchemy.orm import Session

from app.datasets import repository as dataset_repository
from app.jobs import repository
from app.jobs.models import (
    COUNTED_TRIAL_STATUSES,
    JobRecord,
    JobStage,
    JobStatus,
    RecommendationRecord,
    TrialRecord,
    TrialStatus,
)
from app.tuning.model_spec import ModelSpec
from app.tuning.objective import pareto_front, score
from app.tuning.pruning import Pruner, pruner_for
from app.tuning.recommendation import Choice, TuneSource, build_recommendation, choose, observations, space_for
from app.tuning.results import (
    Baseline,
    Confirmation,
    FailedTrial,
    GuaranteeSpec,
    MeasurementSpec,
    PrivacyStatement,
    PrunedMeasurement,
    PrunedTrial,
    TrainingConfig,
    Trial,
    TrialMeasurement,
)
from app.tuning.search import Observation, Point, SearchSpace, SearchSpec, SearchStep, search_step

logger = logging.getLogger("dptune.queue")

# A unit whose worker died this many times is failed rather than re-run (it may be what kills workers).
MAX_ATTEMPTS = 3
OPEN_BUDGET = SearchSpec(trials=None, seconds=1.0).budget()  # what budget() gives for a time-only search
MAX_ERROR_CHARS = 2000
# error_code of a failed job when no more specific code is known (see fail_baseline).
BASELINE_FAILED = "baseline_failed"
BASELINE_ABANDONED = "baseline_abandoned"
NO_TRIAL_SUCCEEDED = "no_trial_succeeded"

UnitKind = Literal["baseline", "trial", "confirm", "final"]
FinishKind = Literal["confirm", "final"]


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
    """One unit of work and everything the executor needs for it. `dataset` is the data the unit reads: the
    proxy (tune_dataset_id) for baseline, trials and confirmation when the job has one, the private data set
    for the final training."""

    kind: UnitKind
    job_id: str
    lease_token: str
    attempt: int
    dataset: DatasetRef
    split: dict[str, Any]
    model: dict[str, Any]
    seed: int
    requested_delta: float | None
    delta: float | None = None  # the search data's delta (fixed by the baseline); set for all but the baseline
    measurement: MeasurementSpec = field(default_factory=MeasurementSpec)  # the job's
    guarantee: GuaranteeSpec = field(default_factory=GuaranteeSpec)  # the job's
    search: dict[str, Any] = field(default_factory=dict)  # the job's SearchSpec
    tradeoff: float = 0.5
    trial_index: int | None = None  # trial: its index; confirm and final: the chosen trial's
    clip: float | None = None
    noise: float | None = None
    baseline: Baseline | None = None  # confirm: what the confirmation is scored against
    search_members: int | None = None  # final: members of the data the search ran on
    tuned_on: TuneSource = "private"
    # trial: what the pruning rule compares it with (the job's completed trials when it was claimed); None when
    # the job does not prune. A trial run again after its lease expired is compared with the trials then.
    pruner: Pruner | None = None

    def describe(self) -> str:
        if self.kind == "trial":
            return f"job {self.job_id} trial {self.trial_index}"
        return f"job {self.job_id} {self.kind}"


class Outcome(Protocol):
    """What a unit produced; `complete` writes it, if the unit still holds its lease."""

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool: ...


@dataclass(frozen=True)
class BaselineOutcome:
    baseline: Baseline
    delta: float
    preparation: dict[str, Any]
    space: SearchSpace | None = None  # the guarantee's search space at this delta, when the executor computed it

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool:
        return complete_baseline(session, unit, self.baseline, self.delta, self.preparation, now, self.space)


@dataclass(frozen=True)
class TrialOutcome:
    measurement: TrialMeasurement

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool:
        return complete_trial(session, unit, self.measurement, now)


@dataclass(frozen=True)
class PrunedOutcome:
    """The pruning rule stopped the trial at its checkpoint."""

    measurement: PrunedMeasurement

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool:
        return complete_pruned_trial(session, unit, self.measurement, now)


@dataclass(frozen=True)
class ConfirmOutcome:
    """engine.confirm's result: the chosen point measured on fresh seeds, and its summary."""

    measured: TrialMeasurement
    confirmation: Confirmation

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool:
        return complete_confirm(session, unit, self, now)


@dataclass(frozen=True)
class FinalOutcome:
    """The final model was saved under models/<job id>; this is its privacy.json."""

    statement: PrivacyStatement

    def complete(self, session: Session, unit: WorkUnit, now: datetime) -> bool:
        return complete_final(session, unit, self.statement, now)


@dataclass(frozen=True)
class TrialSnapshot:
    """A running job's trials as the search step needs them, with the version they were read at."""

    job_id: str
    version: int
    search: SearchSpec
    space: SearchSpace
    seed: int
    started_at: datetime | None
    counted: int
    running: int
    budget: int
    parallelism: int
    observed: list[Observation]
    pending: list[Point]


# ---------------------------------------------------------------------------------------------- claims


def claim_leftover(session: Session, worker: str, now: datetime, lease: timedelta) -> WorkUnit | None:
    """Steps 1 to 3: an expired trial, a finishing unit, or a baseline. Also finalises searches that are
    complete."""
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
        logger.info(
            "job %s trial %d: lease expired, running it again (attempt %d)", job.id, trial.trial_index, trial.attempts
        )
        return _trial_unit(session, job, trial)
    while (job := repository.lock_job_needing_finish(session, now)) is not None:
        kind: FinishKind = "final" if job.stage == JobStage.final.value else "confirm"
        if job.finish_attempts >= MAX_ATTEMPTS:
            _finish_job(
                session,
                job,
                JobStatus.failed,
                now,
                f"the {kind} stage was abandoned: its worker stopped {job.finish_attempts} times",
                f"{kind}_abandoned",
            )
            continue
        job.finish_attempts += 1
        job.finish_worker = worker
        job.finish_lease_token = _token()
        job.finish_lease_expires_at = now + lease
        return _finish_unit(session, job, kind)
    while (job := repository.lock_job_needing_baseline(session, now)) is not None:
        if job.baseline_attempts >= MAX_ATTEMPTS:
            _finish_job(
                session,
                job,
                JobStatus.failed,
                now,
                f"the baseline was abandoned: its worker stopped {job.baseline_attempts} times",
                BASELINE_ABANDONED,
            )
            continue
        job.status = JobStatus.running.value
        job.stage = JobStage.baseline.value
        job.started_at = job.started_at or now
        job.baseline_attempts += 1
        job.baseline_worker = worker
        job.baseline_lease_token = _token()
        job.baseline_lease_expires_at = now + lease
        return _unit(session, job, "baseline", job.baseline_lease_token, job.baseline_attempts)
    return None


def read_snapshot(session: Session, job_id: str) -> TrialSnapshot | None:
    job = repository.get_job(session, job_id)
    if (
        job is None
        or job.status != JobStatus.running.value
        or job.baseline is None
        or job.stage != JobStage.search.value
    ):
        return None
    trials = repository.trials_of_job(session, job_id, [s.value for s in COUNTED_TRIAL_STATUSES])
    running = [t for t in trials if t.status == TrialStatus.running.value]
    return TrialSnapshot(
        job_id=job.id,
        version=job.trials_version,
        search=SearchSpec.model_validate(job.search),
        space=job_space(job),
        seed=job.seed,
        started_at=job.started_at,
        counted=len(trials),
        running=len(running),
        budget=job.budget,
        parallelism=job.parallelism,
        observed=observed_points(trials, Baseline.model_validate(job.baseline), job.tradeoff),
        pending=[(t.clip, t.noise) for t in running],
    )


def observed_points(trials: list[TrialRecord], baseline: Baseline, tradeoff: float) -> list[Observation]:
    """Finished trials as the search sees them (recommendation.observations): succeeded ones with their
    objective and its standard error, failed and pruned ones without (search.scored_observations penalises
    them)."""
    succeeded = [scored_trial(t, baseline, tradeoff) for t in trials if t.status == TrialStatus.succeeded.value]
    return observations(succeeded, failed_trials(trials), pruned_trials(trials))


def next_point(snapshot: TrialSnapshot, now: datetime) -> SearchStep:
    """Pure: the engine's search step for this snapshot: the next point, or why the search stops."""
    elapsed = (now - snapshot.started_at).total_seconds() if snapshot.started_at is not None else 0.0
    return search_step(
        snapshot.search,
        snapshot.space,
        snapshot.observed,
        snapshot.pending,
        seed=snapshot.seed,
        elapsed_seconds=elapsed,
        budget=snapshot.budget,
    )


def insert_trial(
    session: Session, snapshot: TrialSnapshot, point: Point, worker: str, now: datetime, lease: timedelta
) -> WorkUnit | None:
    """Step 4: insert the suggested trial, if the job's trials did not change since the snapshot."""
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
    """The time budget is spent or the grid exhausted: the search ends at the trials started so far."""
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
    if unit.kind == "trial":
        return repository.renew_trial_lease(session, unit.lease_token, expires_at)
    return repository.renew_finish_lease(session, unit.lease_token, unit.kind, expires_at)


def release(session: Session, unit: WorkUnit, now: datetime) -> None:
    """Give the unit back unfinished (worker stopping): expire the lease so another worker takes it now."""
    if unit.kind == "baseline":
        job = repository.lock_job_by_baseline_token(session, unit.lease_token)
        if job is not None:
            job.baseline_lease_expires_at = now
            job.baseline_attempts = max(0, job.baseline_attempts - 1)  # a release is not a crash
        return
    if unit.kind in ("confirm", "final"):
        job = repository.lock_job_by_finish_token(session, unit.lease_token, unit.kind)
        if job is not None:
            job.finish_lease_expires_at = now
            job.finish_attempts = max(0, job.finish_attempts - 1)
        return
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if trial is not None:
        trial.lease_expires_at = now
        trial.attempts = max(0, trial.attempts - 1)


# ---------------------------------------------------------------------------------------------- results


def complete_baseline(
    session: Session,
    unit: WorkUnit,
    baseline: Baseline,
    delta: float,
    preparation: dict[str, Any],
    now: datetime,
    space: SearchSpace | None = None,
) -> bool:
    job = repository.lock_job_by_baseline_token(session, unit.lease_token)
    if job is None:
        return False  # lease lost or job cancelled: the result is not ours to write
    job.baseline = baseline.model_dump(mode="python")
    job.delta = delta
    job.preparation = preparation
    job.search_space = None if space is None else space.model_dump(mode="json")
    job.stage = JobStage.search.value
    job.baseline_finished_at = now
    job.baseline_lease_token = None
    job.baseline_lease_expires_at = None
    job.trials_version += 1
    return True


def fail_unit(
    session: Session, unit: WorkUnit, message: str, now: datetime, code: str | None = None, prefix: bool = True
) -> bool:
    """Write a unit's failure: a failed trial is recorded and the search goes on; a failed baseline,
    confirmation or final training fails the job."""
    if unit.kind == "baseline":
        return fail_baseline(session, unit, message, now, code, prefix)
    if unit.kind == "trial":
        return fail_trial(session, unit, message, now)
    job = repository.lock_job_by_finish_token(session, unit.lease_token, unit.kind)
    if job is None:
        return False
    error = f"the {unit.kind} stage failed: {_truncate(message)}" if prefix else _truncate(message)
    return _finish_job(session, job, JobStatus.failed, now, error, code or f"{unit.kind}_failed")


def fail_baseline(
    session: Session, unit: WorkUnit, message: str, now: datetime, code: str | None = None, prefix: bool = True
) -> bool:
    """Fail the job. `code` is the error's own (a TuningError's or DatasetError's), else baseline_failed.
    `prefix=False` for a TuningError, whose message is written to stand alone."""
    job = repository.lock_job_by_baseline_token(session, unit.lease_token)
    if job is None:
        return False
    error = f"the baseline failed: {_truncate(message)}" if prefix else _truncate(message)
    return _finish_job(session, job, JobStatus.failed, now, error, code or BASELINE_FAILED)


def complete_trial(session: Session, unit: WorkUnit, measurement: TrialMeasurement, now: datetime) -> bool:
    job = _lock_job_of(session, unit)
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if job is None or trial is None:
        return False  # lease lost (another worker re-ran it) or job cancelled: never counted twice
    baseline = Baseline.model_validate(job.baseline)
    scored = score(measurement, baseline, job.tradeoff, trial.trial_index)
    trial.measurement = measurement.model_dump(mode="python")
    trial.objective = scored.objective
    trial.error = None
    _end_trial(session, job, trial, TrialStatus.succeeded, now)
    return True


def complete_pruned_trial(session: Session, unit: WorkUnit, measurement: PrunedMeasurement, now: datetime) -> bool:
    """Store a pruned trial: status pruned, its checkpoint and full-configuration epsilon, no objective."""
    job = _lock_job_of(session, unit)
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if job is None or trial is None:
        return False
    trial.measurement = measurement.model_dump(mode="python")
    trial.objective = None
    trial.error = None
    _end_trial(session, job, trial, TrialStatus.pruned, now)
    return True


def fail_trial(session: Session, unit: WorkUnit, message: str, now: datetime) -> bool:
    job = _lock_job_of(session, unit)
    trial = repository.lock_trial_by_token(session, unit.lease_token)
    if job is None or trial is None:
        return False
    _fail_trial_row(session, job, trial, message, now)
    return True


def _fail_trial_row(session: Session, job: JobRecord, trial: TrialRecord, message: str, now: datetime) -> None:
    trial.error = _truncate(message)
    _end_trial(session, job, trial, TrialStatus.failed, now)


def _end_trial(session: Session, job: JobRecord, trial: TrialRecord, status: TrialStatus, now: datetime) -> None:
    """A trial's end (succeeded, pruned or failed; its results written by the caller): its lease released, the
    job's trials changed, and the search finalised if that was its last trial."""
    trial.status = status.value
    trial.lease_token = None
    trial.lease_expires_at = None
    trial.finished_at = now
    job.trials_version += 1
    maybe_finalize(session, job, now)


def complete_confirm(session: Session, unit: WorkUnit, outcome: ConfirmOutcome, now: datetime) -> bool:
    """Store the confirmation; the job moves on to its final training."""
    job = repository.lock_job_by_finish_token(session, unit.lease_token, "confirm")
    if job is None:
        return False
    job.confirmation = {
        "measured": outcome.measured.model_dump(mode="python"),
        "confirmation": outcome.confirmation.model_dump(mode="python"),
    }
    job.stage = JobStage.final.value
    _end_finish_lease(job)
    logger.info(
        "job %s: trial %s confirmed over %d seeds", job.id, job.recommended_index, outcome.confirmation.repeats
    )
    return True


def complete_final(session: Session, unit: WorkUnit, statement: PrivacyStatement, now: datetime) -> bool:
    """The final model exists: write its statement and the confirmed recommendation (whose training is the
    final model's configuration), and end the job as succeeded."""
    job = repository.lock_job_by_finish_token(session, unit.lease_token, "final")
    if job is None:
        return False
    assert job.confirmation is not None and job.baseline is not None
    trials = stored_trials(session, job)
    choice = job_choice(job, trials)
    if choice.trial is None or choice.trial.index != job.recommended_index:
        # choose() is deterministic for the same trials and seed; anything else is a bug worth stopping on.
        return _finish_job(
            session,
            job,
            JobStatus.failed,
            now,
            "the chosen trial changed between the search and the final training",
            "final_failed",
        )
    training = TrainingConfig.model_validate(statement.model_dump(include=set(TrainingConfig.model_fields)))
    recommendation = build_recommendation(
        choice,
        Baseline.model_validate(job.baseline),
        job.tradeoff,
        job_guarantee(job),
        training,
        confirmed=TrialMeasurement.model_validate(job.confirmation["measured"]),
        confirmation=Confirmation.model_validate(job.confirmation["confirmation"]),
        tuned_on=job_tuned_on(job),
    )
    job.final_model = statement.model_dump(mode="json")
    if not _finish_job(session, job, JobStatus.succeeded, now, None):
        return False
    repository.add_recommendation(
        session,
        RecommendationRecord(
            job_id=job.id,
            tradeoff=job.tradeoff,
            trial_index=recommendation.index,
            recommendation=recommendation.model_dump(mode="python"),
            pareto_front=pareto_front(trials),
            created_at=now,
        ),
    )
    logger.info(
        "job %s succeeded: %d trials, recommended trial %d, final model saved",
        job.id,
        len(trials),
        recommendation.index,
    )
    return True


# ---------------------------------------------------------------------------------------------- the end of a search


def finalize_ready_jobs(session: Session, now: datetime) -> None:
    for job_id in repository.jobs_ready_to_finalize(session, limit=16):
        job = repository.lock_running_job(session, job_id)
        if job is not None:
            maybe_finalize(session, job, now)


def maybe_finalize(session: Session, job: JobRecord, now: datetime) -> bool:
    """End the search of a locked running job whose budget is used up and no trial runs: choose the point
    to recommend (then the job goes on to confirm it), or end the job. Exactly once: the caller holds the
    job's row lock and the stage moves on from search."""
    if job.status != JobStatus.running.value or job.baseline is None or job.stage != JobStage.search.value:
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
        return _finish_job(
            session, job, JobStatus.failed, now, f"no trial succeeded ({counted} ran){first}", NO_TRIAL_SUCCEEDED
        )
    choice = job_choice(job, trials)
    if choice.trial is None:
        job.no_recommendation_reason = choice.reason
        if not _finish_job(session, job, JobStatus.succeeded, now, None):
            return False
        logger.info("job %s succeeded: %d trials, no point meets the guarantee's limits", job.id, len(trials))
        return True
    job.stage = JobStage.confirm.value
    job.recommended_index = choice.trial.index
    job.finish_attempts = 0
    job.trials_version += 1
    logger.info("job %s: search done (%d trials), confirming trial %d", job.id, len(trials), choice.trial.index)
    return True


def _end_finish_lease(job: JobRecord) -> None:
    job.finish_lease_token = None
    job.finish_lease_expires_at = None
    job.finish_attempts = 0


def _finish_job(
    session: Session,
    job: JobRecord,
    status: JobStatus,
    now: datetime,
    error: str | None,
    error_code: str | None = None,
) -> bool:
    session.flush()
    if not repository.mark_job_finished(session, job.id, status, now, error, error_code):
        return False
    session.refresh(job)
    if status != JobStatus.succeeded:
        logger.info("job %s %s: %s", job.id, status.value, error_code)
    return True


# ---------------------------------------------------------------------------------------------- a job's engine inputs


def stored_trials(session: Session, job: JobRecord) -> list[Trial]:
    """The job's succeeded trials as the engine's Trial models, scored at the job's trade-off."""
    if job.baseline is None:
        return []
    baseline = Baseline.model_validate(job.baseline)
    return [
        scored_trial(t, baseline, job.tradeoff)
        for t in repository.trials_of_job(session, job.id, [TrialStatus.succeeded.value])
    ]


def failed_trials(trials: list[TrialRecord]) -> list[FailedTrial]:
    """Failed trial rows as the engine's FailedTrial."""
    return [
        FailedTrial(index=t.trial_index, clip=t.clip, noise=t.noise, error=t.error or "")
        for t in trials
        if t.status == TrialStatus.failed.value
    ]


def pruned_trials(trials: list[TrialRecord]) -> list[PrunedTrial]:
    """Pruned trial rows as the engine's PrunedTrial."""
    return [
        PrunedTrial(**PrunedMeasurement.model_validate(t.measurement).model_dump(), index=t.trial_index)
        for t in trials
        if t.status == TrialStatus.pruned.value
    ]


def scored_trial(record: TrialRecord, baseline: Baseline, tradeoff: float) -> Trial:
    return score(TrialMeasurement.model_validate(record.measurement), baseline, tradeoff, record.trial_index)


def job_measurement(job: JobRecord) -> MeasurementSpec:
    """The job's MeasurementSpec; NULL (a job from before revision 0003) means its defaults."""
    return MeasurementSpec.model_validate(job.measurement) if job.measurement is not None else MeasurementSpec()


def job_guarantee(job: JobRecord) -> GuaranteeSpec:
    """The job's GuaranteeSpec; NULL means its defaults."""
    return GuaranteeSpec.model_validate(job.guarantee) if job.guarantee is not None else GuaranteeSpec()


def job_tuned_on(job: JobRecord) -> TuneSource:
    return "proxy" if job.tune_dataset_id is not None else "private"


def search_members(job: JobRecord) -> int:
    """Members of the split the search ran on (the proxy's, when there is one)."""
    assert job.preparation is not None
    return int(job.preparation["split_sizes"]["members"])


def job_space(job: JobRecord) -> SearchSpace:
    """The space the job's guarantee allows at the search data's sampling rate and steps: as stored with the
    baseline, or computed (seconds of accounting) for a job from before it was stored."""
    assert job.delta is not None
    if job.search_space is not None:
        return SearchSpace.model_validate(job.search_space)
    return space_for(
        SearchSpec.model_validate(job.search),
        job_guarantee(job),
        ModelSpec.model_validate(job.model),
        search_members(job),
        job.delta,
    )


def job_choice(job: JobRecord, trials: list[Trial], tradeoff: float | None = None) -> Choice:
    """recommendation.choose over the job's stored trials, at its trade-off unless another is given.

    choose() fits a Gaussian process (a tenth of a second and more) and is called inside write transactions
    (the end of the search, the final stage's write). It is deterministic in its inputs, so its answers are
    remembered by their content: a transaction retried after a lost connection does not fit it again."""
    assert job.baseline is not None
    baseline, space, guarantee = Baseline.model_validate(job.baseline), job_space(job), job_guarantee(job)
    t = job.tradeoff if tradeoff is None else tradeoff
    key = hashlib.sha256(
        json.dumps(
            [
                [trial.model_dump(mode="json") for trial in trials],
                baseline.model_dump(mode="json"),
                t,
                space.model_dump(mode="json"),
                guarantee.model_dump(mode="json"),
                job.seed,
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    with _CHOICES_LOCK:
        remembered = _CHOICES.get(key)
    if remembered is not None:
        return remembered
    choice = choose(trials, baseline, t, space, guarantee, job.seed)
    with _CHOICES_LOCK:
        _CHOICES[key] = choice
        while len(_CHOICES) > CHOICE_CACHE_SIZE:
            _CHOICES.popitem(last=False)
    return choice


CHOICE_CACHE_SIZE = 64
_CHOICES: OrderedDict[str, Choice] = OrderedDict()
_CHOICES_LOCK = threading.Lock()  # the API answers requests in threads


# ---------------------------------------------------------------------------------------------- helpers


def _lock_job_of(session: Session, unit: WorkUnit) -> JobRecord | None:
    # Job before trial, the order every path takes, so two transactions never wait on each other in a cycle.
    return repository.lock_running_job_blocking(session, unit.job_id)


def _trial_unit(session: Session, job: JobRecord, trial: TrialRecord) -> WorkUnit:
    return _unit(
        session,
        job,
        "trial",
        trial.lease_token,
        trial.attempts,
        trial_index=trial.trial_index,
        clip=trial.clip,
        noise=trial.noise,
        pruner=job_pruner(session, job),
    )


def job_pruner(session: Session, job: JobRecord) -> Pruner | None:
    """The pruning rule's inputs for the job's next trial, from its completed trials, as engine.tune builds them
    (pruning.pruner_for); None when the job does not prune."""
    rule = SearchSpec.model_validate(job.search).pruning
    if rule == "none" or job.baseline is None:
        return None
    return pruner_for(rule, stored_trials(session, job), Baseline.model_validate(job.baseline), job_guarantee(job))


def _finish_unit(session: Session, job: JobRecord, kind: FinishKind) -> WorkUnit:
    """The confirmation or the final training of the chosen trial's point."""
    chosen = repository.trial_by_index(session, job.id, job.recommended_index)
    assert chosen is not None and job.baseline is not None
    return _unit(
        session,
        job,
        kind,
        job.finish_lease_token,
        job.finish_attempts,
        trial_index=chosen.trial_index,
        clip=chosen.clip,
        noise=chosen.noise,
        baseline=Baseline.model_validate(job.baseline),
        search_members=search_members(job),
    )


def _unit(
    session: Session, job: JobRecord, kind: UnitKind, token: str | None, attempt: int, **fields: Any
) -> WorkUnit:
    return WorkUnit(
        kind=kind,
        job_id=job.id,
        lease_token=str(token),
        attempt=attempt,
        dataset=_dataset_ref(session, job, private=kind == "final"),
        split=dict(job.split),
        model=dict(job.model),
        seed=job.seed,
        requested_delta=job.requested_delta,
        delta=job.delta,
        measurement=job_measurement(job),
        guarantee=job_guarantee(job),
        search=dict(job.search),
        tradeoff=job.tradeoff,
        tuned_on=job_tuned_on(job),
        **fields,
    )


def _dataset_ref(session: Session, job: JobRecord, private: bool) -> DatasetRef:
    """The data a unit reads: the proxy unless it is the final training (or the job has no proxy)."""
    dataset_id = job.dataset_id if private or job.tune_dataset_id is None else job.tune_dataset_id
    dataset = dataset_repository.get(session, dataset_id)
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


def _truncate(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"
