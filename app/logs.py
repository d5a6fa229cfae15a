"""Log set-up for the service's processes: one line per event, ids and counts, never data values."""

from __future__ import annotations

import logging
import os


def configure_logging(level: str | None = None) -> None:
    logging.basicConfig(
        level=(level or os.environ.get("DPTUNE_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
    )
    # Alembic announces its context on every start; dptune logs the schema revision itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
