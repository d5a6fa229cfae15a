"""recommendation v2: a job's guarantee, proxy data set, stages after the search and its final model

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20

New jobs columns, all added in place (no table rebuild on SQLite):
- guarantee (JSON, app.tuning.results.GuaranteeSpec; NULL reads as its defaults) and tune_dataset_id (a proxy
  data set, foreign key to datasets.id ON DELETE CASCADE);
- stage (baseline, search, confirm, final; NULL once the job ended), recommended_index, confirmation,
  final_model and no_recommendation_reason: what the stages after the search write;
- finish_worker, finish_lease_token, finish_lease_expires_at, finish_attempts: the lease of the job-level
  finishing units (confirm, final), as the baseline_* columns are the baseline's.

As 0002 does for owner_id, tune_dataset_id gets its foreign key on PostgreSQL only: SQLite's DROP COLUMN
(the downgrade) refuses a column used in a foreign key, and rebuilding the table instead would cascade-delete
its trials. The application deletes a proxy's jobs itself (app.datasets.service.delete_dataset).

Rows from before this revision are brought to it:
- their jobs searched noise from 0 without a budget, so their guarantee is written as the no-guarantee spec
  (max_epsilon null), which is what they were measured under;
- queued jobs are at stage baseline; running ones at baseline or search, by whether their baseline finished;
- a stored recommendation in the old shape (no selection, training or headline) cannot be read as a v2
  Recommendation: it is removed, and the API re-chooses from the stored trials, unconfirmed (its notes say
  so). Such jobs have no final model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_GUARANTEE = {"max_epsilon": None, "target_epsilon": None, "confirm_repeats": 3, "max_utility_loss": None}
PROXY_FK = "fk_jobs_tune_dataset_id"
PROXY_INDEX = "ix_jobs_tune_dataset_id"


def _loaded(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column("jobs", sa.Column("guarantee", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("tune_dataset_id", sa.String(36), nullable=True))
    if not sqlite:
        op.create_foreign_key(PROXY_FK, "jobs", "datasets", ["tune_dataset_id"], ["id"], ondelete="CASCADE")
    op.create_index(PROXY_INDEX, "jobs", ["tune_dataset_id"])
    op.add_column("jobs", sa.Column("stage", sa.String(16), nullable=True))
    op.add_column("jobs", sa.Column("recommended_index", sa.Integer(), nullable=True))
    op.add_column("jobs", sa.Column("confirmation", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("final_model", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("no_recommendation_reason", sa.Text(), nullable=True))
    op.add_column("jobs", sa.Column("finish_worker", sa.String(128), nullable=True))
    op.add_column("jobs", sa.Column("finish_lease_token", sa.String(36), nullable=True))
    op.add_column("jobs", sa.Column("finish_lease_expires_at", sa.DateTime(), nullable=True))
    op.add_column("jobs", sa.Column("finish_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")))
    if not sqlite:
        op.alter_column("jobs", "finish_attempts", server_default=None)

    connection = op.get_bind()
    connection.execute(
        sa.text("UPDATE jobs SET guarantee = :guarantee").bindparams(sa.bindparam("guarantee", type_=sa.JSON)),
        {"guarantee": NO_GUARANTEE},
    )
    connection.execute(
        sa.text(
            "UPDATE jobs SET stage = 'baseline' WHERE status = 'queued' OR "
            "(status = 'running' AND baseline_finished_at IS NULL)"
        )
    )
    connection.execute(
        sa.text("UPDATE jobs SET stage = 'search' WHERE status = 'running' AND baseline_finished_at IS NOT NULL")
    )
    for job_id, stored in connection.execute(sa.text("SELECT job_id, recommendation FROM recommendations")).all():
        recommendation = _loaded(stored)
        if not isinstance(recommendation, dict) or "selection" not in recommendation:
            connection.execute(sa.text("DELETE FROM recommendations WHERE job_id = :id"), {"id": job_id})


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), no batch rebuild: with foreign keys on, copying the table would
    # cascade-delete its trials (see 0002). v2 recommendations stay; older code cannot read them either way.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in (
        "finish_attempts",
        "finish_lease_expires_at",
        "finish_lease_token",
        "finish_worker",
        "no_recommendation_reason",
        "final_model",
        "confirmation",
        "recommended_index",
        "stage",
    ):
        op.drop_column("jobs", column)
    op.drop_index(PROXY_INDEX, table_name="jobs")
    if not sqlite:
        op.drop_constraint(PROXY_FK, "jobs", type_="foreignkey")
    op.drop_column("jobs", "tune_dataset_id")
    op.drop_column("jobs", "guarantee")
