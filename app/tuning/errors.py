"""The engine's one error type: a job or input the engine cannot measure. It carries a stable code and a
message that names the problem; the service maps it to a failed job or a 4xx, the CLI to one line."""

from __future__ import annotations

from typing import Any

from app.core.errors import DomainError


class TuningError(DomainError, ValueError):
    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(422, code, message, details)
