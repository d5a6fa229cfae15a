"""The whole flow over HTTP on a tiny job, on SQLite and PostgreSQL: upload, job, poll, trials,
recommendation (at the job's t and another), result, cancel and delete rules."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.service.conftest import TINY_ROWS, assert_error_shape, row_counts, stored_files, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny


@pytest.mark.slow
def test_upload_job_poll_recommendation(client: TestClient, settings: Settings, database: Database) -> None:
    dataset = upload_tiny(client, name="tiny patients")
    assert dataset["rows"] == TINY_ROWS and dataset["label"] == "outcome" and dataset["format"] == "csv"
    assert dataset["class_counts"] and len(str(dataset["sha256"])) == 64
    assert stored_files(settings) == [f"datasets/{dataset['id']}.csv"]
    assert client.get(f"/v1/datasets/{dataset['id']}").json() == dataset
    assert client.get("/v1/datasets").json()["total"] == 1

    created = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=3, tradeoff=0.5))
    assert created.status_code == 202, created.text
    job = created.json()
    assert created.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == {
        "done": 0,
        "running": 0,
        "total": 3,
        "failed": 0,
        "pruned": 0,
        "baseline_done": False,
    }

    early = client.get(f"/v1/jobs/{job['id']}/recommendation")
    assert_error_shape(early, 409)
    assert early.json()["error"]["details"]["status"] == "queued"
    # A data set with a queued job cannot be deleted.
    assert_error_shape(client.delete(f"/v1/datasets/{dataset['id']}"), 409)

    # The baseline, 3 trials, the chosen trial's confirmation, the final model's training.
    assert run_worker_until_done(client, settings, job["id"]) == 6

    polled = client.get(f"/v1/jobs/{job['id']}").json()
    assert polled["status"] == "succeeded", polled
    assert polled["progress"] == {
        "done": 3,
        "running": 0,
        "total": 3,
        "failed": 0,
        "pruned": 0,
        "baseline_done": True,
    }
    assert polled["baseline"]["utility_test"] > 0.5
    assert polled["elapsed_seconds"] > 0 and polled["eta_seconds"] is None
    members = polled["baseline"]["games"]["membership"]["members"]
    assert polled["delta"] == min(1e-5, 1 / (10 * members))  # engine.default_delta

    trials = client.get(f"/v1/jobs/{job['id']}/trials", params={"limit": 2}).json()
    assert trials["total"] == 3 and [t["index"] for t in trials["items"]] == [0, 1]
    rest = client.get(f"/v1/jobs/{job['id']}/trials", params={"offset": 2}).json()
    all_trials = trials["items"] + rest["items"]
    assert [t["index"] for t in all_trials] == [0, 1, 2]
    assert all(t["attempts"] == 1 and t["epsilon"] is not None for t in all_trials)

    best = max(all_trials, key=lambda t: (t["objective"], -t["index"]))
    assert polled["best_trial"]["index"] == best["index"]  # the best single draw so far ...
    recommendation = client.get(f"/v1/jobs/{job['id']}/recommendation").json()
    # ... while the recommendation is the lowest epsilon within one SE of the best posterior mean, confirmed.
    selection = recommendation["selection"]
    assert selection["method"] == "posterior_mean" and recommendation["index"] in selection["within_one_se"]
    assert selection["best_posterior_index"] in selection["within_one_se"]
    assert recommendation["confirmation"]["repeats"] == 3 and recommendation["mode"] == "budget"
    assert recommendation["epsilon"] <= 10 * (1 + 1e-6) and recommendation["training"]["n"] == members
    assert recommendation["tradeoff"] == 0.5 and recommendation["notes"]
    assert set(recommendation["pareto_front"]) <= {0, 1, 2} and recommendation["pareto_front"]

    # Another trade-off re-scores the stored trials and chooses again, without a confirmation.
    utility_only = client.get(f"/v1/jobs/{job['id']}/recommendation", params={"tradeoff": 1.0}).json()
    assert utility_only["tradeoff"] == 1.0 and utility_only["confirmation"] is None
    assert utility_only["index"] in utility_only["selection"]["within_one_se"]
    assert any(note.startswith("Not confirmed") for note in utility_only["notes"])
    assert_error_shape(client.get(f"/v1/jobs/{job['id']}/recommendation", params={"tradeoff": 1.5}), 422)
    model = client.get(f"/v1/jobs/{job['id']}/model")
    assert model.status_code == 200 and model.headers["content-type"] == "application/zip"

    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert [t["index"] for t in result["trials"]] == [0, 1, 2]
    assert result["recommendation"]["index"] == recommendation["index"]
    assert result["final_model"]["epsilon"] == recommendation["training"]["epsilon"]

    listed = client.get("/v1/jobs", params={"status": "succeeded"}).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 0
    assert_error_shape(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)

    # Deleting the data set removes its file, its job, trials, recommendation and final model.
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": 0}
    # A worker's next look for work drops its cached copy (the database store caches one per worker).
    assert run_worker_until_done(client, settings) == 0
    assert stored_files(settings) == []
    assert_error_shape(client.get(f"/v1/jobs/{job['id']}"), 404)


def test_baseline_failure_fails_the_job_with_the_reason(client: TestClient, settings: Settings) -> None:
    dataset = upload_tiny(client)
    # 'region' values are not members/test/nonmembers: preparation fails in the baseline, the job with it.
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), split={"kind": "column", "column": "region"}))
    assert job.status_code == 202, job.text
    run_worker_until_done(client, settings, job.json()["id"])
    failed = client.get(f"/v1/jobs/{job.json()['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"].startswith("the baseline failed:") and "region" in failed["error"]
    assert failed["progress"]["done"] == 0
    assert_error_shape(client.get(f"/v1/jobs/{job.json()['id']}/recommendation"), 409)


def test_cancel_a_queued_job(client: TestClient) -> None:
    dataset = upload_tiny(client)
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]))).json()
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}").json()["finished_at"] is not None
    assert_error_shape(client.post(f"/v1/jobs/{job['id']}/cancel"), 409)
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204


def test_health_version_and_openapi(client: TestClient) -> None:
    assert client.get("/v1/health").json() == {"status": "ok", "database": "ok"}
    assert client.get("/v1/version").json()["api"] == "v1"
    schema = client.get("/openapi.json").json()
    assert "/v1/jobs/{job_id}/recommendation" in schema["paths"]
    assert "multipart/form-data" in schema["paths"]["/v1/datasets"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200
