"""One worker: claim a unit in a short transaction, run it outside any transaction while a heartbeat thread
renews its lease, write the result in another short transaction. Any number of these, in any number of
processes on any number of machines, cooperate through the database.

Stopping: `request_stop()` (first SIGTERM or SIGINT) stops claiming; the current unit may finish within the
grace period, after which it is interrupted and released, as on a second signal. A released unit's lease is
expired at once, so another worker takes it over right away; a worker that dies without releasing loses its
unit only until the lease expires.
"""

from __future__ import annotations

import _thread
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from app.datasets.errors import DatasetError
from app.db import Database, utcnow
from app.jobs import queue
from app.jobs import repository as job_repository
from app.jobs.queue import Outcome, WorkUnit
from app.settings import Settings
from app.tuning.errors import TuningError
from app.tuning.model_spec import ModelSpecError
from workers.executor import Executor, run_unit

logger = logging.getLogger("dptune.worker")

CONFLICT_RETRIES = 3
SUGGESTION_CANDIDATES = 8
# A result that cannot be written (database away) is retried this many times, waiting 1, 2, 4 ... s. Past
# that the lease expires and another worker runs the unit again: late, but nothing is lost or doubled.
WRITE_RETRIES = 6


class WorkerInterrupted(BaseException):
    """Raised in the worker's thread to abandon the current unit (second signal, or grace period over).
    A BaseException, so the engine's `except Exception` blocks do not swallow it."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class LeaseKeeper:
    """Renews the lease of the unit being run every heartbeat_seconds, in its own thread and session.
    Also enforces the stop grace period, by interrupting the main thread."""

    def __init__(self, worker: Worker, unit: WorkUnit) -> None:
        self.worker = worker
        self.unit = unit
        self.lost = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{unit.lease_token[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        settings = self.worker.settings
        next_beat = time.monotonic() + settings.heartbeat_seconds
        while not self._done.wait(timeout=min(0.5, settings.heartbeat_seconds)):
            if self.worker.grace_expired():
                logger.info("%s: stop grace period over, releasing it", self.unit.describe())
                self.worker.interrupt_main()
                return
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + settings.heartbeat_seconds
            try:
                with self.worker.database.transaction() as session:
                    expires = self.worker.clock() + timedelta(seconds=settings.lease_seconds)
                    renewed = queue.renew_lease(session, self.unit, expires)
            except Exception as exc:  # a lost connection: try again at the next beat, the lease has slack
                logger.warning("%s: heartbeat failed (%s)", self.unit.describe(), type(exc).__name__)
                continue
            if not renewed and not self.lost:
                self.lost = True
                logger.warning(
                    "%s: lease lost (cancelled, or taken over); its result will be dropped", self.unit.describe()
                )


class Worker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        executor: Executor,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.database = database
        self.settings = settings
        self.executor = executor
        self.worker_id = worker_id or settings.worker_id or default_worker_id()
        self.clock = clock
        self.units_run = 0
        self._stop = threading.Event()
        self._stop_deadline: float | None = None
        self._main_thread_id = threading.get_ident()
        self._interrupt_main_on_grace = False

    # ------------------------------------------------------------------------------------------ stopping

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def request_stop(self, grace_seconds: float | None = None) -> None:
        grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        if not self._stop.is_set():
            logger.info("worker %s stopping: finishing the current unit (up to %.0f s)", self.worker_id, grace)
            self._stop_deadline = time.monotonic() + grace
            self._stop.set()

    def grace_expired(self) -> bool:
        return (
            self._interrupt_main_on_grace
            and self._stop_deadline is not None
            and time.monotonic() > self._stop_deadline
        )

    def interrupt_main(self) -> None:
        _thread.interrupt_main(signal.SIGTERM)

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: finish or release the current unit, then exit. Second: release it now."""

        def handle(signum: int, _frame: object) -> None:
            if self.stopping:
                raise WorkerInterrupted(signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        self._interrupt_main_on_grace = threading.get_ident() == self._main_thread_id

    # ------------------------------------------------------------------------------------------ the loop

    def run(self, stop_when_idle: Callable[[], bool] | None = None, max_units: int | None = None) -> int:
        """Run units until stopped (or, when given, until idle and `stop_when_idle()`). Returns units run."""
        logger.info("worker %s started", self.worker_id)
        try:
            while not self.stopping:
                if max_units is not None and self.units_run >= max_units:
                    break
                try:
                    if self.run_one():
                        continue
                except Exception as exc:  # never let one bad moment end the worker
                    logger.error("worker %s: %s", self.worker_id, type(exc).__name__)
                if stop_when_idle is not None and stop_when_idle():
                    break
                self._stop.wait(self.settings.poll_seconds)
        except WorkerInterrupted:
            logger.info("worker %s interrupted", self.worker_id)
        logger.info("worker %s stopped after %d units", self.worker_id, self.units_run)
        return self.units_run

    def run_one(self) -> bool:
        """Claim and run one unit. False when there was nothing to do."""
        try:
            self._forget_unneeded_data()
            unit = self.claim()
        except WorkerInterrupted:
            raise
        except Exception as exc:  # the database is away: say so, and look again after the poll interval
            logger.warning("worker %s: claim failed (%s)", self.worker_id, type(exc).__name__)
            return False
        if unit is None:
            return False
        self.execute(unit)
        self.units_run += 1
        return True

    def claim(self) -> WorkUnit | None:
        lease = timedelta(seconds=self.settings.lease_seconds)
        with self.database.transaction() as session:
            unit = queue.claim_leftover(session, self.worker_id, self.clock(), lease)
        if unit is not None:
            return unit
        with self.database.reading() as session:
            candidates = job_repository.jobs_wanting_trials(session, SUGGESTION_CANDIDATES)
        for job_id, _version in candidates:
            unit = self._claim_new_trial(job_id, lease)
            if unit is not None:
                return unit
        return None

    def _claim_new_trial(self, job_id: str, lease: timedelta) -> WorkUnit | None:
        for _ in range(CONFLICT_RETRIES):
            with self.database.reading() as session:
                snapshot = queue.read_snapshot(session, job_id)
            if snapshot is None or snapshot.counted >= snapshot.budget or snapshot.running >= snapshot.parallelism:
                return None
            step = queue.next_point(snapshot, self.clock())  # outside any transaction: a GP fit takes a while
            if step.point is None:
                if step.stop in ("time", "grid_exhausted"):  # the search ends at the trials started so far
                    with self.database.transaction() as session:
                        queue.close_budget(session, snapshot, self.clock(), f"search stopped ({step.stop})")
                return None
            with self.database.transaction() as session:
                unit = queue.insert_trial(session, snapshot, step.point, self.worker_id, self.clock(), lease)
            if unit is not None:
                return unit
        return None

    def execute(self, unit: WorkUnit) -> None:
        started = time.perf_counter()
        logger.info(
            "worker %s: %s started (attempt %d)%s",
            self.worker_id,
            unit.describe(),
            unit.attempt,
            "" if unit.clip is None or unit.noise is None else f" at clip {unit.clip:.4g}, noise {unit.noise:.4g}",
        )
        error: str | None = None
        error_code: str | None = None  # the job's error_code when a job-level unit fails (queue.fail_unit)
        standalone = False  # a TuningError's message is stored as is, others after "the baseline failed: "
        outcome: Outcome | None = None
        try:
            with LeaseKeeper(self, unit):
                outcome = run_unit(self.executor, unit)
        except (WorkerInterrupted, KeyboardInterrupt):
            self._release(unit)
            raise WorkerInterrupted("interrupted") from None
        except TuningError as exc:  # the engine's checks: baseline_not_learning, no_external_set, ...
            error, error_code, standalone = exc.message, exc.code, True
        except DatasetError as exc:
            error, error_code = exc.message, exc.code
        except ModelSpecError as exc:
            error, error_code = str(exc), "invalid_model"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - started
        self._write_result(unit, outcome, error, seconds, error_code, standalone)

    def _write_result(
        self,
        unit: WorkUnit,
        outcome: Outcome | None,
        error: str | None,
        seconds: float,
        error_code: str | None = None,
        standalone: bool = False,
    ) -> None:
        for attempt in range(WRITE_RETRIES):
            try:
                written = self._write_once(unit, outcome, error, error_code, standalone)
                break
            except SQLAlchemyError as exc:
                if attempt == WRITE_RETRIES - 1:
                    logger.error(
                        "worker %s: %s: result not written (%s); its lease will expire and another "
                        "worker will run it again",
                        self.worker_id,
                        unit.describe(),
                        type(exc).__name__,
                    )
                    return
                logger.warning(
                    "worker %s: %s: writing the result failed (%s), retrying",
                    self.worker_id,
                    unit.describe(),
                    type(exc).__name__,
                )
                time.sleep(2**attempt)
        if not written:
            logger.info(
                "worker %s: %s finished in %.1f s but its lease was gone; result dropped",
                self.worker_id,
                unit.describe(),
                seconds,
            )
        elif error is not None:
            # The message goes to the database for the job's owner; the log gets its type only.
            logger.warning("worker %s: %s failed after %.1f s", self.worker_id, unit.describe(), seconds)
        else:
            logger.info("worker %s: %s done in %.1f s", self.worker_id, unit.describe(), seconds)

    def _write_once(
        self,
        unit: WorkUnit,
        outcome: Outcome | None,
        error: str | None,
        error_code: str | None = None,
        standalone: bool = False,
    ) -> bool:
        with self.database.transaction() as session:
            now = self.clock()
            if error is not None:
                return queue.fail_unit(session, unit, error, now, error_code, prefix=not standalone)
            assert outcome is not None
            return outcome.complete(session, unit, now)

    def _release(self, unit: WorkUnit) -> None:
        try:
            with self.database.transaction() as session:
                queue.release(session, unit, self.clock())
            logger.info("worker %s: released %s", self.worker_id, unit.describe())
        except Exception as exc:  # the lease will expire instead
            logger.warning("worker %s: release failed (%s)", self.worker_id, type(exc).__name__)

    def _forget_unneeded_data(self) -> None:
        with self.database.reading() as session:
            active = job_repository.dataset_ids_with_active_jobs(session)
        self.executor.forget_except(active)
