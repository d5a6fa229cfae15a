"""The queue's rules with a fake engine (no TensorFlow), on SQLite and PostgreSQL: leases, re-runs,
parallelism, exactly-once finalisation, failures, cancellation, budgets."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.datasets.errors import DatasetError
from app.db import Database, utcnow
from app.jobs import queue
from app.jobs.models import RecommendationRecord, TrialRecord
from app.jobs.queue import WorkUnit
from app.settings import Settings
from app.tuning.results import MeasurementSpec
from tests.service.conftest import TINY_MODEL, row_counts, tiny_job
from tests.service.helpers import (
    fake_confirmation,
    fake_statement,
    jobs_done,
    make_baseline,
    make_measurement,
    run_worker_until_done,
    upload_tiny,
)
from workers.executor import BaselineOutcome, ConfirmOutcome, FinalOutcome, TrialOutcome
from workers.worker import Worker, WorkerInterrupted

SPLIT_SIZES = {"members": 100, "holdout": 100, "validation": 50, "test": 50, "external": None}


class FakeExecutor:
    """Instant, deterministic results: utility falls with noise, attack accuracy too. Records the measurement
    spec each unit carried, and the kinds of the units it ran."""

    def __init__(
        self,
        fail_baseline: Exception | None = None,
        fail_trials: dict[int, BaseException] | None = None,
        gate: threading.Event | None = None,
        fail_finish: dict[str, BaseException] | None = None,
    ) -> None:
        self.fail_baseline = fail_baseline
        self.fail_trials = fail_trials or {}
        self.fail_finish = fail_finish or {}
        self.gate = gate
        self.trials_run: list[int] = []
        self.measurements: list[MeasurementSpec] = []
        self.kinds: list[str] = []

    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome:
        self.kinds.append(unit.kind)
        self.measurements.append(unit.measurement)
        if self.fail_baseline is not None:
            raise self.fail_baseline
        return BaselineOutcome(
            baseline=make_baseline(), delta=0.01, preparation={"rows_used": 200, "split_sizes": SPLIT_SIZES}
        )

    def run_trial(self, unit: WorkUnit) -> TrialOutcome:
        assert unit.trial_index is not None and unit.clip is not None and unit.noise is not None
        self.kinds.append(unit.kind)
        self.trials_run.append(unit.trial_index)
        self.measurements.append(unit.measurement)
        if self.gate is not None:
            self.gate.wait(timeout=10)
        failure = self.fail_trials.get(unit.trial_index)
        if failure is not None:
            raise failure
        return TrialOutcome(make_measurement(unit.clip, unit.noise, measurement=unit.measurement))

    def run_confirm(self, unit: WorkUnit) -> ConfirmOutcome:
        self._finishing(unit)
        assert unit.clip is not None and unit.noise is not None and unit.baseline is not None
        measured = make_measurement(
            unit.clip,
            unit.noise,
            measurement=unit.measurement.model_copy(update={"repeats": unit.guarantee.confirm_repeats}),
        )
        return ConfirmOutcome(measured, fake_confirmation(measured, unit.baseline, unit.tradeoff))

    def run_final(self, unit: WorkUnit) -> FinalOutcome:
        self._finishing(unit)
        assert unit.clip is not None and unit.noise is not None
        return FinalOutcome(fake_statement(unit.clip, unit.noise, unit.tuned_on))

    def _finishing(self, unit: WorkUnit) -> None:
        self.kinds.append(unit.kind)
        self.measurements.append(unit.measurement)
        failure = self.fail_finish.get(unit.kind)
        if failure is not None:
            raise failure

    def forget_except(self, dataset_ids: set[str]) -> None:
        pass


def _new_job(client: TestClient, **overrides: object) -> str:
    dataset = upload_tiny(client)
    response = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), **overrides))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _trials(database: Database, job_id: str) -> list[TrialRecord]:
    with database.reading() as session:
        return list(
            session.scalars(
                select(TrialRecord).where(TrialRecord.job_id == job_id).order_by(TrialRecord.trial_index)
            ).all()
        )


def _worker(
    database: Database, settings: Settings, executor: FakeExecutor, name: str, offset: timedelta = timedelta(0)
) -> Worker:
    return Worker(database, settings, executor, worker_id=name, clock=lambda: utcnow() + offset)


def test_a_dead_workers_trial_is_run_again_once(client: TestClient, settings: Settings, database: Database) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 3, "parallelism": 2})
    executor = FakeExecutor()
    dead = _worker(database, settings, executor, "dead")
    assert dead.run_one()  # the baseline
    unit = dead.claim()  # trial 0 ... and then the worker dies without a word
    assert unit is not None and unit.trial_index == 0
    # Before the lease expires nobody takes it over: a live worker gets the next trial instead.
    alive = _worker(database, settings, executor, "alive")
    early = alive.claim()
    assert early is not None and early.trial_index == 1
    alive.execute(early)
    # After expiry (the clock of a later worker), the same trial, same point, is run again.
    later = _worker(database, settings, executor, "later", offset=timedelta(seconds=settings.lease_seconds + 1))
    rerun = later.claim()
    assert rerun is not None and rerun.trial_index == 0 and rerun.attempt == 2
    assert (rerun.clip, rerun.noise) == (unit.clip, unit.noise)
    later.execute(rerun)
    # The dead worker's late result is refused: counted once.
    late = executor.run_trial(unit)
    with database.transaction() as session:
        assert not queue.complete_trial(session, unit, late.measurement, utcnow())
    run_worker_until_done(client, settings, job_id, executor=executor)
    trials = _trials(database, job_id)
    assert [t.trial_index for t in trials] == [0, 1, 2]
    assert [t.attempts for t in trials] == [2, 1, 1] and trials[0].worker == "later"
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


def test_parallelism_caps_running_trials_and_points_differ(
    client: TestClient, settings: Settings, database: Database
) -> None:
    _new_job(client, search={"method": "bayes", "trials": 4, "parallelism": 2, "initial_points": 2})
    worker = _worker(database, settings, FakeExecutor(), "w")
    assert worker.run_one()  # baseline
    first, second, third = worker.claim(), worker.claim(), worker.claim()
    assert first is not None and second is not None and third is None
    assert (first.trial_index, second.trial_index) == (0, 1)
    assert (first.clip, first.noise) != (second.clip, second.noise)


def test_a_job_is_finalised_exactly_once(client: TestClient, settings: Settings, database: Database) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 2})
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    with database.transaction() as session:
        queue.finalize_ready_jobs(session, utcnow())
        job = queue.repository.get_job(session, job_id)
        assert job is not None and not queue.maybe_finalize(session, job, utcnow())
    with database.reading() as session:
        assert len(session.scalars(select(RecommendationRecord)).all()) == 1
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


@pytest.mark.slow
def test_two_threads_finish_a_parallel_job_with_exact_budget(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 6, "parallelism": 2})
    done = jobs_done(client, job_id)
    workers = [_worker(Database(settings), settings, FakeExecutor(), f"t{i}") for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"stop_when_idle": done, "max_units": 50}) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    trials = _trials(database, job_id)
    assert sorted(t.trial_index for t in trials) == list(range(6))
    assert all(t.status == "succeeded" and t.attempts == 1 for t in trials)
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"]["done"] == 6


def test_a_failed_trial_is_recorded_and_counted(client: TestClient, settings: Settings, database: Database) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 3})
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_trials={1: ValueError("boom")}))
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": 3, "running": 0, "total": 3, "failed": 1, "pruned": 0, "baseline_done": True}
    assert job["failures"][0]["index"] == 1 and job["failures"][0]["error"] == "ValueError: boom"
    assert [t["index"] for t in client.get(f"/v1/jobs/{job_id}/trials").json()["items"]] == [0, 2]


def test_all_trials_failing_fails_the_job(client: TestClient, settings: Settings) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 2})
    failing = {0: RuntimeError("nan loss"), 1: RuntimeError("nan loss")}
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_trials=failing))
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "no trial succeeded" in job["error"] and "nan loss" in job["error"]


def test_a_failed_baseline_fails_the_job(client: TestClient, settings: Settings) -> None:
    job_id = _new_job(client)
    error = DatasetError("split_too_small", "the test part has 3 rows and 1 class(es)")
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_baseline=error))
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (
        job["status"] == "failed" and job["error"] == "the baseline failed: the test part has 3 rows and 1 class(es)"
    )


def test_cancel_while_a_trial_runs_keeps_finished_trials(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 4})
    worker = _worker(database, settings, FakeExecutor(), "w")
    assert worker.run_one() and worker.run_one()  # baseline and trial 0
    running = worker.claim()
    assert running is not None and running.trial_index == 1
    assert client.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    with database.transaction() as session:
        assert not queue.complete_trial(session, running, FakeExecutor().run_trial(running).measurement, utcnow())
    assert worker.claim() is None  # nothing more to do for a cancelled job
    trials = _trials(database, job_id)
    assert [(t.trial_index, t.status) for t in trials] == [(0, "succeeded"), (1, "cancelled")]
    recommendation = client.get(f"/v1/jobs/{job_id}/recommendation").json()  # its results are kept
    assert recommendation["index"] == 0 and recommendation["job_status"] == "cancelled"


def test_release_on_stop_hands_the_trial_over_at_once(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 2})
    stopping = _worker(database, settings, FakeExecutor(fail_trials={0: WorkerInterrupted("SIGTERM")}), "stopping")
    assert stopping.run_one()
    with pytest.raises(WorkerInterrupted):
        stopping.run_one()
    other = _worker(database, settings, FakeExecutor(), "other")
    unit = other.claim()  # no waiting for the lease: it was released
    assert unit is not None and unit.trial_index == 0 and unit.attempt == 1
    other.execute(unit)
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    assert [t.attempts for t in _trials(database, job_id)] == [1, 1]


def test_time_budget_ends_the_job(client: TestClient, settings: Settings, database: Database) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": None, "seconds": 0.5})
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"]["total"] is None
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    assert job["progress"]["done"] == job["progress"]["total"] == len(_trials(database, job_id)) >= 1


def test_the_grid_without_a_guarantee_starts_at_noise_0(
    client: TestClient, settings: Settings, database: Database
) -> None:
    search = {"method": "grid", "trials": 50, "max_clip": 1.0, "max_noise": 1.0, "grid_step": 0.5, "min_clip": 0.5}
    job_id = _new_job(client, search=search, max_epsilon=None)
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"]["total"] == 2  # budget() caps at the grid
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    points = [(t.clip, t.noise) for t in _trials(database, job_id)]
    assert points == [(0.5, 0.0), (0.5, 0.5)]


@pytest.mark.slow
def test_grid_exhaustion_ends_the_job(client: TestClient, settings: Settings, database: Database) -> None:
    """max_epsilon 10 puts the noise floor at the accountant's noise for it (0.396 for this split), so the grid
    the guarantee allows has one point below max_noise 0.8, fewer than the budget of 2."""
    search = {"method": "grid", "trials": 50, "max_clip": 1.0, "max_noise": 0.8, "grid_step": 0.5, "min_clip": 0.5}
    one_epoch = {**TINY_MODEL, "epochs": 1}  # the 0.396 is the accountant's noise for 1 epoch
    job_id = _new_job(client, search=search, model=one_epoch)
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"]["total"] == 2
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    points = [(t.clip, t.noise) for t in _trials(database, job_id)]
    assert points == [(0.5, pytest.approx(0.396, abs=1e-3))]
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"]["total"] == job["progress"]["done"] == 1
    assert client.get(f"/v1/jobs/{job_id}/result").json()["stop_reason"] is None  # not the trial budget


def test_a_unit_that_keeps_killing_workers_is_given_up(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = _new_job(client, search={"method": "random", "trials": 1})
    executor = FakeExecutor()
    assert _worker(database, settings, executor, "w").run_one()
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        offset = timedelta(seconds=(settings.lease_seconds + 1) * attempt)
        unit = _worker(database, settings, executor, f"w{attempt}", offset).claim()
        assert unit is not None and unit.attempt == attempt
    final = _worker(database, settings, executor, "last", timedelta(seconds=(settings.lease_seconds + 1) * 9))
    assert final.claim() is None
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "abandoned" in job["failures"][0]["error"]
    assert row_counts(database)["recommendations"] == 0
