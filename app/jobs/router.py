"""/v1/jobs: queue a tuning job, poll it, read its trials, recommendation and final model, cancel it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import PrincipalDep, SessionDep, SettingsDep
from app.api.errors import ERROR_RESPONSES
from app.api.pagination import Page, PageDep
from app.jobs import service
from app.jobs.models import JobStatus
from app.jobs.schemas import JobCreate, JobRead, RecommendationRead, TrialRead
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
    status_filter: Annotated[JobStatus | None,
                             Query(alias="status", description="Only jobs with this status.")] = None,
    dataset_id: Annotated[str | None, Query(max_length=64, description="Only jobs on this data set.")] = None,
) -> Page[JobRead]:
    return service.list_jobs(session, principal.owner_id, status_filter, dataset_id, page)


@router.get("/{job_id}", summary="Status, progress, baseline and best trial so far")
def get_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobRead:
    return service.job_view(session, service.get_job(session, principal.owner_id, job_id))


@router.get("/{job_id}/trials", summary="Succeeded trials in index order")
def list_trials(job_id: str, session: SessionDep, page: PageDep, principal: PrincipalDep) -> Page[TrialRead]:
    return service.trials_page(session, service.get_job(session, principal.owner_id, job_id), page)


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
