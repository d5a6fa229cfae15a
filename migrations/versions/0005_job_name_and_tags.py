"""jobs.name and the job_tags table: jobs a person can find

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-28

- jobs.name: an optional name (at most 200 characters), added in place (no table rebuild on SQLite);
- job_tags (job_id, tag): a job's tags, one row each, primary key (job_id, tag), foreign key to jobs.id ON
  DELETE CASCADE, and an index on tag. A join table rather than a JSON list on jobs: "jobs with all of these
  tags" is then one plain EXISTS per tag on SQLite and PostgreSQL alike, where JSON containment differs.

Jobs from before this revision have no name and no tags.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TAG_INDEX = "ix_job_tags_tag"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("name", sa.String(200), nullable=True))
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag", sa.String(50), primary_key=True),
    )
    op.create_index(TAG_INDEX, "job_tags", ["tag"])


def downgrade() -> None:
    op.drop_index(TAG_INDEX, table_name="job_tags")
    op.drop_table("job_tags")
    op.drop_column("jobs", "name")  # plain DROP COLUMN (SQLite 3.35+): no rebuild, nothing cascades
