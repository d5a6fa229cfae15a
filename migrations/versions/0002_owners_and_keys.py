"""owners and API keys; every data set and job gets an owner

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-08

Rows made before owners existed go to the owner 'local', which also owns the key `dptune serve` makes on
localhost, so an upgraded embedded installation keeps seeing its own data.

On SQLite the owner_id columns are added with ALTER TABLE ... ADD COLUMN and no foreign key: SQLite can add
a REFERENCES column only with a NULL default, and the other way (rebuilding the table) would, with
foreign keys on, cascade-delete the jobs of every data set it copies. The application sets owner_id on every
insert; PostgreSQL also enforces the foreign key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL_OWNER_ID = "local"


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.String(36), sa.ForeignKey("owners.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_api_keys_owner_id", "api_keys", ["owner_id"])
    owners = sa.table(
        "owners", sa.column("id", sa.String), sa.column("name", sa.String), sa.column("created_at", sa.DateTime)
    )
    op.bulk_insert(
        owners, [{"id": LOCAL_OWNER_ID, "name": LOCAL_OWNER_ID, "created_at": datetime.now(UTC).replace(tzinfo=None)}]
    )

    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("datasets", "jobs"):
        op.add_column(
            table, sa.Column("owner_id", sa.String(36), nullable=False, server_default=sa.text(f"'{LOCAL_OWNER_ID}'"))
        )
        if not sqlite:
            op.create_foreign_key(f"fk_{table}_owner_id", table, "owners", ["owner_id"], ["id"])
            op.alter_column(table, "owner_id", server_default=None)
        op.create_index(f"ix_{table}_owner_id", table, ["owner_id"])


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("jobs", "datasets"):
        op.drop_index(f"ix_{table}_owner_id", table_name=table)
        if not sqlite:
            op.drop_constraint(f"fk_{table}_owner_id", table, type_="foreignkey")
        op.drop_column(table, "owner_id")
    op.drop_index("ix_api_keys_owner_id", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("owners")
