"""Typed dependencies. The request's session is committed here and nowhere else in the API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.db import Database
from app.settings import Settings

logger = logging.getLogger("dptune.api")

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed after the endpoint returns and before the response is sent.

    Work that must follow the commit (removing a deleted data set's file) or undo a side effect on
    rollback (removing a file moved into place) is registered with `after_commit` / `on_rollback`.
    """
    database = get_database(request)
    session = database.session(write=request.method not in _READ_ONLY_METHODS)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        _run_hooks(session, "on_rollback")
        raise
    finally:
        session.close()
    _run_hooks(session, "after_commit")


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    session.info.setdefault("after_commit", []).append(hook)


def on_rollback(session: Session, hook: Callable[[], None]) -> None:
    session.info.setdefault("on_rollback", []).append(hook)


def _run_hooks(session: Session, kind: str) -> None:
    for hook in session.info.pop(kind, []):
        try:
            hook()
        except Exception as exc:  # a hook failing must not hide the original outcome
            logger.error("%s hook failed: %s", kind, type(exc).__name__)


# scope="function": the commit runs before the response goes out, so a failed commit is an error response.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
