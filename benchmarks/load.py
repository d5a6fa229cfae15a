"""Read load on `dptune serve` while a job trains: 2,000 GETs (job polls, listings, trial pages) from 50
concurrent clients, on loopback only. Records errors and latency percentiles and writes them to
docs/results/load.json (keys errors, p50_ms, p99_ms, and more).

    .venv/bin/python benchmarks/load.py [--requests 2000] [--concurrency 50] [--out docs/results/load.json]
        [--if-none-match]

What it does, from an empty temp folder, as a user would:
1. starts `dptune serve` on 127.0.0.1 (the embedded default: SQLite, the API, and one worker process), and
   reads the local API key it writes;
2. uploads a synthetic data set (2,000 rows) and queues a small job (a [32, 16] MLP, 5 epochs, 30 trials),
   and waits until the worker trains its trials;
3. sends the requests over persistent HTTP/1.1 connections (a minimal asyncio client, so the load
   generator itself costs little CPU on the machine it shares with the server), timing each to the last
   byte of its response;
4. cancels the job and stops the server (SIGINT), then writes the figures: client latency, the time the
   app itself spent per request (from the server's access log), the CPU seconds each process used (and the
   API's per request), the worker's nice value, and the load average before and after.

With --if-none-match each client polls as a real poller does: it sends the ETag of its last job poll in
If-None-Match, and a 304 counts as an answer. Its figures are those of conditional GETs: report them apart
from a run without it.

It stops by itself: every request has a 30 s timeout and the whole run a deadline (--deadline, 600 s).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only
REQUEST_TIMEOUT = 30.0


def synthetic_csv(rows: int = 2000, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 12, rows).round(1)
    income = rng.lognormal(10, 0.5, rows).round(2)
    smoker = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    region = rng.choice(["north", "south", "east", "west"], rows)
    logit = 0.08 * (age - 50) + 0.8 * (np.log(income) - 10) + 0.7 * (smoker == "yes") + rng.normal(0, 0.8, rows)
    frame = pd.DataFrame(
        {"age": age, "income": income, "smoker": smoker, "region": region, "outcome": (logit > 0).astype(int)}
    )
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# ---------------------------------------------------------------------------------------------- the client


class Connection:
    """One persistent HTTP/1.1 connection: GET, read the status line, headers and Content-Length body."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {key}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, if_none_match: str | None = None) -> tuple[int, str | None]:
        """The status and the ETag of the answer."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        conditional = f"If-None-Match: {if_none_match}\r\n".encode() if if_none_match else b""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n".encode() + self.auth + conditional + b"\r\n")
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length = 0
        keep_alive = True
        etag = None
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value.strip())
            elif name.lower() == "connection" and value.strip().lower() == "close":
                keep_alive = False
            elif name.lower() == "etag":
                etag = value.strip()
        await self.reader.readexactly(length)
        if not keep_alive:
            await self.close()
        return status, etag

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def run_load(
    port: int, key: str, paths: list[tuple[str, str]], concurrency: int, deadline: float, if_none_match: bool = False
) -> list[dict[str, Any]]:
    """Send every (kind, path) once, `concurrency` at a time, each connection one request after another; with
    `if_none_match`, a connection sends the ETag it last got for a path (a 304 is then an answer too)."""
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    for item in paths:
        queue.put_nowait(item)
    results: list[dict[str, Any]] = []

    async def client() -> None:
        connection = Connection(port, key)
        etags: dict[str, str] = {}
        try:
            while not queue.empty() and time.monotonic() < deadline:
                kind, path = queue.get_nowait()
                started = time.perf_counter()
                try:
                    sent = etags.get(path) if if_none_match else None
                    status, etag = await asyncio.wait_for(connection.get(path, sent), REQUEST_TIMEOUT)
                    error = None if status == 200 or (status == 304 and sent) else f"HTTP {status}"
                    if etag:
                        etags[path] = etag
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                    status, error = 0, type(exc).__name__
                    await connection.close()
                results.append(
                    {"kind": kind, "ms": (time.perf_counter() - started) * 1000, "status": status, "error": error}
                )
        finally:
            await connection.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return results


# ---------------------------------------------------------------------------------------------- the server


def start_server(workdir: Path, port: int, database_url: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DPTUNE_")}
    env.update({"DPTUNE_DATA_DIR": str(workdir / "dptune-data"), "DPTUNE_TF_THREADS": "1"})
    if database_url:
        env["DPTUNE_DATABASE_URL"] = database_url
    log = (workdir / "serve.log").open("wb")
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from app.cli import main; raise SystemExit(main())",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what}")


def server_side_ms(log: Path, since: float) -> list[float]:
    """The app's own time per GET (request id middleware's access log), for requests after `since`."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"dptune.access"' not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        stamp = datetime.fromisoformat(entry["ts"]).timestamp()
        if entry.get("method") == "GET" and stamp >= since and "duration_ms" in entry:
            out.append(float(entry["duration_ms"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds; the whole run stops by then")
    parser.add_argument("--database-url", default=None, help="PostgreSQL instead of the embedded SQLite")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "load.json")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--if-none-match",
        action="store_true",
        help="conditional GETs: each client sends the ETag it last got for a path, as a real poller does",
    )
    args = parser.parse_args(argv)
    run_deadline = time.monotonic() + args.deadline
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dptune-load-"))
    workdir.mkdir(parents=True, exist_ok=True)
    api = f"http://{HOST}:{args.port}"

    load_before_start = loadavg()
    server = start_server(workdir, args.port, args.database_url)
    key_file = workdir / "dptune-data" / "local-api-key"
    try:
        wait_for(lambda: key_file.exists() and _healthy(api), 180, "the server")
        key = key_file.read_text().strip()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=api, headers=headers, timeout=60) as http:
            dataset = http.post(
                "/v1/datasets", files={"file": ("load.csv", synthetic_csv(), "text/csv")}, data={"label": "outcome"}
            ).json()
            job_body = {
                "dataset_id": dataset["id"],
                "split": {"kind": "random"},
                "model": {"hidden": [32, 16], "epochs": 5, "batch_size": 32},
                "search": {"method": "bayes", "trials": 30, "initial_points": 8},
            }
            job = http.post("/v1/jobs", json=job_body).json()
            job_id = job["id"]
            # Load starts once the worker is training trials (TensorFlow busy on the same cores).
            wait_for(
                lambda: (
                    http.get(f"/v1/jobs/{job_id}").json()["progress"]["running"] > 0
                    and http.get(f"/v1/jobs/{job_id}").json()["progress"]["baseline_done"]
                ),
                300,
                "a trial to run",
            )
            # A few finished jobs too, so listings have more than one row: the same spec, cancelled at once.
            for _ in range(5):
                extra = http.post("/v1/jobs", json=job_body).json()
                http.post(f"/v1/jobs/{extra['id']}/cancel")
            before = http.get(f"/v1/jobs/{job_id}").json()["progress"]

        rng = random.Random(0)
        mix = [
            ("job poll", f"/v1/jobs/{job_id}", 0.4),
            ("job listing", "/v1/jobs?limit=20", 0.2),
            ("dataset listing", "/v1/datasets", 0.1),
            ("trial page", f"/v1/jobs/{job_id}/trials?limit=50", 0.3),
        ]
        paths = [(kind, path) for kind, path, _ in rng.choices(mix, weights=[w for *_, w in mix], k=args.requests)]
        worker_pids = children(server.pid)
        worker_nice = [os.getpriority(os.PRIO_PROCESS, p) for p in worker_pids]
        cpu_before = {
            "api": cpu_seconds(server.pid),
            "worker": sum(cpu_seconds(p) for p in worker_pids),
            "load generator": time.process_time(),
        }
        load_before = loadavg()
        wall_start, epoch_start = time.perf_counter(), time.time()
        results = asyncio.run(run_load(args.port, key, paths, args.concurrency, run_deadline, args.if_none_match))
        wall = time.perf_counter() - wall_start
        load_after = loadavg()
        cpu_after = {
            "api": cpu_seconds(server.pid),
            "worker": sum(cpu_seconds(p) for p in worker_pids),
            "load generator": time.process_time(),
        }

        with httpx.Client(base_url=api, headers=headers, timeout=60) as http:
            after = http.get(f"/v1/jobs/{job_id}").json()["progress"]
            status_during = http.get(f"/v1/jobs/{job_id}").json()["status"]
            http.post(f"/v1/jobs/{job_id}/cancel")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            server.kill()
    time.sleep(0.5)  # the log's last lines

    latencies = [r["ms"] for r in results]
    errors = [r for r in results if r["error"] is not None]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in results:
        by_kind[r["kind"]].append(r["ms"])
    in_app = server_side_ms(workdir / "serve.log", epoch_start)
    cpu_used = {k: round(cpu_after[k] - cpu_before[k], 2) for k in cpu_before}
    summary: dict[str, Any] = {
        "errors": len(errors),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "requests": len(results),
        "requests_planned": args.requests,
        "concurrency": args.concurrency,
        "wall_seconds": round(wall, 2),
        "requests_per_second": round(len(results) / wall, 1) if wall else None,
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "if_none_match": args.if_none_match,
        "statuses": {str(k): v for k, v in sorted(_count(r["status"] for r in results).items())},
        "by_endpoint": {
            kind: {"count": len(v), "p50_ms": round(percentile(v, 50), 1), "p99_ms": round(percentile(v, 99), 1)}
            for kind, v in sorted(by_kind.items())
        },
        "error_kinds": dict(sorted(_count(r["error"] for r in errors).items())),
        "in_app_ms": {
            "count": len(in_app),
            "p50": round(percentile(in_app, 50), 2),
            "p99": round(percentile(in_app, 99), 2),
        },
        "cpu_seconds_during_load": cpu_used,
        # The API process's CPU over the run, per request answered: what one GET costs it, all layers included.
        "api_cpu_ms_per_request": round(cpu_used["api"] * 1000 / len(results), 2) if results else None,
        "worker_nice": worker_nice,
        "load_average": {
            "before_server_start": load_before_start,
            "before_load": load_before,
            "after_load": load_after,
        },
        "job_during_load": {
            "status": status_during,
            "trials_done_before": before["done"],
            "trials_done_after": after["done"],
            "running_before": before["running"],
        },
        "database": "postgresql" if args.database_url else "sqlite (embedded default)",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}; server log in {workdir / 'serve.log'}", file=sys.stderr)
    return 0 if not errors else 1


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[str(item)] += 1
    return counts


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
