"""The service gives the same numbers as the engine's in-process `tune()` for the same data, spec and seed:
baseline, trials, the chosen trial and its confirmation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.datasets.features import prepare_dataset
from app.datasets.splits import RandomSplit
from app.datasets.tables import read_table
from app.db import Database
from app.jobs.models import JobRecord
from app.settings import Settings
from app.tuning.engine import tune
from app.tuning.model_spec import ModelSpec
from app.tuning.results import GuaranteeSpec, MeasurementSpec
from app.tuning.search import SearchSpec
from tests.service.conftest import TINY_MODEL, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_service_matches_tune(client: TestClient, settings: Settings, database: Database) -> None:
    dataset = upload_tiny(client)
    search = {"method": "bayes", "trials": 3, "initial_points": 2}  # the third point comes from the GP
    # The tiny model at seed 3 fails the baseline gate; both sides are told to tune anyway (the flag's path too).
    fast = {"reference_models": 2, "audit_reference_models": 2, "allow_weak_baseline": True}
    job = client.post(
        "/v1/jobs", json=tiny_job(str(dataset["id"]), search=search, tradeoff=0.4, seed=3, confirm_repeats=2, **fast)
    ).json()
    run_worker_until_done(client, settings, job["id"])
    served = client.get(f"/v1/jobs/{job['id']}/result").json()

    frame = read_table(settings.data_dir / "datasets" / f"{dataset['id']}.csv")
    data, _ = prepare_dataset(frame, label="outcome", split=RandomSplit(), seed=3)
    local = tune(
        data,
        ModelSpec(**TINY_MODEL),
        SearchSpec(**search),
        tradeoff=0.4,
        seed=3,
        measurement=MeasurementSpec(**fast),
        guarantee=GuaranteeSpec(confirm_repeats=2),
    )

    assert served["baseline"]["utility_test"] == pytest.approx(local.baseline.utility_test, abs=1e-9)
    assert served["baseline"]["attack_accuracy"] == pytest.approx(local.baseline.attack_accuracy, abs=1e-9)
    assert served["delta"] == pytest.approx(local.delta)
    # The search space is stored with the baseline (its noise floor is seconds of accounting), and is tune()'s.
    with database.reading() as session:
        record = session.get(JobRecord, job["id"])
        assert record is not None and record.search_space is not None
    assert served["search_space"] == local.search_space.model_dump(mode="json") == record.search_space
    for mine, theirs in zip(served["trials"], local.trials, strict=True):
        assert (mine["clip"], mine["noise"]) == pytest.approx((theirs.clip, theirs.noise), abs=1e-9)
        assert mine["objective"] == pytest.approx(theirs.objective, abs=1e-9)
        assert mine["epsilon"] == pytest.approx(theirs.epsilon, rel=1e-9)
    assert local.recommendation is not None and local.recommendation.confirmation is not None
    mine, theirs = served["recommendation"], local.recommendation
    assert mine["index"] == theirs.index
    assert mine["selection"] == theirs.selection.model_dump()
    assert (mine["clip"], mine["noise"]) == pytest.approx((theirs.clip, theirs.noise), abs=1e-9)
    confirmation, local_confirmation = mine["confirmation"], theirs.confirmation
    assert confirmation["seeds"] == local_confirmation.seeds and confirmation["repeats"] == 2
    for name in ("utility_validation", "utility_test", "utility_loss", "attack_accuracy", "objective"):
        assert confirmation[name]["value"] == pytest.approx(getattr(local_confirmation, name).value, abs=1e-9)
        assert confirmation[name]["low"] == pytest.approx(getattr(local_confirmation, name).low, abs=1e-9)
    assert mine["objective"] == pytest.approx(theirs.objective, abs=1e-9)
    # Tuned on the data it trains on, the final model's configuration is the recommendation's.
    assert mine["training"]["epsilon"] == pytest.approx(theirs.training.epsilon, rel=1e-9)
    assert served["final_model"]["epsilon"] == pytest.approx(theirs.training.epsilon, rel=1e-9)
    assert served["search_space"] == local.search_space.model_dump()
    assert (served["mode"], served["stop_reason"]) == (local.mode, local.stop_reason)
    assert served["pareto_front"] == local.pareto_front
