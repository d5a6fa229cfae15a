"""Bad requests get a 4xx in the one error shape and leave no row and no file behind, on both backends."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.blobs import blob_store
from app.db import Database
from app.settings import Settings
from tests.service.conftest import (
    assert_error_shape,
    bearer,
    create_api_key,
    row_counts,
    stored_files,
    tiny_csv_bytes,
    tiny_frame,
    tiny_job,
)
from tests.service.helpers import upload_tiny


def _parquet_bytes() -> bytes:
    buffer = io.BytesIO()
    tiny_frame(50).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _nothing_written(database: Database, settings: Settings, datasets: int = 0) -> None:
    assert row_counts(database) == {"recommendations": 0, "trials": 0, "jobs": 0, "datasets": datasets}
    files = stored_files(settings)
    assert len(files) == datasets and all(f.startswith("datasets/") for f in files), files


UPLOADS = {
    "unsupported file type": (
        ("data.xlsx", b"age,outcome\n1,0\n2,1\n", "application/octet-stream"),
        {"label": "outcome"},
        415,
        "unsupported_file_type",
    ),
    "no extension": (("data", tiny_csv_bytes(), "text/csv"), {"label": "outcome"}, 415, "unsupported_file_type"),
    "corrupted parquet": (
        ("data.parquet", _parquet_bytes()[:-40] + b"\x00" * 40, "application/octet-stream"),
        {"label": "outcome"},
        422,
        "unreadable_file",
    ),
    "parquet that is text": (
        ("data.parquet", b"age,outcome\n1,0\n", "application/octet-stream"),
        {"label": "outcome"},
        422,
        "unreadable_file",
    ),
    "empty file": (("data.csv", b"", "text/csv"), {"label": "outcome"}, 422, "empty_table"),
    "header only": (("data.csv", b"age,outcome\n", "text/csv"), {"label": "outcome"}, 422, "empty_table"),
    "missing label field": (("data.csv", tiny_csv_bytes(), "text/csv"), {}, 422, "validation_error"),
    "label not in table": (("data.csv", tiny_csv_bytes(), "text/csv"), {"label": "died"}, 422, "missing_label"),
    "single class": (
        ("data.csv", b"age,outcome\n1,0\n2,0\n3,0\n", "text/csv"),
        {"label": "outcome"},
        422,
        "single_class",
    ),
    "binary garbage": (("data.csv", bytes(range(256)) * 8, "text/csv"), {"label": "outcome"}, 422, "unreadable_file"),
}


@pytest.mark.parametrize("case", list(UPLOADS))
def test_bad_upload(case: str, client: TestClient, settings: Settings, database: Database) -> None:
    file, fields, status, code = UPLOADS[case]
    response = client.post("/v1/datasets", files={"file": file}, data=fields)
    error = assert_error_shape(response, status)
    assert error["code"] == code
    _nothing_written(database, settings)


def test_upload_without_a_file(client: TestClient, settings: Settings, database: Database) -> None:
    response = client.post(
        "/v1/datasets", files={"other": ("x.txt", b"hello", "text/plain")}, data={"label": "outcome"}
    )
    assert_error_shape(response, 422)
    response = client.post("/v1/datasets", data={"label": "outcome"})  # not even multipart
    assert_error_shape(response, 415)
    response = client.post("/v1/datasets", json={"label": "outcome"})
    assert_error_shape(response, 415)
    _nothing_written(database, settings)


def test_upload_over_the_cap_is_413(client: TestClient, settings: Settings, database: Database) -> None:
    just_over = tiny_csv_bytes(rows=41_500)  # a little over the tests' 1 MB cap: cut while streaming
    far_over = tiny_csv_bytes(rows=60_000)  # refused from its Content-Length, unread
    assert settings.max_upload_bytes < len(just_over) < settings.max_upload_bytes + 64 * 1024 < len(far_over)
    for big in (just_over, far_over):
        response = client.post(
            "/v1/datasets", files={"file": ("big.csv", big, "text/csv")}, data={"label": "outcome"}
        )
        error = assert_error_shape(response, 413)
        assert error["code"] == "upload_too_large" and error["details"]["max_bytes"] == settings.max_upload_bytes
    _nothing_written(database, settings)


def test_upload_over_the_cap_without_content_length(
    client: TestClient, settings: Settings, database: Database
) -> None:
    """A chunked body has no Content-Length: the stream is cut at the cap."""
    boundary = "dptuneboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="label"\r\n\r\noutcome\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    body = head + tiny_csv_bytes(rows=60_000) + f"\r\n--{boundary}--\r\n".encode()

    def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = client.post(
        "/v1/datasets", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert_error_shape(response, 413)
    _nothing_written(database, settings)


def test_builtin_unknown_name(client: TestClient, settings: Settings, database: Database) -> None:
    error = assert_error_shape(client.post("/v1/datasets/builtin", json={"name": "nope"}), 422)
    assert "synthea-covid" in error["details"]["available"]
    assert_error_shape(client.post("/v1/datasets/builtin", json={"name": "synthea-covid", "seed": -1}), 422)
    _nothing_written(database, settings)


def _job_cases(dataset_id: str) -> dict[str, tuple[object, int]]:
    def job(**changes: object) -> dict[str, object]:
        body = tiny_job(dataset_id)
        body.update(changes)
        return body

    without_id = job()
    del without_id["dataset_id"]
    return {
        "missing dataset_id": (without_id, 422),
        "unknown dataset id": (job(dataset_id="no-such-dataset"), 404),
        "dataset_id mistyped": (job(dataset_id=12), 422),
        "tradeoff above 1": (job(tradeoff=1.5), 422),
        "tradeoff below 0": (job(tradeoff=-0.1), 422),
        "tradeoff a string": (job(tradeoff="high"), 422),
        "max_clip 0": (job(search={"max_clip": 0}), 422),
        "max_clip negative": (job(search={"max_clip": -1}), 422),
        "trials 0": (job(search={"trials": 0}), 422),
        "trials mistyped": (job(search={"trials": "many"}), 422),
        "no budget": (job(search={"trials": None}), 422),
        "unknown search method": (job(search={"method": "genetic"}), 422),
        "grid too fine": (job(search={"method": "grid", "grid_step": 1e-6}), 422),
        "unknown field": (job(colour="blue"), 422),
        "unknown split kind": (job(split={"kind": "alphabetical"}), 422),
        "split column missing": (job(split={"kind": "kmeans", "columns": ["nope"]}), 422),
        "label as split column": (job(split={"kind": "column", "column": "outcome"}), 422),
        "butina without smiles": (job(split={"kind": "butina"}), 422),
        "model epochs 0": (job(model={"epochs": 0}), 422),
        "lambda layer": (
            job(
                model={
                    "keras_json": '{"class_name": "Sequential", "config": {"layers": '
                    '[{"class_name": "Lambda", "config": {}}]}}'
                }
            ),
            422,
        ),
        "delta 1": (job(delta=1.0), 422),
        "seed negative": (job(seed=-3), 422),
        "not an object": ([1, 2, 3], 422),
    }


def test_bad_jobs(client: TestClient, settings: Settings, database: Database) -> None:
    dataset_id = str(upload_tiny(client)["id"])
    for case, (body, status) in _job_cases(dataset_id).items():
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == status, (case, response.text)
        assert_error_shape(response, status)
    for raw in (
        b"{not json",
        b'{"dataset_id": "%s", "tradeoff": NaN}' % dataset_id.encode(),
        b'{"dataset_id": "%s", "delta": Infinity}' % dataset_id.encode(),
    ):
        response = client.post("/v1/jobs", content=raw, headers={"content-type": "application/json"})
        assert_error_shape(response, 422)
    _nothing_written(database, settings, datasets=1)


def test_unknown_routes_methods_and_ids(client: TestClient) -> None:
    assert assert_error_shape(client.get("/v1/nothing-here"), 404)["code"] == "not_found"
    assert assert_error_shape(client.put("/v1/jobs"), 405)["code"] == "method_not_allowed"
    assert assert_error_shape(client.get("/v1/jobs/nope"), 404)["code"] == "job_not_found"
    assert assert_error_shape(client.get("/v1/jobs/nope/trials"), 404)["code"] == "job_not_found"
    assert assert_error_shape(client.get("/v1/datasets/nope"), 404)["code"] == "dataset_not_found"
    assert assert_error_shape(client.delete("/v1/datasets/nope"), 404)["code"] == "dataset_not_found"
    assert assert_error_shape(client.post("/v1/jobs/nope/cancel"), 404)["code"] == "job_not_found"
    assert_error_shape(client.get("/v1/jobs", params={"status": "sleeping"}), 422)
    assert_error_shape(client.get("/v1/jobs", params={"limit": 0}), 422)


def test_server_errors_keep_the_shape_and_no_trace(settings: Settings) -> None:
    from app.main import create_app

    app = create_app(settings)

    @app.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret value 1234")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/v1/boom", headers=bearer(create_api_key(settings)))
    error = assert_error_shape(response, 500)
    assert error["code"] == "internal_error" and "1234" not in response.text
    assert response.headers["x-request-id"]


def test_parquet_upload_is_accepted(client: TestClient, settings: Settings) -> None:
    response = client.post(
        "/v1/datasets",
        files={"file": ("t.parquet", _parquet_bytes(), "application/octet-stream")},
        data={"label": "outcome"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["format"] == "parquet" and response.json()["rows"] == 50
    database = Database(settings)
    try:
        with database.reading() as session:  # the stored file, in the data folder or the database
            stored = blob_store(settings).read(session, f"datasets/{response.json()['id']}.parquet")
    finally:
        database.dispose()
    assert stored is not None and pd.read_parquet(io.BytesIO(stored)).shape == (50, 5)
