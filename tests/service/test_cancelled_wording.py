"""What a cancelled job answers for its recommendation, result and model: that it was cancelled and that what
was asked for will never come, so that nobody polls for it."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.service.conftest import assert_error_shape, tiny_job
from tests.service.helpers import upload_tiny
from tests.service.test_queue import FakeExecutor
from workers.worker import Worker


def test_a_cancelled_job_without_trials_says_its_recommendation_will_never_come(client: TestClient) -> None:
    dataset_id = str(upload_tiny(client)["id"])
    job_id = client.post("/v1/jobs", json=tiny_job(dataset_id)).json()["id"]
    queued = assert_error_shape(client.get(f"/v1/jobs/{job_id}/recommendation"), 409)
    assert queued["code"] == "job_not_finished" and "comes when it succeeds" in str(queued["message"])

    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    for what, path in (("recommendation", "recommendation"), ("result", "result"), ("final model", "model")):
        error = assert_error_shape(client.get(f"/v1/jobs/{job_id}/{path}"), 409)
        assert error["code"] == "job_cancelled", what
        assert "was cancelled" in str(error["message"]) and f"its {what} will never come" in str(error["message"])
        assert "comes when it succeeds" not in str(error["message"])


def test_a_cancelled_job_with_trials_says_its_recommendation_is_unconfirmed_for_good(
    client: TestClient, settings: Settings
) -> None:
    dataset_id = str(upload_tiny(client)["id"])
    job_id = client.post(
        "/v1/jobs", json=tiny_job(dataset_id, trials=4, search={"method": "random", "trials": 4})
    ).json()["id"]
    database = Database(settings)
    try:  # the baseline and two of the four trials
        assert Worker(database, settings, FakeExecutor(), worker_id="w").run(max_units=3) == 3
    finally:
        database.dispose()
    assert client.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

    recommendation = client.get(f"/v1/jobs/{job_id}/recommendation").json()
    assert recommendation["job_status"] == "cancelled" and recommendation["confirmation"] is None
    first = recommendation["notes"][0]
    assert first.startswith("The job was cancelled: this point is the best of the 2 trial(s) it finished")
    assert "will never come" in first
    assert not any("the job confirmed its recommendation" in note for note in recommendation["notes"])
    error = assert_error_shape(client.get(f"/v1/jobs/{job_id}/model"), 409)
    assert error["code"] == "job_cancelled" and "its final model will never come" in str(error["message"])
