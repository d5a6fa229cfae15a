"""Every malformed data set and job spec of the corpus (cases.py) gets its 4xx, in the one error shape, and
leaves nothing behind: no row in any table, no file in the data folder (temp files included), on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.corpus.cases import DATASETS, JOBS, JOBS_CASES, UPLOADS
from tests.service.conftest import assert_error_shape, row_counts, stored_files
from tests.service.helpers import upload_tiny

CONTENT_TYPES = {".csv": "text/csv", ".parquet": "application/octet-stream"}


def test_the_corpus_is_big_enough_and_complete() -> None:
    assert len(UPLOADS) + len(JOBS_CASES) >= 30
    assert {c.file for c in UPLOADS} == {p.name for p in DATASETS.iterdir()}, "a file without a case, or the reverse"
    assert {c.file for c in JOBS_CASES} == {p.name for p in JOBS.iterdir()}


def test_malformed_data_sets(client: TestClient, settings: Settings, database: Database) -> None:
    failures = []
    for case in UPLOADS:
        content_type = CONTENT_TYPES.get(Path(case.file).suffix, "application/octet-stream")
        response = client.post(
            "/v1/datasets", files={"file": (case.file, case.content(), content_type)}, data=case.fields
        )
        try:
            error = assert_error_shape(response, case.status)
            assert error["code"] == case.code, error
            assert response.headers["x-request-id"]
            assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": 0}
            assert stored_files(settings) == []
        except AssertionError as exc:
            failures.append(f"{case.file} ({case.why}): {exc}")
    assert not failures, "\n".join(failures)


def test_malformed_job_specs(client: TestClient, settings: Settings, database: Database) -> None:
    dataset_id = str(upload_tiny(client)["id"])
    files = stored_files(settings)
    failures = []
    for case in JOBS_CASES:
        response = client.post(
            "/v1/jobs", content=case.content(dataset_id), headers={"content-type": case.content_type}
        )
        try:
            error = assert_error_shape(response, case.status)
            assert error["code"] == case.code, error
            assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": 1}
            assert stored_files(settings) == files
        except AssertionError as exc:
            failures.append(f"{case.file} ({case.why}): {exc}")
    assert not failures, "\n".join(failures)
