"""Alembic environment: the URL and connection come from dptune (app.db.upgrade_schema) or DPTUNE_* variables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

import app.blobs
import app.datasets.models
import app.jobs.models
import app.owners.models  # noqa: F401  (registers the tables on Base.metadata)
from app.db import Base
from app.settings import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config({"sqlalchemy.url": _url()}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as fresh:
        _run(fresh)
        fresh.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
