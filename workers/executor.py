"""Running a unit of work with the engine (app.tuning), on prepared data cached per worker process."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from app.blobs import blob_store
from app.datasets import repository as dataset_repository
from app.datasets.features import PreparationReport, prepare_dataset
from app.datasets.splits import SPLIT_ADAPTER
from app.datasets.tables import read_table
from app.db import Database
from app.jobs.final_models import publish_model
from app.jobs.queue import (
    BaselineOutcome,
    ConfirmOutcome,
    FinalOutcome,
    Outcome,
    PrunedOutcome,
    TrialOutcome,
    WorkUnit,
)
from app.settings import Settings
from app.tuning.model_spec import ModelSpec
from app.tuning.prepared import PreparedData
from app.tuning.search import SearchSpec

logger = logging.getLogger("dptune.worker")

PreparedKey = tuple[str, str, str | None, str, int]

__all__ = [
    "BaselineOutcome",
    "ConfirmOutcome",
    "EngineExecutor",
    "Executor",
    "FinalOutcome",
    "PreparedCache",
    "PrunedOutcome",
    "TrialOutcome",
    "run_unit",
]


class Executor(Protocol):
    """Runs one unit of each kind; each returns that kind's outcome (app.jobs.queue), which writes itself."""

    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome: ...

    def run_trial(self, unit: WorkUnit) -> TrialOutcome | PrunedOutcome: ...

    def run_confirm(self, unit: WorkUnit) -> ConfirmOutcome: ...

    def run_final(self, unit: WorkUnit) -> FinalOutcome: ...

    def forget_except(self, dataset_ids: set[str]) -> None: ...


def run_unit(executor: Executor, unit: WorkUnit) -> Outcome:
    """The executor's method for the unit's kind."""
    runners: dict[str, Callable[[WorkUnit], Outcome]] = {
        "baseline": executor.run_baseline,
        "trial": executor.run_trial,
        "confirm": executor.run_confirm,
        "final": executor.run_final,
    }
    return runners[unit.kind](unit)


