"""jobs.measurement (how privacy is measured) and jobs.error_code (why a job failed)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15

Both columns are nullable and added in place (no table rebuild on SQLite). A job from before this revision
has measurement NULL, which the application reads as MeasurementSpec() defaults, and error_code NULL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("measurement", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("error_code", sa.String(64), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), no batch rebuild: with foreign keys on, copying the table would
    # cascade-delete its trials (see 0002).
    op.drop_column("jobs", "error_code")
    op.drop_column("jobs", "measurement")
