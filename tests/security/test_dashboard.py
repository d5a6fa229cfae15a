"""The dashboard's security, on SQLite and PostgreSQL: the session cookie's attributes and signature, the JSON
API refusing it, CSRF tokens on every state-changing form, and another owner's data seen on no page."""

from __future__ import annotations

import stat

import pytest
from fastapi.testclient import TestClient

from app.dashboard.sessions import COOKIE_NAME, SECRET_FILE, SIGN_IN_COOKIE
from app.db import Database
from app.main import create_app
from app.owners.service import authenticate, revoke
from app.settings import Settings
from tests.dashboard.helpers import browser, csrf_of, post_forms_without_token, sign_in
from tests.service.conftest import assert_error_shape, create_api_key, row_counts, tiny_csv_bytes, tiny_job
from tests.service.conftest import stored_files as all_stored_files
from tests.service.helpers import run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor


def stored_files(settings: Settings) -> list[str]:
    return [name for name in all_stored_files(settings) if name != SECRET_FILE]


def _session_cookie_header(client: TestClient, key: str) -> str:
    form = client.get("/ui/sign-in")
    response = client.post(
        "/ui/sign-in", data={"api_key": key, "csrf_token": csrf_of(form.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    [session] = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{COOKIE_NAME}=")]
    return session


def test_session_cookie_is_httponly_samesite_strict_and_secure_on_https(
    client: TestClient, settings: Settings
) -> None:
    anonymous, key = browser(client)
    header = _session_cookie_header(anonymous, key)
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/ui" in attributes
    assert "secure" not in attributes  # plain http (a local server): a Secure cookie would never come back
    # Arriving without the cookie (a SameSite=Strict cookie is not sent from another site's link), the sign-in
    # page sets only its own form cookie: it must not overwrite, and so end, the session.
    form = TestClient(anonymous.app).get("/ui/sign-in")
    assert [c.split("=")[0] for c in form.headers.get_list("set-cookie")] == [SIGN_IN_COOKIE]
    assert key not in header
    secret = settings.data_dir / SECRET_FILE  # the signing key: made once, readable by the server's user only
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) == 64

    with TestClient(create_app(settings), base_url="https://testserver") as https:
        secure = [part.strip().lower() for part in _session_cookie_header(https, key).split(";")]
    assert "secure" in secure and "httponly" in secure and "samesite=strict" in secure


def test_the_api_refuses_the_session_cookie_and_the_dashboard_the_key_header(client: TestClient) -> None:
    anonymous, key = browser(client)
    # The dashboard has its own sign-in: an API key header opens none of its pages.
    keyed = anonymous.get("/ui/datasets", headers={"Authorization": f"Bearer {key}"}, follow_redirects=False)
    assert keyed.status_code == 303 and keyed.headers["location"] == "/ui/sign-in"
    sign_in(anonymous, key)
    cookie = anonymous.cookies.get(COOKIE_NAME, path="/ui")
    assert anonymous.get("/ui/datasets").status_code == 200
    # Sent to /v1 by hand (a browser would not: the cookie's path is /ui), it authenticates nothing.
    for method, path in [("GET", "/v1/datasets"), ("POST", "/v1/datasets/builtin"), ("GET", "/v1/jobs")]:
        response = anonymous.request(method, path, headers={"Cookie": f"{COOKIE_NAME}={cookie}"})
        assert assert_error_shape(response, 401)["code"] == "unauthorized", path


def test_a_forged_expired_or_revoked_session_is_signed_out(
    client: TestClient, settings: Settings, database: Database
) -> None:
    anonymous, key = browser(client)
    sign_in(anonymous, key)
    cookie = anonymous.cookies.get(COOKIE_NAME, path="/ui")
    assert cookie is not None
    payload, _, signature = cookie.partition(".")
    for forged in (f"{payload}x.{signature}", f"{payload}.{signature[:-2]}AA", payload, "", "a.b.c"):
        anonymous.cookies.set(COOKIE_NAME, forged, path="/ui")
        response = anonymous.get("/ui/jobs", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in", forged

    anonymous.cookies.set(COOKIE_NAME, cookie, path="/ui")
    assert anonymous.get("/ui/jobs", follow_redirects=False).status_code == 200
    with database.transaction() as session:
        principal = authenticate(session, key)
        assert principal is not None and revoke(session, principal.key_id)
    response = anonymous.get("/ui/jobs", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/ui/sign-in"


def test_every_state_changing_form_needs_the_session_csrf_token(
    client: TestClient, settings: Settings, database: Database
) -> None:
    dataset = upload_tiny(client)
    job = client.post("/v1/jobs", json=tiny_job(str(dataset["id"]))).json()
    anonymous, key = browser(client)
    # The sign-in form needs the token of its own pre-session cookie.
    assert anonymous.post("/ui/sign-in", data={"api_key": key}).status_code == 403
    assert anonymous.cookies.get(COOKIE_NAME, path="/ui") is None
    token = sign_in(anonymous, key)
    for page in ("/ui/datasets", "/ui/jobs", f"/ui/jobs/{job['id']}", f"/ui/jobs/new?dataset_id={dataset['id']}"):
        html = anonymous.get(page).text
        assert "<form" in html and post_forms_without_token(html) == [], page
    before, files = row_counts(database), stored_files(settings)

    forms: list[tuple[str, dict[str, str]]] = [
        ("/ui/datasets/builtin", {"name": "synthea-covid"}),
        (f"/ui/datasets/{dataset['id']}/delete", {}),
        ("/ui/jobs", {"dataset_id": str(dataset["id"]), "trials": "2"}),
        (f"/ui/jobs/{job['id']}/cancel", {}),
        ("/ui/sign-out", {}),
    ]
    for path, fields in forms:
        for sent in (
            {},
            {"csrf_token": ""},
            {"csrf_token": token[:-1] + ("A" if token[-1] != "A" else "B")},
            {"csrf_token": token + "é"},
        ):
            response = anonymous.post(path, data={**fields, **sent}, follow_redirects=False)
            assert response.status_code == 403, (path, sent, response.text)
            assert "security token" in response.text
    for sent in ({}, {"csrf_token": "wrong"}):
        upload = anonymous.post(
            "/ui/datasets/upload",
            files={"file": ("t.csv", tiny_csv_bytes(), "text/csv")},
            data={"label": "outcome", **sent},
            follow_redirects=False,
        )
        assert upload.status_code == 403, upload.text
    # Nothing changed, no file left behind, still signed in, and the job still queued.
    assert row_counts(database) == before and stored_files(settings) == files
    assert anonymous.get("/ui/jobs", follow_redirects=False).status_code == 200
    assert (
        client.get(f"/v1/jobs/{job['id']}", headers={"Authorization": f"Bearer {key}"}).json()["status"] == "queued"
    )
    # With the token the same forms work.
    response = anonymous.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303
    assert anonymous.post("/ui/sign-out", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert anonymous.get("/ui/jobs", follow_redirects=False).headers["location"] == "/ui/sign-in"


@pytest.mark.slow
def test_another_owner_sees_nothing_on_any_page(client: TestClient, settings: Settings, database: Database) -> None:
    dataset = upload_tiny(client, name="alice's patients")
    dataset_id = str(dataset["id"])
    finished = client.post("/v1/jobs", json=tiny_job(dataset_id, search={"method": "random", "trials": 2})).json()
    run_worker_until_done(client, settings, finished["id"], executor=FakeExecutor())
    queued = client.post("/v1/jobs", json=tiny_job(dataset_id)).json()
    alice_key = client.headers["Authorization"].removeprefix("Bearer ")
    before, files = row_counts(database), stored_files(settings)

    bob = TestClient(create_app(settings), raise_server_exceptions=False)
    with bob:
        token = sign_in(bob, create_api_key(settings, owner="bob"))
        secrets = (dataset_id, finished["id"], queued["id"], "alice's patients", "alice&#39;s patients")
        for page in ("/ui/datasets", "/ui/jobs"):
            html = bob.get(page).text
            assert not any(secret in html for secret in secrets), page
        for path in (
            f"/ui/jobs/{finished['id']}",
            f"/ui/jobs/{finished['id']}/progress",
            f"/ui/jobs/{finished['id']}/report",
            f"/ui/jobs/{finished['id']}/model",
            f"/ui/jobs/{finished['id']}/result.json",
            f"/ui/jobs/{queued['id']}",
            f"/ui/jobs/new?dataset_id={dataset_id}",
        ):
            response = bob.get(path)
            assert response.status_code == 404, (path, response.status_code)
            assert response.headers["content-type"].startswith("text/html") and "Error 404" in response.text
            unknown = bob.get(
                path.replace(dataset_id, "0" * 36).replace(finished["id"], "0" * 36).replace(queued["id"], "0" * 36)
            )
            assert unknown.status_code == 404 and unknown.text.replace("0" * 36, "ID") == response.text.replace(
                dataset_id, "ID"
            ).replace(finished["id"], "ID").replace(queued["id"], "ID")
        for path, fields in [
            (f"/ui/datasets/{dataset_id}/delete", {}),
            (f"/ui/jobs/{queued['id']}/cancel", {}),
            ("/ui/jobs", {"dataset_id": dataset_id, "trials": "2"}),
        ]:
            response = bob.post(path, data={"csrf_token": token, **fields}, follow_redirects=False)
            assert response.status_code == 404, (path, response.text)
    # Nothing of alice's changed, and she still sees all of it.
    assert row_counts(database) == before and stored_files(settings) == files
    alice, _ = browser(client)
    sign_in(alice, alice_key)
    assert dataset_id in alice.get("/ui/datasets").text
    assert finished["id"] in alice.get("/ui/jobs").text and queued["id"] in alice.get("/ui/jobs").text
    assert alice.get(f"/ui/jobs/{finished['id']}/report").status_code == 200
