"""Where the bytes of stored files live: the data folder of this machine, or the database.

Every stored file (an uploaded or built-in data set, a final model's files) has a storage key such as
`datasets/<id>.csv`. The folder store keeps it at DATA_DIR/<key>: the embedded default on SQLite, as before.
The database store keeps it in the stored_blobs table, in chunks, so that a worker on another machine needs only
DPTUNE_DATABASE_URL; a worker then reads a data set from a copy in its own data folder, cached under the
content's sha256 (cache/datasets/<sha256>).

Both stores add and delete within the caller's session: a file exists exactly when the transaction that added
it committed, and is gone (or, in a folder, removed right after) when the one that deleted it did. Folder
operations use the session hooks (app.db.on_rollback, after_commit) that whoever commits runs.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Protocol

from sqlalchemy import Integer, LargeBinary, String, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.datasets.errors import DatasetError
from app.datasets.storage import HashingWriter, new_temp_path, remove_temp, stored_path
from app.db import Base, after_commit, on_rollback
from app.settings import Settings

# A chunk is one row and one statement: large enough that a 200 MB upload is 50 inserts, small enough that
# neither side holds more than a few chunks in memory.
BLOB_CHUNK_BYTES = 4 * 1024 * 1024
CACHE_FOLDER = "cache/datasets"
# A cached copy of a data set that still exists is dropped once no unit used it for this long.
CACHE_IDLE_SECONDS = 3600.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


class StoredBlobChunk(Base):
    """One chunk of a stored file (database store): chunk 0, 1, ... in order make up the file's bytes."""

    __tablename__ = "stored_blobs"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


def stored_file_missing() -> DatasetError:
    """A data set whose file is gone: deleted meanwhile, or lost from the data folder."""
    return DatasetError("stored_file_missing", "the data set's stored file no longer exists", {}, 409)


class BlobStore(Protocol):
    """The one interface to stored files; `blob_store(settings)` picks the implementation."""

    def put(self, session: Session, key: str, source: Path) -> None:
        """`source` (a file in the data folder, which the caller removes afterwards if it is still there)
        becomes the file `key`, replacing an older one, with `session`'s commit."""

    def delete(self, session: Session, keys: Collection[str]) -> None:
        """The files `keys` are gone with `session`'s commit (missing ones are ignored)."""

    def read(self, session: Session, key: str) -> bytes | None:
        """A small file's bytes (a final model's), or None when it does not exist."""

    def local_copy(self, session: Session, key: str, sha256: str) -> Path:
        """A path on this machine holding the file `key` (content `sha256`), to read it from.
        Raises stored_file_missing when the file is not stored (any more)."""

    def sweep_cache(self, existing: Callable[[set[str]], set[str]]) -> int:
        """Drop cached copies whose data set is gone (`existing(sha256s)` names those that still exist) or
        that nobody used for CACHE_IDLE_SECONDS. Returns how many were dropped."""


class FolderStore:
    """Files at DATA_DIR/<key>: the embedded default. Readers share the folder, so nothing is cached."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def put(self, session: Session, key: str, source: Path) -> None:
        final = stored_path(self.settings, key)
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.replace(source, final)  # atomic: same file system
        on_rollback(session, lambda: final.unlink(missing_ok=True))

    def delete(self, session: Session, keys: Collection[str]) -> None:
        paths = [stored_path(self.settings, key) for key in keys]

        def unlink_all() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        after_commit(session, unlink_all)

    def read(self, session: Session, key: str) -> bytes | None:
        path = stored_path(self.settings, key)
        return path.read_bytes() if path.is_file() else None

    def local_copy(self, session: Session, key: str, sha256: str) -> Path:
        path = stored_path(self.settings, key)
        if not path.is_file():
            raise stored_file_missing()
        return path

    def sweep_cache(self, existing: Callable[[set[str]], set[str]]) -> int:
        return 0


class DatabaseStore:
    """Files as chunks in stored_blobs; a worker's copies cached in its own data folder by content sha256."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def put(self, session: Session, key: str, source: Path) -> None:
        session.execute(delete(StoredBlobChunk).where(StoredBlobChunk.key == key))
        with source.open("rb") as handle:
            index = 0
            while (data := handle.read(BLOB_CHUNK_BYTES)) or index == 0:  # an empty file is one empty chunk
                session.execute(insert(StoredBlobChunk).values(key=key, chunk=index, data=data))
                index += 1

    def delete(self, session: Session, keys: Collection[str]) -> None:
        """The rows, and any copy a data folder still holds from before the files moved into the database
        (migration 0006 copies them in and leaves them)."""
        if keys:
            session.execute(delete(StoredBlobChunk).where(StoredBlobChunk.key.in_(list(keys))))
        FolderStore(self.settings).delete(session, keys)

    def read(self, session: Session, key: str) -> bytes | None:
        if not self._exists(session, key):
            return None
        return b"".join(self._chunks(session, key))

    def local_copy(self, session: Session, key: str, sha256: str) -> Path:
        """The cached copy, checked against the database first: a copy of a deleted file is dropped, never
        used. A new copy is streamed to a temp file, its sha256 checked, then renamed into the cache."""
        cached = self._cached_path(sha256)
        if not self._exists(session, key):
            cached.unlink(missing_ok=True)
            raise stored_file_missing()
        if cached.is_file():
            os.utime(cached)  # marks it used, for the idle sweep
            return cached
        temp = new_temp_path(self.settings)
        try:
            with temp.open("wb") as handle:
                writer = HashingWriter(handle, sys.maxsize)
                for data in self._chunks(session, key):
                    writer.write(data)
            if writer.sha256 != sha256:
                raise DatasetError(
                    "stored_file_corrupt", "the data set's stored bytes do not match its sha256", {}, 500
                )
            cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.replace(temp, cached)
        finally:
            remove_temp(temp)  # no-op once renamed
        return cached

    def sweep_cache(self, existing: Callable[[set[str]], set[str]]) -> int:
        folder = stored_path(self.settings, CACHE_FOLDER)
        if not folder.is_dir():
            return 0
        cached = {path.name: path for path in folder.iterdir() if _SHA256.fullmatch(path.name)}
        if not cached:
            return 0
        idle_before = time.time() - CACHE_IDLE_SECONDS
        still_stored = existing(set(cached))
        dropped = 0
        for sha256, path in cached.items():
            try:
                if sha256 not in still_stored or path.stat().st_mtime < idle_before:
                    path.unlink()
                    dropped += 1
            except FileNotFoundError:  # another worker process on this machine dropped it first
                continue
        return dropped

    def _cached_path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return stored_path(self.settings, f"{CACHE_FOLDER}/{sha256}")

    @staticmethod
    def _exists(session: Session, key: str) -> bool:
        found = session.scalar(
            select(StoredBlobChunk.chunk).where(StoredBlobChunk.key == key, StoredBlobChunk.chunk == 0)
        )
        return found is not None

    @staticmethod
    def _chunks(session: Session, key: str) -> Iterator[bytes]:
        """One chunk per query (a primary-key lookup), so only one is in memory at a time."""
        index = 0
        while True:
            data = session.scalar(
                select(StoredBlobChunk.data).where(StoredBlobChunk.key == key, StoredBlobChunk.chunk == index)
            )
            if data is None:
                return
            yield bytes(data)
            index += 1


def blob_store(settings: Settings) -> BlobStore:
    return DatabaseStore(settings) if settings.stores_files_in_database else FolderStore(settings)
