"""Failures against PostgreSQL with a real worker process (`python -m workers`), each ending with exactly the
job's budget of trials, none lost and none counted twice:

- the database drops the worker's connections during a trial (`pg_terminate_backend`, again and again);
- the API process is killed (SIGKILL) and started again while jobs run;
- a cancel arrives while a trial runs.

(A worker SIGKILLed mid-trial: test_worker_processes.py.) One worker process serves the whole module, so
TensorFlow is imported once; tiny models, a few trials, 3 s leases.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.db import Database
from app.jobs.models import TrialRecord
from app.main import create_app
from app.settings import Settings
from tests.service.conftest import _empty_postgres, bearer, create_api_key, make_settings, tiny_csv_bytes, tiny_job
from tests.service.test_worker_processes import JOB_SECONDS, REPO, WorkerProcess, _wait_for

WORKER = "ft-worker"
# Slow enough to act on mid-trial (about 1-3 s a trial here), quick enough to keep the module near a minute.
MODEL = {"hidden": [8], "epochs": 6, "batch_size": 16, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def ft_settings(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("fault") / "data", postgres_url)


@pytest.fixture(scope="module")
def worker(ft_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    _empty_postgres(ft_settings.database_url)
    ft_settings.ensure_dirs()
    process = WorkerProcess(WORKER, ft_settings, tmp_path_factory.mktemp("logs"))
    process.wait_started()
    yield process
    process.stop()


@pytest.fixture
def database(ft_settings: Settings, worker: WorkerProcess) -> Iterator[Database]:
    _empty_postgres(ft_settings.database_url)
    handle = Database(ft_settings)
    yield handle
    handle.dispose()


@pytest.fixture
def client(ft_settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(ft_settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(bearer(create_api_key(ft_settings)))
        yield test_client


def _trials(database: Database, job_id: str) -> list[TrialRecord]:
    with database.reading() as session:
        return list(
            session.scalars(
                select(TrialRecord).where(TrialRecord.job_id == job_id).order_by(TrialRecord.trial_index)
            ).all()
        )


def _upload(client: TestClient | httpx.Client) -> str:
    response = client.post(
        "/v1/datasets", files={"file": ("tiny.csv", tiny_csv_bytes(), "text/csv")}, data={"label": "outcome"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _assert_exact_budget(database: Database, job_id: str, budget: int) -> list[TrialRecord]:
    trials = _trials(database, job_id)
    assert [t.trial_index for t in trials] == list(range(budget)), [(t.trial_index, t.status) for t in trials]
    assert all(t.status == "succeeded" and t.measurement is not None for t in trials)
    return trials


def _running(database: Database, job_id: str, index: int | None = None) -> bool:
    return any(t.status == "running" and (index is None or t.trial_index == index) for t in _trials(database, job_id))


@pytest.mark.slow  # about 25 s
def test_dropped_database_connections_lose_nothing(
    client: TestClient, database: Database, worker: WorkerProcess
) -> None:
    """The worker's connections are terminated every 0.3 s while its trials run: heartbeats, result writes
    and claims meet dead connections, and the worker reconnects (pre-ping, write retries). Every result
    arrives, once."""
    job_id = client.post("/v1/jobs", json=tiny_job(_upload(client), trials=3, model=MODEL)).json()["id"]
    terminated = 0
    during_trials = 0
    done = threading.Event()

    def killer() -> None:
        nonlocal terminated, during_trials
        admin = Database(database.settings, application_name="dptune test killer")
        try:
            while not done.is_set():
                trial_running = _running(database, job_id)
                with admin.engine.begin() as connection:
                    killed = connection.execute(
                        text(
                            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE application_name = :name"
                        ),
                        {"name": f"dptune worker {WORKER}"},
                    ).scalar_one()
                terminated += int(killed)
                during_trials += int(killed) if trial_running else 0
                done.wait(0.3)
        finally:
            admin.dispose()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        _wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] not in ("queued", "running"),
            JOB_SECONDS,
            f"job not done:\n{worker.tail()}",
        )
    finally:
        done.set()
        thread.join(timeout=10)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded", worker.tail()
    trials = _assert_exact_budget(database, job_id, 3)
    assert during_trials > 0 and terminated >= during_trials  # connections really were cut mid-trial
    # A trial whose connection died mid-run keeps its one run: it was neither lost nor run twice.
    assert all(t.attempts == 1 for t in trials), [(t.trial_index, t.attempts) for t in trials]
    assert worker.process.poll() is None  # the worker lived through it


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ApiProcess:
    """`dptune serve --no-worker` on a loopback port, as deployed next to separate workers."""

    def __init__(self, settings: Settings, port: int, log: Path) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("DPTUNE_")}
        env.update({"DPTUNE_DATABASE_URL": settings.database_url, "DPTUNE_DATA_DIR": str(settings.data_dir)})
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as handle:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from app.cli import main; raise SystemExit(main())",
                    "serve",
                    "--no-worker",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=REPO,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            try:
                return httpx.get(f"{self.url}/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(healthy, 90, "the API did not start")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@pytest.mark.slow  # about 38 s
def test_api_restarted_while_jobs_run(
    ft_settings: Settings, database: Database, worker: WorkerProcess, tmp_path: Path
) -> None:
    """The API is stateless: killed (SIGKILL) mid-trial and started again, it serves the same jobs, which went
    on in the worker meanwhile."""
    port, log = _free_port(), tmp_path / "api.log"
    key = create_api_key(ft_settings)
    api = ApiProcess(ft_settings, port, log)
    try:
        api.wait_healthy()
        with httpx.Client(base_url=api.url, headers=bearer(key), timeout=30) as http:
            dataset_id = _upload(http)
            budgets = {
                http.post("/v1/jobs", json=tiny_job(dataset_id, trials=n, model=MODEL)).json()["id"]: n
                for n in (2, 1)
            }
            jobs = list(budgets)
        _wait_for(lambda: _running(database, jobs[0]), JOB_SECONDS, f"no trial ran:\n{worker.tail()}")
        api.kill()
        # With the API down, the worker goes on: the running trial finishes and is written.
        _wait_for(
            lambda: any(t.status == "succeeded" for t in _trials(database, jobs[0])),
            JOB_SECONDS,
            f"nothing finished while the API was down:\n{worker.tail()}",
        )
        api = ApiProcess(ft_settings, port, log)
        api.wait_healthy()
        with httpx.Client(base_url=api.url, headers=bearer(key), timeout=30) as http:
            _wait_for(
                lambda: all(http.get(f"/v1/jobs/{j}").json()["status"] == "succeeded" for j in jobs),
                JOB_SECONDS,
                f"jobs not done:\n{worker.tail()}",
            )
            for job_id, n in budgets.items():
                assert http.get(f"/v1/jobs/{job_id}").json()["progress"] == {
                    "done": n,
                    "running": 0,
                    "total": n,
                    "failed": 0,
                    "pruned": 0,
                    "baseline_done": True,
                }
                assert http.get(f"/v1/jobs/{job_id}/recommendation").status_code == 200
    finally:
        api.kill()
    for job_id, n in budgets.items():
        assert all(t.attempts == 1 for t in _assert_exact_budget(database, job_id, n))


@pytest.mark.slow  # about 28 s
def test_cancel_while_a_trial_runs(client: TestClient, database: Database, worker: WorkerProcess) -> None:
    """The running trial is marked cancelled at once; the worker's result for it, arriving later, is refused;
    no trial starts after; finished trials stay, with a recommendation; the worker takes the next job."""
    dataset_id = _upload(client)
    job_id = client.post("/v1/jobs", json=tiny_job(dataset_id, trials=3, model=MODEL)).json()["id"]
    _wait_for(lambda: _running(database, job_id, index=1), JOB_SECONDS, f"trial 1 never ran:\n{worker.tail()}")
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    trials = _trials(database, job_id)
    assert [(t.trial_index, t.status) for t in trials] == [(0, "succeeded"), (1, "cancelled")]
    # The worker finishes its trial, finds its lease gone, and drops the result.
    _wait_for(lambda: f"{job_id} trial 1 finished" in worker.tail(), JOB_SECONDS, worker.tail())
    after = _trials(database, job_id)
    assert [(t.trial_index, t.status) for t in after] == [(0, "succeeded"), (1, "cancelled")]
    assert after[1].measurement is None and after[1].attempts == 1
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "cancelled" and job["progress"]["done"] == 1 and job["progress"]["running"] == 0
    assert client.get(f"/v1/jobs/{job_id}/recommendation").json()["index"] == 0
    # The worker is free for the next job.
    next_job = client.post("/v1/jobs", json=tiny_job(dataset_id, trials=1)).json()["id"]
    _wait_for(lambda: client.get(f"/v1/jobs/{next_job}").json()["status"] == "succeeded", JOB_SECONDS, worker.tail())
    _assert_exact_budget(database, next_job, 1)
    time.sleep(0.5)
    assert [(t.trial_index, t.status) for t in _trials(database, job_id)] == [(0, "succeeded"), (1, "cancelled")]
