"""All SQL on the datasets table. Every lookup a user can reach is filtered by the owner."""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.datasets.models import DatasetRecord


def add(session: Session, record: DatasetRecord) -> None:
    session.add(record)
    session.flush()


def get(session: Session, dataset_id: str, owner_id: str | None = None) -> DatasetRecord | None:
    """The data set, if it exists and (when `owner_id` is given) belongs to that owner."""
    record = session.get(DatasetRecord, dataset_id)
    if record is None or (owner_id is not None and record.owner_id != owner_id):
        return None
    return record


def get_for_update(session: Session, dataset_id: str, owner_id: str) -> DatasetRecord | None:
    """Locks the row (PostgreSQL), so a job cannot be created on a data set being deleted, nor the reverse."""
    return session.scalars(
        select(DatasetRecord)
        .where(DatasetRecord.id == dataset_id, DatasetRecord.owner_id == owner_id)
        .with_for_update()
    ).first()


def get_for_share(session: Session, dataset_id: str, owner_id: str) -> DatasetRecord | None:
    return session.scalars(
        select(DatasetRecord)
        .where(DatasetRecord.id == dataset_id, DatasetRecord.owner_id == owner_id)
        .with_for_update(read=True)
    ).first()


def list_page(session: Session, owner_id: str, offset: int, limit: int) -> tuple[list[DatasetRecord], int]:
    condition = DatasetRecord.owner_id == owner_id
    total = session.scalar(select(func.count()).select_from(DatasetRecord).where(condition)) or 0
    rows = session.scalars(
        select(DatasetRecord)
        .where(condition)
        .order_by(DatasetRecord.created_at.desc(), DatasetRecord.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), int(total)


def delete_one(session: Session, dataset_id: str) -> None:
    session.execute(delete(DatasetRecord).where(DatasetRecord.id == dataset_id))


def existing_sha256s(session: Session, sha256s: set[str]) -> set[str]:
    """Which of these contents some data set still has."""
    if not sha256s:
        return set()
    rows = session.scalars(select(DatasetRecord.sha256).where(DatasetRecord.sha256.in_(sorted(sha256s))).distinct())
    return set(rows)
