"""Shared helpers for the service tests: run a worker in this process, upload the tiny data set."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.service.conftest import tiny_csv_bytes
from workers.executor import EngineExecutor, Executor
from workers.worker import Worker

ACTIVE = ("queued", "running")


def upload_tiny(client: TestClient, rows: int = 200, **fields: str) -> dict[str, object]:
    response = client.post(
        "/v1/datasets",
        files={"file": ("tiny.csv", tiny_csv_bytes(rows), "text/csv")},
        data={"label": "outcome", **fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def jobs_done(client: TestClient, *job_ids: str) -> Callable[[], bool]:
    def done() -> bool:
        return all(client.get(f"/v1/jobs/{job_id}").json()["status"] not in ACTIVE for job_id in job_ids)

    return done


def run_worker_until_done(client: TestClient, settings: Settings, *job_ids: str,
                          executor: Executor | None = None, worker_id: str = "test-worker") -> int:
    """Run one in-process worker until the jobs are no longer queued or running; returns units run."""
    database = Database(settings)
    try:
        worker = Worker(database, settings, executor or EngineExecutor(settings), worker_id=worker_id)
        return worker.run(stop_when_idle=jobs_done(client, *job_ids), max_units=200)
    finally:
        database.dispose()
