"""`dptune serve`, `dptune worker` and `dptune migrate`: the service's commands, registered by app.cli."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading

logger = logging.getLogger("dptune.serve")

# After its grace period a stopping worker releases its unit; give it that long, plus time to write.
CHILD_EXIT_SLACK_SECONDS = 15.0
SUPERVISE_SECONDS = 1.0
RESTART_PAUSE_SECONDS = 5.0
MAX_RESTART_PAUSE_SECONDS = 60.0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = subparsers.add_parser("serve", help="run the REST API (and one worker, unless --no-worker)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--no-worker", action="store_true", help="serve the API only; run `dptune worker`s apart")
    serve.set_defaults(handler=serve_command)

    worker = subparsers.add_parser("worker", help="run a worker: claims trials from the database and runs them")
    worker.set_defaults(handler=worker_command)

    migrate = subparsers.add_parser("migrate", help="upgrade the database schema to the newest revision")
    migrate.set_defaults(handler=migrate_command)


def migrate_command(_args: argparse.Namespace) -> int:
    from app.db import Database, upgrade_schema
    from app.logs import configure_logging
    from app.settings import Settings

    configure_logging()
    settings = Settings()
    database = Database(settings)
    try:
        revision = upgrade_schema(database)
    finally:
        database.dispose()
    print(f"database schema at revision {revision}")
    return 0


def worker_command(_args: argparse.Namespace) -> int:
    from app.logs import configure_logging
    from app.settings import Settings
    from workers.__main__ import run_worker_process

    configure_logging()
    return run_worker_process(Settings())


def serve_command(args: argparse.Namespace) -> int:
    """Upgrade the schema, start one worker as a child process, serve the API until SIGINT/SIGTERM.

    The worker is a child process rather than a thread: TensorFlow would otherwise share the API's
    interpreter (and its lock), slowing every request while a trial trains, and a crash in training
    would take the API down with it. The child exits with its parent."""
    import uvicorn

    from app.db import Database, upgrade_schema
    from app.logs import configure_logging
    from app.main import create_app
    from app.settings import Settings

    configure_logging()
    settings = Settings()
    settings.ensure_dirs()
    database = Database(settings)
    try:
        upgrade_schema(database)
    finally:
        database.dispose()
    supervisor = None if args.no_worker else WorkerSupervisor(settings.stop_grace_seconds + CHILD_EXIT_SLACK_SECONDS)
    if supervisor is not None:
        supervisor.start()
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="info")
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


class WorkerSupervisor:
    """Keeps `dptune serve`'s one worker process alive: restarts it (with growing pauses) if it dies, and
    stops it with the server. A restarted worker's unfinished trial is re-run once its lease expires."""

    def __init__(self, stop_timeout: float) -> None:
        self.stop_timeout = stop_timeout
        self.child: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._thread.start()

    def _spawn(self) -> None:
        # Its own session, so a terminal's Ctrl+C reaches only the server, which then stops the worker once.
        with self._lock:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "workers", "--parent-pid", str(os.getpid())], start_new_session=True
            )
        logger.info("started worker process %d", self.child.pid)

    def _watch(self) -> None:
        pause = RESTART_PAUSE_SECONDS
        while not self._stopping.wait(SUPERVISE_SECONDS):
            child = self.child
            if child is None or child.poll() is None:
                continue
            logger.error("worker process %d exited with %s; restarting it in %.0f s", child.pid, child.returncode,
                         pause)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, MAX_RESTART_PAUSE_SECONDS)
            self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            child = self.child
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("worker process %d did not stop in %.0f s; killing it", child.pid, self.stop_timeout)
            child.kill()
            child.wait()
