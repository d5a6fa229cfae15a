"""benchmarks/reproduce_study.py draws its surfaces and convergence through app/reports and keeps its file
names (the quick reproduction test runs it end to end; this one only draws, from built trials)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

from PIL import Image

from tests.reports import builders

ROOT = Path(__file__).resolve().parents[2]


def _benchmark() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("reproduce_study", ROOT / "benchmarks" / "reproduce_study.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_figures_come_from_app_reports_under_their_names(tmp_path: Path) -> None:
    study = _benchmark()
    result = builders.result()
    grid = [builders.measured(clip, noise) for clip in (0.5, 1.0, 2.0) for noise in (1.0, 2.0, 4.0)]
    config = types.SimpleNamespace(bounds=[study.SEARCH_BOUND, 2.0], trials=6, max_epsilon=10.0)
    searches = {("bayes", study.SEARCH_BOUND, 0): result.trials, ("bayes", 2.0, 0): result.trials[:3]}
    study.plot_setup(
        "demo", result.baseline, grid, searches, {"bayes": [], "random": []}, None, config, "3 x 3", tmp_path
    )
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "demo-convergence.png",
        "demo-grid-surfaces.png",
        "demo-optimizer-surfaces.png",
        "demo-search-cost.png",
    ]
    for name in names:
        with Image.open(tmp_path / name) as image:
            colours = image.convert("L").getextrema()
        assert colours[0] < 100 < colours[1], name  # drawn on, not blank
