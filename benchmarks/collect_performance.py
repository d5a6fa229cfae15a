"""Gather the performance issues' keys from the benchmarks' JSON into docs/results/performance.json.

    python benchmarks/collect_performance.py

Reads what the commands in docs/performance.md wrote to docs/results/ (dp_overhead.json, batched_training.json,
job_time.json, pruning.json, attack_trees.json, load.json, trial_breakdown*.json, workers_scaling.json);
measures nothing itself. A key whose benchmark has not been run is null.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _load(name: str) -> dict[str, Any]:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def _pick(source: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: source.get(k) for k in keys}


OVERHEAD_KEYS = (
    "fast_ratio",
    "fast_ratio_same_loop",
    "fast_ratio_cpu",
    "same_loop_ratio",
    "noise_share",
    "normals_per_second_bare",
    "normals_per_second_in_step",
    "secure_ratio_same_loop",
)
BATCHED_KEYS = ("per_model_ratio_k4", "per_model_ratio_k16")


def main() -> None:
    overhead, batched, jobs = _load("dp_overhead.json"), _load("batched_training.json"), _load("job_time.json")
    scaling, load, trees = _load("workers_scaling.json"), _load("load.json"), _load("attack_trees.json")
    breakdowns = {"synthea": _load("trial_breakdown.json"), "hiv": _load("trial_breakdown_hiv.json")}
    out: dict[str, Any] = {
        shape: {
            **_pick(overhead.get(shape, {}), OVERHEAD_KEYS),
            **_pick(batched.get(shape, {}), BATCHED_KEYS),
        }
        for shape in ("hiv", "synthea")
    }
    out.update(
        {
            "demo_job_seconds": jobs.get("demo_job_seconds"),
            "hiv_job_seconds": jobs.get("hiv_job_seconds"),
            "job_split_seconds": {k: jobs.get(k, {}).get("split_seconds") for k in ("demo", "hiv")},
            "pruning": _load("pruning.json").get("summary"),
            "attack_trees": trees.get("summary"),
            "load": _pick(load, ("errors", "p50_ms", "p99_ms", "api_cpu_ms_per_request", "concurrency")),
            "attack_and_evaluation_share": {k: v.get("attack_and_evaluation_share") for k, v in breakdowns.items()},
            "trial_seconds_median": {k: v.get("trial_seconds_median") for k, v in breakdowns.items()},
            "throughput_ratio_2_vs_1": scaling.get("throughput_ratio_2_vs_1"),
            "targets": {
                "hiv.fast_ratio": "<= 1.2",
                "synthea.fast_ratio": "<= 0.3",
                "synthea.per_model_ratio_k16": "<= 0.5",
                "demo_job_seconds": "<= 30",
                "hiv_job_seconds": "<= 600",
                "load.p99_ms": "< 50",
                "throughput_ratio_2_vs_1": ">= 1.6",
            },
            "sources": [
                "dp_overhead.json",
                "batched_training.json",
                "job_time.json",
                "pruning.json",
                "attack_trees.json",
                "load.json",
                "trial_breakdown.json",
                "trial_breakdown_hiv.json",
                "workers_scaling.json",
            ],
        }
    )
    (RESULTS / "performance.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
