"""The service's limits, each a DPTUNE_ setting answered with its own 4xx, on SQLite and PostgreSQL: upload
size (test_bad_requests), rows, columns, trials per job, queued-or-running jobs per owner, JSON body size."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.db import Database
from app.jobs.models import JobRecord
from app.main import create_app
from app.settings import Settings
from tests.service.conftest import (
    assert_error_shape,
    bearer,
    create_api_key,
    row_counts,
    stored_files,
    tiny_csv_bytes,
    tiny_frame,
    tiny_job,
)
from tests.service.helpers import upload_tiny

LIMITS = {
    "max_rows": 150,
    "max_columns": 8,
    "max_trials_per_job": 5,
    "max_active_jobs_per_owner": 2,
    "max_json_bytes": 2048,
}


@pytest.fixture
def limited(settings: Settings) -> Iterator[tuple[TestClient, Settings]]:
    small = settings.model_copy(update=LIMITS)
    with TestClient(create_app(small), raise_server_exceptions=False) as test_client:
        test_client.headers.update(bearer(create_api_key(small)))
        yield test_client, small


def _nothing_stored(database: Database, settings: Settings) -> None:
    assert row_counts(database)["datasets"] == 0 and stored_files(settings) == []


def test_rows_and_columns(limited: tuple[TestClient, Settings], database: Database) -> None:
    client, settings = limited
    wide = tiny_frame(50)
    for i in range(8):
        wide[f"extra{i}"] = float(i)
    parquet = io.BytesIO()
    wide.to_parquet(parquet, index=False)
    long_parquet = io.BytesIO()
    tiny_frame(151).to_parquet(long_parquet, index=False)
    cases = [
        (("long.csv", tiny_csv_bytes(rows=151), "text/csv"), "too_many_rows", 151, 150),
        (("long.parquet", long_parquet.getvalue(), "application/octet-stream"), "too_many_rows", 151, 150),
        (("wide.csv", wide.to_csv(index=False).encode(), "text/csv"), "too_many_columns", 13, 8),
        (("wide.parquet", parquet.getvalue(), "application/octet-stream"), "too_many_columns", 13, 8),
    ]
    for file, code, count, limit in cases:
        response = client.post("/v1/datasets", files={"file": file}, data={"label": "outcome"})
        error = assert_error_shape(response, 422)
        assert error["code"] == code and error["details"] == {"count": count, "max": limit}, file[0]
    _nothing_stored(database, settings)
    assert (
        client.post(
            "/v1/datasets",
            files={"file": ("ok.csv", tiny_csv_bytes(rows=150), "text/csv")},
            data={"label": "outcome"},
        ).status_code
        == 201
    )


def test_trials_per_job(limited: tuple[TestClient, Settings], database: Database) -> None:
    client, _ = limited
    dataset_id = str(upload_tiny(client, rows=120)["id"])
    error = assert_error_shape(client.post("/v1/jobs", json=tiny_job(dataset_id, trials=6)), 422)
    assert error["code"] == "too_many_trials" and error["details"] == {"trials": 6, "max": 5}
    assert row_counts(database)["jobs"] == 0
    # A grid whose size is within the limit is fine whatever `trials` says; a time-only search stops at it.
    grid = {"method": "grid", "trials": 50, "min_clip": 0.5, "max_clip": 1.0, "max_noise": 1.0, "grid_step": 0.5}
    assert client.post("/v1/jobs", json=tiny_job(dataset_id, search=grid)).status_code == 202
    timed = client.post("/v1/jobs", json=tiny_job(dataset_id, search={"trials": None, "seconds": 60}))
    assert timed.status_code == 202 and timed.json()["progress"]["total"] is None
    with database.reading() as session:
        assert session.get(JobRecord, timed.json()["id"]).budget == 5  # type: ignore[union-attr]


def test_active_jobs_per_owner(limited: tuple[TestClient, Settings], database: Database) -> None:
    client, settings = limited
    dataset_id = str(upload_tiny(client, rows=120)["id"])
    first, second = (client.post("/v1/jobs", json=tiny_job(dataset_id)).json() for _ in range(2))
    error = assert_error_shape(client.post("/v1/jobs", json=tiny_job(dataset_id)), 429)
    assert error["code"] == "too_many_active_jobs" and error["details"] == {"active": 2, "max": 2}
    # Another owner has its own allowance.
    other = bearer(create_api_key(settings, owner="other"))
    theirs = client.post(
        "/v1/datasets",
        files={"file": ("t.csv", tiny_csv_bytes(rows=120), "text/csv")},
        data={"label": "outcome"},
        headers=other,
    ).json()
    assert client.post("/v1/jobs", json=tiny_job(theirs["id"]), headers=other).status_code == 202
    # A finished (here: cancelled) job frees its place.
    assert client.post(f"/v1/jobs/{first['id']}/cancel").status_code == 200
    assert client.post("/v1/jobs", json=tiny_job(dataset_id)).status_code == 202
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 2
    assert second["status"] == "queued"


def test_active_jobs_limit_holds_under_concurrent_posts(
    limited: tuple[TestClient, Settings], database: Database
) -> None:
    client, _ = limited
    dataset_id = str(upload_tiny(client, rows=120)["id"])
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def post() -> None:
        barrier.wait()
        statuses.append(client.post("/v1/jobs", json=tiny_job(dataset_id)).status_code)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [202, 202, 429, 429, 429, 429]
    with database.reading() as session:
        assert len(session.scalars(select(JobRecord)).all()) == 2


def test_json_bodies_are_capped(limited: tuple[TestClient, Settings], database: Database) -> None:
    client, settings = limited
    # Uploads are not JSON: they stream under max_upload_bytes instead.
    assert len(tiny_csv_bytes(rows=120)) > settings.max_json_bytes
    dataset_id = str(upload_tiny(client, rows=120)["id"])
    body = tiny_job(dataset_id)
    body["model"] = {"keras_json": "x" * 5000}
    error = assert_error_shape(client.post("/v1/jobs", json=body), 413)
    assert error["code"] == "request_too_large" and error["details"] == {"max_bytes": 2048}

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut while reading
        yield b'{"dataset_id": "' + dataset_id.encode() + b'", "model": {"keras_json": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}}'

    response = client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert assert_error_shape(response, 413)["code"] == "request_too_large"
    assert response.headers["x-request-id"]
    assert row_counts(database)["jobs"] == 0
