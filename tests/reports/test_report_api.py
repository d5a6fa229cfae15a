"""GET /v1/jobs/{id}/report on SQLite and PostgreSQL, with the instant FakeExecutor: a self-contained page for
the owner only, and for a job still running, what exists so far."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.service.conftest import bearer, create_api_key, tiny_csv_bytes, tiny_job
from tests.service.helpers import run_worker_until_done
from tests.service.test_queue import FakeExecutor
from workers.worker import Worker

HOSTILE_NAME = "<img src=x onerror=alert(1)><script>.csv"  # no "/": the upload keeps only a base name


def _job(client: TestClient, trials: int, filename: str = "tiny.csv") -> str:
    upload = client.post(
        "/v1/datasets", files={"file": (filename, tiny_csv_bytes(), "text/csv")}, data={"label": "outcome"}
    )
    assert upload.status_code == 201, upload.text
    response = client.post(
        "/v1/jobs", json=tiny_job(upload.json()["id"], search={"method": "random", "trials": trials})
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _figures(page: str) -> int:
    return len(re.findall(r"<img |<svg", page))


@pytest.mark.slow
def test_a_succeeded_jobs_report_is_self_contained_and_only_its_owners(
    client: TestClient, settings: Settings
) -> None:
    job_id = _job(client, trials=4, filename=HOSTILE_NAME)
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())
    response = client.get(f"/v1/jobs/{job_id}/report")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert _figures(page) == 5  # the fake executor's measurements carry no score histogram:
    assert re.findall(r'class="skipped">([^<]*)<', page) == [
        "Membership scores: not drawn, the result stores no binned rmia scores (recorded only by newer versions)."
    ]
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;.csv" in page  # the upload's name, escaped
    assert "onerror" not in page.replace("&lt;img src=x onerror", "")
    assert f"job {job_id} · succeeded · 4 of 4 trials done" in page
    recommendation = client.get(f"/v1/jobs/{job_id}/recommendation").json()
    assert recommendation["headline"].split(":")[0] in page  # the card leads with the stored headline

    other = create_api_key(settings, owner="someone-else")
    denied = client.get(f"/v1/jobs/{job_id}/report", headers=bearer(other))
    assert denied.status_code == 404 and denied.json()["error"]["code"] == "job_not_found"
    assert client.get("/v1/jobs/no-such-job/report").status_code == 404
    assert client.get(f"/v1/jobs/{job_id}/report", headers={"Authorization": ""}).status_code == 401


@pytest.mark.slow
def test_a_running_jobs_report_shows_what_exists_so_far(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = _job(client, trials=4)
    queued = client.get(f"/v1/jobs/{job_id}/report")
    assert queued.status_code == 200 and _figures(queued.text) == 0
    assert "The job is queued" in queued.text and f"job {job_id} · queued" in queued.text

    worker = Worker(database, settings, FakeExecutor(), worker_id="partial")
    assert worker.run_one() and worker.run_one()  # the baseline and trial 0, nothing more
    page = client.get(f"/v1/jobs/{job_id}/report").text
    assert f"job {job_id} · running · stage search · 1 of 4 trials done" in page
    assert "No recommendation." in page
    assert "the job is running (stage search): 1 of 4 trials done; the recommendation comes when it succeeds" in page
    assert "1 succeeded, 0 failed" in page
    assert _figures(page) >= 4  # epsilon, Pareto, surfaces (the one trial as a dot), convergence, ROC (baseline)

    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    cancelled = client.get(f"/v1/jobs/{job_id}/report").text
    assert "the job was cancelled after 1 trial(s); it will not confirm a recommendation" in cancelled
    assert f"job {job_id} · cancelled" in cancelled and _figures(cancelled) >= 4
