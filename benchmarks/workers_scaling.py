"""Throughput of one job with 1 and then 2 worker processes, each limited to 1 TensorFlow thread.

    .venv/bin/python benchmarks/workers_scaling.py [--trials 40] [--database-url URL] [--json OUT]

From an empty temp folder, as an operator would: starts `dptune serve --no-worker` on 127.0.0.1, creates the
built-in synthea-covid data set, then for N in (1, 2): queues the same job (random search, the default model,
`parallelism` 2, a fresh seed so no result is reused), starts N `dptune worker` processes with
DPTUNE_TF_THREADS=1, waits until the job has finished, and stops the workers. Trials per minute count the trial
phase only: from the baseline's end to the last trial's end, so worker start-up (importing TensorFlow) and the
baseline, which one worker runs alone, are outside it. Prints the figures; `--json` writes them
(key throughput_ratio_2_vs_1). SQLite by default; --database-url for PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def _env(workdir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPTUNE_")}
    env.update({"DPTUNE_DATA_DIR": str(workdir / "dptune-data"), "DPTUNE_TF_THREADS": "1", "PYTHONPATH": str(REPO)})
    if database_url:
        env["DPTUNE_DATABASE_URL"] = database_url
    return env


def _dptune(args: list[str], workdir: Path, env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
    log = (workdir / log_name).open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; raise SystemExit(main())", *args],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def run_job(
    http: httpx.Client,
    workdir: Path,
    env: dict[str, str],
    dataset_id: str,
    workers: int,
    trials: int,
    seed: int,
    deadline_s: float,
) -> dict[str, Any]:
    body = {
        "dataset_id": dataset_id,
        "search": {"method": "random", "trials": trials, "parallelism": 2},
        "seed": seed,
    }
    job = http.post("/v1/jobs", json=body)
    job.raise_for_status()
    job_id = job.json()["id"]
    processes = [
        _dptune(["worker"], workdir, env | {"DPTUNE_WORKER_ID": f"w{workers}-{i}"}, f"worker-{workers}-{i}.log")
        for i in range(workers)
    ]
    try:
        _wait_for(
            lambda: http.get(f"/v1/jobs/{job_id}").json()["status"] in {"succeeded", "failed", "cancelled"},
            deadline_s,
            f"the job with {workers} worker(s)",
        )
    finally:
        _stop(processes)
    view = http.get(f"/v1/jobs/{job_id}").json()
    page = http.get(f"/v1/jobs/{job_id}/trials", params={"limit": 200})
    page.raise_for_status()
    rows = page.json()["items"]
    ends = sorted(datetime.fromisoformat(r["finished_at"]) for r in rows if r["finished_at"])
    starts = sorted(datetime.fromisoformat(r["started_at"]) for r in rows)
    span = (ends[-1] - starts[0]).total_seconds()
    return {
        "workers": workers,
        "status": view["status"],
        "trials": len(ends),
        "trial_phase_seconds": round(span, 1),
        "trials_per_minute": round(60 * len(ends) / span, 2),
        "median_trial_seconds": round(sorted(r["seconds"] for r in rows)[len(rows) // 2], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--port", type=int, default=8792)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds per job")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="dptune-scaling-"))
    env = _env(workdir, args.database_url)
    server = _dptune(["serve", "--no-worker", "--host", HOST, "--port", str(args.port)], workdir, env, "serve.log")
    key_file = workdir / "dptune-data" / "local-api-key"
    try:
        _wait_for(
            lambda: key_file.exists() and httpx.get(f"http://{HOST}:{args.port}/v1/health").is_success,
            180,
            "the server",
        )
        headers = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        with httpx.Client(base_url=f"http://{HOST}:{args.port}", headers=headers, timeout=60) as http:
            dataset = http.post("/v1/datasets/builtin", json={"name": "synthea-covid"})
            dataset.raise_for_status()
            runs = [
                run_job(http, workdir, env, dataset.json()["id"], n, args.trials, seed=n, deadline_s=args.deadline)
                for n in (1, 2)
            ]
    finally:
        _stop([server])
    results: dict[str, Any] = {
        "trials": args.trials,
        "cpus": os.cpu_count(),
        "tf_threads_per_worker": 1,
        "database": "postgresql" if args.database_url else "sqlite",
        "runs": runs,
        "throughput_ratio_2_vs_1": round(runs[1]["trials_per_minute"] / runs[0]["trials_per_minute"], 3),
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
