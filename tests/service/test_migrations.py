"""The migrations build exactly the schema the models declare (what autogenerate would find is nothing)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import app.datasets.models
import app.jobs.models
import app.owners.models  # noqa: F401  (the models register their tables on Base.metadata)
from app.db import Base, Database, upgrade_schema
from app.settings import Settings


def _is_known_sqlite_difference(diff: object, sqlite: bool) -> bool:
    """0002 adds owner_id without a foreign key on SQLite (see its docstring); PostgreSQL has it."""
    return sqlite and isinstance(diff, tuple) and diff[0] == "add_fk" and diff[1].parent.name in ("datasets", "jobs")


def test_migrations_match_the_models(settings: Settings) -> None:
    database = Database(settings)
    try:
        assert upgrade_schema(database) == "0003"
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = [d for d in compare_metadata(context, Base.metadata)
                     if not _is_known_sqlite_difference(d, database.is_sqlite)]
        assert diffs == []
    finally:
        database.dispose()
