"""GET /metrics in the Prometheus text format (prometheus-client).

Two sources:
- HTTP requests and their latency, counted in this process by `HttpMetricsMiddleware`, labelled by route
  template (/v1/jobs/{job_id}, never the raw path, so ids neither leak nor multiply series), method and
  status class;
- jobs, trials and worker heartbeats, read from the database at scrape time by `QueueCollector`: the API and
  the workers are separate processes, possibly on many machines, and the database is the one place that sees
  them all. One aggregate query per figure; no row, id or owner leaves the database.

Public like /v1/health: only counts and durations over all owners, never an owner's data (docs/service.md).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Float, Select, and_, case, cast, func, literal, select, union_all
from sqlalchemy.sql.elements import ColumnElement
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import Database, utcnow
from app.jobs.models import JobRecord, JobStatus, TrialRecord, TrialStatus

METRICS_PATH = "/metrics"
# Upper bounds (seconds) of the trial-seconds histogram: a tiny trial takes about 2 s, a real one minutes.
TRIAL_SECONDS_BUCKETS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # a 404 path: one series for all of them, whatever was asked

router = APIRouter(tags=["system"])


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics: requests, jobs, trials, worker heartbeats (no key)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def make_registry() -> CollectorRegistry:
    """A registry per app (not prometheus_client's global one), so several apps in one process (tests) keep
    their own counts."""
    return CollectorRegistry(auto_describe=True)


class HttpMetrics:
    """The request counter and latency histogram, made once per app (the middleware may be built again)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "dptune_http_requests",
            "HTTP requests answered, by route template, method and status class.",
            ("route", "method", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "dptune_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its response, by route template and method.",
            ("route", "method"),
            registry=registry,
        )


class HttpMetricsMiddleware:
    """Counts every HTTP request and times it to the last byte sent, by route template, method and status
    class; outermost, so a request refused by the key check or the size cap is counted too."""

    def __init__(self, app: ASGIApp, http_metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = http_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = route_template(scope)
            method = scope.get("method", "") if scope.get("method") in _METHODS else "other"
            self.metrics.requests.labels(route, method, f"{status // 100}xx").inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request. A request answered before routing (401 from
    the key check, 413 from the size cap) gets the template of the documented path it asked for."""
    route = scope.get("route")
    if route is not None and getattr(route, "path_format", None):
        return str(route.path_format)
    path = scope.get("path", "")
    for pattern, template in _documented_paths(scope.get("app")):
        if pattern.match(path):
            return template
    return UNMATCHED_ROUTE


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) of every path in the app's OpenAPI schema, compiled once per app."""
    compiled: list[tuple[re.Pattern[str], str]] | None = getattr(app.state, "metrics_paths", None)
    if compiled is None:
        compiled = [(compile_path(template)[0], template) for template in app.openapi()["paths"]]
        app.state.metrics_paths = compiled
    return compiled


class QueueCollector(Collector):
    """Job, trial and heartbeat figures read from the database at each scrape."""

    def __init__(self, database: Database, lease_seconds: float) -> None:
        self.database = database
        self.lease_seconds = lease_seconds

    def describe(self) -> list[Metric]:
        return []  # no database query when registered; the names are fixed below

    def collect(self) -> Iterator[Metric]:
        with self.database.reading() as session:
            jobs = dict(session.execute(select(JobRecord.status, func.count()).group_by(JobRecord.status)).all())
            trials = dict(
                session.execute(select(TrialRecord.status, func.count()).group_by(TrialRecord.status)).all()
            )
            oldest_expiry, leased = session.execute(_oldest_lease()).one()
            histogram = session.execute(_trial_seconds_histogram(self.database.is_sqlite)).one()
        yield _by_status(
            "dptune_jobs",
            "Jobs by status (queued, running; succeeded, failed, cancelled: finished).",
            jobs,
            [s.value for s in JobStatus],
        )
        running = GaugeMetricFamily("dptune_trials_running", "Trials being run now (leased by a worker).")
        running.add_metric([], trials.get(TrialStatus.running.value, 0))
        yield running
        failures = CounterMetricFamily(
            "dptune_trial_failures",
            "Trials that failed (stored; deleting a data set "
            "removes its jobs' trials, which Prometheus reads as a counter reset).",
        )
        failures.add_metric([], trials.get(TrialStatus.failed.value, 0))
        yield failures
        yield _trial_seconds(histogram)
        units = GaugeMetricFamily(
            "dptune_leased_units",
            "Units of work (baselines, trials, confirmations, final trainings) a worker holds a lease on.",
        )
        units.add_metric([], leased)
        yield units
        age = GaugeMetricFamily(
            "dptune_worker_heartbeat_oldest_age_seconds",
            "Seconds since the stalest leased unit's last heartbeat (lease expiry minus DPTUNE_LEASE_SECONDS); "
            "above the lease a worker has stopped and its unit waits to be run again. NaN when no unit is leased.",
        )
        age.add_metric([], self._age(oldest_expiry))
        yield age

    def _age(self, oldest_expiry: datetime | None) -> float:
        if oldest_expiry is None:
            return math.nan
        return max(0.0, (utcnow() - oldest_expiry).total_seconds() + self.lease_seconds)


def _by_status(name: str, documentation: str, counts: dict[str, int], statuses: list[str]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in statuses:  # every status, 0 included, so a series never vanishes
        family.add_metric([status], counts.get(status, 0))
    return family


def _oldest_lease() -> Select[datetime | None, int]:
    """(earliest lease expiry, number of leases) over the three kinds of lease: running trials, and running
    jobs' baseline and finishing units. A heartbeat pushes its lease's expiry to now + lease_seconds."""
    running_job = JobRecord.status == JobStatus.running.value
    leases = union_all(
        select(TrialRecord.lease_expires_at.label("expires_at")).where(
            TrialRecord.status == TrialStatus.running.value, TrialRecord.lease_token.is_not(None)
        ),
        select(JobRecord.baseline_lease_expires_at).where(
            running_job, JobRecord.baseline_finished_at.is_(None), JobRecord.baseline_lease_token.is_not(None)
        ),
        select(JobRecord.finish_lease_expires_at).where(running_job, JobRecord.finish_lease_token.is_not(None)),
    ).subquery()
    return select(func.min(leases.c.expires_at), func.count(leases.c.expires_at))


def _trial_seconds_histogram(sqlite: bool) -> Select[Any]:
    """Count, sum and cumulative bucket counts of succeeded trials' wall seconds, bucketed in SQL over every
    stored trial (one row back, whatever the number of trials)."""
    if sqlite:  # datetimes are text there; julianday parses them (resolution far below a millisecond)
        seconds: ColumnElement[float] = (
            func.julianday(TrialRecord.finished_at) - func.julianday(TrialRecord.started_at)
        ) * 86400.0
    else:
        seconds = cast(func.extract("epoch", TrialRecord.finished_at - TrialRecord.started_at), Float)
    buckets = [func.coalesce(func.sum(case((seconds <= bound, 1), else_=0)), 0) for bound in TRIAL_SECONDS_BUCKETS]
    return select(func.count(), func.coalesce(func.sum(seconds), literal(0.0)), *buckets).where(
        and_(TrialRecord.status == TrialStatus.succeeded.value, TrialRecord.finished_at.is_not(None))
    )


def _trial_seconds(row: Any) -> HistogramMetricFamily:
    count, total, *cumulative = row
    buckets: list[tuple[str, float]] = [
        (repr(bound), int(n)) for bound, n in zip(TRIAL_SECONDS_BUCKETS, cumulative, strict=True)
    ]
    buckets.append(("+Inf", int(count)))
    return HistogramMetricFamily(
        "dptune_trial_seconds",
        "Wall seconds of succeeded trials, from the claim to the stored result (a trial "
        "run again after its worker died counts from its first claim).",
        buckets=buckets,
        sum_value=float(total),
    )
