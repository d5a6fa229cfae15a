"""The dashboard's pages over the services, on SQLite and PostgreSQL: the way in, data sets (upload, built-in,
delete), the new-job form with its validation errors, the job page and its progress, report and model."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from tests.dashboard.helpers import browser, csrf_of, sign_in
from tests.service.conftest import row_counts, stored_files, tiny_csv_bytes
from tests.service.helpers import run_worker_until_done
from tests.service.test_queue import FakeExecutor

EXTERNAL_URL = re.compile(r"""(src|href)=["']?(https?:)?//""", re.I)


def test_root_and_ui_lead_to_the_sign_in_form_then_to_the_jobs(client: TestClient) -> None:
    anonymous, key = browser(client)
    for entry in ("/", "/ui", "/ui/jobs", "/ui/datasets"):
        response = anonymous.get(entry)
        assert response.status_code == 200 and response.url.path == "/ui/sign-in", entry
    form = anonymous.get("/ui/sign-in").text
    assert re.search(r'<form method="post" action="/ui/sign-in"', form) and 'type="password" name="api_key"' in form
    assert not EXTERNAL_URL.search(form)
    css = anonymous.get("/ui/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")

    wrong = anonymous.post("/ui/sign-in", data={"api_key": "dpt_000000000000_nope", "csrf_token": csrf_of(form)})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert anonymous.get("/ui/jobs").url.path == "/ui/sign-in"
    sign_in(anonymous, key)
    landed = anonymous.get("/")
    assert landed.url.path == "/ui/jobs" and "No job yet" in landed.text
    assert key not in landed.text and "test-owner" in landed.text
    assert anonymous.get("/ui/sign-in").url.path == "/ui/jobs"  # signed in already
    # A hand-edited address or a form posted as a file upload: a page that says so, never a 500 or JSON.
    missing = anonymous.get("/ui/jobs/new")
    assert missing.status_code == 422 and "missing a parameter" in missing.text
    as_file = anonymous.post("/ui/sign-out", files={"csrf_token": ("t.txt", b"x", "text/plain")})
    assert as_file.status_code == 400 and as_file.headers["content-type"].startswith("text/html")


