"""The domain error type: framework-free, and rendered by app.api's one handler with the status it carries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.errors import install_error_handlers
from app.core.errors import DomainError, not_found
from app.datasets.errors import DatasetError
from app.datasets.models import DatasetRecord
from app.datasets.splits import ButinaSplit, ColumnSplit, RandomSplit, assign_split, column_parts
from app.datasets.tables import table_format
from app.datasets.upload import too_large
from app.jobs.service import check_game, check_split
from app.tuning.errors import TuningError
from app.tuning.model_spec import ModelSpecError, check_keras_json
from app.tuning.results import MeasurementSpec

REPO = Path(__file__).resolve().parents[2]


def test_the_error_modules_import_no_web_framework_nor_database() -> None:
    # A fresh interpreter: this process has FastAPI loaded already.
    code = (
        "import sys, app.core.errors, app.core.pagination, app.tuning.errors, app.tuning.model_spec; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fastapi', 'starlette', 'sqlalchemy'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _dataset(smiles_column: str | None = None) -> DatasetRecord:
    return DatasetRecord(label="outcome", columns=["age", "site", "outcome"], smiles_column=smiles_column)


def _raise(error: DomainError) -> None:
    raise error


def _expect(raiser: Callable[[], object], error_type: type[DomainError]) -> DomainError:
    with pytest.raises(error_type) as raised:
        raiser()
    return raised.value


# Each raised the way its service raises it; the status is the one the API has always answered.
CASES = {
    "butina_needs_smiles": (lambda: check_split(ButinaSplit(), _dataset()), DatasetError, 422),
    "missing_column": (lambda: check_split(ColumnSplit(column="ward"), _dataset()), DatasetError, 422),
    "no_external_set": (
        lambda: check_game(RandomSplit(), MeasurementSpec(privacy_game="population")),
        DomainError,
        422,
    ),
    "unsupported_file_type": (lambda: table_format("data.xlsx"), DatasetError, 415),
    "upload_too_large": (lambda: _raise(too_large(1024)), DomainError, 413),
    "invalid_model": (lambda: check_keras_json("not json"), ModelSpecError, 422),
    "dataset_not_found": (lambda: _raise(not_found("dataset", "abc")), DomainError, 404),
}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{code}")
    async def raise_case(code: str) -> None:
        raiser, _error_type, _status = CASES[code]
        raiser()

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("code", sorted(CASES))
def test_a_service_error_reaches_the_client_with_its_status_and_code(client: TestClient, code: str) -> None:
    raiser, error_type, status = CASES[code]
    error = _expect(raiser, error_type)
    assert (error.code, error.status_code) == (code, status)
    response = client.get(f"/raise/{code}")
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": error.message, "details": error.details}}


@pytest.mark.parametrize(
    "code, engine_raiser, service_raiser",
    [
        (
            "missing_column",
            lambda: column_parts(pd.DataFrame({"age": [1, 2]}), "ward"),
            lambda: check_split(ColumnSplit(column="ward"), _dataset()),
        ),
        (
            "butina_needs_smiles",
            lambda: assign_split(pd.DataFrame({"age": [1, 2]}), ButinaSplit(), np.array([0, 1])),
            lambda: check_split(ButinaSplit(), _dataset()),
        ),
    ],
)
def test_a_code_is_one_type_whether_the_splits_or_the_jobs_service_raise_it(
    code: str, engine_raiser: Callable[[], object], service_raiser: Callable[[], object]
) -> None:
    from_engine, from_service = _expect(engine_raiser, DomainError), _expect(service_raiser, DomainError)
    assert type(from_engine) is type(from_service) is DatasetError
    assert (from_engine.code, from_engine.status_code) == (from_service.code, from_service.status_code) == (code, 422)


def test_the_subclasses_stay_value_errors_for_the_cli() -> None:
    # cli.main answers ValueError with one line and exit 2; the engine's errors must stay inside that net.
    for error in (DatasetError("empty_table", "m"), ModelSpecError("m"), TuningError("no_trial_succeeded", "m")):
        assert isinstance(error, ValueError) and isinstance(error, DomainError)
        assert str(error) == error.message == "m"
