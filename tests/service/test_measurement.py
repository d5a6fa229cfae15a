"""How privacy is measured (the job's MeasurementSpec) and the engine's checks around the baseline: stored and
echoed, validated at creation, carried to every unit, and a refused baseline failing the job with its code."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from app.datasets.errors import DatasetError
from app.db import Database
from app.jobs.models import JobRecord
from app.jobs.queue import DatasetRef, WorkUnit
from app.jobs.schemas import JobCreate
from app.settings import Settings
from app.tuning.engine import space_for as engine_space_for
from app.tuning.engine import trial_seed as engine_trial_seed
from app.tuning.errors import TuningError
from app.tuning.model_spec import ModelSpec
from app.tuning.results import Baseline, GuaranteeSpec, MeasurementSpec
from app.tuning.search import SearchSpec
from tests.service.conftest import assert_error_shape, tiny_job
from tests.service.helpers import make_baseline, make_measurement, run_worker_until_done, upload_tiny
from tests.service.test_queue import FakeExecutor
from workers.executor import EngineExecutor

CUSTOM = {
    "privacy_game": "membership",
    "repeats": 3,
    "reference_models": 8,
    "audit_reference_models": 32,
    "allow_weak_baseline": True,
}


def _dataset(client: TestClient) -> str:
    return str(upload_tiny(client)["id"])


def _job_row(database: Database, job_id: str) -> JobRecord:
    with database.reading() as session:
        job = session.get(JobRecord, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_job_create_takes_every_measurement_and_guarantee_field() -> None:
    """One definition: JobCreate's top-level fields are MeasurementSpec's and GuaranteeSpec's, with their
    bounds and descriptions."""
    for spec in (MeasurementSpec, GuaranteeSpec):
        for name, spec_field in spec.model_fields.items():
            field = JobCreate.model_fields[name]
            assert (field.default, field.description, field.metadata) == (
                spec_field.default,
                spec_field.description,
                spec_field.metadata,
            )
    assert JobCreate(dataset_id="d", **CUSTOM).measurement() == MeasurementSpec(**CUSTOM)
    guarantee = {"max_epsilon": 4.0, "target_epsilon": 2.0, "confirm_repeats": 5, "max_utility_loss": 0.1}
    assert JobCreate(dataset_id="d", **guarantee).guarantee() == GuaranteeSpec(**guarantee)


def test_measurement_is_stored_and_echoed(client: TestClient, database: Database) -> None:
    dataset_id = _dataset(client)
    created = client.post("/v1/jobs", json=tiny_job(dataset_id, **CUSTOM))
    assert created.status_code == 202, created.text
    assert created.json()["measurement"] == CUSTOM and created.json()["error_code"] is None
    job_id = created.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").json()["measurement"] == CUSTOM
    assert _job_row(database, job_id).measurement == CUSTOM
    default = client.post("/v1/jobs", json=tiny_job(dataset_id)).json()
    assert default["measurement"] == MeasurementSpec().model_dump()


def test_a_job_from_before_measurement_reads_as_the_defaults(client: TestClient, database: Database) -> None:
    job_id = client.post("/v1/jobs", json=tiny_job(_dataset(client), **CUSTOM)).json()["id"]
    with database.transaction() as session:  # what revision 0003 leaves on older rows
        session.execute(update(JobRecord).where(JobRecord.id == job_id).values(measurement=None))
    assert client.get(f"/v1/jobs/{job_id}").json()["measurement"] == MeasurementSpec().model_dump()


@pytest.mark.parametrize(
    "field, value",
    [
        ("repeats", 0),
        ("repeats", 21),
        ("reference_models", 1),
        ("reference_models", 65),
        ("audit_reference_models", 129),
        ("privacy_game", "shadow"),
        ("allow_weak_baseline", "perhaps"),
    ],
)
def test_measurement_bounds_are_the_apis_422(client: TestClient, field: str, value: object) -> None:
    response = client.post("/v1/jobs", json=tiny_job(_dataset(client), **{field: value}))
    error = assert_error_shape(response, 422)
    assert error["code"] == "validation_error" and field in error["message"]


def test_population_game_on_a_random_split_is_refused(client: TestClient) -> None:
    dataset_id = _dataset(client)
    response = client.post("/v1/jobs", json=tiny_job(dataset_id, privacy_game="population"))
    error = assert_error_shape(response, 422)
    assert error["code"] == "no_external_set" and "external" in error["message"]
    assert error["details"] == {"privacy_game": "population", "split": "random"}
    # A split with an external set is accepted.
    kmeans = {"kind": "kmeans", "columns": ["age", "income"]}
    accepted = client.post("/v1/jobs", json=tiny_job(dataset_id, privacy_game="population", split=kmeans))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["measurement"]["privacy_game"] == "population"


def test_every_unit_carries_the_jobs_measurement(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/v1/jobs", json=tiny_job(_dataset(client), **CUSTOM)).json()["id"]
    executor = FakeExecutor()
    run_worker_until_done(client, settings, job_id, executor=executor)
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded"
    assert executor.kinds == ["baseline", "trial", "trial", "confirm", "final"]
    assert all(m == MeasurementSpec(**CUSTOM) for m in executor.measurements)
    trials = client.get(f"/v1/jobs/{job_id}/trials").json()["items"]
    assert [t["repeats"] for t in trials] == [3, 3]
    result = client.get(f"/v1/jobs/{job_id}/result").json()
    assert result["measurement"] == CUSTOM and result["splits"]["members"] == 100


@pytest.mark.parametrize(
    "error, code, message",
    [
        (
            TuningError(
                "baseline_not_learning",
                "the baseline does not learn: validation ROC-AUC 0.51; train longer",
                {"utility_validation": 0.51},
            ),
            "baseline_not_learning",
            "the baseline does not learn: validation ROC-AUC 0.51; train longer",
        ),
        (
            TuningError("no_external_set", "the column split has no external rows"),
            "no_external_set",
            "the column split has no external rows",
        ),
        (
            DatasetError("split_too_small", "the test part has 3 rows"),
            "split_too_small",
            "the baseline failed: the test part has 3 rows",
        ),
        (RuntimeError("out of memory"), "baseline_failed", "the baseline failed: RuntimeError: out of memory"),
    ],
)
def test_a_refused_baseline_fails_the_job_with_its_code(
    client: TestClient, settings: Settings, error: Exception, code: str, message: str
) -> None:
    job_id = client.post("/v1/jobs", json=tiny_job(_dataset(client))).json()["id"]
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_baseline=error))
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert (job["status"], job["error_code"], job["error"]) == ("failed", code, message)
    assert job["baseline"] is None and job["progress"]["done"] == 0


def test_all_trials_failing_has_its_code(client: TestClient, settings: Settings) -> None:
    job_id = client.post("/v1/jobs", json=tiny_job(_dataset(client))).json()["id"]
    failing = {0: RuntimeError("nan"), 1: RuntimeError("nan")}
    run_worker_until_done(client, settings, job_id, executor=FakeExecutor(fail_trials=failing))
    assert client.get(f"/v1/jobs/{job_id}").json()["error_code"] == "no_trial_succeeded"


# ---------------------------------------------------------------------------------------------- EngineExecutor


class StubEngine:
    """Stands in for app.tuning.engine (no TensorFlow): records calls; check_baseline follows the gate's rule."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.calls: list[tuple[str, Any]] = []

    def module(self) -> types.ModuleType:
        module = types.ModuleType("app.tuning.engine")
        module.check_game = self.check_game  # type: ignore[attr-defined]
        module.run_baseline = self.run_baseline  # type: ignore[attr-defined]
        module.check_baseline = self.check_baseline  # type: ignore[attr-defined]
        module.default_delta = lambda n: min(1e-5, 1 / (10 * n))  # type: ignore[attr-defined]
        module.search_trial = self.search_trial  # type: ignore[attr-defined]
        module.space_for = self.space_for  # type: ignore[attr-defined]
        module.trial_seed = engine_trial_seed  # type: ignore[attr-defined]
        return module

    def space_for(
        self, search: SearchSpec, guarantee: GuaranteeSpec, spec: object, n_members: int, delta: float
    ) -> object:
        """The engine's own (pure, no training): a budget max_noise cannot meet raises here."""
        self.calls.append(("space_for", guarantee))
        return engine_space_for(search, guarantee, ModelSpec(), n_members, delta)

    def check_game(self, data: object, measurement: MeasurementSpec) -> None:
        self.calls.append(("check_game", measurement))

    def run_baseline(
        self, data: object, spec: object, measurement: MeasurementSpec, seed: int = 0, delta: float | None = None
    ) -> Baseline:
        self.calls.append(("run_baseline", measurement))
        self.baseline_delta = delta
        return self.baseline

    def check_baseline(self, baseline: Baseline, measurement: MeasurementSpec) -> None:
        self.calls.append(("check_baseline", measurement))
        if not baseline.learns and not measurement.allow_weak_baseline:
            raise TuningError("baseline_not_learning", "the baseline does not learn", {})

    def search_trial(
        self,
        data: object,
        spec: object,
        clip: float,
        noise: float,
        *,
        delta: float,
        measurement: MeasurementSpec,
        seed: int = 0,
        pruner: object = None,
    ) -> object:
        self.calls.append(("search_trial", measurement))
        self.trial_seed = seed
        return make_measurement(clip, noise, delta=delta, measurement=measurement)


