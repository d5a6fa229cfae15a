"""Engine, sessions and schema upgrades: SQLite by default, PostgreSQL when DPTUNE_DATABASE_URL says so.

On SQLite every write transaction starts with BEGIN IMMEDIATE, so two writers never meet half way (WAL lets
readers go on meanwhile); read-only sessions use a plain BEGIN. On PostgreSQL, row locks do that job.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, Text, create_engine, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from app.settings import Settings

logger = logging.getLogger("dptune.db")
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any constant works; all dptune processes take this PostgreSQL advisory lock around schema upgrades.
_MIGRATION_LOCK_ID = 0x6470_7475_6E65


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on every backend (SQLite stores naive text, so normalise both ways)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class JsonText(TypeDecorator[Any]):
    """JSON kept as text. Result models may hold NaN (an undefined AUC), which JSON columns refuse."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(value, allow_nan=True, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


SQLITE_POOL_SIZE = 40  # anyio's default thread pool: the most requests that use a connection at once


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(settings: Settings, application_name: str = "dptune") -> Engine:
    """`hide_parameters`: a database error's message never quotes the values of a statement (they can be
    column names or label classes of a user's data), so neither logs nor responses can carry them.
    On PostgreSQL the connections carry `application_name` (pg_stat_activity shows which process is which);
    `pool_pre_ping` replaces a connection the server dropped before it is used."""
    url = settings.resolved_database_url
    if not is_sqlite(url):
        return create_engine(
            url,
            pool_pre_ping=True,
            hide_parameters=True,
            pool_size=10,
            max_overflow=20,
            connect_args={"application_name": application_name[:63]},
        )
    settings.ensure_dirs()
    # A pool as large as the API's thread pool: connections past pool_size are closed when returned, and a
    # new SQLite connection costs its PRAGMAs, so under load a small pool would open and close them non-stop.
    engine = create_engine(
        url,
        hide_parameters=True,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_POOL_SIZE,
        connect_args={"check_same_thread": False, "timeout": settings.sqlite_busy_timeout_ms / 1000},
    )
    busy_timeout = int(settings.sqlite_busy_timeout_ms)

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA secure_delete=ON")  # a deleted row's bytes are overwritten, not left in free pages
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_write") else ""
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class Database:
    """The engine and the two kinds of session: for reading, and for writing (takes SQLite's write lock)."""

    def __init__(self, settings: Settings, application_name: str = "dptune") -> None:
        self.settings = settings
        self.engine = make_engine(settings, application_name)
        self.url = settings.resolved_database_url
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(sqlite_write=True), expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.url)

    def session(self, *, write: bool) -> Session:
        return (self._write if write else self._read)()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A short write transaction, committed on success: the workers' one place to commit. Runs the
        session's hooks as the API's sessions do (a model file moved into place is removed on rollback)."""
        with self.session(write=True) as session:
            try:
                with session.begin():
                    yield session
            except BaseException:
                run_session_hooks(session, "on_rollback")
                raise
        run_session_hooks(session, "after_commit")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.session(write=False) as session, session.begin():
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------- migrations

_upgrade_lock = threading.Lock()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_schema(database: Database) -> str:
    """Bring the schema to the newest revision; safe when several processes start at once. Returns it."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = alembic_config(database.url)
    with _upgrade_lock, _cross_process_lock(database):
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["settings"] = database.settings  # 0006 copies a data folder's files in
            command.upgrade(config, "head")
        with database.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(config).get_current_head()
    if current != head:
        raise RuntimeError(f"schema is at {current}, expected {head}")
    return str(head)


# Work that must follow a commit (removing a deleted data set's file) or undo a side effect on rollback
# (removing a file moved into place); whoever commits the session runs them (app.api.deps.get_session).
def after_commit(session: Session, hook: Callable[[], None]) -> None:
    session.info.setdefault("after_commit", []).append(hook)


def on_rollback(session: Session, hook: Callable[[], None]) -> None:
    session.info.setdefault("on_rollback", []).append(hook)


def run_session_hooks(session: Session, kind: str) -> None:
    for hook in session.info.pop(kind, []):
        try:
            hook()
        except Exception as exc:  # a hook failing must not hide the original outcome
            logger.error("%s hook failed: %s", kind, type(exc).__name__)


@contextmanager
def _cross_process_lock(database: Database) -> Iterator[None]:
    if database.is_sqlite:
        lock_path = database.settings.data_dir / ".migrate.lock"
        database.settings.ensure_dirs()
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with database.engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
            connection.commit()
