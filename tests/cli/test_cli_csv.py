"""dptune tune --csv writes the engine's trials with the columns GET /v1/jobs/{id}/trials?format=csv has
(app.tuning.trials_csv), one row per trial with its status, values equal to the --json result's trials."""

import csv
import json

import pytest

from app import cli
from tests.cli.test_cli_guarantee import TINY_TUNE_OPTIONS, _table
from tests.service.test_trials_csv import flatten, same


@pytest.mark.slow  # a real tune in a subprocess: about 21 s
def test_tune_writes_the_trials_as_csv(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data, out, table = _table(tmp_path / "data.csv", 1), tmp_path / "out.json", tmp_path / "sub" / "trials.csv"
    code = cli.main(
        [
            "tune",
            str(data),
            "--label",
            "y",
            *TINY_TUNE_OPTIONS,
            "--epochs",
            "2",
            "--json",
            str(out),
            "--csv",
            str(table),
        ]
    )
    assert code == 0
    trials = json.loads(out.read_text())["trials"]
    with table.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert len(rows) == len(trials) == 2
    expected = [flatten(trial) for trial in trials]
    assert reader.fieldnames == [*expected[0], "status"]  # after the trial's fields, as the API's TrialRead
    assert [row["status"] for row in rows] == ["succeeded", "succeeded"]
    assert {"index", "clip", "noise", "objective", "epsilon", "repeat_values.0.utility_test"} <= set(expected[0])
    for row, values in zip(rows, expected, strict=True):
        mismatched = {name: (row[name], value) for name, value in values.items() if not same(row[name], value)}
        assert not mismatched, mismatched
