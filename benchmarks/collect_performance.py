"""Gather the performance issue's keys from the benchmarks' JSON into docs/results/performance.json.

    python benchmarks/collect_performance.py

Reads docs/results/dp_overhead.json, trial_breakdown.json (synthea), trial_breakdown_hiv.json and
workers_scaling.json, as written by the commands in docs/performance.md; measures nothing itself.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def _load(name: str) -> dict:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    overhead, scaling = _load("dp_overhead.json"), _load("workers_scaling.json")
    breakdowns = {"synthea": _load("trial_breakdown.json"), "hiv": _load("trial_breakdown_hiv.json")}
    out: dict[str, object] = {
        "hiv": {
            k: overhead.get("hiv", {}).get(k)
            for k in ("fast_ratio", "optimizer_ratio", "ghost_ratio", "vectorized_ratio")
        },
        "synthea": {k: overhead.get("synthea", {}).get(k) for k in ("fast_ratio", "optimizer_ratio", "ghost_ratio")},
        "hiv_batch_sweep": overhead.get("hiv_batch_sweep"),
        "peak_rss_mb": overhead.get("peak_rss_mb"),
        "attack_and_evaluation_share": {k: v.get("attack_and_evaluation_share") for k, v in breakdowns.items()},
        "trial_seconds_median": {k: v.get("trial_seconds_median") for k, v in breakdowns.items()},
        "throughput_ratio_2_vs_1": scaling.get("throughput_ratio_2_vs_1"),
        "targets": {
            "hiv.fast_ratio": "<= 1.5",
            "attack_and_evaluation_share": "<= 0.2",
            "throughput_ratio_2_vs_1": ">= 1.6",
        },
        "sources": ["dp_overhead.json", "trial_breakdown.json", "trial_breakdown_hiv.json", "workers_scaling.json"],
    }
    (RESULTS / "performance.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
