"""Pure ASGI middlewares: the request context (X-Request-ID, one access-log line, the last-resort 500), the
API key check, and the size cap on request bodies other than data set uploads (which stream to disk under
their own cap)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import domain_error_response, internal_error, request_too_large, unauthorized
from app.logs import exception_summary, request_id_var

logger = logging.getLogger("dptune.api")
access_logger = logging.getLogger("dptune.access")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own request id is kept when it is short and plain; anything else is replaced by a new one.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Who the request acts for (an app.owners.service.Principal), put in the scope by AuthenticationMiddleware.
PRINCIPAL_SCOPE_KEY = "dptune.principal"
# Routes under /v1 anyone may call; everything else under /v1 needs a key. Paths outside /v1 (/metrics, which
# shows only aggregates over all owners, /docs, /openapi.json) need none.
PUBLIC_PATHS = frozenset({"/v1/health", "/v1/version"})


class RequestContextMiddleware:
    """Gives every request an id (the client's X-Request-ID if plain, else a new one), returns it in the
    X-Request-ID header of every response, 500s included, puts it on every log line written meanwhile, and
    writes one access-log line: method, path (no query string), status, milliseconds, owner and key ids.

    An exception that escapes the app is answered here with the error shape, and logged as its type and
    frames (never its message, which can quote data values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "response_started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["response_started"] = True
                state["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            logger.error(
                "unhandled %s on %s %s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                extra=exception_summary((type(exc), exc, exc.__traceback__)),
            )
            if not state["response_started"]:
                response = domain_error_response(internal_error())
                await response(scope, receive, send_with_id)
        finally:
            principal = scope.get(PRINCIPAL_SCOPE_KEY)
            access_logger.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                state["status"],
                extra={
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": state["status"],
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "owner_id": getattr(principal, "owner_id", None),
                    "key_id": getattr(principal, "key_id", None),
                },
            )
            request_id_var.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _CLIENT_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class AuthenticationMiddleware:
    """Every request under /v1 but PUBLIC_PATHS needs `Authorization: Bearer <key>` of an active key. Checked
    here, before anything reads the body: an unknown caller gets 401 whatever it sends, never a validation
    error, and an upload is never streamed for it. The lookup is one indexed query in its own short read
    transaction (in a thread, off the event loop), so no write lock is held while a body arrives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        protected = (path == "/v1" or path.startswith("/v1/")) and path.rstrip("/") not in PUBLIC_PATHS
        if scope["type"] != "http" or not protected:
            await self.app(scope, receive, send)
            return
        from app.owners.service import authenticate

        key = _bearer_token(scope)
        principal = None
        if key is not None:
            database = scope["app"].state.database

            def lookup() -> object:
                with database.reading() as session:
                    return authenticate(session, key)

            principal = await run_in_threadpool(lookup)
        if principal is None:
            message = (
                "send an API key: 'Authorization: Bearer <key>'"
                if key is None
                else "the API key is not valid (unknown or revoked)"
            )
            response = domain_error_response(unauthorized(message))
            await response(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


class BodyTooLarge(HTTPException):
    """Raised while a JSON body is read past the cap; rendered as 413 request_too_large."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=request_too_large(limit).message)
        self.limit = limit


class BodySizeLimitMiddleware:
    """Request bodies other than `exempt` (method, path) pairs are capped at `max_bytes`: a larger
    Content-Length is refused unread, and a chunked body is cut when it passes the cap. Without it, a JSON
    body of any size would be read into memory before validation."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: frozenset[tuple[str, str]]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope.get("method"), scope.get("path", "").rstrip("/")) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            response = domain_error_response(request_too_large(self.max_bytes))
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


# The docs pages may load only what this server serves: ReDoc's bundle would fetch its logo from
# cdn.redoc.ly (it hides the image when that fails), and a network without internet must see no such request.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)


class DocsContentSecurityPolicyMiddleware:
    """Adds DOCS_CONTENT_SECURITY_POLICY to the answers of `paths` (the interactive docs pages)."""

    def __init__(self, app: ASGIApp, paths: frozenset[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
            await send(message)

        await self.app(scope, receive, send_with_policy)
