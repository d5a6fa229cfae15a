"""Worker processes against PostgreSQL, as they run in production (`python -m workers`):
two workers share one job; a worker killed with SIGKILL mid-trial loses nothing; SIGTERM finishes the trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.jobs.models import TrialRecord
from app.settings import Settings
from tests.service.conftest import tiny_job
from tests.service.helpers import upload_tiny

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90  # importing TensorFlow on a busy 2-core machine
JOB_SECONDS = 180


class WorkerProcess:
    def __init__(self, name: str, settings: Settings, log_dir: Path, **extra_env: str) -> None:
        self.name = name
        self.log = log_dir / f"{name}.log"
        env = {
            **os.environ,
            "DPTUNE_DATABASE_URL": settings.database_url,
            "DPTUNE_DATA_DIR": str(settings.data_dir),
            "DPTUNE_WORKER_ID": name,
            "DPTUNE_LEASE_SECONDS": "3",
            "DPTUNE_HEARTBEAT_SECONDS": "0.5",
            "DPTUNE_POLL_SECONDS": "0.2",
            "DPTUNE_TF_THREADS": "1",
            **extra_env,
        }
        with self.log.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workers"], cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT
            )

    def wait_started(self) -> None:
        _wait_for(
            lambda: f"worker {self.name} started" in self.log.read_text(errors="replace"),
            STARTUP_SECONDS,
            f"{self.name} did not start:\n{self.tail()}",
        )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def _wait_for(condition: Callable[[], bool], seconds: float, message: str | Callable[[], str]) -> None:
    """Wait for the condition; on timeout, fail with the message (a callable is read then, with the state)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(message if isinstance(message, str) else message())


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str, settings: Settings, **extra_env: str) -> WorkerProcess:
        worker = WorkerProcess(name, settings, tmp_path, **extra_env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _trials(database: Database, job_id: str) -> list[TrialRecord]:
    with database.reading() as session:
        return list(
            session.scalars(
                select(TrialRecord).where(TrialRecord.job_id == job_id).order_by(TrialRecord.trial_index)
            ).all()
        )


def _status(client: TestClient, job_id: str) -> str:
    return str(client.get(f"/v1/jobs/{job_id}").json()["status"])


@pytest.mark.slow  # two worker processes train a job: about 31 s
@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_workers_share_one_job(
    client: TestClient, settings: Settings, database: Database, spawn: Callable[..., WorkerProcess]
) -> None:
    # More rows than the tiny job's, for trials of seconds: a claim conflicts when the job's trials change before
    # it inserts (queue.insert_trial), so with sub-second trials "both busy" would hang on a race.
    dataset = upload_tiny(client, rows=3000)
    first = spawn("w1", settings, DPTUNE_STOP_GRACE_SECONDS="60")
    second = spawn("w2", settings)
    first.wait_started()
    second.wait_started()
    job_id = client.post(
        "/v1/jobs",
        json=tiny_job(
            str(dataset["id"]),
            trials=4,
            search={"method": "bayes", "trials": 4, "parallelism": 2, "initial_points": 2},
        ),
    ).json()["id"]

    # Both workers run trials at once (parallelism 2).
    def both_busy() -> bool:
        return {t.worker for t in _trials(database, job_id) if t.status == "running"} == {"w1", "w2"}

    _wait_for(
        both_busy,
        JOB_SECONDS,
        lambda: (
            f"never both busy: job {_status(client, job_id)}, trials "
            f"{[(t.trial_index, t.status, t.worker) for t in _trials(database, job_id)]}\n{first.tail()}\n{second.tail()}"
        ),
    )
    # SIGTERM to a busy worker: it finishes its trial, writes it, and exits cleanly.
    busy_with = next(t.trial_index for t in _trials(database, job_id) if t.worker == "w1" and t.status == "running")
    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=JOB_SECONDS) == 0, first.tail()
    finished = next(t for t in _trials(database, job_id) if t.trial_index == busy_with)
    assert finished.status == "succeeded" and finished.worker == "w1" and finished.attempts == 1

    _wait_for(lambda: _status(client, job_id) == "succeeded", JOB_SECONDS, f"job not done:\n{second.tail()}")
    trials = _trials(database, job_id)
    assert [t.trial_index for t in trials] == [0, 1, 2, 3]
    assert all(t.status == "succeeded" and t.attempts == 1 for t in trials)
    assert {t.worker for t in trials} == {"w1", "w2"}
    second.process.send_signal(signal.SIGTERM)  # idle: exits at once
    assert second.process.wait(timeout=30) == 0, second.tail()


@pytest.mark.slow  # worker processes, one killed mid-trial: about 40 s
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_worker_killed_mid_trial_loses_nothing(
    client: TestClient, settings: Settings, database: Database, spawn: Callable[..., WorkerProcess]
) -> None:
    dataset = upload_tiny(client)
    model = {"hidden": [8], "epochs": 10, "batch_size": 16, "learning_rate": 0.05}  # slow enough to kill
    victim = spawn("victim", settings)
    victim.wait_started()
    job_id = client.post(
        "/v1/jobs",
        json=tiny_job(
            str(dataset["id"]), trials=3, model=model, search={"method": "bayes", "trials": 3, "initial_points": 2}
        ),
    ).json()["id"]

    def victim_mid_trial() -> bool:
        return any(t.worker == "victim" and t.status == "running" for t in _trials(database, job_id))

    _wait_for(victim_mid_trial, JOB_SECONDS, f"victim never ran a trial:\n{victim.tail()}")
    killed = next(t for t in _trials(database, job_id) if t.status == "running")
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=30)

    rescuer = spawn("rescuer", settings)
    _wait_for(
        lambda: _status(client, job_id) == "succeeded",
        JOB_SECONDS + STARTUP_SECONDS,
        f"job not done:\n{rescuer.tail()}",
    )
    trials = _trials(database, job_id)
    assert [t.trial_index for t in trials] == [0, 1, 2]  # the budget, each index once
    assert all(t.status == "succeeded" for t in trials)
    rerun = trials[killed.trial_index]
    assert rerun.attempts == 2 and rerun.worker == "rescuer"
    assert (rerun.clip, rerun.noise) == (killed.clip, killed.noise)  # the same trial, not a new one
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["progress"] == {"done": 3, "running": 0, "total": 3, "failed": 0, "pruned": 0, "baseline_done": True}
