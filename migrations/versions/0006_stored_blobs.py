"""stored_blobs: data set and model files kept in the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

- stored_blobs (key, chunk, data): a stored file's bytes in chunks of a few MB, primary key (key, chunk); the
  key is the file's storage key (datasets/<id>.csv, models/<job id>/model.keras). Used when DPTUNE_STORAGE
  resolves to `database` (the default on PostgreSQL), so workers need no shared data folder.

When the files are to live in the database, the upgrade copies in those that the data folder of the migrating
process holds (every data set's file, every final model's files), so no data set becomes unreadable; the
folder's copies stay until the data set is deleted, which removes them too. Downgrading drops the table and
the files in it: write them out first if the folder does not still hold them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from app.settings import Settings

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK_BYTES = 4 * 1024 * 1024
MODEL_FILES = ("model.keras", "privacy.json")
logger = logging.getLogger("alembic.runtime.migration")

stored_blobs = sa.table(
    "stored_blobs", sa.column("key", sa.String), sa.column("chunk", sa.Integer), sa.column("data", sa.LargeBinary)
)


def upgrade() -> None:
    op.create_table(
        "stored_blobs",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("chunk", sa.Integer, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    settings = context.config.attributes.get("settings") or Settings()
    if settings.stores_files_in_database:
        _copy_folder_files_in(settings)


def downgrade() -> None:
    op.drop_table("stored_blobs")


def _copy_folder_files_in(settings: Settings) -> None:
    bind = op.get_bind()
    keys = list(bind.execute(sa.text("SELECT storage_key FROM datasets")).scalars())
    job_ids = bind.execute(sa.text("SELECT id FROM jobs WHERE final_model IS NOT NULL")).scalars()
    keys += [f"models/{job_id}/{name}" for job_id in job_ids for name in MODEL_FILES]
    copied = 0
    for key in keys:
        path = settings.data_dir / key
        if not path.is_file():
            continue
        with path.open("rb") as handle:
            index = 0
            while (data := handle.read(CHUNK_BYTES)) or index == 0:
                bind.execute(stored_blobs.insert().values(key=key, chunk=index, data=data))
                index += 1
        copied += 1
    if keys:
        logger.info("copied %d of %d stored files from %s into the database", copied, len(keys), settings.data_dir)