def test_upload_list_and_delete_a_data_set(client: TestClient, settings: Settings, database: Database) -> None:
    anonymous, key = browser(client)
    token = sign_in(anonymous, key)
    bad = anonymous.post(
        "/ui/datasets/upload",
        files={"file": ("t.csv", tiny_csv_bytes(), "text/csv")},
        data={"label": "no_such_column", "csrf_token": token},
    )
    assert bad.status_code == 422 and "no_such_column" in bad.text and "Traceback" not in bad.text
    wrong_type = anonymous.post(
        "/ui/datasets/upload",
        files={"file": ("t.txt", b"a,b\n1,2\n", "text/plain")},
        data={"label": "b", "csrf_token": token},
    )
    assert wrong_type.status_code == 415, wrong_type.text
    assert row_counts(database)["datasets"] == 0 and stored_files(settings) == ["dashboard-secret"]

    uploaded = anonymous.post(
        "/ui/datasets/upload",
        files={"file": ("t.csv", tiny_csv_bytes(), "text/csv")},
        data={"label": "outcome", "name": "ward <b>7</b>", "csrf_token": token},
    )
    assert uploaded.status_code == 200 and uploaded.url.path == "/ui/datasets"
    assert "ward &lt;b&gt;7&lt;/b&gt;" in uploaded.text and "<b>7</b>" not in uploaded.text  # escaped
    listed = client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).json()["items"]
    assert [d["name"] for d in listed] == ["ward <b>7</b>"] and listed[0]["rows"] == 400
    builtin = anonymous.post("/ui/datasets/builtin", data={"name": "synthea-covid", "csrf_token": token})
    assert builtin.status_code == 200 and "synthea-covid (seed 0)" in builtin.text
    unknown = anonymous.post("/ui/datasets/builtin", data={"name": "nope", "csrf_token": token})
    assert unknown.status_code == 422 and "no built-in data set" in unknown.text

    deleted = anonymous.post(f"/ui/datasets/{listed[0]['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 200 and listed[0]["id"] not in deleted.text
    assert row_counts(database)["datasets"] == 1 and f"datasets/{listed[0]['id']}.csv" not in stored_files(settings)


def _new_job(anonymous: TestClient, token: str, dataset_id: str, **fields: str) -> object:
    return anonymous.post(
        "/ui/jobs", data={"csrf_token": token, "dataset_id": dataset_id, **fields}, follow_redirects=False
    )


def test_the_job_form_shows_validation_errors_and_starts_a_job(
    client: TestClient, settings: Settings, database: Database
) -> None:
    anonymous, key = browser(client)
    token = sign_in(anonymous, key)
    anonymous.post(
        "/ui/datasets/upload",
        files={"file": ("t.csv", tiny_csv_bytes(), "text/csv")},
        data={"label": "outcome", "csrf_token": token},
    )
    dataset_id = client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).json()["items"][0]["id"]
    form = anonymous.get(f"/ui/jobs/new?dataset_id={dataset_id}")
    assert form.status_code == 200 and 'name="trials"' in form.text and 'name="max_epsilon"' in form.text

    for fields, field, words in [
        ({"trials": "0"}, "trials", "greater than or equal to 1"),
        ({"trials": "two"}, "trials", "valid integer"),
        ({"tradeoff": "2"}, "tradeoff", "less than or equal to 1"),
        ({"max_epsilon": "lots"}, "max_epsilon", "valid number"),
        ({"method": "annealing"}, "method", "bayes"),
        ({"hidden": "8,x"}, "hidden", "valid integer"),
    ]:
        response = _new_job(anonymous, token, dataset_id, **fields)
        assert response.status_code == 422, (fields, response.text)
        found = re.search(rf'data-field="{field}">([^<]*)<', response.text)
        assert found and words in found.group(1), (fields, found)
        assert f'value="{fields.get(field, "")}"' in response.text or field == "method"  # the input is kept
    # The services' own checks: the trial limit, the guarantee's consistency, an unknown data set.
    too_many = _new_job(anonymous, token, dataset_id, trials=str(settings.max_trials_per_job + 1))
    assert too_many.status_code == 422 and "the limit is" in too_many.text
    assert _new_job(anonymous, token, "0" * 36, trials="2").status_code == 404
    assert row_counts(database)["jobs"] == 0

    started = _new_job(
        anonymous,
        token,
        dataset_id,
        trials="2",
        method="random",
        tradeoff="0.25",
        max_epsilon="none",
        hidden="8",
        epochs="1",
        seed="3",
    )
    assert started.status_code == 303, started.text
    job_id = started.headers["location"].rsplit("/", 1)[1]
    job = client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}).json()
    assert job["search"]["trials"] == 2 and job["search"]["method"] == "random" and job["tradeoff"] == 0.25
    assert job["guarantee"]["max_epsilon"] is None and job["model"]["hidden"] == [8] and job["seed"] == 3
    assert job["model"]["epochs"] == 1 and job["guarantee"]["confirm_repeats"] == 3  # empty fields: defaults

    page = anonymous.get(f"/ui/jobs/{job_id}").text
    assert 'id="progress" data-active="true"' in page and "queued" in page
    assert '<script src="/ui/static/dashboard.js"' in page and "0 / 2 trials" in page
    assert "Report" not in page  # no report before the baseline
    listing = anonymous.get("/ui/jobs").text
    assert job_id[:8] in listing and 'class="status queued"' in listing


@pytest.mark.slow
def test_the_job_page_after_the_job_ran(client: TestClient, settings: Settings) -> None:
    anonymous, key = browser(client)
    token = sign_in(anonymous, key)
    anonymous.post(
        "/ui/datasets/upload",
        files={"file": ("t.csv", tiny_csv_bytes(), "text/csv")},
        data={"label": "outcome", "csrf_token": token},
    )
    dataset_id = client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).json()["items"][0]["id"]
    job_id = _new_job(anonymous, token, dataset_id, trials="3", method="random").headers["location"].rsplit("/")[-1]
    client.headers["Authorization"] = f"Bearer {key}"
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor())

    progress = anonymous.get(f"/ui/jobs/{job_id}/progress").text
    assert progress.startswith('<section id="progress" data-active="false"') and "3 / 3 trials" in progress
    page = anonymous.get(f"/ui/jobs/{job_id}")
    recommendation = client.get(f"/v1/jobs/{job_id}/recommendation").json()
    assert 'class="status succeeded"' in page.text and recommendation["headline"] in page.text.replace("&#39;", "'")
    assert f'<iframe src="/ui/jobs/{job_id}/report"' in page.text
    assert not EXTERNAL_URL.search(page.text)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    report = anonymous.get(f"/ui/jobs/{job_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "<img" in report.text or "<svg" in report.text
    assert "default-src 'none'" in report.headers["content-security-policy"]
    result = anonymous.get(f"/ui/jobs/{job_id}/result.json")
    assert result.status_code == 200 and result.json()["recommendation"]["index"] == recommendation["index"]
    # A cancel of a finished job: the service's 409, as a page.
    cancelled = anonymous.post(f"/ui/jobs/{job_id}/cancel", data={"csrf_token": token})
    assert cancelled.status_code == 409 and "already succeeded" in cancelled.text
