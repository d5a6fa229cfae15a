"""The owners and api_keys tables. A key is stored as the SHA-256 of the whole key, never the key itself."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UtcDateTime

# The owner of everything created before owners existed, and of the key `dptune serve` makes on localhost.
LOCAL_OWNER_ID = "local"
LOCAL_OWNER_NAME = "local"


class OwnerRecord(Base):
    __tablename__ = "owners"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKeyRecord(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public: shown by `keys list`, in logs
    owner_id: Mapped[str] = mapped_column(ForeignKey("owners.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the whole key
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
