"""The hot read routes: the job poll's ETag and 304, and how many SQL queries each GET costs (a regression in
either fails here; benchmarks/load.py measures their time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.db import Database, utcnow
from app.jobs import service
from app.settings import Settings
from tests.service.conftest import tiny_job
from tests.service.helpers import upload_tiny
from tests.service.test_queue import FakeExecutor
from workers.worker import Worker

CLOCK_FIELDS = ("elapsed_seconds", "eta_seconds")


def _new_job(client: TestClient, trials: int = 2, **overrides: object) -> str:
    dataset = upload_tiny(client)
    response = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=trials, **overrides))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@contextmanager
def counted_queries(client: TestClient) -> Iterator[list[str]]:
    """The SELECT statements the app runs meanwhile (the API key check included)."""
    engine = client.app.state.database.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _owner_id(client: TestClient, database: Database, job_id: str) -> str:
    from app.jobs.models import JobRecord

    with database.reading() as session:
        job = session.get(JobRecord, job_id)
        assert job is not None
        return job.owner_id


def test_a_poll_answers_304_while_nothing_shown_changed(client: TestClient) -> None:
    job_id = _new_job(client)
    first = client.get(f"/v1/jobs/{job_id}")
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and etag.endswith('"')
    assert first.headers["cache-control"] == "no-cache"

    again = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # Weak comparison: the strong form, a list, and * match too.
    for header in (etag.removeprefix("W/"), f'W/"other", {etag}', "*"):
        assert client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": header}).status_code == 304, header
    # Another tag, or a malformed header, gets the whole answer, never an error.
    for header in ('W/"other"', "garbage", ",,", 'W/""'):
        response = client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": header})
        assert response.status_code == 200 and response.json() == first.json(), header


def test_a_poll_body_is_unchanged_by_the_etag_path(client: TestClient) -> None:
    """The poll serialises its view itself: the body is the JobRead the route documents, as before."""
    job_id = _new_job(client, name="reads", tags=["b", "a"])
    body = client.get(f"/v1/jobs/{job_id}").json()
    listed = client.get("/v1/jobs").json()["items"][0]
    assert body == listed
    assert body["tags"] == ["a", "b"] and body["name"] == "reads"


def test_another_owners_job_is_404_whatever_if_none_match_says(
    client: TestClient, settings: Settings, database: Database
) -> None:
    from tests.service.conftest import bearer, create_api_key

    job_id = _new_job(client)
    other = bearer(create_api_key(settings, owner="someone-else"))
    response = client.get(f"/v1/jobs/{job_id}", headers={**other, "If-None-Match": "*"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "job_not_found"


def test_the_etag_changes_with_every_unit_of_work(client: TestClient, settings: Settings, database: Database) -> None:
    """Baseline, each trial, confirmation, final model: after each, the poll's body changes, and so must its
    ETag (at a fixed clock, so that the clock part cannot hide a stale tag). An ETag that stays the same
    after a trial finishes would serve a stale body as 304."""
    job_id = _new_job(client, trials=3)
    owner_id = _owner_id(client, database, job_id)
    now = utcnow()

    def state() -> tuple[str, dict[str, Any]]:
        with database.reading() as session:
            etag = service.job_etag(service.job_snapshot(session, owner_id, job_id), now)
        body = client.get(f"/v1/jobs/{job_id}").json()
        return etag, {k: v for k, v in body.items() if k not in CLOCK_FIELDS}

    worker = Worker(database, settings, FakeExecutor(), worker_id="reads")
    seen = [state()]
    while seen[-1][1]["status"] in ("queued", "running"):
        assert worker.run_one()
        seen.append(state())
    assert len(seen) >= 6  # baseline, 3 trials, confirmation, final model
    for (before_tag, before_body), (after_tag, after_body) in zip(seen, seen[1:], strict=False):
        assert after_body != before_body
        assert after_tag != before_tag, after_body["progress"]
    # Finished: the same state, the same tag, whatever the clock says.
    etag = client.get(f"/v1/jobs/{job_id}").headers["etag"]
    assert client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": etag}).status_code == 304


def test_a_running_jobs_etag_follows_the_clock_by_the_second(client: TestClient, database: Database) -> None:
    """elapsed_seconds changes with the clock while a job runs: the tag changes once a second, no more."""
    job_id = _new_job(client)
    owner_id = _owner_id(client, database, job_id)
    from app.jobs.models import JobRecord

    with database.transaction() as session:
        job = session.get(JobRecord, job_id)
        assert job is not None
        job.status, job.started_at = "running", utcnow()
    with database.reading() as session:
        snapshot = service.job_snapshot(session, owner_id, job_id)
    start = datetime.fromtimestamp(int(utcnow().timestamp()), tz=utcnow().tzinfo)
    same_second = start.replace(microsecond=900_000)
    assert service.job_etag(snapshot, start) == service.job_etag(snapshot, same_second)
    assert service.job_etag(snapshot, start) != service.job_etag(
        snapshot, start.replace(second=(start.second + 1) % 60)
    )


# Statements per GET, the API key check included. Before issue 17: poll 5 (6 with failed trials), listing 6,
# trial page 4.
EXPECTED_QUERIES = {
    "poll": 4,  # key, snapshot (row, counts, tags), job, best trial
    "poll 304": 2,  # key, snapshot
    "listing": 3,  # key, jobs with counts, tags and total, best trials
    "trial page": 3,  # key, job, trials with total
}


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's pool adds a ping per checkout
def test_queries_per_get(
    client: TestClient, settings: Settings, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _new_job(client, trials=2)
    worker = Worker(database, settings, FakeExecutor(), worker_id="reads")
    assert worker.run_one() and worker.run_one()  # the baseline and one trial
    # The running job's ETag follows the clock by the second: a fixed clock keeps the 304 poll from depending on
    # whether a second boundary falls between the requests (it did, on a loaded machine).
    frozen = utcnow()
    monkeypatch.setattr(service, "utcnow", lambda: frozen)
    _new_job(client, trials=2)  # a second job, so that the listing has more than one
    assert client.get(f"/v1/jobs/{job_id}").json()["progress"]["done"] == 1
    etag = client.get(f"/v1/jobs/{job_id}").headers["etag"]
    requests = {
        "poll": (f"/v1/jobs/{job_id}", {}),
        "poll 304": (f"/v1/jobs/{job_id}", {"If-None-Match": etag}),
        "listing": ("/v1/jobs?limit=20", {}),
        "trial page": (f"/v1/jobs/{job_id}/trials?limit=50", {}),
    }
    counted = {}
    for name, (path, headers) in requests.items():
        with counted_queries(client) as statements:
            response = client.get(path, headers=headers)
        assert response.status_code == (304 if name == "poll 304" else 200), response.text
        counted[name] = len(statements)
    assert counted == EXPECTED_QUERIES


def test_pages_past_the_end_still_count_the_total(client: TestClient) -> None:
    """The listings read their total with their rows (a window count); a page past the end has no row to
    carry it, and counts apart."""
    job_id = _new_job(client)
    _new_job(client)
    page = client.get("/v1/jobs?offset=5&limit=2").json()
    assert page["items"] == [] and page["total"] == 2
    assert client.get("/v1/jobs?limit=1").json()["total"] == 2
    trials = client.get(f"/v1/jobs/{job_id}/trials?offset=3").json()
    assert trials["items"] == [] and trials["total"] == 0
