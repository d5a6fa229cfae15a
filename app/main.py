"""The FastAPI app: routers, error handlers, and a lifespan that upgrades the schema before serving."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import system
from app.api.errors import install_error_handlers
from app.datasets import router as datasets_router
from app.datasets.storage import remove_stale_temp_files
from app.db import Database, upgrade_schema
from app.jobs import router as jobs_router
from app.settings import Settings

logger = logging.getLogger("dptune.api")


def create_app(settings: Settings | None = None, *, upgrade: bool = True) -> FastAPI:
    """The app for `settings` (default: DPTUNE_* variables). With `upgrade`, the schema is brought to the
    newest revision at start, so a new version of the server migrates its own database."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        database = Database(settings)
        if upgrade:
            revision = upgrade_schema(database)
            logger.info("database schema at revision %s", revision)
        remove_stale_temp_files(settings)
        app.state.settings = settings
        app.state.database = database
        try:
            yield
        finally:
            database.dispose()

    app = FastAPI(
        title="dptune",
        summary="Recommends DP-SGD clipping norm and noise multiplier from measured utility and attack success.",
        version="v1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(datasets_router.router)
    app.include_router(jobs_router.router)
    return app
