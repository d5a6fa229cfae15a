"""The one error type for bad user data; the service maps it to a 4xx."""

from typing import Any


class DatasetError(ValueError):
    """A data set or split the user gave cannot be used. `code` is stable, `message` names the problem."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}
