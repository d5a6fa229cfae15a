"""The one error type for bad user data: a domain error, 422 unless the raiser says otherwise."""

from __future__ import annotations

from typing import Any

from app.core.errors import DomainError


class DatasetError(DomainError, ValueError):
    """A data set or split the user gave cannot be used. `code` is stable, `message` names the problem."""

    def __init__(
        self, code: str, message: str, details: dict[str, Any] | None = None, status_code: int = 422
    ) -> None:
        super().__init__(status_code, code, message, details)
