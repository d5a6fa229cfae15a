"""Recommendation v2 in the service with a fake engine (no TensorFlow), on SQLite and PostgreSQL: the job's
guarantee and proxy fields, the stages after the search (confirm, final) as leased job-level units, and a job
whose guarantee no trial meets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from app.db import Database, utcnow
from app.jobs import queue
from app.settings import Settings
from app.tuning.recommendation import NOT_CONFIRMED_NOTE
from app.tuning.results import GuaranteeSpec
from tests.service.conftest import assert_error_shape, bearer, create_api_key, tiny_csv_bytes, tiny_frame, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor, _worker

RANDOM = {"method": "random", "trials": 2, "max_clip": 1.0}


def _job(client: TestClient, **overrides: object) -> dict[str, object]:
    dataset = upload_tiny(client)
    response = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), **{"search": RANDOM, **overrides}))
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_guarantee_is_stored_echoed_and_validated(client: TestClient) -> None:
    job = _job(client, max_epsilon=None, confirm_repeats=4)
    assert job["guarantee"] == GuaranteeSpec(max_epsilon=None, confirm_repeats=4).model_dump()
    assert (job["stage"], job["tune_dataset_id"]) == ("baseline", None)
    dataset_id = str(job["dataset_id"])
    default = client.post("/v1/jobs", json=tiny_job(dataset_id)).json()
    assert default["guarantee"] == GuaranteeSpec().model_dump() and default["guarantee"]["max_epsilon"] == 10
    for field, value in (
        ("target_epsilon", 0),
        ("max_epsilon", 101),
        ("confirm_repeats", 1),
        ("max_utility_loss", 1.5),
    ):
        error = assert_error_shape(client.post("/v1/jobs", json=tiny_job(dataset_id, **{field: value})), 422)
        assert error["code"] == "validation_error" and field in error["message"]
    crossed = client.post("/v1/jobs", json=tiny_job(dataset_id, max_epsilon=2, target_epsilon=3))
    error = assert_error_shape(crossed, 422)
    assert error["code"] == "validation_error" and "target_epsilon 3 exceeds max_epsilon 2" in error["message"]


def test_a_proxy_must_be_the_owners_and_fit_the_split(client: TestClient, settings: Settings) -> None:
    private = str(upload_tiny(client)["id"])

    def create(proxy: str, **overrides: object) -> object:
        return client.post("/v1/jobs", json=tiny_job(private, tune_dataset_id=proxy, **overrides))

    assert assert_error_shape(create("0" * 36), 404)["code"] == "dataset_not_found"
    bobs = client.post(
        "/v1/datasets",
        files={"file": ("b.csv", tiny_csv_bytes(), "text/csv")},
        data={"label": "outcome"},
        headers=bearer(create_api_key(settings, owner="bob")),
    ).json()
    other = create(bobs["id"])
    assert assert_error_shape(other, 404)["code"] == "dataset_not_found"
    assert other.json() == client.post("/v1/jobs", json=tiny_job(bobs["id"])).json()  # type: ignore[attr-defined]
    assert assert_error_shape(create(private), 422)["code"] == "proxy_is_private"
    relabelled = client.post(
        "/v1/datasets", files={"file": ("p.csv", tiny_csv_bytes(seed=1), "text/csv")}, data={"label": "smoker"}
    ).json()
    mismatch = assert_error_shape(create(relabelled["id"]), 422)
    assert mismatch["code"] == "proxy_label_mismatch" and mismatch["details"] == {
        "label": "outcome",
        "proxy_label": "smoker",
    }
    narrow = tiny_frame(seed=2).drop(columns=["income"]).to_csv(index=False).encode()
    proxy = client.post(
        "/v1/datasets", files={"file": ("n.csv", narrow, "text/csv")}, data={"label": "outcome"}
    ).json()
    missing = create(proxy["id"], split={"kind": "kmeans", "columns": ["age", "income"]})
    error = assert_error_shape(missing, 422)
    assert error["code"] == "proxy_missing_column" and error["details"]["columns"] == ["income"]
    accepted = create(proxy["id"], split={"kind": "kmeans", "columns": ["age"]})
    assert accepted.status_code == 202 and accepted.json()["tune_dataset_id"] == proxy["id"]  # type: ignore[attr-defined]


def test_a_job_passes_through_confirm_and_final(client: TestClient, settings: Settings, database: Database) -> None:
    job_id = str(_job(client, confirm_repeats=3)["id"])
    executor = FakeExecutor()
    worker = _worker(database, settings, executor, "w")
    stages = []
    while worker.run_one():
        job = client.get(f"/v1/jobs/{job_id}").json()
        stages.append(job["stage"])
        if job["status"] == "running":  # nothing to read before the job succeeds
            assert client.get(f"/v1/jobs/{job_id}/recommendation").json()["error"]["code"] == "job_not_finished"
            model = assert_error_shape(client.get(f"/v1/jobs/{job_id}/model"), 409)
            assert model["code"] == "job_not_finished"
    assert executor.kinds == ["baseline", "trial", "trial", "confirm", "final"]
    assert stages == ["search", "search", "confirm", "final", None]
    recommendation = client.get(f"/v1/jobs/{job_id}/recommendation").json()
    assert recommendation["confirmation"]["repeats"] == 3 and recommendation["repeats"] == 3
    assert recommendation["training"]["epsilon"] == 1.0  # the final model's statement (the fake's)
    result = client.get(f"/v1/jobs/{job_id}/result").json()
    assert result["recommendation"] == {
        k: v for k, v in recommendation.items() if k not in ("job_id", "job_status", "pareto_front")
    }
    assert result["final_model"]["tuned_on"] == "private" and result["stop_reason"] == "budget"
    # Another trade-off: the trials re-chosen, not confirmed.
    other = client.get(f"/v1/jobs/{job_id}/recommendation", params={"tradeoff": 0.9}).json()
    assert other["confirmation"] is None and other["tradeoff"] == 0.9
    assert NOT_CONFIRMED_NOTE.format(tradeoff=0.9) in other["notes"]
    # The fake wrote no files: the API says so rather than serving half a model.
    assert assert_error_shape(client.get(f"/v1/jobs/{job_id}/model"), 409)["code"] == "no_model"


@pytest.mark.slow
def test_a_dead_workers_confirmation_is_run_again_and_its_late_result_refused(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = str(_job(client)["id"])
    executor = FakeExecutor()
    dead = _worker(database, settings, executor, "dead")
    for _ in range(3):
        assert dead.run_one()  # baseline, two trials
    unit = dead.claim()
    assert unit is not None and unit.kind == "confirm" and unit.attempt == 1
    assert _worker(database, settings, executor, "early").claim() is None  # leased
    later = _worker(database, settings, executor, "later", offset=timedelta(seconds=settings.lease_seconds + 1))
    rerun = later.claim()
    assert rerun is not None and rerun.kind == "confirm" and rerun.attempt == 2
    assert (rerun.clip, rerun.noise, rerun.trial_index) == (unit.clip, unit.noise, unit.trial_index)
    with database.transaction() as session:
        assert not executor.run_confirm(unit).complete(session, unit, utcnow())
    later.execute(rerun)
    run_worker_until_done(client, settings, job_id, executor=executor)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"


@pytest.mark.parametrize("kind", ["confirm", "final"])
def test_a_failing_finishing_unit_fails_the_job_with_its_code(
    client: TestClient, settings: Settings, kind: str
) -> None:
    job_id = str(_job(client)["id"])
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_finish={kind: RuntimeError("oom")}))
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error_code"], job["stage"]) == ("failed", f"{kind}_failed", None)
    assert job["error"] == f"the {kind} stage failed: RuntimeError: oom"


def test_a_finishing_unit_that_keeps_killing_workers_is_given_up(
    client: TestClient, settings: Settings, database: Database
) -> None:
    job_id = str(_job(client)["id"])
    executor = FakeExecutor()
    worker = _worker(database, settings, executor, "w")
    for _ in range(3):
        assert worker.run_one()
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        offset = timedelta(seconds=(settings.lease_seconds + 1) * attempt)
        unit = _worker(database, settings, executor, f"w{attempt}", offset).claim()
        assert unit is not None and (unit.kind, unit.attempt) == ("confirm", attempt)
    last = _worker(database, settings, executor, "last", timedelta(seconds=(settings.lease_seconds + 1) * 9))
    assert last.claim() is None
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error_code"]) == ("failed", "confirm_abandoned")


def test_no_trial_meeting_max_utility_loss_succeeds_without_a_recommendation(
    client: TestClient, settings: Settings
) -> None:
    """The fake's utility falls with noise and max_epsilon 10 keeps noise above 0.39, while clip (at most 1)
    adds at most 0.001: every trial loses some validation AUC, so max_utility_loss 0 cannot be met."""
    job_id = str(_job(client, max_utility_loss=0.0)["id"])
    executor = FakeExecutor()
    run_worker_until_done(client, settings, job_id, executor=executor)
    assert executor.kinds == ["baseline", "trial", "trial"]  # nothing to confirm or train
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["stage"], job["error"]) == ("succeeded", None, None)
    reason = job["no_recommendation_reason"]
    assert "max_utility_loss" in reason
    result = client.get(f"/v1/jobs/{job_id}/result").json()
    assert result["recommendation"] is None and result["no_recommendation_reason"] == reason
    assert result["final_model"] is None and len(result["trials"]) == 2
    for path in ("recommendation", "model"):
        error = assert_error_shape(client.get(f"/v1/jobs/{job_id}/{path}"), 409)
        assert error["code"] == "no_recommendation" and error["details"] == {"reason": reason}
