"""Log set-up for the service's processes: one JSON object per line, with ids, counts and timings, never data
values.

Every line has `ts`, `level`, `logger`, `pid` and `msg`; a line written while serving a request also has its
`request_id` (the X-Request-ID of the response); fields given with `extra=` are added as they are.
Exceptions are logged as their type and stack frames, never their message: messages of pandas, NumPy or a
database driver can quote the values that caused them. `DPTUNE_LOG_FORMAT=text` gives the same lines as plain
text, for a person at a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# The id of the request being served (set by app.api.middleware); thread pools copy it with the context.
request_id_var: ContextVar[str | None] = ContextVar("dptune_request_id", default=None)

# LogRecord's own attributes; anything else on a record came from `extra=` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Set by libraries for their own formatters; noise in a structured line.
_IGNORED_EXTRAS = frozenset({"color_message"})
# Loggers that would log statements with their parameters, or request bodies, at INFO/DEBUG.
_QUIET_LOGGERS = (
    "sqlalchemy",
    "python_multipart",
    "multipart",
    "httpx",
    "httpcore",
    "urllib3",
    "hpack",
    "asyncio",
    "alembic",
    "matplotlib",
    "PIL",
    "h5py",
    "absl",
    "tensorflow",
    "numexpr",
)


def exception_summary(exc_info: Any) -> dict[str, str]:
    """The type and the frames of an exception, without its message (and without its chained causes')."""
    exc_type, _value, tb = exc_info
    return {
        "exc_type": getattr(exc_type, "__name__", str(exc_type)),
        "stack": "".join(traceback.format_tb(tb)).rstrip(),
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _IGNORED_EXTRAS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry.update(exception_summary(record.exc_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The same content as text: 'time LEVEL logger pid [request id]: message key=value ...'."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        request_id = request_id_var.get()
        where = f" [{request_id}]" if request_id else ""
        extras = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in _RECORD_ATTRIBUTES and k not in _IGNORED_EXTRAS and not k.startswith("_")
        )
        line = f"{stamp} {record.levelname} {record.name} {record.process}{where}: {record.getMessage()}"
        line = f"{line} {extras}" if extras else line
        if record.exc_info and record.exc_info[0] is not None:
            summary = exception_summary(record.exc_info)
            line = f"{line}\n{summary['exc_type']} at\n{summary['stack']}"
        return line


def make_handler(stream: Any = None, fmt: str | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    kind = (fmt or os.environ.get("DPTUNE_LOG_FORMAT", "json")).lower()
    handler.setFormatter(TextFormatter() if kind == "text" else JsonFormatter())
    return handler


def configure_logging(level: str | None = None, stream: Any = None, fmt: str | None = None) -> None:
    """Root logger to one handler (stderr by default); replaces handlers set before, so it is idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(stream, fmt))
    root.setLevel((level or os.environ.get("DPTUNE_LOG_LEVEL", "INFO")).upper())
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # uvicorn's own loggers write through the root handler (JSON too); its access log is replaced by
    # app.api.middleware's, which has the request id and no query string.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.captureWarnings(True)
