"""The datasets API's logic: validate, store once, list, delete with everything derived."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from app.blobs import blob_store
from app.core.errors import DomainError, not_found
from app.core.pagination import Page, PageParams
from app.datasets import repository
from app.datasets.builtin import BUILTIN_DATASETS
from app.datasets.errors import DatasetError
from app.datasets.features import check_splittable
from app.datasets.models import DatasetRecord
from app.datasets.schemas import BuiltinDatasetCreate, DatasetRead
from app.datasets.splits import SPLIT_ADAPTER
from app.datasets.storage import file_sha256, new_temp_path, remove_temp, storage_key
from app.datasets.tables import TableSummary, check_flat_schema, read_table, table_format, validate_table
from app.datasets.upload import ReceivedUpload, too_large
from app.db import utcnow
from app.jobs import repository as job_repository
from app.jobs.final_models import remove_models
from app.logs import exception_summary
from app.settings import Settings

logger = logging.getLogger("dptune.datasets")

MAX_NAME_CHARS = 255
# Bytes of a CSV read to count its header's columns before the whole file is parsed.
HEADER_PROBE_BYTES = 1 << 20


def register_upload(
    session: Session,
    settings: Settings,
    owner_id: str,
    temp: Path,
    upload: ReceivedUpload,
    label: str,
    smiles_column: str | None,
    name: str | None,
    filename: str,
) -> DatasetRecord:
    """Validate the received temp file with the engine's checks and the service's limits, then move it in
    place and add its row. The move is undone if the row's commit fails, so a file never exists without its
    row or the reverse."""
    file_format = table_format(temp, filename)  # unsupported extension: 415 before reading anything
    if upload.size > settings.max_upload_bytes:
        raise too_large(settings.max_upload_bytes)
    precheck_file(temp, file_format, settings)
    frame = read_table(temp, filename)
    check_shape(frame, settings)
    summary = _validate(frame, label, smiles_column)
    check_splittable(frame, label, smiles_column)  # what every split would refuse, before a job finds it
    dataset_id = str(uuid.uuid4())
    record = DatasetRecord(
        id=dataset_id,
        owner_id=owner_id,
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
    logger.info(
        "stored data set %s: %d rows, %d columns, %d bytes",
        record.id,
        summary.rows,
        len(summary.columns),
        upload.size,
    )
    return record


def create_builtin(
    session: Session, settings: Settings, owner_id: str, request: BuiltinDatasetCreate
) -> DatasetRecord:
    builtin = BUILTIN_DATASETS.get(request.name)
    if builtin is None:
        raise DomainError(
            422,
            "unknown_builtin_dataset",
            f"no built-in data set '{request.name}'",
            {"available": sorted(BUILTIN_DATASETS)},
        )
    frame = builtin.load(request.seed)
    summary = validate_table(frame, builtin.label, builtin.smiles_column)
    temp = new_temp_path(settings)
    try:
        frame.to_parquet(temp, index=False)
        dataset_id = str(uuid.uuid4())
        record = DatasetRecord(
            id=dataset_id,
            owner_id=owner_id,
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
    """The row and the file in the request's one transaction: both are there after its commit, or neither."""
    repository.add(session, record)
    blob_store(settings).put(session, record.storage_key, temp)


def get_dataset(session: Session, owner_id: str, dataset_id: str) -> DatasetRecord:
    record = repository.get(session, dataset_id, owner_id)
    if record is None:
        raise not_found("dataset", dataset_id)  # also another owner's: 404, not 403
    return record


def list_datasets(session: Session, owner_id: str, page: PageParams) -> Page[DatasetRead]:
    rows, total = repository.list_page(session, owner_id, page.offset, page.limit)
    return Page[DatasetRead](items=[to_read(r) for r in rows], total=total, offset=page.offset, limit=page.limit)


def delete_dataset(session: Session, settings: Settings, owner_id: str, dataset_id: str) -> None:
    """Remove the data set's row, the jobs that read it (as their data set or their proxy), their trials and
    recommendations, its file and those jobs' final models (database store: in this transaction; folder: after
    the commit). Refused while such a job is queued or running. Workers drop their prepared data and cached
    copies once no active job needs them (app.blobs: a cached copy is checked against the database before use)."""
    record = repository.get_for_update(session, dataset_id, owner_id)
    if record is None:
        raise not_found("dataset", dataset_id)
    active = job_repository.active_job_ids_for_dataset(session, dataset_id)
    if active:
        raise DomainError(
            409,
            "dataset_in_use",
            f"{len(active)} job(s) on this data set are queued or running; cancel them first",
            {"jobs": active},
        )
    jobs = job_repository.job_ids_of_dataset(session, dataset_id)
    job_repository.delete_jobs_of_dataset(session, dataset_id)
    repository.delete_one(session, dataset_id)
    blob_store(settings).delete(session, [record.storage_key])
    remove_models(session, settings, jobs)
    logger.info("deleted data set %s", dataset_id)


# ---------------------------------------------------------------------------------------------- limits and checks
# The engine's checks (read_table, validate_table) decide whether a table can be used at all; these add the
# service's limits and turn the inputs those checks let through, but that would only fail (or crash) later,
# into a 422 at upload.


def precheck_file(path: Path, file_format: str, settings: Settings) -> None:
    """What can be told without parsing the table: Parquet's row and column counts and column types (from
    its footer), a CSV header's column count. A file these cannot read is left to read_table's errors."""
    if file_format == "parquet":
        try:
            parquet = pq.ParquetFile(path)
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
        except (pa.ArrowException, OSError, ValueError):
            return
        _check_counts(rows, len(schema.names), settings)
        check_flat_schema(schema)
        return
    with path.open("rb") as handle:
        head = handle.read(HEADER_PROBE_BYTES)
    first_line = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    try:
        header = next(csv.reader(io.StringIO(first_line)), [])
    except csv.Error:
        return
    if len(header) > settings.max_columns:
        _check_counts(0, len(header), settings)


def check_shape(frame: pd.DataFrame, settings: Settings) -> None:
    _check_counts(len(frame), frame.shape[1], settings)


def _check_counts(rows: int, columns: int, settings: Settings) -> None:
    if columns > settings.max_columns:
        raise DomainError(
            422,
            "too_many_columns",
            f"the table has {columns} columns; the limit is {settings.max_columns}",
            {"count": columns, "max": settings.max_columns},
        )
    if rows > settings.max_rows:
        raise DomainError(
            422,
            "too_many_rows",
            f"the table has {rows} rows; the limit is {settings.max_rows}",
            {"count": rows, "max": settings.max_rows},
        )


def _validate(frame: pd.DataFrame, label: str, smiles_column: str | None) -> TableSummary:
    """validate_table; a crash inside it on odd input (a column type it does not expect) is the input's
    fault, so it is a 422 here, and logged (type and frames only) so the check can be fixed where it lives."""
    try:
        return validate_table(frame, label, smiles_column)
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        if isinstance(exc, DatasetError):
            raise
        logger.error(
            "validate_table raised %s on an upload; answered 422 invalid_table",
            type(exc).__name__,
            extra=exception_summary((type(exc), exc, exc.__traceback__)),
        )
        raise DomainError(
            422,
            "invalid_table",
            f"the table cannot be validated ({type(exc).__name__}); check that "
            "every column holds plain numbers or text",
        ) from None


def to_read(record: DatasetRecord) -> DatasetRead:
    return DatasetRead(
        id=record.id,
        name=record.name,
        source=record.source,
        builtin_name=record.builtin_name,
        filename=record.original_filename,
        format=record.file_format,
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
