"""Creating, checking and revoking API keys; used by the API (authentication) and `dptune keys`."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.db import Database, utcnow
from app.owners import repository
from app.owners.keys import NewKey, hash_key, new_key, plausible_key
from app.owners.models import LOCAL_OWNER_ID, ApiKeyRecord, OwnerRecord

MAX_OWNER_NAME_CHARS = 255


@dataclass(frozen=True)
class Principal:
    """Who a request acts for."""

    owner_id: str
    owner_name: str
    key_id: str


@dataclass(frozen=True)
class CreatedKey:
    owner_id: str
    owner_name: str
    key_id: str
    key: str


def authenticate(session: Session, key: str) -> Principal | None:
    if not plausible_key(key):
        return None
    found = repository.active_key_by_hash(session, hash_key(key))
    if found is None:
        return None
    key_id, owner_id, owner_name = found
    return Principal(owner_id=owner_id, owner_name=owner_name, key_id=key_id)


def principal_of_key(session: Session, key_id: str) -> Principal | None:
    """Who a key id acts for while the key is active (the dashboard's session holds the id, not the key)."""
    record = repository.get_key(session, key_id)
    if record is None or record.revoked_at is not None:
        return None
    owner = session.get(OwnerRecord, record.owner_id)
    return None if owner is None else Principal(owner_id=owner.id, owner_name=owner.name, key_id=record.id)


def ensure_owner(session: Session, name: str) -> OwnerRecord:
    name = name.strip()
    if not name or len(name) > MAX_OWNER_NAME_CHARS:
        raise ValueError(f"an owner name has 1 to {MAX_OWNER_NAME_CHARS} characters")
    owner = repository.owner_by_name(session, name)
    if owner is None:
        owner = OwnerRecord(id=str(uuid.uuid4()), name=name, created_at=utcnow())
        repository.add_owner(session, owner)
    return owner


def create_key(session: Session, owner_name: str) -> CreatedKey:
    owner = ensure_owner(session, owner_name)
    made: NewKey = new_key()
    repository.add_key(
        session,
        ApiKeyRecord(id=made.key_id, owner_id=owner.id, key_hash=made.key_hash, created_at=utcnow(), revoked_at=None),
    )
    return CreatedKey(owner_id=owner.id, owner_name=owner.name, key_id=made.key_id, key=made.key)


def create_local_key(session: Session) -> CreatedKey:
    """A key of the 'local' owner (made by migration 0002, which also owns everything made before owners)."""
    owner = session.get(OwnerRecord, LOCAL_OWNER_ID)
    assert owner is not None, "migration 0002 creates the local owner"
    return create_key(session, owner.name)


def revoke(session: Session, key_id: str) -> bool:
    return repository.revoke_key(session, key_id, utcnow())


def ensure_local_key_file(database: Database, path: Path) -> tuple[Path, bool]:
    """The embedded default: on the first start, make a key for the local owner and write it to `path` with
    mode 0600 (created that way, never readable by others even for a moment). Returns (path, created)."""
    if path.exists():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = False
    try:
        with database.transaction() as session:
            created = create_local_key(session)
            # O_EXCL: of two servers starting at once, one writes the file; the other's key is rolled back.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written = True
            with os.fdopen(fd, "w") as handle:
                handle.write(created.key + "\n")
    except FileExistsError:
        return path, False
    except BaseException:
        if written:  # the key's row was not committed: a file with a dead key must not stay
            path.unlink(missing_ok=True)
        raise
    return path, True


def read_key_file(path: Path) -> str:
    return path.read_text().strip()
