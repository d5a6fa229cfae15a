"""`dptune migrate` and `dptune serve`, run as a user runs them (SQLite, the embedded default)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, inspect

REPO = Path(__file__).resolve().parents[2]
DPTUNE = [sys.executable, "-c", "from app.cli import main; raise SystemExit(main())"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DPTUNE_")}
    env.update({"DPTUNE_DATA_DIR": str(data_dir), "DPTUNE_POLL_SECONDS": "0.2", "DPTUNE_STOP_GRACE_SECONDS": "2"})
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_migrate_creates_the_schema_in_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    for _ in range(2):  # the second run is a no-op
        done = subprocess.run([*DPTUNE, "migrate"], cwd=tmp_path, env=_env(data_dir), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "database schema at revision 0001" in done.stdout
    engine = create_engine(f"sqlite:///{data_dir / 'dptune.db'}")
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "jobs", "trials", "recommendations", "alembic_version"} <= tables
    engine.dispose()


def test_serve_answers_and_stops_with_its_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        server = subprocess.Popen([*DPTUNE, "serve", "--port", str(port)], cwd=tmp_path, env=_env(data_dir),
                                  stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Uvicorn running" in text and re.search(r"worker \S+ started", text):
                break
            time.sleep(0.2)
        health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=10)
        assert health.json() == {"status": "ok", "database": "ok"}, log.read_text()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
    text = log.read_text(errors="replace")
    assert "started worker process" in text
    assert "stopped after 0 units" in text, text  # the worker child stopped with the server
    assert (data_dir / "dptune.db").exists()
