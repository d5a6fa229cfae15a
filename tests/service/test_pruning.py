"""Pruned trials in the service: stored as pruned, counted in the budget and in progress, listed (JSON and CSV)
with their status, checkpoint and full configuration's epsilon, never recommended; the same trials as the
engine's tune() prunes; and a bad search.pruning is a 422 naming the field."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.datasets.features import prepare_dataset
from app.datasets.splits import RandomSplit
from app.datasets.tables import read_table
from app.db import Database
from app.jobs.models import TrialRecord
from app.settings import Settings
from app.tuning import engine
from app.tuning.accounting import dp_sgd_guarantee
from app.tuning.model_spec import ModelSpec
from app.tuning.pruning import PruneDecision, Pruner
from app.tuning.results import Estimate, GuaranteeSpec, MeasurementSpec
from app.tuning.search import SearchSpec
from tests.service.conftest import TINY_MODEL, assert_error_shape, tiny_job
from tests.service.helpers import run_worker_until_done, upload_tiny

FAST = {"reference_models": 2, "audit_reference_models": 2, "allow_weak_baseline": True}


def _forced(pruner: Pruner, step: int, utility: Estimate) -> PruneDecision:
    """Prune every trial once two trials completed (the rule itself: tests/tuning/test_pruning.py)."""
    prune = len(pruner.history) >= 2
    return PruneDecision(prune, 0.99 if prune else None, len(pruner.history), "forced")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_pruned_trial_is_stored_counted_listed_and_never_recommended(
    client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "decide", _forced)  # the worker runs in this process
    dataset = upload_tiny(client)
    search = {"method": "bayes", "trials": 4, "initial_points": 2, "pruning": "median"}
    job = client.post(
        "/v1/jobs", json=tiny_job(str(dataset["id"]), search=search, seed=3, confirm_repeats=2, **FAST)
    ).json()
    assert job["search"]["pruning"] == "median"
    run_worker_until_done(client, settings, job["id"])

    done = client.get(f"/v1/jobs/{job['id']}").json()
    assert done["status"] == "succeeded", done
    assert done["progress"]["pruned"] == 2 and done["progress"]["done"] == 4 and done["progress"]["total"] == 4
    database = Database(settings)
    try:
        with database.reading() as session:
            rows = session.scalars(select(TrialRecord).where(TrialRecord.job_id == job["id"])).all()
            statuses = {r.trial_index: r.status for r in rows}
            objectives = {r.trial_index: r.objective for r in rows}
    finally:
        database.dispose()
    assert statuses == {0: "succeeded", 1: "succeeded", 2: "pruned", 3: "pruned"}
    assert objectives[2] is None and objectives[3] is None

    result = client.get(f"/v1/jobs/{job['id']}/result").json()
    assert [t["index"] for t in result["trials"]] == [0, 1]
    pruned = result["pruned_trials"]
    assert [p["index"] for p in pruned] == [2, 3]
    assert result["recommendation"]["index"] in (0, 1)
    for p in pruned:
        full = dp_sgd_guarantee(
            sampling_rate=p["sampling_rate"], noise_multiplier=p["noise"], steps=p["steps"], delta=result["delta"]
        )
        assert p["epsilon"] == pytest.approx(full.epsilon) and p["checkpoint"]["step"] < p["steps"]
    listed = client.get(f"/v1/jobs/{job['id']}/trials").json()
    assert [(t["index"], t["status"]) for t in listed["items"]] == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "pruned"),
        (3, "pruned"),
    ]
    assert listed["items"][2]["checkpoint"]["pruned"] and listed["items"][2]["epsilon"] == pruned[0]["epsilon"]
    assert listed["items"][0]["checkpoint"]["pruned"] is False  # completed trials keep their checkpoint too
    table = list(csv.DictReader(io.StringIO(client.get(f"/v1/jobs/{job['id']}/trials?format=csv").text)))
    assert [(r["index"], r["status"]) for r in table] == [
        ("0", "succeeded"),
        ("1", "succeeded"),
        ("2", "pruned"),
        ("3", "pruned"),
    ]
    assert table[2]["objective"] == "" and table[2]["checkpoint.utility_validation.value"] != ""

    # The engine's tune() prunes the same trials at the same points (one search loop).
    frame = read_table(settings.data_dir / "datasets" / f"{dataset['id']}.csv")
    data, _ = prepare_dataset(frame, label="outcome", split=RandomSplit(), seed=3)
    local = engine.tune(
        data,
        ModelSpec(**TINY_MODEL),
        SearchSpec(**search),
        seed=3,
        measurement=MeasurementSpec(**FAST),
        guarantee=GuaranteeSpec(confirm_repeats=2),
    )
    assert [p.index for p in local.pruned_trials] == [2, 3]
    for mine, theirs in zip(pruned, local.pruned_trials, strict=True):
        assert (mine["clip"], mine["noise"]) == pytest.approx((theirs.clip, theirs.noise), abs=1e-9)
        assert mine["checkpoint"]["utility_validation"]["value"] == pytest.approx(
            theirs.checkpoint.utility_validation.value, abs=1e-12
        )
    assert result["recommendation"]["index"] == local.recommendation.index  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bad_pruning_rule_is_a_422_naming_the_field(client: TestClient) -> None:
    dataset = upload_tiny(client)
    body = tiny_job(str(dataset["id"]), search={"trials": 4, "pruning": "asha"})
    error = assert_error_shape(client.post("/v1/jobs", json=body), 422)
    assert "pruning" in str(error)
