"""/v1/health and /v1/version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import DatabaseDep
from app.api.errors import ERROR_RESPONSES, error_responses
from app.core.errors import DomainError

router = APIRouter(prefix="/v1", tags=["system"], responses=ERROR_RESPONSES)


class Health(BaseModel):
    status: str = Field(description="ok when the service answers.")
    database: str = Field(description="ok when the database answered a query.")


class Version(BaseModel):
    version: str = Field(description="The installed dptune package's version; unknown when not installed.")
    api: str = Field(description="The API version in the paths (v1).")


@router.get(
    "/health",
    summary="The service is up and its database reachable",
    responses=error_responses(meanings={503: "`database_unavailable`: the database does not answer."}),
)
def health(database: DatabaseDep) -> Health:
    try:
        database.ping()
    except SQLAlchemyError:
        raise DomainError(503, "database_unavailable", "the database is not reachable") from None
    return Health(status="ok", database="ok")


@router.get("/version")
def get_version() -> Version:
    try:
        installed = version("dptune")
    except PackageNotFoundError:
        installed = "unknown"
    return Version(version=installed, api="v1")
