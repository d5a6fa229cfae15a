"""The CLI answers bad input with one line naming the problem, never a traceback."""

import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


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
    assert done.returncode in (1, 2)
    assert "dptune: error:" in done.stderr
    assert "Traceback" not in done.stderr