class _Prepared:
    y_members = [0] * 100


class _Report:
    def model_dump(self, mode: str) -> dict[str, Any]:
        return {"rows_used": 200}


def _engine_executor(monkeypatch: pytest.MonkeyPatch, stub: StubEngine) -> EngineExecutor:
    monkeypatch.setitem(sys.modules, "app.tuning.engine", stub.module())
    executor = EngineExecutor.__new__(EngineExecutor)  # skips configure_threads (TensorFlow)
    monkeypatch.setattr(executor, "prepared", lambda unit: (_Prepared(), _Report()), raising=False)
    return executor


def _unit(kind: str, measurement: MeasurementSpec, **fields: Any) -> WorkUnit:
    ref = DatasetRef(dataset_id="d", storage_key="k", sha256="s", label="y", smiles_column=None)
    return WorkUnit(
        kind=kind,
        job_id="j",
        lease_token="t",
        attempt=1,
        dataset=ref,
        split={"kind": "random"},
        model={},
        seed=0,
        requested_delta=None,
        measurement=measurement,
        **fields,
    )


@pytest.mark.slow
def test_the_executor_runs_the_baseline_between_the_engines_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MeasurementSpec(repeats=2, audit_reference_models=8)
    stub = StubEngine(make_baseline())
    outcome = _engine_executor(monkeypatch, stub).run_baseline(_unit("baseline", spec))
    # The guarantee's space first (a bad budget fails fast), then the baseline (which checks the game), the gate.
    assert [name for name, _ in stub.calls] == ["space_for", "run_baseline", "check_baseline"]
    assert stub.calls[0][1] == GuaranteeSpec() and all(m == spec for _, m in stub.calls[1:])
    assert outcome.delta == stub.baseline_delta == 1e-5 and outcome.baseline.learns


