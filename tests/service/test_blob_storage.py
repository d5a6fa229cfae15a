"""Files in the database (the default on PostgreSQL): a worker with its own, empty data folder finishes a job
uploaded through the API, and deleting the data set removes its stored bytes and every worker's cached copy."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.blobs import CACHE_FOLDER, blob_store
from app.core.errors import DomainError
from app.datasets import repository as dataset_repository
from app.db import Database
from app.settings import Settings
from tests.service.conftest import model_files, stored_blob_keys, stored_files, tiny_job
from tests.service.helpers import upload_tiny
from tests.service.test_worker_processes import JOB_SECONDS, WorkerProcess, _wait_for

FAST = {"reference_models": 2, "audit_reference_models": 2, "allow_weak_baseline": True}


def _worker_settings(settings: Settings, folder: Path) -> Settings:
    """The API's settings with a data folder of the worker's own: nothing shared but the database."""
    return settings.model_copy(update={"data_dir": folder})


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_worker_with_its_own_data_folder_finishes_an_uploaded_job(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    assert settings.stores_files_in_database
    dataset = upload_tiny(client)
    assert stored_files(settings) == [f"datasets/{dataset['id']}.csv"]  # in the database only
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=2, **FAST)).json()

    worker_folder = tmp_path / "worker-data"
    worker = WorkerProcess("own-folder", _worker_settings(settings, worker_folder), tmp_path)
    try:
        worker.wait_started()
        _wait_for(
            lambda: client.get(f"/v1/jobs/{job['id']}").json()["status"] not in ("queued", "running"),
            JOB_SECONDS,
            f"the job did not finish:\n{worker.tail()}",
        )
    finally:
        worker.stop()
    polled = client.get(f"/v1/jobs/{job['id']}").json()
    assert polled["status"] == "succeeded", (polled, worker.tail())

    # The worker read the data set from its own cached copy, named by its sha256, and stored the model in
    # the database, from where the API serves it.
    files = [str(path.relative_to(worker_folder)) for path in worker_folder.rglob("*") if path.is_file()]
    assert files == [f"{CACHE_FOLDER}/{dataset['sha256']}"]
    assert model_files(settings, job["id"]) == [f"models/{job['id']}/model.keras", f"models/{job['id']}/privacy.json"]
    model = client.get(f"/v1/jobs/{job['id']}/model")
    assert model.status_code == 200, model.text
    with zipfile.ZipFile(io.BytesIO(model.content)) as archive:
        assert sorted(archive.namelist()) == ["model.keras", "privacy.json"]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_deletion_removes_the_blob_and_the_workers_cached_copy(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    first, second = upload_tiny(client), upload_tiny(client, rows=300)
    worker_settings = _worker_settings(settings, tmp_path / "worker-data")
    store = blob_store(worker_settings)
    database = Database(worker_settings)

    def existing(sha256s: set[str]) -> set[str]:
        with database.reading() as session:
            return dataset_repository.existing_sha256s(session, sha256s)

    try:
        with database.reading() as session:
            copies = [store.local_copy(session, f"datasets/{d['id']}.csv", str(d["sha256"])) for d in (first, second)]
        assert all(copy.is_file() for copy in copies)
        assert store.sweep_cache(existing) == 0  # both data sets exist: nothing dropped

        assert client.delete(f"/v1/datasets/{first['id']}").status_code == 204
        assert stored_blob_keys(settings) == [f"datasets/{second['id']}.csv"]  # the blob went with the row

        # A worker's next look for work sweeps its cache: the deleted data set's copy goes, the other stays.
        assert store.sweep_cache(existing) == 1
        assert not copies[0].exists() and copies[1].is_file()

        # A copy a sweep has not reached yet is never used: the database is asked first, and the copy dropped.
        assert client.delete(f"/v1/datasets/{second['id']}").status_code == 204
        with database.reading() as session, pytest.raises(DomainError) as refused:
            store.local_copy(session, f"datasets/{second['id']}.csv", str(second["sha256"]))
        assert refused.value.code == "stored_file_missing"
        assert not copies[1].exists()
        assert stored_files(worker_settings) == [] and stored_files(settings) == []
    finally:
        database.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_upgrading_copies_the_data_folders_files_into_the_database(new_database_settings: Settings) -> None:
    """A PostgreSQL service that kept its files in the data folder (before 0006) loses none: the upgrade
    copies them in, and the store then reads them from the database."""
    from sqlalchemy import text

    from app.db import upgrade_schema
    from tests.service.helpers import upgrade_to

    settings = new_database_settings
    database = Database(settings)
    try:
        upgrade_to(database, "0005")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO datasets (id, owner_id, name, source, file_format, storage_key, size_bytes, sha256, "
                    "label, rows, columns, class_counts, created_at) VALUES ('d', 'local', 'd', 'upload', 'csv', "
                    "'datasets/d.csv', 1, 'x', 'y', 1, '[\"a\", \"y\"]', '{}', '2026-01-01 00:00:00')"
                )
            )
        content = b"a,y\n" + b"1,0\n" * 3_000_000  # 12 MB: several chunks
        (settings.data_dir / "datasets").mkdir(parents=True)
        (settings.data_dir / "datasets" / "d.csv").write_bytes(content)
        upgrade_schema(database)
        with database.reading() as session:
            assert blob_store(settings).read(session, "datasets/d.csv") == content
    finally:
        database.dispose()
