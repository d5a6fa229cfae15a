"""Jobs a person can find: optional name and tags on jobs, validated, shown, and filtered in GET /v1/jobs
(?name= matches part of the name in any case; ?tag= repeated: all must match), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.service.conftest import assert_error_shape, bearer, create_api_key, tiny_job
from tests.service.helpers import upload_tiny


def _submit(client: TestClient, dataset_id: str, **fields: object) -> dict[str, object]:
    response = client.post("/v1/jobs", json=tiny_job(dataset_id, **fields))
    assert response.status_code == 202, response.text
    body: dict[str, object] = response.json()
    return body


def _names(client: TestClient, **params: object) -> list[object]:
    response = client.get("/v1/jobs", params=params)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return sorted(str(job["name"]) for job in response.json()["items"])


def test_name_and_tags_are_stored_shown_and_filtered(client: TestClient, settings: Settings) -> None:
    dataset = str(upload_tiny(client)["id"])
    first = _submit(client, dataset, name="Cohort 2024 baseline", tags=["covid", "ethics board", "covid"])
    assert first["name"] == "Cohort 2024 baseline" and first["tags"] == ["covid", "ethics board"]  # once each
    _submit(client, dataset, name="cohort 2025", tags=["covid", "v2"])
    _submit(client, dataset, name="100% private", tags=["v2"])
    plain = _submit(client, dataset)
    assert plain["name"] is None and plain["tags"] == []
    shown = client.get(f"/v1/jobs/{first['id']}").json()
    assert (shown["name"], shown["tags"]) == ("Cohort 2024 baseline", ["covid", "ethics board"])

    assert _names(client, name="COHORT") == ["Cohort 2024 baseline", "cohort 2025"]  # any case, any part
    assert _names(client, name="%") == ["100% private"]  # a LIKE wildcard is matched as itself
    assert _names(client, name="_") == []
    assert _names(client, tag="covid") == ["Cohort 2024 baseline", "cohort 2025"]
    assert _names(client, tag=["covid", "v2"]) == ["cohort 2025"]  # all of them
    assert _names(client, tag=["v2"], name="private") == ["100% private"]
    assert _names(client, tag="ethics") == []  # tags match whole
    listed = client.get("/v1/jobs", params={"tag": "ethics board"}).json()
    assert listed["total"] == 1 and listed["items"][0]["tags"] == ["covid", "ethics board"]

    # Another owner's jobs are never found, whatever the filter.
    other = bearer(create_api_key(settings, "other-owner"))
    assert client.get("/v1/jobs", params={"tag": "covid"}, headers=other).json()["total"] == 0


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"name": "x" * 201}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"tags": [f"t{i}" for i in range(21)]}, ["body", "tags"]),
        ({"tags": ["x" * 51]}, ["body", "tags", "0"]),
        ({"tags": ["ok", "two  spaces"]}, ["body", "tags", "1"]),
        ({"tags": [" padded"]}, ["body", "tags", "0"]),
        ({"tags": ["semi;colon"]}, ["body", "tags", "0"]),
        ({"tags": "covid"}, ["body", "tags"]),
    ],
)
def test_bad_names_and_tags_are_refused(
    client: TestClient, fields: dict[str, object], location: list[object]
) -> None:
    dataset = str(upload_tiny(client)["id"])
    error = assert_error_shape(client.post("/v1/jobs", json=tiny_job(dataset, **fields)), 422)
    assert location in [e["loc"] for e in error["details"]["errors"]], error  # type: ignore[index]


def test_bad_filters_are_refused(client: TestClient) -> None:
    assert_error_shape(client.get("/v1/jobs", params={"name": "x" * 201}), 422)
    assert_error_shape(client.get("/v1/jobs", params={"tag": "bad;tag"}), 422)
    assert_error_shape(client.get("/v1/jobs", params={"tag": [f"t{i}" for i in range(21)]}), 422)


def test_deleting_the_data_set_removes_the_tags(client: TestClient, database: Database) -> None:
    from sqlalchemy import text

    dataset = str(upload_tiny(client)["id"])
    job = _submit(client, dataset, tags=["a", "b"])
    client.post(f"/v1/jobs/{job['id']}/cancel")
    assert client.delete(f"/v1/datasets/{dataset}").status_code == 204
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM job_tags")).scalar_one() == 0
