"""/v1/jobs: queue a tuning job, poll it, read its trials, recommendation and final model, cancel it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import HTMLResponse

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import ERROR_RESPONSES
from app.api.pagination import Page, PageDep
from app.jobs import service
from app.jobs.models import JobStatus
from app.jobs.schemas import MAX_JOB_NAME, MAX_TAGS, JobCreate, JobRead, RecommendationRead, Tag, TrialRead
from app.tuning.results import TuningResult

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, summary="Queue a tuning job")
def create_job(body: JobCreate, response: Response, session: SessionDep, settings: SettingsDep,
               principal: PrincipalDep) -> JobRead:
    job = service.create_job(session, settings, principal.owner_id, body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return service.job_view(session, job)


@router.get("", summary="List jobs, newest first")
def list_jobs(
    session: SessionDep,
    page: PageDep,
    principal: PrincipalDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    dataset_id: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(min_length=1, max_length=MAX_JOB_NAME,
                                      description="Jobs whose name contains this, in any case.")] = None,
    tag: Annotated[list[Tag] | None, Query(max_length=MAX_TAGS,
                                           description="Jobs that have this tag; repeated, all of them.")] = None,
) -> Page[JobRead]:
    return service.list_jobs(session, principal.owner_id, status_filter, dataset_id, page, name, tag)


@router.get("/{job_id}", summary="Status, progress, baseline and best trial so far")
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobRead:
    return service.job_view(session, service.get_job(session, principal.owner_id, job_id))


@router.get(
    "/{job_id}/trials",
    summary="Succeeded trials in index order; CSV for `Accept: text/csv` or `?format=csv` (all trials, one row "
    "each, nested fields as dotted columns; offset and limit page the JSON only)",
    response_model=Page[TrialRead],
    responses={200: {"content": {"text/csv": {}}, "description": "A page of trials (JSON), or all of them (CSV)"}},
)
def list_trials(
    job_id: str,
    request: Request,
    session: SessionDep,
    page: PageDep,
    principal: PrincipalDep,
    output_format: Annotated[Literal["json", "csv"] | None, Query(
        alias="format", description="csv or json; without it the Accept header decides (text/csv: CSV)")] = None,
) -> Any:
    job = service.get_job(session, principal.owner_id, job_id)
    if (output_format or preferred_format(request.headers.get("accept", ""))) == "csv":
        return Response(service.trials_csv(session, job), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="dptune-trials-{job.id}.csv"'})
    return service.trials_page(session, job, page)


def preferred_format(accept: str) -> Literal["json", "csv"]:
    """csv when the Accept header prefers text/csv to application/json (by q, then by order), else json."""
    ranked: list[tuple[float, int, str]] = []
    for position, entry in enumerate(accept.split(",")):
        media_type, *parameters = (part.strip() for part in entry.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, text = parameter.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(text)
                except ValueError:
                    quality = 0.0
        if media_type.lower() in ("text/csv", "application/json") and quality > 0:
            ranked.append((-quality, position, media_type.lower()))
    return "csv" if ranked and min(ranked)[2] == "text/csv" else "json"


@router.get("/{job_id}/recommendation", summary="The recommended (clip, noise), for any trade-off")
def get_recommendation(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    tradeoff: Annotated[float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False,
                                            description="Re-score stored trials at this t.")] = None,
) -> RecommendationRead:
    return service.recommendation_view(session, service.get_job(session, principal.owner_id, job_id), tradeoff)


@router.get("/{job_id}/result", summary="The whole result, as `dptune tune --json` writes it")
def get_result(job_id: str, session: SessionDep, principal: PrincipalDep) -> TuningResult:
    return service.tuning_result(session, service.get_job(session, principal.owner_id, job_id))


@router.get(
    "/{job_id}/report",
    summary="A self-contained HTML report: recommendation card and figures (no external URL); while the job runs, "
    "what exists so far",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}, "description": "One HTML page, figures inlined as PNG"}},
)
def get_report(job_id: str, session: SessionDep, principal: PrincipalDep) -> HTMLResponse:
    job = service.get_job(session, principal.owner_id, job_id)
    return HTMLResponse(service.report_html(session, job))


@router.get(
    "/{job_id}/model",
    summary="The final model as a zip: model.keras (a plain Keras model, probabilities out) and privacy.json "
    "(its epsilon, delta and the complete training configuration they hold for); 409 until the job trained it",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}, "description": "model.keras and privacy.json"}},
)
def get_model(job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> Response:
    job = service.get_job(session, principal.owner_id, job_id)
    return Response(content=service.model_zip(job, settings), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="dptune-model-{job.id}.zip"'})


@router.post("/{job_id}/cancel", summary="Cancel a queued or running job; finished trials are kept")
def cancel_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobRead:
    job = service.cancel_job(session, principal.owner_id, job_id)
    return service.job_view(session, job)
