"""/ui: the dashboard, server-rendered. Every page calls the same service functions as the JSON API; the pages
only turn forms into the API's request models and results into HTML.

Security: a signed session cookie (app.dashboard.sessions) that only /ui reads, a CSRF token on every form
that changes state, sign-in included, and the owner scoping of the services (another owner's ids are 404).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.deps import SessionDep, SettingsDep
from app.api.middleware import PRINCIPAL_SCOPE_KEY
from app.core.errors import DomainError
from app.core.pagination import PageParams
from app.dashboard import sessions
from app.dashboard.forms import FormErrors, job_request, validation_errors
from app.datasets import service as datasets_service
from app.datasets.builtin import BUILTIN_DATASETS
from app.datasets.router import receive_dataset
from app.datasets.schemas import BuiltinDatasetCreate
from app.jobs import service as jobs_service
from app.jobs.models import ACTIVE_JOB_STATUSES, JobRecord
from app.jobs.schemas import JobCreate
from app.owners.service import Principal, authenticate, principal_of_key

PAGE_SIZE = 50
TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"

# Pages load only the app's own files; the report (figures inline) loads nothing at all and runs no script.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'self'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
REPORT_HEADERS = {
    **PAGE_HEADERS,
    "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
    "frame-ancestors 'self'; base-uri 'none'",
}


class SignInRequired(Exception):
    """No valid session (or its key was revoked): GET pages go to the sign-in page."""


class CsrfRejected(Exception):
    """A state-changing form without this session's CSRF token."""


def _error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "message": message},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


class DashboardRoute(APIRoute):
    """Answers the services' errors as HTML pages (the API answers them as JSON), never a stack trace."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError:  # a hand-edited link (a query parameter missing or out of range)
                return _error_page(request, 422, "This address is missing a parameter or has a wrong one.")
            except SignInRequired:
                return RedirectResponse("/ui/sign-in", status_code=303)
            except CsrfRejected:
                return _error_page(
                    request,
                    403,
                    "This form's security token is missing or out of date. Go back, "
                    "reload the page and send it again.",
                )
            except DomainError as exc:
                return _error_page(request, exc.status_code, exc.message)

        return handle


router = APIRouter(prefix="/ui", route_class=DashboardRoute, include_in_schema=False)
entry_router = APIRouter(include_in_schema=False)


@entry_router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=307)


# ---------------------------------------------------------------------------------------------- sessions


def _secret(request: Request) -> bytes:
    secret: bytes | None = getattr(request.app.state, "dashboard_secret", None)
    if secret is None:
        secret = sessions.session_secret(request.app.state.settings)
        request.app.state.dashboard_secret = secret
    return secret


def _signed_in(request: Request, session: Session) -> tuple[Principal, sessions.SessionData]:
    data = sessions.read(request, _secret(request))
    principal = principal_of_key(session, data.key_id) if data is not None and data.key_id else None
    if principal is None or data is None:
        raise SignInRequired()
    request.scope[PRINCIPAL_SCOPE_KEY] = principal  # for the access log's owner and key ids, as in the API
    return principal, data


async def _posted_form(request: Request, cookie: str = sessions.COOKIE_NAME) -> FormData:
    """A state-changing form, after its CSRF token is checked against the cookie's (403 otherwise)."""
    try:
        form = await request.form(max_files=0, max_fields=32)
    except StarletteHTTPException as exc:  # Starlette's parser refuses a file or a malformed body with a 400
        raise DomainError(exc.status_code, "bad_request", f"the form could not be read: {exc.detail}") from None
    _check_csrf(request, form.get(sessions.CSRF_FIELD), cookie)
    return form


def _check_csrf(request: Request, sent: object, cookie: str = sessions.COOKIE_NAME) -> None:
    data = sessions.read(request, _secret(request), cookie)
    if not sessions.csrf_matches(data, sent if isinstance(sent, str) else None):
        raise CsrfRejected()


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    principal: Principal | None,
    data: sessions.SessionData | None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {**context, "principal": principal, "csrf_token": data.csrf if data is not None else ""}
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status_code, headers=PAGE_HEADERS)


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("")
async def home() -> RedirectResponse:
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/sign-in")
def sign_in_page(request: Request, session: SessionDep) -> Response:
    data = sessions.read(request, _secret(request))
    if data is not None and data.key_id and principal_of_key(session, data.key_id) is not None:
        return _see("/ui/jobs")
    return _sign_in_form(request, None)


