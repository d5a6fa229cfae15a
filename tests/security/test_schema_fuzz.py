"""Schemathesis against the app's own OpenAPI schema, in process (ASGI, no network), with a bounded number of
examples per operation: no server error (5xx), no response that breaks the schema (status codes, content
types, headers, bodies), with and without a valid key.

No worker runs here, so nothing the fuzzer queues is ever trained. The data set and jobs made first give the
generated requests real ids to hit some of the time (a finished job with trials and a recommendation, a
queued job), so the schemas of real bodies are checked too, not only those of 404s.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from app.jobs.queue import WorkUnit
from app.main import create_app
from app.settings import Settings
from app.tuning.results import Estimate
from tests.factories import games
from tests.service.conftest import bearer, create_api_key, make_settings, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor
from workers.executor import TrialOutcome

MAX_EXAMPLES = 25
# The checks that matter here; the others judge API design (e.g. whether a 404 for an unknown id is a "use
# after free"), not correctness.
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
]


class UndefinedMetricsExecutor(FakeExecutor):
    """Trial 1 measures what a split with one class gives: NaN AUCs, sent by the API as null."""

    def run_trial(self, unit: WorkUnit) -> TrialOutcome:
        outcome = super().run_trial(unit)
        if unit.trial_index != 1:
            return outcome
        nan = math.nan
        undefined = games(0.5)
        undefined.membership.attacks["rf"].auc = Estimate(value=nan, low=nan, high=nan)
        return TrialOutcome(
            outcome.measurement.model_copy(
                update={"utility_members": nan, "utility_holdout": nan, "games": undefined}
            )
        )


class World:
    """A data set, a finished job and a queued job of one owner, and that owner's key."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.ids: dict[str, list[str]] = {}
        self.key = ""

    def build(self) -> None:
        with TestClient(self.app, raise_server_exceptions=False) as client:
            self.key = create_api_key(self.settings)
            client.headers.update(bearer(self.key))
            dataset_id = str(upload_tiny(client)["id"])
            done = client.post("/v1/jobs", json=tiny_job(dataset_id, search={"method": "random", "trials": 3}))
            run_worker_until_done(client, self.settings, done.json()["id"], executor=UndefinedMetricsExecutor())
            trials = client.get(f"/v1/jobs/{done.json()['id']}/trials").json()["items"]
            assert trials[1]["utility_holdout"] is None
            assert trials[1]["games"]["membership"]["attacks"]["rf"]["auc"]["value"] is None
            queued = client.post("/v1/jobs", json=tiny_job(dataset_id)).json()["id"]
        self.ids = {"dataset_id": [dataset_id], "job_id": [done.json()["id"], queued]}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    built = World(make_settings(data_dir))
    built.build()
    yield built


@pytest.fixture(scope="module")
def api_schema(world: World) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", world.app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _use_real_ids(case: Any, world: World) -> None:
    """Three times in four (decided by the generated ids themselves, so runs repeat), point a GET at a real object.
    Other methods keep their random ids: a fuzzer that cancels the one queued job or deletes the data set
    would only narrow what later cases can reach."""
    if case.method != "GET" or not case.path_parameters:
        return
    for name, value in list(case.path_parameters.items()):
        choices = world.ids.get(name)
        digest = hashlib.sha256(str(value).encode()).digest()
        if choices and digest[0] % 4 != 0:
            case.path_parameters[name] = choices[digest[1] % len(choices)]


@pytest.mark.slow  # every operation fuzzed: about 28 s
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_api_conforms_to_its_schema(case: Any, world: World) -> None:
    _use_real_ids(case, world)
    case.call_and_validate(headers=bearer(world.key), checks=CHECKS)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=5, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_api_without_a_key_conforms_too(case: Any, world: World) -> None:
    """Without a key: every protected operation is refused (401, or 405 for the wrong-method variants
    schemathesis also sends), in the declared error shape."""
    response = case.call_and_validate(checks=CHECKS)
    if case.operation.definition.raw.get("security"):
        assert response.status_code in (401, 405), response.status_code


@pytest.mark.slow
def test_the_fuzzer_reached_real_objects(world: World, api_schema: Any) -> None:
    """The fuzzer's GETs with ids, generated and redirected as in the fuzz test but here on their own: some found
    the real job, its trials (with the undefined metrics as null) and its recommendation, not only 404s."""
    paths = (
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/trials",
        "/v1/jobs/{job_id}/recommendation",
        "/v1/datasets/{dataset_id}",
    )
    seen: Counter[tuple[str, int]] = Counter()
    for path in paths:
        operation = api_schema[path]["GET"]

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: Any) -> None:
            _use_real_ids(case, world)
            response = case.call_and_validate(headers=bearer(world.key), checks=CHECKS)
            seen[(case.path, response.status_code)] += 1

        fuzz()
    for path in paths:
        assert seen[(path, 200)] > 0, (path, sorted(seen.items()))
    assert sum(n for (_p, status), n in seen.items() if status >= 500) == 0
    assert sum(seen.values()) >= 10 * len(paths)
