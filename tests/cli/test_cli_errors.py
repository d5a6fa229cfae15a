"""The CLI answers bad input with one line naming the problem, never a traceback."""

import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300)


def test_missing_label_is_one_clear_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.csv"
    pd.DataFrame({"a": [1, 2, 3, 4], "y": [0, 1, 0, 1]}).to_csv(path, index=False)
    done = _run("tune", str(path), "--label", "nope", "--trials", "1")
    assert done.returncode == 2
    assert "label column 'nope' is not in the table" in done.stderr
    assert "Traceback" not in done.stderr


def test_nested_parquet_gives_no_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "t.parquet"
    table = pa.table({"a": [{"x": 1}, {"x": 2}] * 20, "y": [0, 1] * 20})
    pq.write_table(table, path)
    done = _run("tune", str(path), "--label", "y", "--trials", "1")
    # Exit 2 with the reason and the column named, not the catch-all (exit 1, "could not be processed").
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("dptune: error:")]
    assert "nested types (struct, list, map) cannot be used: a;" in line and "flatten them" in line
    assert "Traceback" not in done.stderr


def test_bad_measurement_options_fail_before_reading_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _run("tune", str(tmp_path / "absent.csv"), "--label", "y", "--repeats", "0")
    assert done.returncode == 2
    assert "--repeats" in done.stderr and "Traceback" not in done.stderr


def _noise_table(tmp_path, rows: int = 800):  # type: ignore[no-untyped-def]
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.csv"
    pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "y": rng.integers(0, 2, rows)}).to_csv(
        path, index=False
    )
    return path


@pytest.mark.slow
def test_a_baseline_that_does_not_learn_fails_in_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _run(
        "tune",
        str(_noise_table(tmp_path)),
        "--label",
        "y",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--audit-reference-models",
        "2",
    )
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("dptune: error:")]
    assert "baseline_not_learning" in line and "includes chance" in line and "allow_weak_baseline" in line
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_population_game_needs_an_external_set(tmp_path) -> None:  # type: ignore[no-untyped-def]
    done = _run("tune", str(_noise_table(tmp_path)), "--label", "y", "--privacy-game", "population")
    assert done.returncode == 2
    assert "no_external_set" in done.stderr and "Traceback" not in done.stderr


def test_the_pruning_option_is_checked_and_reaches_the_search_spec(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import argparse

    from app.cli import _search_spec

    done = _run("tune", str(tmp_path / "absent.csv"), "--label", "y", "--pruning", "asha")
    assert done.returncode == 2
    assert "--pruning" in done.stderr and "'median'" in done.stderr and "Traceback" not in done.stderr
    options = {"search": "bayes", "trials": 4, "seconds": None, "max_clip": 10.0, "max_noise": 10.0}
    assert _search_spec(argparse.Namespace(**options, pruning="median")).pruning == "median"
