"""GET /metrics on SQLite and PostgreSQL: request counts by route template, and the job, trial and heartbeat
figures read from the database, checked against the database itself after a tiny job with FakeExecutor."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from app.api.metrics import TRIAL_SECONDS_BUCKETS
from app.db import Database
from app.jobs.models import JobRecord, TrialRecord
from app.jobs.queue import TrialOutcome, WorkUnit
from app.settings import Settings
from tests.service.conftest import tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": ""})  # no key: operators scrape without one
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class ScrapingExecutor(FakeExecutor):
    """Scrapes /metrics while each trial runs, i.e. while a worker holds its lease."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client
        self.during_trials: list[Samples] = []

    def run_trial(self, unit: WorkUnit) -> TrialOutcome:
        self.during_trials.append(scrape(self.client))
        return super().run_trial(unit)


def test_metrics_follow_a_job(client: TestClient, settings: Settings, database: Database) -> None:
    dataset = upload_tiny(client)
    job_route = {"route": "/v1/jobs/{job_id}", "method": "GET", "status": "2xx"}
    before = scrape(client)
    assert value(before, "dptune_jobs", status="queued") == 0
    assert math.isnan(value(before, "dptune_worker_heartbeat_oldest_age_seconds"))  # no unit leased

    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=3)).json()
    queued = scrape(client)
    assert value(queued, "dptune_jobs", status="queued") == 1
    assert value(queued, "dptune_http_requests_total", route="/v1/jobs", method="POST", status="2xx") == 1

    executor = ScrapingExecutor(client)
    run_worker_until_done(client, settings, job["id"], executor=executor)
    for during in executor.during_trials:
        assert value(during, "dptune_jobs", status="running") == 1
        assert value(during, "dptune_trials_running") == 1
        assert value(during, "dptune_leased_units") == 1
        age = value(during, "dptune_worker_heartbeat_oldest_age_seconds")
        assert 0 <= age < settings.lease_seconds, age  # the trial's lease was taken a moment ago
    assert len(executor.during_trials) == 3

    client.get(f"/v1/jobs/{job['id']}")
    client.get("/v1/jobs/not-a-job")  # 404, still the route's series
    client.get("/v1/jobs/anything", headers={"Authorization": "Bearer wrong"})  # 401 before routing
    client.get("/no/such/path")
    after = scrape(client)
    # The worker's polls (jobs_done) and the call above count on the template; no raw path is a label.
    assert (
        value(after, "dptune_http_requests_total", **job_route)
        > value(before, "dptune_http_requests_total", **job_route) + 1
    )
    assert value(after, "dptune_http_requests_total", route="/v1/jobs/{job_id}", method="GET", status="4xx") == 2
    assert value(after, "dptune_http_requests_total", route="unmatched", method="GET", status="4xx") == 1
    assert not any(job["id"] in labels_value for (_, labels) in after for _, labels_value in labels)
    assert value(after, "dptune_http_request_duration_seconds_count", route="/v1/jobs/{job_id}", method="GET") > 3

    with database.reading() as session:
        jobs = dict(session.execute(select(JobRecord.status, func.count()).group_by(JobRecord.status)).all())
        succeeded = session.execute(
            select(TrialRecord.started_at, TrialRecord.finished_at).where(TrialRecord.status == "succeeded")
        ).all()
    for status in ("queued", "running", "succeeded", "failed", "cancelled"):
        assert value(after, "dptune_jobs", status=status) == jobs.get(status, 0)
    assert jobs == {"succeeded": 1}
    assert value(after, "dptune_trials_running") == 0 and value(after, "dptune_trial_failures_total") == 0
    assert value(after, "dptune_leased_units") == 0
    assert math.isnan(value(after, "dptune_worker_heartbeat_oldest_age_seconds"))

    # The histogram is the stored trials' durations, bucket by bucket.
    durations = [seconds(started, finished) for started, finished in succeeded]
    assert len(durations) == 3
    assert value(after, "dptune_trial_seconds_count") == 3
    # SQLite's julianday() keeps milliseconds, so each duration it computes may be off by up to 1 ms.
    assert math.isclose(value(after, "dptune_trial_seconds_sum"), sum(durations), abs_tol=1e-3 * len(durations))
    for bound in TRIAL_SECONDS_BUCKETS:
        assert value(after, "dptune_trial_seconds_bucket", le=repr(bound)) == sum(d <= bound for d in durations)
    assert value(after, "dptune_trial_seconds_bucket", le="+Inf") == 3


def seconds(started: datetime, finished: datetime) -> float:
    return (finished - started).total_seconds()


def test_trial_histogram_buckets_and_failures(client: TestClient, settings: Settings, database: Database) -> None:
    """Durations set by hand land in the right buckets (the SQL arithmetic on each backend), and a failed
    trial is counted as a failure, not in the histogram."""
    dataset = upload_tiny(client)
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=3)).json()
    executor = FakeExecutor(fail_trials={1: RuntimeError("boom")})
    run_worker_until_done(client, settings, job["id"], executor=executor)
    wanted = {0: 1.5, 2: 45.25}
    with database.transaction() as session:
        for trial in session.scalars(select(TrialRecord).where(TrialRecord.job_id == job["id"])):
            if trial.trial_index in wanted:
                trial.finished_at = trial.started_at + timedelta(seconds=wanted[trial.trial_index])
    samples = scrape(client)
    assert value(samples, "dptune_trial_failures_total") == 1
    assert value(samples, "dptune_trial_seconds_count") == 2
    assert math.isclose(value(samples, "dptune_trial_seconds_sum"), 46.75, abs_tol=1e-3)
    cumulative = {
        bound: value(samples, "dptune_trial_seconds_bucket", le=repr(bound)) for bound in TRIAL_SECONDS_BUCKETS
    }
    assert [cumulative[bound] for bound in (1.0, 2.0, 30.0, 60.0, 7200.0)] == [0, 1, 1, 2, 2]
