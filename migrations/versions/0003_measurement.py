"""jobs.measurement (how privacy is measured) and jobs.error_code (why a job failed)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15

Both columns are nullable and added in place (no table rebuild on SQLite). A job from before this revision
has measurement NULL, which the application reads as MeasurementSpec() defaults, and error_code NULL.

Measurement v2 also changed what is stored, so old rows are brought to it here (the API must never fail
reading them):
- split specs (jobs.split, datasets.default_split) lose the three-way fields: a random split's
  members/test/nonmembers fractions and a Butina split's three group fractions become the five-way defaults,
  k-means drops test_fraction; the kind, columns, cutoff and sizes stay;
- results measured before v2 (a baseline without `games`) cannot be read as v2 results: their trials and
  recommendation are removed; a queued or running job is queued again (it will be measured anew), a finished
  one ends failed with error_code measured_before_v2 and says to submit it again. The job's request stays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_RESULT_ERROR = (
    "this job was measured before dptune's measurement v2 (three splits, one attack game, RDP accounting); its "
    "results cannot be read as v2 results and were removed. Submit the same job again to measure it anew."
)


def five_way_split(split: dict[str, Any]) -> dict[str, Any]:
    """A stored split spec in today's shape (unchanged when it already is)."""
    kind = split.get("kind")
    if kind == "random" and "nonmembers" in split:
        return {"kind": "random"}
    if kind == "kmeans" and "test_fraction" in split:
        return {key: value for key, value in split.items() if key != "test_fraction"}
    if kind == "butina" and len(split.get("fractions") or ()) == 3:
        return {key: value for key, value in split.items() if key != "fractions"}
    return split


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    op.add_column("jobs", sa.Column("measurement", sa.JSON(), nullable=True))
    op.add_column("jobs", sa.Column("error_code", sa.String(64), nullable=True))
    connection = op.get_bind()
    for table, column in (("jobs", "split"), ("datasets", "default_split")):
        rows = connection.execute(sa.text(f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL")).all()
        for row_id, stored in rows:
            split = _loaded(stored)
            if isinstance(split, dict) and five_way_split(split) != split:
                connection.execute(
                    sa.text(f"UPDATE {table} SET {column} = :split WHERE id = :id").bindparams(
                        sa.bindparam("split", type_=sa.JSON)
                    ),
                    {"split": five_way_split(split), "id": row_id},
                )
    jobs = connection.execute(sa.text("SELECT id, status, baseline FROM jobs WHERE baseline IS NOT NULL")).all()
    for job_id, status, stored in jobs:
        baseline = _loaded(stored)
        if not isinstance(baseline, dict) or "games" in baseline:
            continue
        connection.execute(sa.text("DELETE FROM recommendations WHERE job_id = :id"), {"id": job_id})
        connection.execute(sa.text("DELETE FROM trials WHERE job_id = :id"), {"id": job_id})
        if status in ("queued", "running"):
            connection.execute(
                sa.text(
                    "UPDATE jobs SET status = 'queued', baseline = NULL, delta = NULL, preparation = NULL, "
                    "baseline_worker = NULL, baseline_lease_token = NULL, baseline_lease_expires_at = NULL, "
                    "baseline_attempts = 0, baseline_finished_at = NULL, started_at = NULL, "
                    "trials_version = trials_version + 1 WHERE id = :id"
                ),
                {"id": job_id},
            )
        else:
            connection.execute(
                sa.text(
                    "UPDATE jobs SET status = 'failed', baseline = NULL, preparation = NULL, error = :error, "
                    "error_code = 'measured_before_v2', trials_version = trials_version + 1 WHERE id = :id"
                ),
                {"id": job_id, "error": OLD_RESULT_ERROR},
            )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), no batch rebuild: with foreign keys on, copying the table would
    # cascade-delete its trials (see 0002).
    op.drop_column("jobs", "error_code")
    op.drop_column("jobs", "measurement")
