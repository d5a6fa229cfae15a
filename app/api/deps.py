"""Typed dependencies. The request's session is committed here and nowhere else in the API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.errors import unauthorized
from app.api.middleware import PRINCIPAL_SCOPE_KEY
from app.db import Database, run_session_hooks
from app.owners.service import Principal
from app.settings import Settings

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


# The trivial dependencies are `async def`: FastAPI runs a plain `def` dependency in the thread pool, a hop that
# costs more than the dependency itself.
async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed after the endpoint returns and before the response is sent.

    Work that must follow the commit (removing a deleted data set's file) or undo a side effect on
    rollback (removing a file moved into place) is registered with `app.db.after_commit` / `on_rollback`.
    """
    database: Database = request.app.state.database
    session = database.session(write=request.method not in _READ_ONLY_METHODS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        run_session_hooks(session, "on_rollback")
        raise
    finally:
        session.close()
    run_session_hooks(session, "after_commit")


async def in_read_session(database: Database, work: Callable[[Session], T]) -> T:
    """`work(session)` in a read transaction, in one hop to the thread pool. For the hot read routes: a sync
    endpoint with SessionDep takes three hops (the session's start, the endpoint, the session's end), each a
    few tenths of a millisecond of CPU, more than the work of a small read."""

    def run() -> T:
        with database.reading() as session:
            return work(session)

    return await run_in_threadpool(run)


# scope="function": the commit runs before the response goes out, so a failed commit is an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]


# The attribute a route keeps the query parameters it declares in (its own and its dependencies'), found once.
_DECLARED_QUERY = "dptune_declared_query"


async def reject_unknown_query_parameters(request: Request) -> None:
    """422 for a query parameter the API route does not declare, as for an unknown body field: a typo such as
    `?trade_off=0.25` must not silently answer for the default."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.url.path.startswith("/v1"):
        return
    declared: frozenset[str] | None = getattr(route, _DECLARED_QUERY, None)
    if declared is None:
        declared = frozenset(_query_names(route.dependant))
        setattr(route, _DECLARED_QUERY, declared)
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        takes = f"this route takes {', '.join(sorted(declared))}" if declared else "this route takes none"
        raise RequestValidationError(
            [
                {"loc": ("query", name), "msg": f"unknown query parameter ({takes})", "type": "extra_forbidden"}
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> Iterator[str]:
    yield from (param.alias for param in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _query_names(sub)


# For the OpenAPI schema (the security scheme every protected route declares). The key itself is checked by
# app.api.middleware.AuthenticationMiddleware before the route runs, even before its body is read.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key from `dptune keys create --owner NAME` (or the local key file "
    "`dptune serve` writes on localhost), sent as `Authorization: Bearer <key>`.",
)


async def get_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The owner a request acts for, as the authentication middleware found it."""
    principal = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if not isinstance(principal, Principal):  # only if a route were mounted outside /v1
        raise unauthorized("send an API key: 'Authorization: Bearer <key>'")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