class PreparedCache:
    """Prepared data by (dataset sha256, label, SMILES column, split, seed), in memory only and small: a job's
    trials reuse one preparation, and nothing derived from a data set is written to disk."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[PreparedKey, tuple[str, PreparedData, PreparationReport]] = OrderedDict()

    def get(self, key: PreparedKey) -> tuple[PreparedData, PreparationReport] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[1], entry[2]

    def put(self, key: PreparedKey, dataset_id: str, data: PreparedData, report: PreparationReport) -> None:
        if self.capacity <= 0:
            return
        self._entries[key] = (dataset_id, data, report)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def forget_except(self, dataset_ids: set[str]) -> None:
        for key in [k for k, entry in self._entries.items() if entry[0] not in dataset_ids]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class EngineExecutor:
    """The real thing: prepare_dataset, then the engine's run_baseline / run_trial."""

    def __init__(self, settings: Settings, database: Database | None = None) -> None:
        from app.tuning.train import configure_threads

        configure_threads(settings.tf_threads)  # before TensorFlow runs its first op
        self.settings = settings
        self.database = database if database is not None else Database(settings, application_name="dptune worker")
        self.blobs = blob_store(settings)
        self.cache = PreparedCache(settings.prepared_cache_size)

    def warm_up(self) -> None:
        """Import what the units run (the engine, ART's attacks, dp_accounting, skopt's search, scipy's intervals)
        before the worker says it started: a worker that spends its first claim importing loses a job's short
        trials to the workers already warm."""
        import dp_accounting.pld.privacy_loss_distribution  # noqa: F401
        import dp_accounting.rdp  # noqa: F401
        import scipy.stats  # noqa: F401
        import skopt  # noqa: F401
        import skopt.learning  # noqa: F401

        import app.tuning.attacks.blackbox  # noqa: F401
        import app.tuning.engine  # noqa: F401
        import app.tuning.final_model  # noqa: F401

    def prepared(self, unit: WorkUnit) -> tuple[PreparedData, PreparationReport]:
        ref = unit.dataset
        key: PreparedKey = (
            ref.sha256,
            ref.label,
            ref.smiles_column,
            json.dumps(unit.split, sort_keys=True),
            unit.seed,
        )
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with self.database.reading() as session:
            path = self.blobs.local_copy(session, ref.storage_key, ref.sha256)
        frame = read_table(path, ref.storage_key)  # the key's extension names the format; a cached copy has none
        data, report = prepare_dataset(
            frame,
            label=ref.label,
            split=SPLIT_ADAPTER.validate_python(unit.split),
            smiles_column=ref.smiles_column,
            seed=unit.seed,
        )
        self.cache.put(key, ref.dataset_id, data, report)
        return data, report

    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome:
        """The guarantee's search space (space_for: a max_epsilon that max_noise cannot meet fails here, with
        max_noise_below_budget), the baseline (which first checks that the privacy game can be played on this
        split), then the gate (check_baseline: a baseline that does not learn is not tuned, unless the job
        allows it). All raise TuningError, which fails the job with its code."""
        from app.tuning.engine import check_baseline, default_delta, run_baseline, space_for

        data, report = self.prepared(unit)
        spec = ModelSpec.model_validate(unit.model)
        delta = unit.requested_delta if unit.requested_delta is not None else default_delta(len(data.y_members))
        space = space_for(SearchSpec.model_validate(unit.search), unit.guarantee, spec, len(data.y_members), delta)
        baseline = run_baseline(
            data, spec, unit.measurement, seed=unit.seed, delta=delta
        )  # as engine.tune() does, so the service gives the CLI's numbers
        check_baseline(baseline, unit.measurement)
        return BaselineOutcome(
            baseline=baseline, delta=delta, preparation=report.model_dump(mode="json"), space=space
        )

    def run_trial(self, unit: WorkUnit) -> TrialOutcome | PrunedOutcome:
        """Trial i trains from trial_seed(seed, i), as in engine.tune(), through the same search_trial (and its
        pruning rule, with the pruner the queue built from the job's completed trials)."""
        from app.tuning.engine import search_trial, trial_seed
        from app.tuning.results import PrunedMeasurement

        assert unit.clip is not None and unit.noise is not None and unit.delta is not None
        assert unit.trial_index is not None
        data, _ = self.prepared(unit)
        measured = search_trial(
            data,
            ModelSpec.model_validate(unit.model),
            unit.clip,
            unit.noise,
            delta=unit.delta,
            measurement=unit.measurement,
            seed=trial_seed(unit.seed, unit.trial_index),
            pruner=unit.pruner,
        )
        if isinstance(measured, PrunedMeasurement):
            return PrunedOutcome(measured)
        return TrialOutcome(measured)

    def run_confirm(self, unit: WorkUnit) -> ConfirmOutcome:
        """The chosen point measured again with the guarantee's confirm_repeats fresh seeds (engine.confirm)."""
        from app.tuning.engine import confirm

        assert unit.clip is not None and unit.noise is not None and unit.delta is not None
        assert unit.baseline is not None
        data, _ = self.prepared(unit)
        measured, confirmation = confirm(
            data,
            ModelSpec.model_validate(unit.model),
            unit.clip,
            unit.noise,
            baseline=unit.baseline,
            tradeoff=unit.tradeoff,
            delta=unit.delta,
            measurement=unit.measurement,
            repeats=unit.guarantee.confirm_repeats,
            seed=unit.seed,
        )
        return ConfirmOutcome(measured=measured, confirmation=confirmation)

    def run_final(self, unit: WorkUnit) -> FinalOutcome:
        """Train the recommended configuration once on the private data set (unit.dataset), its noise
        calibrated again for that data's size when the search ran on a proxy (final_model.final_training), and
        store model.keras and privacy.json under models/<job id> (app.jobs.final_models)."""
        from app.tuning.accounting import default_delta
        from app.tuning.final_model import final_training, save_final_model, train_final
        from app.tuning.recommendation import training_config

        assert unit.clip is not None and unit.noise is not None and unit.delta is not None
        assert unit.search_members is not None
        data, _ = self.prepared(unit)
        spec = ModelSpec.model_validate(unit.model)
        n = len(data.y_members)
        delta = unit.requested_delta if unit.requested_delta is not None else default_delta(n)
        recommended = training_config(spec, unit.clip, unit.noise, unit.search_members, unit.delta)
        config = final_training(recommended, unit.guarantee, spec, n, delta)
        model, statement = train_final(data, spec, config, unit.tuned_on)
        publish_model(self.database, unit.job_id, lambda folder: save_final_model(folder, model, statement))
        return FinalOutcome(statement=statement)

    def forget_except(self, dataset_ids: set[str]) -> None:
        """Prepared data no active job reads; cached copies of deleted (or long unused) data sets."""
        self.cache.forget_except(dataset_ids)
        self.blobs.sweep_cache(self._existing_sha256s)

    def _existing_sha256s(self, sha256s: set[str]) -> set[str]:
        with self.database.reading() as session:
            return dataset_repository.existing_sha256s(session, sha256s)
