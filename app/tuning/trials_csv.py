"""Trials as CSV: one row per trial, one column per field, nested values flattened to dotted names
(`games.membership.attacks.rmia.auc.value`, `repeat_values.0.utility_test`). The one CSV writer for the API's
`GET /v1/jobs/{id}/trials?format=csv` (TrialRead and PrunedTrialRead rows) and `dptune tune --csv` (the engine's
Trial and PrunedTrial rows, with a status column).

Columns are the fields in the model's order, as they first appear over the rows (the attacks and repeats a
job measured decide the nested ones); a row without a column has an empty cell. Null and undefined (NaN)
values are empty cells, as the JSON API sends null for both; booleans are `true`/`false`; numbers keep full
precision; times are as in the JSON.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from app.tuning.results import PrunedTrial, Trial


def trial_rows(
    trials: Sequence[BaseModel], statuses: Sequence[str] | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the trials, each row a column -> cell text mapping. `statuses`, when given, is each
    trial's status, after its own fields (where the API's TrialRead has it)."""
    flattened = [dict(_flatten(trial.model_dump(mode="json"))) for trial in trials]
    for row, status in zip(flattened, statuses or [], strict=statuses is not None):
        row["status"] = status
    seen = dict.fromkeys(name for row in flattened for name in row)
    # A field null in one trial and an object in another: keep the object's columns, not the field itself.
    columns = [name for name in seen if not any(other.startswith(name + ".") for other in seen)]
    rows = [{name: _cell(row[name]) for name in columns if name in row} for row in flattened]
    return columns, rows


def trials_csv(trials: Sequence[BaseModel], statuses: Sequence[str] | None = None) -> str:
    columns, rows = trial_rows(trials, statuses)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def result_trials_csv(trials: Sequence[Trial], pruned: Sequence[PrunedTrial]) -> str:
    """`dptune tune --csv`: the completed and the pruned trials in index order, each with its status, as the API's
    CSV lists a job's."""
    ordered: list[Trial | PrunedTrial] = sorted([*trials, *pruned], key=lambda trial: trial.index)
    return trials_csv(ordered, ["pruned" if isinstance(t, PrunedTrial) else "succeeded" for t in ordered])


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        items: Iterator[tuple[Any, Any]] = iter(value.items())
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        yield prefix, value
        return
    for key, item in items:
        yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
