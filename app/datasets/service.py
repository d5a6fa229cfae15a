"""The datasets API's logic: validate, store once, list, delete with everything derived."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from app.api.deps import after_commit, on_rollback
from app.api.errors import ApiError, not_found
from app.api.pagination import Page, PageParams
from app.datasets import repository
from app.datasets.builtin import BUILTIN_DATASETS
from app.datasets.models import DatasetRecord
from app.datasets.schemas import BuiltinDatasetCreate, DatasetRead
from app.datasets.splits import SplitSpec
from app.datasets.storage import file_sha256, new_temp_path, promote, remove_stored, remove_temp, storage_key
from app.datasets.tables import read_table, table_format, validate_table
from app.datasets.upload import ReceivedUpload
from app.db import utcnow
from app.jobs import repository as job_repository
from app.settings import Settings

logger = logging.getLogger("dptune.datasets")

SPLIT_ADAPTER: TypeAdapter[SplitSpec] = TypeAdapter(SplitSpec)
MAX_NAME_CHARS = 255


def register_upload(
    session: Session,
    settings: Settings,
    temp: Path,
    upload: ReceivedUpload,
    label: str,
    smiles_column: str | None,
    name: str | None,
    filename: str,
) -> DatasetRecord:
    """Validate the received temp file with the engine's checks, then move it in place and add its row.
    The move is undone if the row's commit fails, so a file never exists without its row or the reverse."""
    file_format = table_format(temp, filename)  # unsupported extension: 415 before reading anything
    if upload.size > settings.max_upload_bytes:
        raise ApiError(413, "upload_too_large", f"the upload is larger than the limit of "
                       f"{settings.max_upload_bytes} bytes", {"max_bytes": settings.max_upload_bytes})
    frame = read_table(temp, filename)
    summary = validate_table(frame, label, smiles_column)
    dataset_id = str(uuid.uuid4())
    record = DatasetRecord(
        id=dataset_id,
        name=(name or filename)[:MAX_NAME_CHARS],
        source="upload",
        builtin_name=None,
        original_filename=filename,
        file_format=file_format,
        storage_key=storage_key(dataset_id, file_format),
        size_bytes=upload.size,
        sha256=upload.sha256,
        label=label,
        smiles_column=smiles_column,
        rows=summary.rows,
        columns=summary.columns,
        class_counts=summary.class_counts,
        default_split=None,
        created_at=utcnow(),
    )
    _store(session, settings, temp, record)
    logger.info("stored data set %s: %d rows, %d columns, %d bytes", record.id, summary.rows,
                len(summary.columns), upload.size)
    return record


def create_builtin(session: Session, settings: Settings, request: BuiltinDatasetCreate) -> DatasetRecord:
    builtin = BUILTIN_DATASETS.get(request.name)
    if builtin is None:
        raise ApiError(422, "unknown_builtin_dataset", f"no built-in data set '{request.name}'",
                       {"available": sorted(BUILTIN_DATASETS)})
    frame = builtin.load(request.seed)
    summary = validate_table(frame, builtin.label, builtin.smiles_column)
    temp = new_temp_path(settings)
    try:
        frame.to_parquet(temp, index=False)
        dataset_id = str(uuid.uuid4())
        record = DatasetRecord(
            id=dataset_id,
            name=f"{builtin.name} (seed {request.seed})",
            source="builtin",
            builtin_name=builtin.name,
            original_filename=None,
            file_format="parquet",
            storage_key=storage_key(dataset_id, "parquet"),
            size_bytes=temp.stat().st_size,
            sha256=file_sha256(temp),
            label=builtin.label,
            smiles_column=builtin.smiles_column,
            rows=summary.rows,
            columns=summary.columns,
            class_counts=summary.class_counts,
            default_split=SPLIT_ADAPTER.dump_python(builtin.default_split, mode="json"),
            created_at=utcnow(),
        )
        _store(session, settings, temp, record)
    finally:
        remove_temp(temp)  # no-op once moved
    return record


def _store(session: Session, settings: Settings, temp: Path, record: DatasetRecord) -> None:
    repository.add(session, record)
    promote(temp, settings, record.storage_key)
    on_rollback(session, lambda: remove_stored(settings, record.storage_key))


def get_dataset(session: Session, dataset_id: str) -> DatasetRecord:
    record = repository.get(session, dataset_id)
    if record is None:
        raise not_found("dataset", dataset_id)
    return record


def list_datasets(session: Session, page: PageParams) -> Page[DatasetRead]:
    rows, total = repository.list_page(session, page.offset, page.limit)
    return Page[DatasetRead](items=[to_read(r) for r in rows], total=total, offset=page.offset, limit=page.limit)


def delete_dataset(session: Session, settings: Settings, dataset_id: str) -> None:
    """Remove the data set's row, its jobs, trials and recommendations, then (after the commit) its file.
    Refused while a job on it is queued or running. Workers keep prepared data in memory only, and drop
    it once no active job needs it."""
    record = repository.get_for_update(session, dataset_id)
    if record is None:
        raise not_found("dataset", dataset_id)
    active = job_repository.active_job_ids_for_dataset(session, dataset_id)
    if active:
        raise ApiError(409, "dataset_in_use", f"{len(active)} job(s) on this data set are queued or running; "
                       "cancel them first", {"jobs": active})
    key = record.storage_key
    job_repository.delete_jobs_of_dataset(session, dataset_id)
    repository.delete_one(session, dataset_id)
    after_commit(session, lambda: remove_stored(settings, key))
    logger.info("deleted data set %s", dataset_id)


def to_read(record: DatasetRecord) -> DatasetRead:
    return DatasetRead(
        id=record.id,
        name=record.name,
        source=record.source,  # type: ignore[arg-type]
        builtin_name=record.builtin_name,
        filename=record.original_filename,
        format=record.file_format,  # type: ignore[arg-type]
        size_bytes=record.size_bytes,
        sha256=record.sha256,
        label=record.label,
        smiles_column=record.smiles_column,
        rows=record.rows,
        columns=list(record.columns),
        class_counts=dict(record.class_counts),
        default_split=SPLIT_ADAPTER.validate_python(record.default_split) if record.default_split else None,
        created_at=record.created_at,
    )

