"""One error shape everywhere: {"error": {"code", "message", "details"}}. No stack trace leaves the server."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.errors import DomainError
from app.logs import exception_summary

logger = logging.getLogger("dptune.api")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable reason, e.g. dataset_not_found.")
    message: str = Field(description="What went wrong, for a person.")
    details: dict[str, Any] = Field(
        default_factory=dict,
        description="Facts about the error, by name (e.g. the "
        "limit passed, or the validation errors' loc/msg/type); never data values.",
    )


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail = Field(description="What went wrong.")


def unauthorized(message: str) -> DomainError:
    return DomainError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="dptune"'})


def request_too_large(limit: int) -> DomainError:
    return DomainError(
        413, "request_too_large", f"the request body is larger than the limit of {limit} bytes", {"max_bytes": limit}
    )


def internal_error() -> DomainError:
    """What a client learns of an unexpected failure: only that it failed."""
    return DomainError(500, "internal_error", "internal server error")


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "upload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}

# The OpenAPI `responses=` entry every route shares: the statuses a route names itself (error_responses) come
# first; 4XX covers the rest (e.g. 405 for a wrong method).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "The request cannot be served; the body says why."},
    "5XX": {"model": ErrorResponse, "description": "Server error; no details leave the server."},
}
_ERROR_MEANINGS = {
    401: "No valid API key: `unauthorized`.",
    404: "No such id, or it belongs to another owner: `dataset_not_found` or `job_not_found`.",
    413: "The body is over the server's cap: `request_too_large`.",
    422: "Invalid input: `validation_error` (details.errors gives each problem's loc, msg and type; unknown query "
    "parameters and body fields are errors too).",
}
# Every route under /v1 but /v1/health and /v1/version: a missing key is 401, a stray query parameter 422.
PROTECTED_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ErrorResponse, "description": _ERROR_MEANINGS[status]} for status in (401, 422)},
    **ERROR_RESPONSES,
}


def error_responses(*statuses: int, meanings: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` of a route's own error statuses, each with the error body: `statuses` with their
    common meaning, and `meanings`, statuses with the route's own words."""
    described = {status: _ERROR_MEANINGS[status] for status in statuses}
    described.update(meanings or {})
    return {status: {"model": ErrorResponse, "description": text} for status, text in sorted(described.items())}


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, details=details or {}))
    return JSONResponse(body.model_dump(mode="json"), status_code=status_code, headers=headers)


def domain_error_response(exc: DomainError) -> JSONResponse:
    """The one rendering of a domain error, for the exception handler and the middlewares alike."""
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)


def _validation_details(exc: RequestValidationError) -> dict[str, Any]:
    # loc/msg/type only: pydantic's `input` and `ctx` can echo data values or hold unserialisable objects.
    errors = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    return {"errors": errors}


def _validation_message(details: dict[str, Any]) -> str:
    errors = details["errors"]
    if not errors:
        return "the request is invalid"
    first = errors[0]
    where = ".".join(part for part in first["loc"] if part not in ("body", "query", "path")) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def install_error_handlers(app: FastAPI) -> None:
    from app.api.middleware import BodyTooLarge

    @app.exception_handler(DomainError)
    async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(BodyTooLarge)
    async def _body_too_large(_request: Request, exc: BodyTooLarge) -> JSONResponse:
        return domain_error_response(request_too_large(exc.limit))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        return error_response(422, "validation_error", _validation_message(details), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Normally app.api.middleware answers first. The traceback stays in the server's log; the client
        # learns only that it failed. Only the frames and the type are logged: messages can quote data values.
        logger.error(
            "unhandled %s on %s %s",
            type(exc).__name__,
            request.method,
            request.url.path,
            extra=exception_summary((type(exc), exc, exc.__traceback__)),
        )
        return domain_error_response(internal_error())
