"""/v1/datasets: upload (multipart), built-in data sets, list, get, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response, status
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import PROTECTED_RESPONSES, error_responses
from app.api.pagination import PageDep
from app.core.errors import DomainError
from app.core.pagination import Page
from app.datasets import service
from app.datasets.models import DatasetRecord
from app.datasets.schemas import BuiltinDatasetCreate, DatasetRead
from app.datasets.storage import new_temp_path, remove_temp
from app.datasets.upload import clean_filename, receive_upload
from app.settings import Settings

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=PROTECTED_RESPONSES)

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "label"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A .csv (UTF-8) or .parquet file.",
                        },
                        "label": {"type": "string", "minLength": 1, "maxLength": 255, "description": "Label column."},
                        "smiles_column": {
                            "type": "string",
                            "maxLength": 255,
                            "description": "SMILES column: features become ECFP fingerprints.",
                        },
                        "name": {
                            "type": "string",
                            "maxLength": 255,
                            "description": "A name for the data set; default: the file name.",
                        },
                    },
                },
                # The file is the built-in cohort written as CSV (tests/service/test_api_docs.py sends it).
                "examples": {
                    "synthea_covid_csv": {
                        "summary": "A CSV of patients, label column died",
                        "description": "file: a CSV such as the built-in synthea-covid cohort written out "
                        "(POST /v1/datasets/builtin makes the same data without an upload).",
                        "value": {"label": "died", "name": "synthea-covid cohort"},
                    },
                },
            }
        },
    }
}


BUILTIN_EXAMPLES: dict[str, dict[str, Any]] = {
    "synthea_covid": {
        "summary": "The synthetic COVID-19 cohort (label died, the study's k-means split)",
        "value": {"name": "synthea-covid", "seed": 0},
    },
}


def _form_field(fields: dict[str, str], name: str, required: bool) -> str | None:
    value = fields.get(name, "").strip()
    if not value:
        if required:
            raise DomainError(
                422,
                "validation_error",
                f"{name}: field required",
                {"errors": [{"loc": ["body", name], "msg": "Field required", "type": "missing"}]},
            )
        return None
    if len(value) > 255:
        raise DomainError(
            422,
            "validation_error",
            f"{name}: at most 255 characters",
            {"errors": [{"loc": ["body", name], "msg": "too long", "type": "string_too_long"}]},
        )
    return value


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a data set (multipart: file, label, smiles_column, name)",
    responses=error_responses(
        meanings={
            400: "`invalid_multipart`: the multipart body cannot be parsed; `client_disconnected`.",
            413: "`upload_too_large`: the file is over DPTUNE_MAX_UPLOAD_BYTES (details.max_bytes); "
            "`field_too_large`: a form field is.",
            415: "`unsupported_file_type` (send .csv or .parquet) or `unsupported_media_type` (send "
            "multipart/form-data).",
            422: "The table cannot be used; the code names why, e.g. `validation_error` (a missing field), "
            "`missing_label`, `single_class`, `empty_table`, `unreadable_file`, `too_many_rows`, "
            "`too_many_columns`.",
        }
    ),
)
async def upload_dataset(
    request: Request, response: Response, session: SessionDep, settings: SettingsDep, principal: PrincipalDep
) -> DatasetRead:
    record = await receive_dataset(request, session, settings, principal.owner_id)
    response.headers["Location"] = f"/v1/datasets/{record.id}"
    return service.to_read(record)


async def receive_dataset(
    request: Request,
    session: Session,
    settings: Settings,
    owner_id: str,
    check_fields: Callable[[dict[str, str]], None] | None = None,
) -> DatasetRecord:
    """Stream a multipart upload to a temp file and register it (the API's and the dashboard's one path).
    `check_fields` sees the form's text fields before anything is registered (the dashboard's CSRF token)."""
    temp = new_temp_path(settings)
    try:
        with temp.open("wb") as handle:
            upload = await receive_upload(request, handle, settings.max_upload_bytes)
        if check_fields is not None:
            check_fields(upload.fields)
        filename = clean_filename(upload.filename)
        if filename is None:
            raise DomainError(
                422,
                "validation_error",
                "file: field required",
                {"errors": [{"loc": ["body", "file"], "msg": "Field required", "type": "missing"}]},
            )
        label = _form_field(upload.fields, "label", required=True)
        assert label is not None
        smiles_column = _form_field(upload.fields, "smiles_column", required=False)
        name = _form_field(upload.fields, "name", required=False)
        record: DatasetRecord = await run_in_threadpool(
            service.register_upload,
            session,
            settings,
            owner_id,
            temp,
            upload,
            label,
            smiles_column,
            name,
            filename,
        )
        return record
    finally:
        remove_temp(temp)  # no-op once the file was moved into place


@router.post(
    "/builtin",
    status_code=status.HTTP_201_CREATED,
    summary="Create a built-in data set",
    responses=error_responses(
        413, meanings={422: "`validation_error`, or `unknown_builtin_dataset`: no built-in data set of that name."}
    ),
)
def create_builtin_dataset(
    body: Annotated[BuiltinDatasetCreate, Body(openapi_examples=BUILTIN_EXAMPLES)],
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> DatasetRead:
    record = service.create_builtin(session, settings, principal.owner_id, body)
    response.headers["Location"] = f"/v1/datasets/{record.id}"
    return service.to_read(record)


@router.get("", summary="List data sets, newest first")
def list_datasets(session: SessionDep, page: PageDep, principal: PrincipalDep) -> Page[DatasetRead]:
    return service.list_datasets(session, principal.owner_id, page)


@router.get("/{dataset_id}", summary="Get a data set", responses=error_responses(404))
def get_dataset(dataset_id: str, session: SessionDep, principal: PrincipalDep) -> DatasetRead:
    return service.to_read(service.get_dataset(session, principal.owner_id, dataset_id))


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a data set, its file and everything derived from it",
    responses=error_responses(
        404,
        meanings={409: "`dataset_in_use`: jobs on it (as data or proxy) are queued or running; cancel them first."},
    ),
)
def delete_dataset(dataset_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> Response:
    service.delete_dataset(session, settings, principal.owner_id, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
