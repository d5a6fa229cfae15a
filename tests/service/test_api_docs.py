"""The API's documentation: /docs and /redoc work without internet, every schema field is described, the
documented examples are accepted, each route documents the 4xx it can give, and unknown query parameters are
refused like unknown body fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.datasets import BUILTIN_DATASETS
from app.jobs.router import EXAMPLE_DATASET_ID
from app.main import create_app
from app.settings import Settings
from tests.service.conftest import assert_error_shape, bearer, create_api_key, make_settings

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
    # What the bundles themselves might fetch from outside (ReDoc's logo), the browser refuses by policy.
    assert "default-src 'self'" in response.headers["content-security-policy"]
    assert "img-src 'self' data:;" in response.headers["content-security-policy"]
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
        undescribed += [
            f"{method} {path} ?{p['name']}"
            for p in operation.get("parameters", ())
            if p["in"] == "query" and not p.get("description", "").strip()
        ]
        for media in operation.get("requestBody", {}).get("content", {}).values():
            undescribed += [
                f"{method} {path} body.{field}"
                for field, spec in media["schema"].get("properties", {}).items()
                if not spec.get("description", "").strip()
            ]
    assert undescribed == []
    assert sum(len(c.get("properties", {})) for c in openapi["components"]["schemas"].values()) > 300


@pytest.fixture
def owner(data_dir: Any) -> Iterator[TestClient]:
    """A client with a key; uploads up to 5 MB (the built-in cohort as CSV is about 1.2 MB)."""
    settings = make_settings(data_dir, max_upload_bytes=5_000_000)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(bearer(create_api_key(settings)))
        yield test_client


def _examples(openapi: dict[str, Any], method: str, path: str, media: str) -> dict[str, Any]:
    examples: dict[str, Any] = openapi["paths"][path][method]["requestBody"]["content"][media]["examples"]
    assert examples
    return {name: example["value"] for name, example in examples.items()}


def test_every_documented_example_is_accepted(owner: TestClient) -> None:
    """The examples of the served schema, sent as Swagger's "Try it out" sends them; only dataset_id is filled
    in (ids are made at upload), with the built-in data set the examples say to create first."""
    openapi = owner.get("/openapi.json").json()
    created = [
        owner.post("/v1/datasets/builtin", json=value)
        for value in _examples(openapi, "post", "/v1/datasets/builtin", "application/json").values()
    ]
    assert [r.status_code for r in created] == [201] * len(created), [r.text for r in created]
    dataset_id = created[0].json()["id"]

    jobs = _examples(openapi, "post", "/v1/jobs", "application/json")
    assert len(jobs) >= 3
    for name, value in jobs.items():
        assert value["dataset_id"] == EXAMPLE_DATASET_ID, name  # nothing else needs filling in
        response = owner.post("/v1/jobs", json={**value, "dataset_id": dataset_id})
        assert response.status_code == 202, (name, response.text)
        job = response.json()
        assert job["status"] == "queued" and job["dataset_id"] == dataset_id
        for field in ("tradeoff", "target_epsilon", "max_epsilon", "max_utility_loss", "privacy_game"):
            if field in value:
                shown = (
                    job["guarantee"]
                    if field in ("target_epsilon", "max_epsilon", "max_utility_loss")
                    else (job["measurement"] if field == "privacy_game" else job)
                )
                assert shown[field] == value[field], (name, field)

    builtin = BUILTIN_DATASETS["synthea-covid"]
    csv = builtin.load(0).to_csv(index=False).encode()
    for name, fields in _examples(openapi, "post", "/v1/datasets", "multipart/form-data").items():
        assert fields["label"] == builtin.label
        response = owner.post("/v1/datasets", files={"file": ("synthea-covid.csv", csv, "text/csv")}, data=fields)
        assert response.status_code == 201, (name, response.text)
        assert response.json()["label"] == fields["label"] and response.json()["rows"] == 6000


# The 4xx each route can give besides 401 (no key) and 422 (validation, unknown query parameters), which every
# protected route documents; 4XX stays as the catch-all (405 for a wrong method).
ROUTE_ERRORS = {
    ("POST", "/v1/datasets"): {400, 413, 415},
    ("POST", "/v1/datasets/builtin"): {413},
    ("GET", "/v1/datasets"): set(),
    ("GET", "/v1/datasets/{dataset_id}"): {404},
    ("DELETE", "/v1/datasets/{dataset_id}"): {404, 409},
    ("POST", "/v1/jobs"): {404, 413, 429},
    ("GET", "/v1/jobs"): set(),
    ("GET", "/v1/jobs/{job_id}"): {404},
    ("GET", "/v1/jobs/{job_id}/trials"): {404},
    ("GET", "/v1/jobs/{job_id}/recommendation"): {404, 409},
    ("GET", "/v1/jobs/{job_id}/result"): {404, 409},
    ("GET", "/v1/jobs/{job_id}/report"): {404},
    ("GET", "/v1/jobs/{job_id}/model"): {404, 409},
    ("POST", "/v1/jobs/{job_id}/cancel"): {404, 409},
}


def test_each_route_documents_its_4xx_with_the_error_body(openapi: dict[str, Any]) -> None:
    protected = {
        (method, path): operation for method, path, operation in _operations(openapi) if operation.get("security")
    }
    assert set(protected) >= set(ROUTE_ERRORS)
    for key, operation in protected.items():
        documented = {int(s) for s in operation["responses"] if s.isdigit() and 400 <= int(s) < 500}
        assert documented == {401, 422} | ROUTE_ERRORS.get(key, set()), key
        for status in documented:
            response = operation["responses"][str(status)]
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
            assert len(response["description"]) > 20, (key, status)
    jobs_post = protected[("POST", "/v1/jobs")]["responses"]
    assert "too_many_active_jobs" in jobs_post["429"]["description"]
    assert "no_external_set" in jobs_post["422"]["description"]


def test_a_misspelt_query_parameter_is_refused_not_ignored(owner: TestClient) -> None:
    dataset_id = owner.post("/v1/datasets/builtin", json={"name": "synthea-covid"}).json()["id"]
    job_id = owner.post("/v1/jobs", json={"dataset_id": dataset_id}).json()["id"]

    response = owner.get(f"/v1/jobs/{job_id}/recommendation", params={"trade_off": "0.25"})
    error = assert_error_shape(response, 422)
    assert error["code"] == "validation_error"
    assert error["message"] == "trade_off: unknown query parameter (this route takes tradeoff)"
    assert error["details"]["errors"][0]["loc"] == ["query", "trade_off"]  # type: ignore[index]
    # The declared name still reaches the route (409: the job has not run).
    assert assert_error_shape(owner.get(f"/v1/jobs/{job_id}/recommendation", params={"tradeoff": "0.25"}), 409)

    listing = owner.get("/v1/jobs", params={"status": "queued", "limit": 5, "statuss": "failed", "page": 2})
    errors = assert_error_shape(listing, 422)["details"]["errors"]  # type: ignore[index]
    assert [e["loc"] for e in errors] == [["query", "page"], ["query", "statuss"]]
    assert (
        "dataset_id, limit, name, offset, status, tag" in errors[0]["msg"]
    )  # its dependency's offset and limit count
    assert owner.get("/v1/jobs", params={"status": "queued", "limit": 5}).json()["total"] == 1
    assert assert_error_shape(owner.get("/v1/datasets", params={"x": "1"}), 422)
