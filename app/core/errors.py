"""The domain's one error type. It carries a stable code, a message that names the problem, facts by name, and
the HTTP status it means, so services and the engine raise it without importing a web framework; app.api
renders it in one place as {"error": {"code", "message", "details"}}, the CLI as one line."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request or input that cannot be served. `status_code` is the HTTP status it means (a 4xx, or 503 when
    a dependency is down); `details` holds facts about the error, never data values."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers


def not_found(kind: str, identifier: str) -> DomainError:
    """Also the answer for another owner's data set or job: 404, never 403, so ids reveal nothing."""
    shown = identifier if len(identifier) <= 64 else identifier[:63] + "…"
    return DomainError(404, f"{kind}_not_found", f"no {kind} with id '{shown}'", {"id": shown})
