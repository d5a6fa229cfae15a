"""A small Python client of the dptune API, on httpx.

    from app.client import Client

    with Client("http://127.0.0.1:8000", api_key) as dptune:
        dataset = dptune.upload("patients.csv", label="died")
        job = dptune.submit(dataset["id"], tradeoff=0.5, search={"trials": 25}, name="cohort 2024")
        job = dptune.wait(job["id"], on_progress=lambda j: print(j["status"], j["progress"]))
        print(dptune.recommendation(job["id"])["headline"])
        dptune.model(job["id"], "model.zip")

Documents come back as the API's JSON (dicts; their fields are in /openapi.json and docs/service.md), so an
undefined metric is None as the API sends it. Every failure, an error answer of the API or no answer at all,
raises DptuneError with the server's code and message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

JsonDict = dict[str, Any]
ACTIVE_STATUSES = frozenset({"queued", "running"})
_PAGE_SIZE = 500  # app.api.pagination.MAX_PAGE_SIZE


class DptuneError(Exception):
    """An error answer of the API (`status`, and the `code`, `message` and `details` of its error body), or
    no usable answer (status None: the server unreachable, or a wait that timed out)."""

    def __init__(self, status: int | None, code: str, message: str, details: JsonDict | None = None) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class Client:
    """The dptune API at `base_url`, acting for the owner of `api_key`. Pass `http` to send the requests
    through an httpx.Client of your own (its base_url is then used; a test passes starlette's TestClient)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        http: httpx.Client | None = None,
    ) -> None:
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(base_url=base_url, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ data sets

    def upload(
        self,
        file: str | Path | bytes,
        *,
        label: str,
        smiles_column: str | None = None,
        name: str | None = None,
        filename: str = "data.csv",
    ) -> JsonDict:
        """Upload a .csv or .parquet table (a path, or its bytes named `filename`); the data set's record."""
        fields = {
            key: value
            for key, value in (("label", label), ("smiles_column", smiles_column), ("name", name))
            if value is not None
        }
        if isinstance(file, bytes):
            return self._json("POST", "/v1/datasets", data=fields, files={"file": (filename, file)})
        path = Path(file)
        with path.open("rb") as handle:
            return self._json("POST", "/v1/datasets", data=fields, files={"file": (path.name, handle)})

    def builtin_dataset(self, name: str = "synthea-covid", seed: int = 0) -> JsonDict:
        return self._json("POST", "/v1/datasets/builtin", json={"name": name, "seed": seed})

    def dataset(self, dataset_id: str) -> JsonDict:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    # ------------------------------------------------------------------------------------------ jobs

    def submit(self, dataset_id: str, **fields: Any) -> JsonDict:
        """Queue a job; `fields` are POST /v1/jobs's (split, model, search, tradeoff, max_epsilon, name, tags,
        ...). The queued job."""
        return self._json("POST", "/v1/jobs", json={"dataset_id": dataset_id, **fields})

    def job(self, job_id: str) -> JsonDict:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        dataset_id: str | None = None,
    ) -> list[JsonDict]:
        """All of the owner's jobs that match, newest first (every page)."""
        params = {"status": status, "name": name, "tag": list(tags) or None, "dataset_id": dataset_id}
        return list(self._pages("/v1/jobs", {key: value for key, value in params.items() if value is not None}))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_seconds: float = 2.0,
        on_progress: Callable[[JsonDict], None] | None = None,
    ) -> JsonDict:
        """Poll the job until it is no longer queued or running, calling `on_progress` with each polled job;
        the job as it ended (succeeded, failed or cancelled: check its status). DptuneError code
        `wait_timeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["status"] not in ACTIVE_STATUSES:
                return job
            if deadline is not None and time.monotonic() + poll_seconds > deadline:
                raise DptuneError(
                    None,
                    "wait_timeout",
                    f"job {job_id} is still {job['status']} after {timeout:g} s",
                    {"status": job["status"], "progress": job.get("progress")},
                )
            time.sleep(poll_seconds)

    def cancel(self, job_id: str) -> JsonDict:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def trials(self, job_id: str) -> list[JsonDict]:
        """Every succeeded trial, in index order (every page)."""
        return list(self._pages(f"/v1/jobs/{job_id}/trials", {}))

    def trials_csv(self, job_id: str, path: str | Path | None = None) -> str:
        """The trials as CSV (one row each, dotted columns); also written to `path` when given."""
        text = self._request("GET", f"/v1/jobs/{job_id}/trials", params={"format": "csv"}).text
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    def recommendation(self, job_id: str, tradeoff: float | None = None) -> JsonDict:
        """The recommendation at the job's trade-off (confirmed), or re-chosen at `tradeoff`."""
        params = {"tradeoff": tradeoff} if tradeoff is not None else None
        return self._json("GET", f"/v1/jobs/{job_id}/recommendation", params=params)

    def result(self, job_id: str) -> JsonDict:
        """The whole result, the document `dptune tune --json` writes."""
        return self._json("GET", f"/v1/jobs/{job_id}/result")

    def model(self, job_id: str, path: str | Path) -> Path:
        """Write the final model's zip (model.keras and privacy.json) to `path`; returns it."""
        target = Path(path)
        target.write_bytes(self._request("GET", f"/v1/jobs/{job_id}/model").content)
        return target

    def report(self, job_id: str, path: str | Path | None = None) -> str:
        """The job's self-contained HTML report; also written to `path` when given."""
        html = self._request("GET", f"/v1/jobs/{job_id}/report").text
        if path is not None:
            Path(path).write_text(html, encoding="utf-8")
        return html

    # ------------------------------------------------------------------------------------------ transport

    def _pages(self, path: str, params: JsonDict) -> Iterator[JsonDict]:
        offset = 0
        while True:
            page = self._json("GET", path, params={**params, "offset": offset, "limit": _PAGE_SIZE})
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return

    def _json(self, method: str, path: str, **kwargs: Any) -> JsonDict:
        body: JsonDict = self._request(method, path, **kwargs).json()
        return body

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError as exc:
            raise DptuneError(
                None, "connection_error", f"no answer from the dptune API ({type(exc).__name__}: {exc})"
            ) from exc
        if response.is_success:
            return response
        raise _api_error(response)


def _api_error(response: httpx.Response) -> DptuneError:
    """The API's error body ({"error": {"code", "message", "details"}}), or the status alone when the answer
    is not one (a proxy's HTML page)."""
    try:
        error = response.json()["error"]
        return DptuneError(
            response.status_code, str(error["code"]), str(error["message"]), error.get("details") or {}
        )
    except (ValueError, KeyError, TypeError):
        return DptuneError(
            response.status_code,
            "http_error",
            f"HTTP {response.status_code} "
            f"{response.reason_phrase} from {response.request.method} {response.request.url.path}",
        )
