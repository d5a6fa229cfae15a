"""Workers keep prepared data in memory only, few of them, and forget a data set no active job needs."""

from __future__ import annotations

import numpy as np

from app.datasets.features import PreparationReport
from app.datasets.splits import RandomSplit
from app.tuning.prepared import PreparedData
from workers.executor import PreparedCache


def _prepared() -> tuple[PreparedData, PreparationReport]:
    x, y = np.zeros((4, 2), dtype=np.float32), np.array([0, 1, 0, 1])
    data = PreparedData(x, y, x, y, x, y, x, y, None, None, n_classes=2)
    report = PreparationReport(
        rows_in=12,
        rows_used=12,
        split_sizes=data.split_sizes(),
        class_counts={},
        class_names=["0", "1"],
        n_features=2,
        split=RandomSplit(),
    )
    return data, report


def test_cache_is_bounded_and_forgets_unneeded_data_sets() -> None:
    cache = PreparedCache(capacity=2)
    data, report = _prepared()
    keys = [(f"sha{i}", "label", None, "{}", 0) for i in range(3)]
    for i, key in enumerate(keys):
        cache.put(key, f"dataset{i}", data, report)
    assert len(cache) == 2 and cache.get(keys[0]) is None  # the oldest went first
    assert cache.get(keys[1]) is not None
    cache.forget_except({"dataset2"})
    assert cache.get(keys[1]) is None and cache.get(keys[2]) is not None
    cache.forget_except(set())
    assert len(cache) == 0


def test_a_zero_capacity_cache_keeps_nothing() -> None:
    cache = PreparedCache(capacity=0)
    data, report = _prepared()
    cache.put(("sha", "label", None, "{}", 0), "dataset", data, report)
    assert len(cache) == 0
