"""All SQL on owners and api_keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.owners.models import ApiKeyRecord, OwnerRecord


def owner_by_name(session: Session, name: str) -> OwnerRecord | None:
    return session.scalars(select(OwnerRecord).where(OwnerRecord.name == name)).first()


def add_owner(session: Session, owner: OwnerRecord) -> None:
    session.add(owner)
    session.flush()


def lock_owner(session: Session, owner_id: str) -> OwnerRecord | None:
    """Serialises one owner's job creations (PostgreSQL row lock; SQLite's write lock does it there)."""
    return session.scalars(select(OwnerRecord).where(OwnerRecord.id == owner_id).with_for_update()).first()


def add_key(session: Session, key: ApiKeyRecord) -> None:
    session.add(key)
    session.flush()


# Every authenticated request runs it: built once, and only the three columns a Principal needs.
_ACTIVE_KEY_QUERY = (
    select(ApiKeyRecord.id, OwnerRecord.id, OwnerRecord.name)
    .join(OwnerRecord, OwnerRecord.id == ApiKeyRecord.owner_id)
    .where(ApiKeyRecord.key_hash == bindparam("key_hash"), ApiKeyRecord.revoked_at.is_(None))
)


def active_key_by_hash(session: Session, key_hash: str) -> tuple[str, str, str] | None:
    """(key id, owner id, owner name) of the active key with this hash."""
    row = session.connection().execute(_ACTIVE_KEY_QUERY, {"key_hash": key_hash}).first()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def list_keys(session: Session) -> list[tuple[ApiKeyRecord, OwnerRecord]]:
    rows = session.execute(
        select(ApiKeyRecord, OwnerRecord)
        .join(OwnerRecord, OwnerRecord.id == ApiKeyRecord.owner_id)
        .order_by(OwnerRecord.name, ApiKeyRecord.created_at)
    ).all()
    return [(key, owner) for key, owner in rows]


def revoke_key(session: Session, key_id: str, now: datetime) -> bool:
    result = session.execute(
        update(ApiKeyRecord)
        .where(ApiKeyRecord.id == key_id, ApiKeyRecord.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a DML statement returns a CursorResult


def get_key(session: Session, key_id: str) -> ApiKeyRecord | None:
    return session.get(ApiKeyRecord, key_id)
