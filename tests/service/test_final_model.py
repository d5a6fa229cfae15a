"""Recommendation v2 end to end with the real engine (tiny model, few trials): a target-epsilon job is
confirmed and its final model trained once and served as a zip; a proxy job reads the private data set once,
by the final training."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.jobs.queue import WorkUnit
from app.settings import Settings
from app.tuning.recommendation import TUNING_COST_PROXY
from tests.service.conftest import bearer, create_api_key, model_files, tiny_csv_bytes, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny
from workers import executor as executor_module
from workers.executor import EngineExecutor

# The cheapest measurement: K = 2 reference models in trials, the baseline and the confirmation.
FAST = {"reference_models": 2, "audit_reference_models": 2, "allow_weak_baseline": True}
TARGET_EPSILON = 2.0


def _unzipped(response: object, folder: Path) -> Path:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "filename=" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert sorted(archive.namelist()) == ["model.keras", "privacy.json"]
        archive.extractall(folder)
    return folder


@pytest.mark.slow
def test_a_target_epsilon_job_ends_with_a_confirmed_recommendation_and_its_model(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    import tensorflow as tf

    dataset = upload_tiny(client)
    body = tiny_job(
        str(dataset["id"]),
        search={"method": "bayes", "trials": 2, "initial_points": 2},
        target_epsilon=TARGET_EPSILON,
        confirm_repeats=2,
        **FAST,
    )
    job = client.post("/v1/jobs", json=body).json()
    assert job["guarantee"]["target_epsilon"] == TARGET_EPSILON and job["stage"] == "baseline"
    run_worker_until_done(client, settings, job["id"])
    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert (done["status"], done["stage"], done["error"]) == ("succeeded", None, None)

    recommendation = client.get(f"/v1/jobs/{job['id']}/recommendation").json()
    assert recommendation["mode"] == "target_epsilon"
    assert recommendation["confirmation"]["repeats"] == 2
    trials = client.get(f"/v1/jobs/{job['id']}/trials").json()["items"]
    assert len(trials) == 2
    for trial in trials:  # every trial's noise is calibrated to the target
        assert TARGET_EPSILON * 0.99 <= trial["epsilon"] <= TARGET_EPSILON * (1 + 1e-6)

    folder = _unzipped(client.get(f"/v1/jobs/{job['id']}/model"), tmp_path / "model")
    statement = json.loads((folder / "privacy.json").read_text())
    assert statement["epsilon"] == pytest.approx(recommendation["training"]["epsilon"], rel=1e-9)
    assert statement["epsilon"] == pytest.approx(recommendation["epsilon"], rel=1e-9)
    assert statement["tuned_on"] == "private" and statement["clip"] == recommendation["clip"]
    model = tf.keras.models.load_model(folder / "model.keras")
    x = np.random.default_rng(0).normal(size=(16, model.input_shape[-1])).astype("float32")
    predicted = np.asarray(model.predict(x, verbose=0))
    assert predicted.shape[0] == 16 and np.all((predicted >= 0) & (predicted <= 1))

    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert result["final_model"] == statement and result["recommendation"]["training"] == recommendation["training"]
    assert result["mode"] == "target_epsilon" and result["search_space"]["fixed_noise"] == trials[0]["noise"]
    assert result["stop_reason"] == "budget" and result["no_recommendation_reason"] is None

    # Another owner: the same 404 as for a job that does not exist. Deleting the data set removes the model.
    other = client.get(f"/v1/jobs/{job['id']}/model", headers=bearer(create_api_key(settings, owner="mallory")))
    assert other.status_code == 404 and other.json()["error"]["code"] == "job_not_found"
    assert model_files(settings, job["id"]) == [
        f"models/{job['id']}/{name}" for name in ("model.keras", "privacy.json")
    ]
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert model_files(settings, job["id"]) == []


class RecordingExecutor(EngineExecutor):
    """The real executor, remembering which unit is preparing data (to tell whose reads are whose)."""

    current: str | None = None

    def prepared(self, unit: WorkUnit):  # type: ignore[no-untyped-def]
        RecordingExecutor.current = unit.kind
        return super().prepared(unit)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_proxy_job_reads_the_private_data_once_by_the_final_training(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    private = upload_tiny(client)
    proxy = client.post(
        "/v1/datasets", files={"file": ("proxy.csv", tiny_csv_bytes(seed=1), "text/csv")}, data={"label": "outcome"}
    ).json()
    private_file = settings.data_dir / "datasets" / f"{private['id']}.csv"
    reads: list[tuple[str | None, Path]] = []
    original = executor_module.read_table

    def counting_read_table(path: Path, *args: object):  # type: ignore[no-untyped-def]
        reads.append((RecordingExecutor.current, Path(path)))
        return original(path, *args)

    monkeypatch.setattr(executor_module, "read_table", counting_read_table)
    body = tiny_job(
        str(private["id"]),
        search={"method": "random", "trials": 2},
        tune_dataset_id=proxy["id"],
        confirm_repeats=2,
        **FAST,
    )
    job = client.post("/v1/jobs", json=body).json()
    assert job["tune_dataset_id"] == proxy["id"]
    run_worker_until_done(client, settings, job["id"], executor=RecordingExecutor(settings))
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"

    private_reads = [kind for kind, path in reads if path.resolve() == private_file.resolve()]
    assert private_reads == ["final"]
    assert {kind for kind, path in reads if path.resolve() != private_file.resolve()} <= {
        "baseline",
        "trial",
        "confirm",
    }
    folder = _unzipped(client.get(f"/v1/jobs/{job['id']}/model"), tmp_path / "model")
    statement = json.loads((folder / "privacy.json").read_text())
    assert statement["tuned_on"] == "proxy" and statement["tuning_cost"] == TUNING_COST_PROXY
    recommendation = client.get(f"/v1/jobs/{job['id']}/recommendation").json()
    assert recommendation["tuning_cost"] == TUNING_COST_PROXY
    assert recommendation["training"]["epsilon"] == pytest.approx(statement["epsilon"], rel=1e-9)
