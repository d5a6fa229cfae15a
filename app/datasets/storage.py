"""Paths of stored files and upload temp files, all under the configured data folder.

An upload is written to tmp/ first and stored (app.blobs: moved into datasets/, or copied into the database)
only once it is valid, in the transaction that adds its row. Nothing is ever written outside the data folder.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from app.settings import Settings

logger = logging.getLogger("dptune.datasets")

TEMP_SUFFIX = ".part"
STALE_TEMP_SECONDS = 24 * 3600


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds {limit} bytes")
        self.limit = limit


class HashingWriter:
    """Writes chunks to a file while counting bytes and hashing them; stops at the size cap."""

    def __init__(self, handle: BinaryIO, max_bytes: int) -> None:
        self._handle = handle
        self._max_bytes = max_bytes
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise UploadTooLarge(self._max_bytes)
        self._digest.update(chunk)
        self._handle.write(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def new_temp_path(settings: Settings) -> Path:
    settings.ensure_dirs()
    return settings.tmp_dir / f"upload-{uuid.uuid4().hex}{TEMP_SUFFIX}"


def storage_key(dataset_id: str, file_format: str) -> str:
    return f"datasets/{dataset_id}.{file_format}"


def stored_path(settings: Settings, key: str) -> Path:
    """The absolute path of a stored file; refuses keys that would leave the data folder."""
    root = settings.data_dir.resolve()
    path = (root / key).resolve()
    if root not in path.parents:
        raise ValueError("storage key outside the data folder")
    return path


def remove_temp(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_stale_temp_files(settings: Settings, older_than_seconds: float = STALE_TEMP_SECONDS) -> int:
    """Temp files of uploads a crash interrupted; they never became data sets. Old ones only, so an upload
    in flight in another process is left alone."""
    if not settings.tmp_dir.exists():
        return 0
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in settings.tmp_dir.glob(f"*{TEMP_SUFFIX}"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        logger.info("removed %d stale upload temp files", removed)
    return removed