def _sign_in_form(request: Request, error: str | None, status_code: int = 200) -> HTMLResponse:
    """The form with a fresh CSRF token in its own cookie (the session is made anew at sign-in)."""
    data = sessions.new_session()
    response = _page(request, "sign_in.html", {"error": error}, None, data, status_code)
    sessions.write(response, request, _secret(request), data, sessions.SIGN_IN_COOKIE)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, session: SessionDep) -> Response:
    form = await _posted_form(request, sessions.SIGN_IN_COOKIE)
    key = str(form.get("api_key", "")).strip()
    principal = authenticate(session, key) if key else None
    if principal is None:
        return _sign_in_form(
            request, "This API key is not valid (unknown or revoked)." if key else "Enter an API key.", 401
        )
    response = _see("/ui/jobs")
    sessions.write(response, request, _secret(request), sessions.new_session(principal.key_id))
    sessions.clear(response, request, sessions.SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await _posted_form(request)
    response = _see("/ui/sign-in")
    sessions.clear(response, request)
    return response


# ---------------------------------------------------------------------------------------------- data sets


def _datasets_page(
    request: Request,
    session: Session,
    principal: Principal,
    data: sessions.SessionData,
    offset: int,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    page = datasets_service.list_datasets(session, principal.owner_id, PageParams(offset=offset, limit=PAGE_SIZE))
    return _page(
        request,
        "datasets.html",
        {"page": page, "builtins": sorted(BUILTIN_DATASETS), "error": error},
        principal,
        data,
        status_code,
    )


@router.get("/datasets")
def datasets(
    request: Request, session: SessionDep, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> Response:
    principal, data = _signed_in(request, session)
    return _datasets_page(request, session, principal, data, offset)


@router.post("/datasets/upload")
async def upload_dataset(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    principal, data = _signed_in(request, session)  # before the body is read

    def check_fields(fields: dict[str, str]) -> None:
        _check_csrf(request, fields.get(sessions.CSRF_FIELD))

    try:
        await receive_dataset(request, session, settings, principal.owner_id, check_fields)
    except DomainError as exc:
        return _datasets_page(request, session, principal, data, 0, exc.message, exc.status_code)
    return _see("/ui/datasets")


@router.post("/datasets/builtin")
async def create_builtin(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await _posted_form(request)
    principal, data = _signed_in(request, session)
    try:
        body = BuiltinDatasetCreate(name=str(form.get("name", "")))
    except ValidationError as exc:
        return _datasets_page(request, session, principal, data, 0, validation_errors(exc).summary(), 422)
    datasets_service.create_builtin(session, settings, principal.owner_id, body)
    return _see("/ui/datasets")


@router.post("/datasets/{dataset_id}/delete")
async def delete_dataset(dataset_id: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    await _posted_form(request)
    principal, _ = _signed_in(request, session)
    datasets_service.delete_dataset(session, settings, principal.owner_id, dataset_id)
    return _see("/ui/datasets")


# ---------------------------------------------------------------------------------------------- jobs


@router.get("/jobs")
def jobs(request: Request, session: SessionDep, offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> Response:
    principal, data = _signed_in(request, session)
    page = jobs_service.list_jobs(session, principal.owner_id, None, None, PageParams(offset=offset, limit=PAGE_SIZE))
    names = {
        d.id: d.name
        for d in datasets_service.list_datasets(session, principal.owner_id, PageParams(offset=0, limit=500)).items
    }
    return _page(request, "jobs.html", {"page": page, "dataset_names": names}, principal, data)


def _job_form(
    request: Request,
    session: Session,
    principal: Principal,
    data: sessions.SessionData,
    dataset_id: str,
    values: dict[str, str],
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    dataset = datasets_service.get_dataset(session, principal.owner_id, dataset_id)  # 404 for another owner's
    return _page(
        request,
        "job_new.html",
        {"dataset": dataset, "values": values, "errors": errors or FormErrors()},
        principal,
        data,
        status_code,
    )


@router.get("/jobs/new")
def new_job(
    request: Request, session: SessionDep, dataset_id: Annotated[str, Query(min_length=1, max_length=64)]
) -> Response:
    principal, data = _signed_in(request, session)
    return _job_form(request, session, principal, data, dataset_id, {})


@router.post("/jobs")
async def create_job(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    form = await _posted_form(request)
    principal, data = _signed_in(request, session)
    values = {name: str(value) for name, value in form.items() if name != sessions.CSRF_FIELD}
    dataset_id = values.get("dataset_id", "")
    try:
        job = jobs_service.create_job(
            session, settings, principal.owner_id, JobCreate.model_validate(job_request(values))
        )
    except ValidationError as exc:
        return _job_form(request, session, principal, data, dataset_id, values, validation_errors(exc), 422)
    except DomainError as exc:  # a ModelSpecError (422 invalid_model) among them
        if exc.code == "dataset_not_found":
            raise
        return _job_form(
            request, session, principal, data, dataset_id, values, FormErrors(general=[exc.message]), exc.status_code
        )
    return _see(f"/ui/jobs/{job.id}")


def _owned_job(request: Request, session: Session, job_id: str) -> tuple[Principal, sessions.SessionData, JobRecord]:
    principal, data = _signed_in(request, session)
    return principal, data, jobs_service.get_job(session, principal.owner_id, job_id)


def _job_context(session: Session, job: JobRecord) -> dict[str, Any]:
    view = jobs_service.job_view(session, job)
    recommendation = None
    if view.status == "succeeded":
        try:
            recommendation = jobs_service.recommendation_view(session, job, None)
        except DomainError:  # a job that ended without a recommendation; its reason is on the page
            recommendation = None
    active = view.status in ACTIVE_JOB_STATUSES
    return {"job": view, "active": active, "recommendation": recommendation, "has_model": job.final_model is not None}


@router.get("/jobs/{job_id}")
def job_page(job_id: str, request: Request, session: SessionDep) -> Response:
    principal, data, job = _owned_job(request, session, job_id)
    dataset = datasets_service.get_dataset(session, principal.owner_id, job.dataset_id)
    return _page(request, "job.html", {**_job_context(session, job), "dataset": dataset}, principal, data)


@router.get("/jobs/{job_id}/progress")
def job_progress(job_id: str, request: Request, session: SessionDep) -> Response:
    """The job page's progress box alone, which the page's script fetches every few seconds."""
    principal, data, job = _owned_job(request, session, job_id)
    return _page(request, "_progress.html", _job_context(session, job), principal, data)


@router.get("/jobs/{job_id}/report")
def job_report(job_id: str, request: Request, session: SessionDep) -> Response:
    _, _, job = _owned_job(request, session, job_id)
    return HTMLResponse(jobs_service.report_html(session, job), headers=REPORT_HEADERS)  # the API's report


@router.get("/jobs/{job_id}/result.json")
def job_result(job_id: str, request: Request, session: SessionDep) -> Response:
    _, _, job = _owned_job(request, session, job_id)
    result = jobs_service.tuning_result(session, job)
    # pydantic writes NaN metrics as null, as the API does
    return Response(
        result.model_dump_json(),
        media_type="application/json",
        headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="dptune-result-{job.id}.json"'},
    )


@router.get("/jobs/{job_id}/model")
def job_model(job_id: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    _, _, job = _owned_job(request, session, job_id)
    return Response(
        content=jobs_service.model_zip(session, job, settings),
        media_type="application/zip",
        headers={**PAGE_HEADERS, "Content-Disposition": f'attachment; filename="dptune-model-{job.id}.zip"'},
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request, session: SessionDep) -> Response:
    await _posted_form(request)
    principal, _ = _signed_in(request, session)
    jobs_service.cancel_job(session, principal.owner_id, job_id)
    return _see(f"/ui/jobs/{job_id}")
