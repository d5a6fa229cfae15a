"""/v1/health and /v1/version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import DatabaseDep
from app.api.errors import ERROR_RESPONSES, ApiError

router = APIRouter(prefix="/v1", tags=["system"], responses=ERROR_RESPONSES)


class Health(BaseModel):
    status: str
    database: str


class Version(BaseModel):
    version: str
    api: str


@router.get("/health", summary="The service is up and its database reachable")
def health(database: DatabaseDep) -> Health:
    try:
        database.ping()
    except SQLAlchemyError:
        raise ApiError(503, "database_unavailable", "the database is not reachable") from None
    return Health(status="ok", database="ok")


@router.get("/version")
def get_version() -> Version:
    try:
        installed = version("dptune")
    except PackageNotFoundError:
        installed = "unknown"
    return Version(version=installed, api="v1")
