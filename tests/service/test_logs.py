"""Logs are JSON lines with the request id, and never contain data values: a data set with distinctive values
is uploaded, trained on (the real engine, one trial) and rejected in several ways at DEBUG level, and no log
line carries any of those values. Every response has an X-Request-ID header."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.logs import configure_logging
from app.main import create_app
from app.settings import Settings
from tests.service.conftest import bearer, create_api_key, tiny_frame, tiny_job
from tests.service.helpers import run_worker_until_done

SECRET_TEXT = "QX-SECRET-PATIENT-4711"
SECRET_NUMBER = "987654.321"
SECRETS = (SECRET_TEXT, SECRET_NUMBER, "987654")


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """dptune's own log set-up, at DEBUG, into a buffer; pytest's handlers are put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer, fmt="json")
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        logging.captureWarnings(False)


def _csv_with_secrets() -> bytes:
    frame = tiny_frame()
    frame["note"] = ["plain"] * (len(frame) - 1) + [SECRET_TEXT]  # a categorical feature with one distinctive value
    frame.loc[7, "income"] = float(SECRET_NUMBER)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_logs_are_json_with_request_ids_and_no_data_values(settings: Settings, log_lines: io.StringIO) -> None:
    app = create_app(settings)

    @app.get("/v1/boom")
    def boom() -> None:
        value = SECRET_TEXT
        raise RuntimeError(f"failed on {value}")  # the message quotes data; the log must not

    request_ids: list[str] = []
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers.update(bearer(create_api_key(settings)))

        def call(method: str, path: str, **kwargs: object) -> object:
            response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
            request_ids.append(response.headers["x-request-id"])
            return response

        good = call(
            "POST",
            "/v1/datasets",
            files={"file": ("patients.csv", _csv_with_secrets(), "text/csv")},
            data={"label": "outcome"},
        )
        assert good.status_code == 201, good.text  # type: ignore[attr-defined]
        dataset_id = good.json()["id"]  # type: ignore[attr-defined]
        # Rejections whose causes are the secret values: the messages name columns and rows, not values.
        numeric = tiny_frame(100)
        numeric["income"] = numeric["income"].astype(object)
        numeric.loc[3, "income"] = SECRET_TEXT
        bad = call(
            "POST",
            "/v1/datasets",
            files={"file": ("bad.csv", numeric.to_csv(index=False).encode(), "text/csv")},
            data={"label": "outcome"},
        )
        assert bad.status_code == 422 and SECRET_TEXT not in bad.text  # type: ignore[attr-defined]
        call(
            "POST",
            "/v1/datasets",
            files={"file": ("p.csv", _csv_with_secrets(), "text/csv")},
            data={"label": SECRET_TEXT},
        )
        call("POST", "/v1/jobs", json=tiny_job(dataset_id, split={"kind": "kmeans", "columns": [SECRET_TEXT]}))
        assert call("GET", "/v1/boom").status_code == 500  # type: ignore[attr-defined]
        # A real job: the engine prepares the data and trains one trial, logging as it goes.
        job = call("POST", "/v1/jobs", json=tiny_job(dataset_id, trials=1)).json()  # type: ignore[attr-defined]
        run_worker_until_done(client, settings, job["id"])
        assert call("GET", f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"  # type: ignore[attr-defined]
        # A client's own request id is kept; a malformed one is replaced.
        assert (
            client.get("/v1/health", headers={"X-Request-ID": "client-id-42"}).headers["x-request-id"]
            == "client-id-42"
        )
        replaced = client.get("/v1/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
        assert replaced != "bad id\twith spaces" and len(replaced) == 32
        request_ids += ["client-id-42", replaced]

    lines = [line for line in log_lines.getvalue().splitlines() if line.strip()]
    assert len(lines) > 20
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    for line in lines:
        for secret in SECRETS:
            assert secret not in line, line
    assert all({"ts", "level", "logger", "pid", "msg"} <= set(entry) for entry in entries)
    access = [e for e in entries if e["logger"] == "dptune.access"]
    assert {e["request_id"] for e in access} >= set(request_ids)
    assert all("duration_ms" in e and "status" in e for e in access)
    failures = [e for e in entries if e["msg"].startswith("unhandled RuntimeError")]
    assert failures and failures[0]["exc_type"] == "RuntimeError" and "boom" in failures[0]["stack"]
    assert any(e["logger"] == "dptune.worker" and "done in" in e["msg"] for e in entries)
    assert any(e.get("owner_id") for e in access)
