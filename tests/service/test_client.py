"""app.client against the running app (starlette's TestClient is an httpx.Client, injected), on SQLite and
PostgreSQL: upload, submit, wait with progress while a worker runs in a thread, recommendation, result, trials
and their CSV, model, report; and every error as one DptuneError with the server's code."""

from __future__ import annotations

import csv
import io
import threading
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.client import Client, DptuneError
from app.db import Database
from app.jobs.final_models import publish_model
from app.settings import Settings
from app.tuning.final_model import MODEL_FILE, STATEMENT_FILE
from tests.service.conftest import TINY_MODEL, create_api_key, tiny_csv_bytes
from tests.service.test_queue import FakeExecutor
from workers.worker import Worker


def _job_fields() -> dict[str, object]:
    return {
        "split": {"kind": "random"},
        "model": dict(TINY_MODEL),
        "seed": 0,
        "search": {"method": "bayes", "trials": 3, "initial_points": 2},
    }


def _run_worker_in_thread(settings: Settings, finished: threading.Event) -> threading.Thread:
    """A worker in its own thread until `finished` is set (the test's wait saw the job end)."""

    def run() -> None:
        database = Database(settings)
        try:
            Worker(database, settings, FakeExecutor(), worker_id="client-test").run(
                stop_when_idle=finished.is_set, max_units=50
            )
        finally:
            database.dispose()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_a_job_end_to_end_through_the_client(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    dptune = Client(api_key=create_api_key(settings, "client-owner"), http=client)
    table = tmp_path / "tiny.csv"
    table.write_bytes(tiny_csv_bytes())
    dataset = dptune.upload(table, label="outcome", name="from a path")
    assert (dataset["filename"], dataset["rows"], dataset["name"]) == ("tiny.csv", 400, "from a path")
    from_bytes = dptune.upload(tiny_csv_bytes(), label="outcome", filename="bytes.csv")
    assert from_bytes["filename"] == "bytes.csv" and from_bytes["sha256"] == dataset["sha256"]

    job = dptune.submit(dataset["id"], name="client job", tags=["client"], **_job_fields())
    assert job["status"] == "queued" and job["tags"] == ["client"]
    seen: list[dict[str, object]] = []
    finished = threading.Event()
    worker = _run_worker_in_thread(settings, finished)
    try:
        ended = dptune.wait(job["id"], timeout=60, poll_seconds=0.05, on_progress=seen.append)
    finally:
        finished.set()
        worker.join(timeout=30)
    assert ended["status"] == "succeeded", ended
    assert seen[-1] == ended and seen[0]["id"] == job["id"]
    done = [int(polled["progress"]["done"]) for polled in seen]  # type: ignore[index]
    assert done == sorted(done) and done[-1] == 3
    assert [j["id"] for j in dptune.jobs(tags=["client"])] == [job["id"]]

    recommendation = dptune.recommendation(job["id"])
    assert recommendation["job_id"] == job["id"] and recommendation["index"] in {0, 1, 2}
    assert dptune.recommendation(job["id"], tradeoff=1.0)["tradeoff"] == 1.0
    result = dptune.result(job["id"])
    assert result["recommendation"]["index"] == recommendation["index"]
    trials = dptune.trials(job["id"])
    assert [t["index"] for t in trials] == [0, 1, 2] == [t["index"] for t in result["trials"]]
    rows = list(csv.DictReader(io.StringIO(dptune.trials_csv(job["id"], tmp_path / "trials.csv"))))
    assert [int(row["index"]) for row in rows] == [0, 1, 2]
    assert (tmp_path / "trials.csv").read_text() == dptune.trials_csv(job["id"])

    # The fake executor trains no model: put its two files where a worker would, then download them.
    def write(folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(b"keras bytes")
        (folder / STATEMENT_FILE).write_text('{"epsilon": 1.0}')

    database = Database(settings)
    try:
        publish_model(database, job["id"], write)
    finally:
        database.dispose()
    saved = dptune.model(job["id"], tmp_path / "model.zip")
    with zipfile.ZipFile(saved) as archive:
        assert archive.read(MODEL_FILE) == b"keras bytes" and archive.read(STATEMENT_FILE) == b'{"epsilon": 1.0}'


def test_errors_carry_the_servers_code(client: TestClient, settings: Settings) -> None:
    dptune = Client(api_key=create_api_key(settings, "client-owner"), http=client)
    with pytest.raises(DptuneError) as missing:
        dptune.job("no-such-job")
    assert (missing.value.status, missing.value.code) == (404, "job_not_found")
    dataset = dptune.upload(tiny_csv_bytes(), label="outcome")
    with pytest.raises(DptuneError) as invalid:
        dptune.submit(dataset["id"], tradeoff=2)
    assert invalid.value.status == 422 and "tradeoff" in invalid.value.message
    job = dptune.submit(dataset["id"], **_job_fields())
    with pytest.raises(DptuneError) as early:
        dptune.recommendation(job["id"])
    assert (early.value.code, early.value.details["status"]) == ("job_not_finished", "queued")
    with pytest.raises(DptuneError) as timed_out:
        dptune.wait(job["id"], timeout=0.2, poll_seconds=0.05)
    assert (timed_out.value.status, timed_out.value.code) == (None, "wait_timeout")
    with pytest.raises(DptuneError) as bad_label:
        dptune.upload(tiny_csv_bytes(), label="no_such_column")
    assert bad_label.value.status == 422 and bad_label.value.code == "missing_label"
    # Another owner's key sees none of it; a wrong key is refused.
    other = Client(api_key=create_api_key(settings, "someone-else"), http=client)
    with pytest.raises(DptuneError) as hidden:
        other.job(job["id"])
    assert hidden.value.status == 404
    with pytest.raises(DptuneError) as refused:
        Client(api_key="wrong", http=client).job(job["id"])
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")


@pytest.mark.slow
def test_report_through_the_client(client: TestClient, settings: Settings) -> None:
    dptune = Client(api_key=create_api_key(settings, "client-owner"), http=client)
    dataset = dptune.upload(tiny_csv_bytes(), label="outcome")
    job = dptune.submit(dataset["id"], **_job_fields())
    finished = threading.Event()
    worker = _run_worker_in_thread(settings, finished)
    try:
        assert dptune.wait(job["id"], timeout=60, poll_seconds=0.05)["status"] == "succeeded"
    finally:
        finished.set()
        worker.join(timeout=30)
    html = dptune.report(job["id"])
    assert html.lstrip().lower().startswith("<!doctype html") and job["id"] in html


def test_no_server_is_one_error() -> None:
    with Client("http://127.0.0.1:9", api_key="k", timeout=2) as dptune, pytest.raises(DptuneError) as error:
        dptune.job("x")
    assert error.value.status is None and error.value.code == "connection_error"
    assert isinstance(error.value.__cause__, httpx.HTTPError)
