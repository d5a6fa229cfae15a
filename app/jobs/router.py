"""/v1/jobs: queue a tuning job, poll it, read its trials, recommendation and final model, cancel it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from app.api.deps import DatabaseDep, PrincipalDep, SessionDep, SettingsDep, in_read_session
from app.api.errors import PROTECTED_RESPONSES, error_responses
from app.api.pagination import PageDep
from app.core.pagination import Page
from app.jobs import service
from app.jobs.models import JobStatus
from app.jobs.schemas import MAX_JOB_NAME, MAX_TAGS, JobCreate, JobRead, RecommendationRead, Tag, TrialRow
from app.tuning.results import TuningResult

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=PROTECTED_RESPONSES)

# What the documented examples put in dataset_id: ids are made at upload, so no example can hold a real one.
EXAMPLE_DATASET_ID = "<id from POST /v1/datasets or /v1/datasets/builtin>"
_FIRST_CREATE_THE_DATA_SET = (
    "Create the built-in data set first (POST /v1/datasets/builtin with "
    '{"name": "synthea-covid"}) or upload one, and put its id in dataset_id. '
)
# Shown by /docs (the first is Swagger's "Try it out" body) and /redoc; tests/service/test_api_docs.py posts
# each one from the served schema and expects 202.
JOB_EXAMPLES: dict[str, dict[str, Any]] = {
    "builtin": {
        "summary": "10 trials on the built-in data set, epsilon at most 10",
        "description": _FIRST_CREATE_THE_DATA_SET + "The learning rate is `dptune demo`'s: at Keras' SGD default "
        "(0.01) no DP trial learns this cohort in 10 epochs.",
        "value": {
            "dataset_id": EXAMPLE_DATASET_ID,
            "model": {"learning_rate": 0.1},
            "search": {"method": "bayes", "trials": 10},
            "tradeoff": 0.5,
        },
    },
    "target_epsilon": {
        "summary": "Exactly epsilon 3: the noise is calibrated, only the clipping norm is searched",
        "description": _FIRST_CREATE_THE_DATA_SET,
        "value": {
            "dataset_id": EXAMPLE_DATASET_ID,
            "model": {"learning_rate": 0.1},
            "target_epsilon": 3.0,
            "search": {"method": "bayes", "trials": 8},
            "tradeoff": 0.5,
        },
    },
    "time_budget": {
        "summary": "30 minutes, favouring utility (t = 0.75), losing at most 0.05 validation ROC-AUC",
        "description": _FIRST_CREATE_THE_DATA_SET + "trials null: only the time budget (and the server's trial "
        "limit) ends the search.",
        "value": {
            "dataset_id": EXAMPLE_DATASET_ID,
            "model": {"learning_rate": 0.1},
            "search": {"method": "bayes", "trials": None, "seconds": 1800},
            "tradeoff": 0.75,
            "max_utility_loss": 0.05,
        },
    },
    "study": {
        "summary": "The study's method: a grid without a privacy guarantee, the population game",
        "description": _FIRST_CREATE_THE_DATA_SET + "max_epsilon null searches noise from 0 (no guarantee); the "
        "population game needs a split with an external set, as the built-in data set's k-means split has.",
        "value": {
            "dataset_id": EXAMPLE_DATASET_ID,
            "model": {"learning_rate": 0.1},
            "max_epsilon": None,
            "privacy_game": "population",
            "search": {"method": "grid", "grid_step": 2.5},
            "tradeoff": 0.5,
        },
    },
}


_NOT_FINISHED = (
    "`job_not_finished` while the job is queued or running (details.status says which); "
    "`job_failed` or `job_cancelled` when it will never come"
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a tuning job",
    responses=error_responses(
        413,
        meanings={
            404: "`dataset_not_found`: dataset_id or tune_dataset_id names no data set of yours.",
            422: "Invalid job: `validation_error` (details.errors), or a check of the job against its data set: "
            "`too_many_trials`, `missing_column`, `invalid_split`, `butina_needs_smiles`, "
            "`no_external_set`, `proxy_is_private`, `proxy_label_mismatch`, `proxy_missing_column`, "
            "`invalid_model`.",
            429: "`too_many_active_jobs`: you have the most queued or running jobs allowed; wait or cancel one.",
        },
    ),
)
def create_job(
    body: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> JobRead:
    job = service.create_job(session, settings, principal.owner_id, body)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return service.job_view(session, job)


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    database: DatabaseDep,
    page: PageDep,
    principal: PrincipalDep,
    status_filter: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs with this status.")
    ] = None,
    dataset_id: Annotated[str | None, Query(max_length=64, description="Only jobs on this data set.")] = None,
    name: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_JOB_NAME, description="Jobs whose name contains this, in any case."),
    ] = None,
    tag: Annotated[
        list[Tag] | None, Query(max_length=MAX_TAGS, description="Jobs that have this tag; repeated, all of them.")
    ] = None,
) -> Page[JobRead]:
    return await in_read_session(
        database,
        lambda session: service.list_jobs(session, principal.owner_id, status_filter, dataset_id, page, name, tag),
    )


@router.get(
    "/{job_id}",
    summary="Status, progress, baseline and best trial so far",
    description="Answers with a weak `ETag`; send it back in `If-None-Match` to get `304 Not Modified` while "
    "nothing shown has changed. While the job runs, `elapsed_seconds` and `eta_seconds` of a 304's cached body "
    f"are at most {service.ETAG_CLOCK_SECONDS} s old.",
    response_model=JobRead,
    responses={**error_responses(404), 304: {"description": "Not modified: the ETag in If-None-Match is current"}},
)
async def get_job(job_id: str, request: Request, database: DatabaseDep, principal: PrincipalDep) -> Response:
    if_none_match = request.headers.get("if-none-match")
    return await in_read_session(
        database, lambda session: job_poll(session, principal.owner_id, job_id, if_none_match)
    )


def job_poll(session: Session, owner_id: str, job_id: str, if_none_match: str | None) -> Response:
    """304 when If-None-Match holds the current ETag (one query), else the view, serialised here."""
    # The snapshot is read before the body: a body newer than its ETag only costs the next poll a 200.
    snapshot = service.job_snapshot(session, owner_id, job_id)
    etag = service.job_etag(snapshot)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    view = service.job_poll_view(session, owner_id, job_id, snapshot)
    return Response(view.model_dump_json(), media_type="application/json", headers=headers)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 13.1.2): `*`, or one of its listed tags with the same opaque
    part, W/ or not. A malformed header matches nothing, so it gets the full answer."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == opaque:
            return True
    return False


@router.get(
    "/{job_id}/trials",
    summary="Succeeded and pruned trials in index order (told apart by `status`; pruned ones only in jobs with "
    "search.pruning); CSV for `Accept: text/csv` or `?format=csv` (all trials, one row each, nested fields as "
    "dotted columns; offset and limit page the JSON only)",
    response_model=Page[TrialRow],
    responses={
        **error_responses(404),
        200: {"content": {"text/csv": {}}, "description": "A page of trials (JSON), or all of them (CSV)"},
    },
)
async def list_trials(
    job_id: str,
    request: Request,
    database: DatabaseDep,
    page: PageDep,
    principal: PrincipalDep,
    output_format: Annotated[
        Literal["json", "csv"] | None,
        Query(alias="format", description="csv or json; without it the Accept header decides (text/csv: CSV)"),
    ] = None,
) -> Any:
    as_csv = (output_format or preferred_format(request.headers.get("accept", ""))) == "csv"

    def read(session: Session) -> Response | Page[TrialRow]:
        job = service.get_job(session, principal.owner_id, job_id)
        if as_csv:
            return Response(
                service.trials_csv(session, job),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="dptune-trials-{job.id}.csv"'},
            )
        return service.trials_page(session, job, page)

    return await in_read_session(database, read)


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


@router.get(
    "/{job_id}/recommendation",
    summary="The recommended (clip, noise), for any trade-off",
    responses=error_responses(
        404,
        meanings={
            409: f"No recommendation: {_NOT_FINISHED} (a cancelled job has one when a trial succeeded before); "
            "`no_trials`; or `no_recommendation` (details.reason: no trial met max_utility_loss)."
        },
    ),
)
def get_recommendation(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    tradeoff: Annotated[
        float | None, Query(ge=0.0, le=1.0, allow_inf_nan=False, description="Re-score stored trials at this t.")
    ] = None,
) -> RecommendationRead:
    return service.recommendation_view(session, service.get_job(session, principal.owner_id, job_id), tradeoff)


@router.get(
    "/{job_id}/result",
    summary="The whole result, as `dptune tune --json` writes it",
    responses=error_responses(404, meanings={409: f"No result: {_NOT_FINISHED}."}),
)
def get_result(job_id: str, session: SessionDep, principal: PrincipalDep) -> TuningResult:
    return service.tuning_result(session, service.get_job(session, principal.owner_id, job_id))


@router.get(
    "/{job_id}/report",
    summary="A self-contained HTML report: recommendation card and figures (no external URL); while the job runs, "
    "what exists so far",
    response_class=Response,  # as for /model: the error responses stay documented as JSON
    responses={
        200: {"content": {"text/html": {}}, "description": "One HTML page, figures inlined as PNG"},
        **error_responses(404),
    },
)
def get_report(job_id: str, session: SessionDep, principal: PrincipalDep) -> HTMLResponse:
    job = service.get_job(session, principal.owner_id, job_id)
    return HTMLResponse(service.report_html(session, job))


@router.get(
    "/{job_id}/model",
    summary="The final model as a zip: model.keras (a plain Keras model, probabilities out) and privacy.json "
    "(its epsilon, delta and the complete training configuration they hold for); 409 until the job trained it",
    response_class=Response,
    responses={
        200: {"content": {"application/zip": {}}, "description": "model.keras and privacy.json"},
        **error_responses(
            404,
            meanings={
                409: f"No model: {_NOT_FINISHED}; `no_recommendation`; or `no_model` (the job succeeded without "
                "one, or its files are gone)."
            },
        ),
    },
)
def get_model(job_id: str, session: SessionDep, settings: SettingsDep, principal: PrincipalDep) -> Response:
    job = service.get_job(session, principal.owner_id, job_id)
    return Response(
        content=service.model_zip(session, job, settings),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="dptune-model-{job.id}.zip"'},
    )


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued or running job; finished trials are kept",
    responses=error_responses(
        404, meanings={409: "`job_finished`: the job already succeeded, failed or was cancelled."}
    ),
)
def cancel_job(job_id: str, session: SessionDep, principal: PrincipalDep) -> JobRead:
    job = service.cancel_job(session, principal.owner_id, job_id)
    return service.job_view(session, job)
