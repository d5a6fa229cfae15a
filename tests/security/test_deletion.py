"""DELETE /v1/datasets/{id} leaves nothing derived from the data set, on SQLite and PostgreSQL: no file in the
data folder, no prepared feature matrix in a worker's memory, no row in any table that names it, its jobs,
their trials or recommendation; on SQLite not even the deleted bytes (secure_delete)."""

from __future__ import annotations

import io

from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from app.blobs import blob_store
from app.db import Database
from app.jobs.final_models import publish_model
from app.jobs.queue import WorkUnit
from app.settings import Settings
from tests.service.conftest import model_files, row_counts, stored_files, tiny_csv_bytes, tiny_frame, tiny_job
from tests.service.helpers import upload_tiny
from tests.service.test_queue import FakeExecutor
from workers.executor import (
    BaselineOutcome,
    ConfirmOutcome,
    EngineExecutor,
    FinalOutcome,
    PreparedCache,
    TrialOutcome,
)
from workers.worker import Worker

MARKER_COLUMN = "zx_marker_column"
MARKER_CLASSES = ("zq_survived", "zq_deceased")


class PreparingExecutor(EngineExecutor):
    """The real preparation and its per-process cache (read the stored file, split, encode), with the fake
    engine's instant results instead of training."""

    def __init__(self, settings: Settings) -> None:  # no TensorFlow set-up: nothing is trained
        self.settings = settings
        self.database = Database(settings)
        self.blobs = blob_store(settings)
        self.cache = PreparedCache(settings.prepared_cache_size)
        self.fake = FakeExecutor()
        self.peak_cache = 0

    def _prepare(self, unit: WorkUnit) -> None:
        data, _ = self.prepared(unit)
        assert data.x_members.shape[0] > 0
        self.peak_cache = max(self.peak_cache, len(self.cache))

    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome:
        self._prepare(unit)
        return self.fake.run_baseline(unit)

    def run_trial(self, unit: WorkUnit) -> TrialOutcome:
        self._prepare(unit)
        return self.fake.run_trial(unit)

    def run_confirm(self, unit: WorkUnit) -> ConfirmOutcome:
        self._prepare(unit)
        return self.fake.run_confirm(unit)

    def run_final(self, unit: WorkUnit) -> FinalOutcome:
        """The fake statement, and a model folder written as the real one is (temp folder, then renamed)."""
        self._prepare(unit)
        outcome = self.fake.run_final(unit)
        publish_model(
            self.database,
            unit.job_id,
            lambda folder: (
                folder.mkdir(),
                (folder / "model.keras").write_bytes(b"weights of " + MARKER_COLUMN.encode()),
            ),
        )
        return outcome


def _marked_csv() -> bytes:
    frame = tiny_frame(200).rename(columns={"region": MARKER_COLUMN})
    frame["outcome"] = [MARKER_CLASSES[v] for v in frame["outcome"]]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def _rows_mentioning(database: Database, needles: list[str]) -> list[str]:
    """Every row of every table, as text, that contains one of `needles`."""
    found = []
    with database.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                line = " ".join(str(value) for value in row)
                found.extend(f"{table}: {needle}" for needle in needles if needle in line)
    return found


def test_delete_leaves_nothing_derived(client: TestClient, settings: Settings, database: Database) -> None:
    upload = client.post(
        "/v1/datasets", files={"file": ("marked.csv", _marked_csv(), "text/csv")}, data={"label": "outcome"}
    )
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["id"]
    jobs = [
        client.post("/v1/jobs", json=tiny_job(dataset_id, search={"method": "random", "trials": 2})).json()["id"]
        for _ in range(2)
    ]
    executor = PreparingExecutor(settings)
    worker = Worker(Database(settings), settings, executor, worker_id="deletion-test")
    try:
        while any(client.get(f"/v1/jobs/{j}").json()["status"] in ("queued", "running") for j in jobs):
            assert worker.run_one()
        assert executor.peak_cache == 1  # the prepared feature matrix was cached while the jobs ran
        assert all(model_files(settings, job_id) for job_id in jobs)  # the final models
        assert client.get(f"/v1/jobs/{jobs[0]}/recommendation").status_code == 200
        needles = [dataset_id, *jobs, MARKER_COLUMN, *MARKER_CLASSES]
        assert _rows_mentioning(database, needles)  # the search finds what is there ...

        response = client.delete(f"/v1/datasets/{dataset_id}")
        assert response.status_code == 204, response.text
        assert not worker.run_one()  # the worker's next look for work drops what no active job needs
        assert len(executor.cache) == 0
    finally:
        worker.database.dispose()

    # ... and after the delete, nothing: no row, no file (the final models neither), no cached matrix.
    assert _rows_mentioning(database, needles) == []
    assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": 0}
    assert stored_files(settings) == []
    for job_id in jobs:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404

    if database.is_sqlite:
        # secure_delete overwrites deleted rows; after a checkpoint the write-ahead log holds nothing either.
        with database.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        files = [
            settings.data_dir / name for name in ("dptune.db", "dptune.db-wal") if (settings.data_dir / name).exists()
        ]
        raw = b"".join(path.read_bytes() for path in files)
        for needle in needles:
            assert needle.encode() not in raw, needle


def test_deleting_a_proxy_removes_the_jobs_tuned_on_it(
    client: TestClient, settings: Settings, database: Database
) -> None:
    """A job tuned on a proxy is derived from it too: deleting the proxy removes the job and its final model,
    and leaves the private data set."""
    private = upload_tiny(client)
    proxy = client.post(
        "/v1/datasets",
        files={"file": ("proxy.csv", tiny_csv_bytes(400, seed=1), "text/csv")},
        data={"label": "outcome"},
    ).json()
    job = client.post(
        "/v1/jobs",
        json=tiny_job(str(private["id"]), tune_dataset_id=proxy["id"], search={"method": "random", "trials": 2}),
    ).json()
    in_use = client.delete(f"/v1/datasets/{proxy['id']}")  # a queued job reads it
    assert in_use.status_code == 409 and in_use.json()["error"]["details"]["jobs"] == [job["id"]]
    worker = Worker(Database(settings), settings, PreparingExecutor(settings), worker_id="proxy-deletion")
    try:
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
            assert worker.run_one()
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
        assert model_files(settings, job["id"])
        response = client.delete(f"/v1/datasets/{proxy['id']}")
        assert response.status_code == 204, response.text
        assert not worker.run_one()  # its next look for work drops the proxy's cached copy (database store)
    finally:
        worker.database.dispose()
    assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": 1}
    # The private data set's file, and on the database store the worker's copy of it, cached by its sha256.
    cached = [f"cache/datasets/{private['sha256']}"] if settings.stores_files_in_database else []
    assert stored_files(settings) == sorted([*cached, f"datasets/{private['id']}.csv"])
