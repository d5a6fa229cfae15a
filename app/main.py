"""The FastAPI app: routers, error handlers, and a lifespan that upgrades the schema before serving."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from app.api import metrics, system
from app.api.deps import reject_unknown_query_parameters
from app.api.errors import install_error_handlers
from app.api.middleware import (
    AuthenticationMiddleware,
    BodySizeLimitMiddleware,
    DocsContentSecurityPolicyMiddleware,
    RequestContextMiddleware,
)
from app.dashboard import router as dashboard
from app.datasets import router as datasets_router
from app.datasets.storage import remove_stale_temp_files
from app.db import Database, upgrade_schema
from app.jobs import router as jobs_router
from app.settings import Settings

logger = logging.getLogger("dptune.api")

DOCS_ASSETS_URL = "/docs-assets"

# Measured metrics of the engine's result models that can be NaN (an AUC on a split holding one class, and
# what is computed from it). JSON has no NaN: the API sends null, and the schema says so. AttackScores'
# metrics are Estimates, whose value/low/high are the numbers.
_RESULT_COMPONENTS = (
    "Estimate",
    "Baseline",
    "Trial",
    "TrialRead",
    "Recommendation",
    "RecommendationRead",
    "MembershipGame",
    "PopulationGame",
    "RepeatValues",
)
_METRIC_FIELDS = frozenset(
    {
        "value",
        "low",
        "high",  # Estimate
        "utility_members",
        "utility_holdout",
        "utility_validation",
        "utility_test",
        "utility_external",
        "accuracy_test",
        "attack_accuracy",
        "reference_attack_accuracy",
        "shift",
        "membership",
        "label_only_attack_accuracy",
        "logistic_regression_utility_test",
        "attack_accuracy_se",
        "utility_validation_se",
        "utility_test_se",
        "utility_loss",
        "objective",
        "objective_se",
    }
)


def create_app(settings: Settings | None = None, *, upgrade: bool = True) -> FastAPI:
    """The app for `settings` (default: DPTUNE_* variables). With `upgrade`, the schema is brought to the
    newest revision at start, so a new version of the server migrates its own database."""
    settings = settings or Settings()
    metrics_registry = metrics.make_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_dirs()
        database = Database(settings, application_name="dptune api")
        if upgrade:
            revision = upgrade_schema(database)
            logger.info("database schema at revision %s", revision)
        remove_stale_temp_files(settings)
        app.state.settings = settings
        app.state.database = database
        queue_collector = metrics.QueueCollector(database, settings.lease_seconds)
        metrics_registry.register(queue_collector)
        try:
            yield
        finally:
            metrics_registry.unregister(queue_collector)
            database.dispose()

    # /docs and /redoc load Swagger UI and ReDoc from fastapi-offline's bundled copies, served here under
    # DOCS_ASSETS_URL (outside /v1, so public like the pages): hospital networks often have no internet.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_URL,
        swagger_ui_parameters={"validatorUrl": None},  # Swagger UI's default sends the schema to validator.swagger.io
        dependencies=[Depends(reject_unknown_query_parameters)],
        title="dptune",
        summary="Recommends DP-SGD clipping norm and noise multiplier from measured utility and attack success.",
        version="v1",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.state.metrics_registry = metrics_registry
    # Added innermost first. Order of a request: request id and access log, then the key (before any body
    # is read), then the body size cap, then the routes.
    uploads = frozenset({("POST", "/v1/datasets"), ("POST", "/ui/datasets/upload")})
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_json_bytes, exempt=uploads
    )  # uploads stream under their own cap
    app.add_middleware(AuthenticationMiddleware)
    app.add_middleware(DocsContentSecurityPolicyMiddleware, paths=frozenset({"/docs", "/redoc"}))
    app.add_middleware(RequestContextMiddleware)
    # Outermost: counts every answer, those of the key check and the size cap included.
    app.add_middleware(metrics.HttpMetricsMiddleware, http_metrics=metrics.HttpMetrics(metrics_registry))
    app.include_router(system.router)
    app.include_router(metrics.router)
    app.include_router(datasets_router.router)
    app.include_router(jobs_router.router)
    app.include_router(dashboard.router)  # /ui, its own session auth (not the /v1 key middleware)
    app.include_router(dashboard.entry_router)
    app.mount("/ui/static", StaticFiles(directory=dashboard.STATIC_DIR), name="dashboard-static")
    _declare_undefined_metrics_as_null(app)
    return app


def _declare_undefined_metrics_as_null(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.get("components", {}).get("schemas", {})
        for name in _RESULT_COMPONENTS:
            for field, spec in components.get(name, {}).get("properties", {}).items():
                if field in _METRIC_FIELDS and spec.get("type") == "number":
                    kept = {k: v for k, v in spec.items() if k in ("title", "description")}
                    note = "Null when undefined (NaN), e.g. an AUC on a split that holds one class."
                    kept["description"] = f"{kept['description']} {note}" if "description" in kept else note
                    spec.clear()
                    spec.update({"anyOf": [{"type": "number"}, {"type": "null"}], **kept})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
