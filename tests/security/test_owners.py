"""Owners and API keys, on SQLite and PostgreSQL: every route but health, version and the docs needs a key;
keys are stored hashed; another owner's data sets, jobs, trials and recommendations answer 404, never 403,
and cannot be changed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from app.db import Database, upgrade_schema
from app.owners.keys import hash_key
from app.owners.models import ApiKeyRecord
from app.owners.service import revoke
from app.settings import Settings
from tests.service.conftest import assert_error_shape, bearer, create_api_key, row_counts, stored_files, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny
from tests.service.test_migrations import HEAD
from tests.service.test_queue import FakeExecutor

PROTECTED = [
    ("GET", "/v1/datasets"),
    ("POST", "/v1/datasets"),
    ("POST", "/v1/datasets/builtin"),
    ("GET", "/v1/datasets/some-id"),
    ("DELETE", "/v1/datasets/some-id"),
    ("GET", "/v1/jobs"),
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs/some-id"),
    ("GET", "/v1/jobs/some-id/trials"),
    ("GET", "/v1/jobs/some-id/recommendation"),
    ("GET", "/v1/jobs/some-id/result"),
    ("GET", "/v1/jobs/some-id/model"),
    ("GET", "/v1/jobs/some-id/report"),
    ("POST", "/v1/jobs/some-id/cancel"),
]


def _anonymous(client: TestClient) -> TestClient:
    client.headers.pop("Authorization", None)
    return client


def test_every_route_needs_a_valid_key(client: TestClient, settings: Settings) -> None:
    key = client.headers["Authorization"]
    anonymous = _anonymous(client)
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer dpt_000000000000_not-a-real-key"},
        {"Authorization": "Bearer x" * 500},
    ):
        for method, path in PROTECTED:
            response = anonymous.request(method, path, headers=headers)
            error = assert_error_shape(response, 401)
            assert error["code"] == "unauthorized", (method, path, headers)
            assert response.headers["www-authenticate"].startswith("Bearer")
    # Open to all: health, version, the schema and the docs.
    for path in ("/v1/health", "/v1/version", "/openapi.json", "/docs"):
        assert anonymous.get(path).status_code == 200, path
    assert anonymous.get("/v1/datasets", headers={"Authorization": key}).status_code == 200


def test_keys_are_stored_hashed_and_revocable(client: TestClient, settings: Settings, database: Database) -> None:
    key = create_api_key(settings, owner="carol")
    with database.reading() as session:
        record = session.scalars(select(ApiKeyRecord).where(ApiKeyRecord.key_hash == hash_key(key))).one()
        stored = session.execute(text("SELECT id, owner_id, key_hash FROM api_keys")).all()
    assert all(key not in " ".join(map(str, row)) for row in stored)
    assert record.key_hash == hash_key(key) and len(record.key_hash) == 64
    assert client.get("/v1/datasets", headers=bearer(key)).status_code == 200
    with database.transaction() as session:
        assert revoke(session, record.id)
    assert_error_shape(client.get("/v1/datasets", headers=bearer(key)), 401)


def test_another_owner_sees_nothing_and_changes_nothing(
    client: TestClient, settings: Settings, database: Database
) -> None:
    alice = client  # TEST_OWNER
    dataset = upload_tiny(alice)
    dataset_id = str(dataset["id"])
    finished = alice.post("/v1/jobs", json=tiny_job(dataset_id, search={"method": "random", "trials": 2})).json()
    run_worker_until_done(alice, settings, finished["id"], executor=FakeExecutor())
    queued = alice.post("/v1/jobs", json=tiny_job(dataset_id)).json()
    before = row_counts(database)
    files = stored_files(settings)

    bob = bearer(create_api_key(settings, owner="bob"))
    # Listings: nothing of alice's.
    assert client.get("/v1/datasets", headers=bob).json()["total"] == 0
    assert client.get("/v1/jobs", headers=bob).json()["total"] == 0
    assert client.get("/v1/jobs", params={"dataset_id": dataset_id}, headers=bob).json()["total"] == 0
    # Every id of alice's answers 404 (the same as an id that does not exist), never 403.
    for method, path, code in [
        ("GET", f"/v1/datasets/{dataset_id}", "dataset_not_found"),
        ("DELETE", f"/v1/datasets/{dataset_id}", "dataset_not_found"),
        ("GET", f"/v1/jobs/{finished['id']}", "job_not_found"),
        ("GET", f"/v1/jobs/{finished['id']}/trials", "job_not_found"),
        ("GET", f"/v1/jobs/{finished['id']}/recommendation", "job_not_found"),
        ("GET", f"/v1/jobs/{finished['id']}/result", "job_not_found"),
        ("GET", f"/v1/jobs/{finished['id']}/model", "job_not_found"),
        ("POST", f"/v1/jobs/{queued['id']}/cancel", "job_not_found"),
    ]:
        response = client.request(method, path, headers=bob)
        assert assert_error_shape(response, 404)["code"] == code, (method, path)
        unknown = client.request(
            method,
            path.replace(dataset_id, "0" * 36).replace(finished["id"], "0" * 36).replace(queued["id"], "0" * 36),
            headers=bob,
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == code
    # A job on alice's data set: 404 too, and nothing queued.
    assert (
        assert_error_shape(client.post("/v1/jobs", json=tiny_job(dataset_id), headers=bob), 404)["code"]
        == "dataset_not_found"
    )
    # Nothing changed: alice's job still queued, her data set, jobs and file all there.
    assert row_counts(database) == before and stored_files(settings) == files
    assert alice.get(f"/v1/jobs/{queued['id']}").json()["status"] == "queued"
    assert alice.get(f"/v1/jobs/{finished['id']}/recommendation").status_code == 200
    assert alice.get("/v1/datasets").json()["total"] == 1

    # Bob's own data set is his alone, and listings split by owner.
    bobs = client.post("/v1/datasets/builtin", json={"name": "synthea-covid"}, headers=bob).json()
    assert [d["id"] for d in client.get("/v1/datasets", headers=bob).json()["items"]] == [bobs["id"]]
    assert [d["id"] for d in alice.get("/v1/datasets").json()["items"]] == [dataset_id]
    assert_error_shape(alice.get(f"/v1/datasets/{bobs['id']}"), 404)


def test_two_keys_of_one_owner_share_its_data(client: TestClient, settings: Settings) -> None:
    dataset = upload_tiny(client)
    second = bearer(create_api_key(settings))  # TEST_OWNER again
    assert client.get(f"/v1/datasets/{dataset['id']}", headers=second).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_from_0001_gives_old_rows_to_the_local_owner(
    backend: str, tmp_path: object, request: pytest.FixtureRequest
) -> None:
    """An installation from before owners: its data sets and jobs belong to 'local', whose key `dptune serve`
    makes on localhost, so nothing is lost from view."""
    from tests.service.conftest import _pg_admin_connect
    from tests.service.helpers import upgrade_to

    cleanup = None
    if backend == "sqlite":
        settings = Settings(data_dir=tmp_path / "data")  # type: ignore[operator]
    else:
        request.getfixturevalue("postgres_url")  # skips when PostgreSQL is not there
        admin, user = _pg_admin_connect()
        name = "dptune_test_upgrade_0001"
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
        settings = Settings(
            database_url=f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}", data_dir=tmp_path / "data"
        )  # type: ignore[operator]

        def cleanup() -> None:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
            admin.close()  # type: ignore[attr-defined]

    database = Database(settings)
    try:
        upgrade_to(database, "0001")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO datasets (id, name, source, file_format, storage_key, size_bytes, sha256, label, rows, "
                    "columns, class_counts, created_at) VALUES ('old', 'old', 'upload', 'csv', 'datasets/old.csv', 1, "
                    "'x', 'y', 1, '[]', '{}', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO jobs (id, dataset_id, status, split, model, search, tradeoff, seed, budget, parallelism, "
                    "trials_version, baseline_attempts, created_at) VALUES ('oldjob', 'old', 'succeeded', '{}', '{}', "
                    "'{}', 0.5, 0, 1, 1, 0, 0, '2026-01-01 00:00:00')"
                )
            )
        assert upgrade_schema(database) == HEAD
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT owner_id FROM datasets")).scalar_one() == "local"
            assert connection.execute(text("SELECT owner_id FROM jobs")).scalar_one() == "local"
            assert connection.execute(text("SELECT name FROM owners")).scalar_one() == "local"
    finally:
        database.dispose()
        if cleanup is not None:
            cleanup()