def test_a_budget_max_noise_cannot_meet_fails_at_the_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = StubEngine(make_baseline())
    unit = _unit("baseline", MeasurementSpec(), search={"max_noise": 0.1}, guarantee=GuaranteeSpec(max_epsilon=0.5))
    with pytest.raises(TuningError) as refused:
        _engine_executor(monkeypatch, stub).run_baseline(unit)
    assert refused.value.code == "max_noise_below_budget"
    assert [name for name, _ in stub.calls] == ["space_for"]  # nothing trained


def test_the_gate_refuses_a_weak_baseline_unless_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    weak = make_baseline(0.5, learns=False)
    with pytest.raises(TuningError) as refused:
        _engine_executor(monkeypatch, StubEngine(weak)).run_baseline(_unit("baseline", MeasurementSpec()))
    assert refused.value.code == "baseline_not_learning"
    allowed = MeasurementSpec(allow_weak_baseline=True)
    stub = StubEngine(weak)
    outcome = _engine_executor(monkeypatch, stub).run_baseline(_unit("baseline", allowed))
    assert not outcome.baseline.learns and ("check_baseline", allowed) in stub.calls


def test_the_executor_passes_the_measurement_to_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = MeasurementSpec(repeats=3, reference_models=6)
    stub = StubEngine(make_baseline())
    measured = _engine_executor(monkeypatch, stub).run_trial(
        _unit("trial", spec, delta=1e-5, trial_index=2, clip=1.0, noise=0.5)
    )
    assert stub.calls == [("search_trial", spec)] and measured.measurement.repeats == 3
    assert stub.trial_seed == engine_trial_seed(0, 2) != 0  # trial i trains from trial_seed(seed, i), as in tune()
