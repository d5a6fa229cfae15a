"""Running a unit of work with the engine (app.tuning), on prepared data cached per worker process."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import TypeAdapter

from app.datasets.features import PreparationReport, prepare_dataset
from app.datasets.splits import SplitSpec
from app.datasets.storage import stored_path
from app.datasets.tables import read_table
from app.jobs.queue import WorkUnit
from app.settings import Settings
from app.tuning.model_spec import ModelSpec
from app.tuning.prepared import PreparedData
from app.tuning.results import Baseline, TrialMeasurement

logger = logging.getLogger("dptune.worker")

SPLIT_ADAPTER: TypeAdapter[SplitSpec] = TypeAdapter(SplitSpec)
PreparedKey = tuple[str, str, str | None, str, int]


@dataclass(frozen=True)
class BaselineOutcome:
    baseline: Baseline
    delta: float
    preparation: dict[str, Any]


class Executor(Protocol):
    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome: ...

    def run_trial(self, unit: WorkUnit) -> TrialMeasurement: ...

    def forget_except(self, dataset_ids: set[str]) -> None: ...


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

    def __init__(self, settings: Settings) -> None:
        from app.tuning.train import configure_threads

        configure_threads(settings.tf_threads)  # before TensorFlow runs its first op
        self.settings = settings
        self.cache = PreparedCache(settings.prepared_cache_size)

    def prepared(self, unit: WorkUnit) -> tuple[PreparedData, PreparationReport]:
        ref = unit.dataset
        key: PreparedKey = (ref.sha256, ref.label, ref.smiles_column, json.dumps(unit.split, sort_keys=True), unit.seed)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        frame = read_table(stored_path(self.settings, ref.storage_key))
        data, report = prepare_dataset(
            frame, label=ref.label, split=SPLIT_ADAPTER.validate_python(unit.split),
            smiles_column=ref.smiles_column, seed=unit.seed,
        )
        self.cache.put(key, ref.dataset_id, data, report)
        return data, report

    def run_baseline(self, unit: WorkUnit) -> BaselineOutcome:
        """The baseline (which first checks that the privacy game can be played on this split), then the gate
        (check_baseline: a baseline that does not learn is not tuned, unless the job allows it). Both raise
        TuningError, which fails the job with its code."""
        from app.tuning.engine import check_baseline, default_delta, run_baseline

        data, report = self.prepared(unit)
        delta = unit.requested_delta if unit.requested_delta is not None else default_delta(len(data.y_members))
        baseline = run_baseline(data, ModelSpec.model_validate(unit.model), unit.measurement, seed=unit.seed,
                                delta=delta)  # as engine.tune() does, so the service gives the CLI's numbers
        check_baseline(baseline, unit.measurement)
        return BaselineOutcome(baseline=baseline, delta=delta, preparation=report.model_dump(mode="json"))

    def run_trial(self, unit: WorkUnit) -> TrialMeasurement:
        from app.tuning.engine import run_trial

        assert unit.clip is not None and unit.noise is not None and unit.delta is not None
        data, _ = self.prepared(unit)
        return run_trial(data, ModelSpec.model_validate(unit.model), unit.clip, unit.noise, delta=unit.delta,
                         measurement=unit.measurement, seed=unit.seed)

    def forget_except(self, dataset_ids: set[str]) -> None:
        self.cache.forget_except(dataset_ids)
