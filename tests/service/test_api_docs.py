"""The API's documentation: /docs and /redoc work without internet, every schema field is described, the
documented examples are accepted, each route documents the 4xx it can give, and unknown query parameters are
refused like unknown body fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.service.conftest import assert_error_shape, bearer, create_api_key

# Every URL an HTML page makes the browser fetch: src=, href=, and Swagger UI's `url:` / ReDoc's spec-url.
_PAGE_REFERENCES = re.compile(r"""(?:\bsrc|\bhref|\bspec-url)\s*=\s*["']([^"']+)["']|\burl:\s*["']([^"']+)["']""")


@pytest.fixture
def anonymous(sqlite_settings: Settings) -> Iterator[TestClient]:
    """A client without an API key: the docs are public, as /openapi.json is."""
    with TestClient(create_app(sqlite_settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_fetch_nothing_from_outside(anonymous: TestClient, page: str) -> None:
    response = anonymous.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html
    references = [a or b for a, b in _PAGE_REFERENCES.findall(html)]
    assert "/openapi.json" in references
    assert any(ref.endswith(".js") for ref in references), references
    for ref in references:
        assert ref.startswith("/") and not ref.startswith("//"), ref  # same origin
        served = anonymous.get(ref)
        assert served.status_code == 200, (ref, served.status_code)
        assert len(served.content) > 1000 if ref.endswith((".js", ".css")) else served.content, ref


def test_swagger_ui_does_not_send_the_schema_to_a_validator(anonymous: TestClient) -> None:
    # Swagger UI's default validatorUrl is validator.swagger.io, which it would call from the browser.
    assert '"validatorUrl": null' in anonymous.get("/docs").text


@pytest.fixture
def openapi(anonymous: TestClient) -> dict[str, Any]:
    response = anonymous.get("/openapi.json")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


def _operations(openapi: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_every_schema_field_and_parameter_has_a_description(openapi: dict[str, Any]) -> None:
    undescribed = [
        f"{name}.{field}"
        for name, component in openapi["components"]["schemas"].items()
        for field, spec in component.get("properties", {}).items()
        if not spec.get("description", "").strip()
    ]
    for method, path, operation in _operations(openapi):
        undescribed += [f"{method} {path} ?{p['name']}" for p in operation.get("parameters", ())
                        if p["in"] == "query" and not p.get("description", "").strip()]
        for media in operation.get("requestBody", {}).get("content", {}).values():
            undescribed += [f"{method} {path} body.{field}" for field, spec in
                            media["schema"].get("properties", {}).items() if not spec.get("description", "").strip()]
    assert undescribed == []
    assert sum(len(c.get("properties", {})) for c in openapi["components"]["schemas"].values()) > 300
