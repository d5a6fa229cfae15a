"""`python -m workers` (what `dptune worker` runs): one worker process, configured by DPTUNE_* variables."""

from __future__ import annotations

import argparse
import os
import threading

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from app.db import Database, upgrade_schema
from app.logs import configure_logging
from app.settings import Settings

PARENT_CHECK_SECONDS = 1.0


def run_worker_process(settings: Settings, *, parent_pid: int | None = None) -> int:
    """Run one worker until SIGTERM/SIGINT (or until `parent_pid` exits, for `dptune serve`'s worker)."""
    from app.datasets.storage import remove_stale_temp_files
    from workers.executor import EngineExecutor
    from workers.worker import Worker, default_worker_id

    settings.ensure_dirs()
    worker_id = settings.worker_id or default_worker_id()
    # The name PostgreSQL shows for this worker's connections (pg_stat_activity.application_name).
    database = Database(settings, application_name=f"dptune worker {worker_id}")
    upgrade_schema(database)  # a no-op when current; safe when many processes start at once
    remove_stale_temp_files(settings)  # a data set copy an interrupted fetch left
    executor = EngineExecutor(settings, database)
    executor.warm_up()
    worker = Worker(database, settings, executor, worker_id=worker_id)
    worker.install_signal_handlers()
    if parent_pid is not None:
        _watch_parent(worker, parent_pid)
    try:
        worker.run()
    finally:
        database.dispose()
    return 0


def _watch_parent(worker: object, parent_pid: int) -> None:
    from workers.worker import Worker

    assert isinstance(worker, Worker)

    def watch() -> None:
        while not worker.stopping:
            if os.getppid() != parent_pid:
                worker.request_stop()
                return
            threading.Event().wait(PARENT_CHECK_SECONDS)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description="Run one dptune worker.")
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging()
    return run_worker_process(Settings(), parent_pid=args.parent_pid)


if __name__ == "__main__":
    raise SystemExit(main())
