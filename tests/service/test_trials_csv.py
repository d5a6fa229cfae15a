"""GET /v1/jobs/{id}/trials as CSV (Accept: text/csv or ?format=csv) on SQLite and PostgreSQL: parsed back with
the csv module, the rows and values equal the JSON trials; and the flattening rules of app.tuning.trials_csv."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from fastapi.testclient import TestClient

from app.jobs.router import preferred_format
from app.settings import Settings
from app.tuning.trials_csv import trial_rows, trials_csv
from tests.service.conftest import assert_error_shape, tiny_job
from tests.service.helpers import make_measurement, run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """The JSON trial as the CSV's columns should hold it (written independently of the module under test)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else key))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}


def same(cell: str, value: Any) -> bool:
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, (int, float)):
        return float(cell) == float(value)
    return cell == str(value)


def test_trials_as_csv_by_header_and_by_query(client: TestClient, settings: Settings) -> None:
    dataset = upload_tiny(client)
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]), trials=4)).json()
    run_worker_until_done(client, settings, job["id"], executor=FakeExecutor(fail_trials={2: RuntimeError("x")}))
    trials = client.get(f"/v1/jobs/{job['id']}/trials", params={"limit": 500}).json()["items"]
    assert [t["index"] for t in trials] == [0, 1, 3]  # succeeded trials only, as in the JSON

    by_header = client.get(f"/v1/jobs/{job['id']}/trials", headers={"Accept": "text/csv"})
    by_query = client.get(f"/v1/jobs/{job['id']}/trials", params={"format": "csv", "limit": 1})  # no pages
    for response in (by_header, by_query):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == f'attachment; filename="dptune-trials-{job["id"]}.csv"'
    assert by_header.text == by_query.text

    reader = csv.DictReader(io.StringIO(by_header.text))
    rows = list(reader)
    assert len(rows) == len(trials) == 3
    expected = [flatten(trial) for trial in trials]
    assert reader.fieldnames == list(expected[0])  # every field, in the model's order
    assert {
        "index",
        "attempts",
        "started_at",
        "games.membership.attacks.rmia.auc.value",
        "repeat_values.0.utility_test",
    } <= set(reader.fieldnames or [])
    for row, values in zip(rows, expected, strict=True):
        mismatched = {name: (row[name], value) for name, value in values.items() if not same(row[name], value)}
        assert not mismatched, mismatched

    # ?format=json wins over the header; an unknown format is refused.
    assert (
        client.get(f"/v1/jobs/{job['id']}/trials", params={"format": "json"}, headers={"Accept": "text/csv"}).json()[
            "total"
        ]
        == 3
    )
    assert_error_shape(client.get(f"/v1/jobs/{job['id']}/trials", params={"format": "xlsx"}), 422)
    assert_error_shape(client.get("/v1/jobs/no-such-job/trials", params={"format": "csv"}), 404)


def test_a_job_without_trials_gives_an_empty_csv(client: TestClient) -> None:
    dataset = upload_tiny(client)
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]))).json()
    response = client.get(f"/v1/jobs/{job['id']}/trials", params={"format": "csv"})
    assert response.status_code == 200 and response.text == "\n"


def test_accept_header_preference() -> None:
    assert preferred_format("text/csv") == "csv"
    assert preferred_format("application/json, text/csv") == "json"
    assert preferred_format("text/csv, application/json") == "csv"
    assert preferred_format("application/json;q=0.5, text/csv") == "csv"
    assert preferred_format("text/csv;q=0") == "json"
    assert preferred_format("text/html,*/*;q=0.8") == "json"
    assert preferred_format("") == "json"


def test_flattening_rules() -> None:
    """Nested objects and lists become dotted columns; a field null in one trial and an object in another keeps
    the object's columns; null and NaN are empty cells."""
    first = make_measurement(1.0, 0.5, utility_external=float("nan"))
    second = make_measurement(2.0, 1.0).model_copy(update={"repeat_values": [], "utility_test_interval": None})
    columns, rows = trial_rows([first, second])
    assert rows[0]["utility_external"] == "" and rows[0]["clip"] == "1.0"
    assert "utility_test_interval.low" in columns and "utility_test_interval" not in columns
    assert "utility_test_interval.low" not in rows[1]
    assert columns.index("utility_test_interval.value") < columns.index("clip")  # the model's order
    assert "repeat_values.0.attack_accuracy" in rows[0] and "repeat_values.0.attack_accuracy" not in rows[1]
    parsed = list(csv.DictReader(io.StringIO(trials_csv([first, second]))))
    assert parsed[1]["repeat_values.0.attack_accuracy"] == ""  # a column a row lacks is an empty cell
    assert parsed[1]["utility_test_interval.low"] == ""
    assert math.isclose(float(parsed[1]["clip"]), 2.0)
