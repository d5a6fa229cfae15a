"""Trials as CSV: one row per trial, one column per field, nested values flattened to dotted names
(`games.membership.attacks.rmia.auc.value`, `repeat_values.0.utility_test`). The one CSV writer for the API's
`GET /v1/jobs/{id}/trials?format=csv` (TrialRead rows) and `dptune tune --csv` (the engine's Trial rows).

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


def trial_rows(trials: Sequence[BaseModel]) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the trials, each row a column -> cell text mapping."""
    flattened = [dict(_flatten(trial.model_dump(mode="json"))) for trial in trials]
    seen = dict.fromkeys(name for row in flattened for name in row)
    # A field null in one trial and an object in another: keep the object's columns, not the field itself.
    columns = [name for name in seen if not any(other.startswith(name + ".") for other in seen)]
    rows = [{name: _cell(row[name]) for name in columns if name in row} for row in flattened]
    return columns, rows


def trials_csv(trials: Sequence[BaseModel]) -> str:
    columns, rows = trial_rows(trials)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


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
