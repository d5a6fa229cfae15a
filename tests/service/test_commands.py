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
import pytest
from sqlalchemy import create_engine, inspect

from tests.service.test_migrations import HEAD

REPO = Path(__file__).resolve().parents[2]
DPTUNE = [sys.executable, "-c", "from app.cli import main; raise SystemExit(main())"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DPTUNE_")}
    env.update(
        {
            "DPTUNE_DATA_DIR": str(data_dir),
            "DPTUNE_POLL_SECONDS": "0.2",
            "DPTUNE_STOP_GRACE_SECONDS": "2",
            "PYTHONPATH": str(REPO),
        }
    )  # this checkout's code, whatever the venv's editable install points at
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_migrate_creates_the_schema_in_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    for _ in range(2):  # the second run is a no-op
        done = subprocess.run(
            [*DPTUNE, "migrate"], cwd=tmp_path, env=_env(data_dir), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert f"database schema at revision {HEAD}" in done.stdout
    engine = create_engine(f"sqlite:///{data_dir / 'dptune.db'}")
    tables = set(inspect(engine).get_table_names())
    assert {"datasets", "jobs", "trials", "recommendations", "owners", "api_keys", "alembic_version"} <= tables
    engine.dispose()


def _keys(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DPTUNE, "keys", *args], cwd=data_dir.parent, env=_env(data_dir), capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_keys_create_list_revoke(tmp_path: Path) -> None:
    """The key is printed once, as the last line; it works; `list` shows no secret; `revoke` ends it."""
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import Settings

    data_dir = tmp_path / "data"
    assert (
        subprocess.run(
            [*DPTUNE, "migrate"], cwd=tmp_path, env=_env(data_dir), capture_output=True, timeout=120
        ).returncode
        == 0
    )  # as `dptune serve` does on its first start
    created = _keys(data_dir, "create", "--owner", "alice")
    assert created.returncode == 0, created.stderr
    database = data_dir / "dptune.db"
    assert f"dptune: using the database {database.resolve()} (data folder {data_dir.resolve()})" in created.stderr
    key = created.stdout.strip().splitlines()[-1]
    key_id = re.search(r"created key (\w+) for owner 'alice'", created.stdout).group(1)  # type: ignore[union-attr]
    assert key.startswith(f"dpt_{key_id}_") and len(key) > 40

    listed = _keys(data_dir, "list")
    assert listed.returncode == 0 and key_id in listed.stdout and "alice" in listed.stdout
    assert "active" in listed.stdout and key not in listed.stdout and key.split("_")[-1] not in listed.stdout
    database_bytes = (data_dir / "dptune.db").read_bytes() + b"".join(
        p.read_bytes() for p in data_dir.glob("dptune.db-wal")
    )
    assert key.encode() not in database_bytes  # stored hashed

    with TestClient(create_app(Settings(data_dir=data_dir))) as client:
        assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        revoked = _keys(data_dir, "revoke", key_id)
        assert revoked.returncode == 0 and f"revoked key {key_id}" in revoked.stdout
        refused = client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert "revoked" in _keys(data_dir, "list").stdout
    assert _keys(data_dir, "revoke", "nosuchkey").returncode == 1


@pytest.mark.slow
def test_keys_refuse_to_make_a_database_the_server_would_not_read(tmp_path: Path) -> None:
    """Run where no server keeps its data, `keys` says where it looked and how to point it at the server's data
    folder, and creates nothing; --data-dir points it there from anywhere."""
    server_data = tmp_path / "server-data"
    assert (
        subprocess.run(
            [*DPTUNE, "migrate"], cwd=tmp_path, env=_env(server_data), capture_output=True, timeout=120
        ).returncode
        == 0
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {key: value for key, value in _env(server_data).items() if key != "DPTUNE_DATA_DIR"}

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*DPTUNE, "keys", *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120
        )

    for args in (("create", "--owner", "alice"), ("list",), ("revoke", "abc")):
        refused = keys(*args)
        assert refused.returncode == 2, args
        assert refused.stderr.strip() == (
            f"dptune: error: no dptune database at {(elsewhere / 'dptune-data' / 'dptune.db').resolve()}: point at "
            "the server's data folder with --data-dir DIR or DPTUNE_DATA_DIR (or at its database with "
            "DPTUNE_DATABASE_URL); `dptune serve` or `dptune migrate` creates a new one"
        )
        assert refused.stdout == "" and list(elsewhere.iterdir()) == []

    created = keys("create", "--owner", "alice", "--data-dir", str(server_data))
    assert created.returncode == 0, created.stderr
    assert f"using the database {(server_data / 'dptune.db').resolve()}" in created.stderr
    assert "alice" in keys("list", "--data-dir", str(server_data)).stdout
    assert list(elsewhere.iterdir()) == []


@pytest.mark.slow
def test_serve_answers_and_stops_with_its_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [*DPTUNE, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=_env(data_dir),
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "Uvicorn running" in text and re.search(r"worker \S+ started", text):
                break
            time.sleep(0.2)
        health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=10)
        assert health.json() == {"status": "ok", "database": "ok"}, log.read_text()
        assert health.headers["x-request-id"]
        # The embedded default made a local key on its first start, in the data folder, for its owner only.
        key_file = data_dir / "local-api-key"
        assert f"created the local API key in {key_file.resolve()}" in log.read_text()
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        datasets = f"http://127.0.0.1:{port}/v1/datasets"
        assert httpx.get(datasets, timeout=10).status_code == 401
        assert httpx.get(datasets, headers={"Authorization": f"Bearer {key}"}, timeout=10).json()["total"] == 0
        # The worker runs at a lower OS priority than the API (DPTUNE_WORKER_NICENESS, 10 by default).
        found = re.search(r"started worker process (\d+)", log.read_text())
        assert found, log.read_text()
        api_nice = os.getpriority(os.PRIO_PROCESS, server.pid)
        worker_nice = os.getpriority(os.PRIO_PROCESS, int(found.group(1)))
        assert worker_nice == min(api_nice + 10, 19) > api_nice
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0, log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
    text = log.read_text(errors="replace")
    assert "started worker process" in text
    assert "stopped after 0 units" in text, text  # the worker child stopped with the server
    assert (data_dir / "dptune.db").exists()
