"""jobs.search_space: the search space the guarantee allows, stored with the baseline

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

- jobs.search_space (JSON, nullable): app.tuning.search.SearchSpace, written with the baseline (and its delta).
  Its smallest noise is the accountant's calibration for max_epsilon, 1-3 s of PLD accounting; every worker's
  first claim on a job and every API process's first read of a result paid it again, since nothing stored it.
  Added in place; jobs from before this revision have none and compute it when read, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("search_space", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("jobs", "search_space")  # plain DROP COLUMN (SQLite 3.35+), as 0005
