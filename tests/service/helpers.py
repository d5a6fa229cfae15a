"""Shared helpers for the service tests: run a worker in this process, upload the tiny data set, and build
valid engine results (Baseline, TrialMeasurement) for fake executors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from app.db import Database
from app.settings import Settings
from app.tuning.recommendation import TUNING_COST_PRIVATE, TUNING_COST_PROXY, confirmation_summary
from app.tuning.results import Baseline, Confirmation, MeasurementSpec, PrivacyStatement, TrialMeasurement
from tests import factories
from tests.service.conftest import TINY_ROWS, tiny_csv_bytes
from workers.executor import EngineExecutor, Executor
from workers.worker import Worker

ACTIVE = ("queued", "running")


def upload_tiny(client: TestClient, rows: int = TINY_ROWS, **fields: str) -> dict[str, object]:
    response = client.post(
        "/v1/datasets",
        files={"file": ("tiny.csv", tiny_csv_bytes(rows), "text/csv")},
        data={"label": "outcome", **fields},
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def jobs_done(client: TestClient, *job_ids: str) -> Callable[[], bool]:
    def done() -> bool:
        return all(client.get(f"/v1/jobs/{job_id}").json()["status"] not in ACTIVE for job_id in job_ids)

    return done


def run_worker_until_done(
    client: TestClient,
    settings: Settings,
    *job_ids: str,
    executor: Executor | None = None,
    worker_id: str = "test-worker",
) -> int:
    """Run one in-process worker until the jobs are no longer queued or running; returns units run."""
    database = Database(settings)
    try:
        worker = Worker(database, settings, executor or EngineExecutor(settings, database), worker_id=worker_id)
        return worker.run(stop_when_idle=jobs_done(client, *job_ids), max_units=200)
    finally:
        database.dispose()


# ---------------------------------------------------------------------------------------------- results


def make_baseline(
    utility: float = 0.8,
    attack_accuracy: float = 0.6,
    *,
    learns: bool = True,
    weak_reasons: list[str] | None = None,
    **overrides: Any,
) -> Baseline:
    """A membership-game baseline; `learns=False` is what the gate (engine.check_baseline) refuses."""
    reasons = weak_reasons if weak_reasons is not None else ([] if learns else ["utility near chance"])
    return factories.baseline(utility, attack_accuracy, learns=learns, weak_reasons=reasons, **overrides)


def make_measurement(
    clip: float,
    noise: float,
    *,
    utility: float | None = None,
    attack_accuracy: float | None = None,
    delta: float = 0.01,
    measurement: MeasurementSpec | None = None,
    **overrides: Any,
) -> TrialMeasurement:
    """A trial at (clip, noise): by default utility and attack accuracy fall with noise. One repeat value per
    repeat of `measurement` (all equal), as the engine averages them."""
    spec = measurement or MeasurementSpec()
    u = 0.8 - 0.02 * noise + 0.001 * clip if utility is None else utility
    a = 0.6 - 0.01 * noise if attack_accuracy is None else attack_accuracy
    se = 0.0 if spec.repeats > 1 else None
    values: dict[str, Any] = dict(
        privacy_game=spec.privacy_game,
        delta=delta,
        attack_accuracy_se=se,
        utility_validation_se=se,
        utility_test_se=se,
        games=factories.games(a, reference_models=spec.reference_models),
        epsilon_rdp=1.2,
        attack_accuracy_bound=0.75,
        tpr_bound_at_1pct_fpr=0.05,
        tpr_bound_at_0_1pct_fpr=0.01,
    )
    values.update(overrides)
    return factories.measurement(u, a, clip, noise, epsilon=1.0, repeats=[(u, a)] * spec.repeats, **values)


def fake_confirmation(measured: TrialMeasurement, baseline: Baseline, tradeoff: float) -> Confirmation:
    """The engine's summary of a confirmation measurement (engine.confirm without the training)."""
    seeds = list(range(len(measured.repeat_values)))
    return confirmation_summary(measured, baseline, tradeoff, seeds, reference_models=2, seconds=0.1)


def fake_statement(
    clip: float, noise: float, tuned_on: str = "private", n: int = 100, epsilon: float = 1.0
) -> PrivacyStatement:
    """A privacy.json of a final model that was not trained (no PLD accounting either: it takes seconds)."""
    return PrivacyStatement(
        clip=clip,
        noise=noise,
        epochs=1,
        batch_size=16,
        learning_rate=0.05,
        optimizer="sgd",
        n=n,
        sampling_rate=16 / n,
        steps=7,
        delta=0.01,
        epsilon=epsilon,
        epsilon_rdp=epsilon * 1.2,
        accountant="fake",
        model={},
        tuning_cost=TUNING_COST_PROXY if tuned_on == "proxy" else TUNING_COST_PRIVATE,
        tuned_on=tuned_on,
        seed_source="fake",
        rng="fake",
        tf_privacy_statement="fake",
    )


def upgrade_to(database: Database, revision: str) -> None:
    """Bring an empty database to one old schema revision, as an earlier dptune left it."""
    from alembic import command

    from app.db import alembic_config

    config = alembic_config(database.url)
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
