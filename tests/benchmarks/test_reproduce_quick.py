"""Smoke test of the reproduction pipeline at tiny scale (not a measurement)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_reproduction_writes_tables_json_and_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reproduce_study.py"), "--quick", "--setup", "synthea-sgd",
         "--workers", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((tmp_path / "results" / "reproduction.json").read_text())
    setup = result["synthea_sgd"]
    assert set(setup["baseline"]) >= {"utility_members", "utility_test", "utility_nonmembers", "attack_accuracy"}
    assert set(setup["tradeoffs"]) == {"0.25", "0.5", "0.75"}
    for row in setup["tradeoffs"].values():
        assert set(row) >= {"utility_loss", "attack_accuracy", "epsilon", "clip", "noise", "trials"}
        assert row["trials"] == 3
    assert setup["search_efficiency"]["grid_trials"] == 4
    assert result["search_efficiency"]["synthea_sgd"]["grid_trials"] == 4
    for name in ("grid-surfaces", "optimizer-surfaces", "convergence"):
        assert (tmp_path / "figures" / f"synthea-sgd-{name}.png").stat().st_size > 10_000
    assert "| utility_test |" in (tmp_path / "reproduction.md").read_text()
