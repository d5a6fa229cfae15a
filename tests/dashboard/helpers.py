"""Driving the dashboard as a browser does: a client without an API key header, signed in by the form."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.dashboard.sessions import COOKIE_NAME

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]*)"')
POST_FORM = re.compile(r'<form[^>]*method="post"[^>]*>(.*?)</form>', re.S)


def csrf_of(html: str) -> str:
    found = CSRF_INPUT.search(html)
    assert found is not None, html[:2000]
    return found.group(1)


def browser(client: TestClient) -> tuple[TestClient, str]:
    """The client without its Authorization header (as a browser has none), and the key it carried."""
    key = client.headers.pop("Authorization").removeprefix("Bearer ")
    return client, key


def sign_in(client: TestClient, key: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = client.get("/ui/sign-in")
    assert form.status_code == 200
    response = client.post(
        "/ui/sign-in", data={"api_key": key, "csrf_token": csrf_of(form.text)}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/jobs", response.text
    assert client.cookies.get(COOKIE_NAME, path="/ui")
    return csrf_of(client.get("/ui/datasets").text)


def post_forms_without_token(html: str) -> list[str]:
    """Every state-changing form of a page that does not carry a CSRF token field."""
    return [form for form in POST_FORM.findall(html) if 'name="csrf_token"' not in form]
