"""`dptune serve`, `dptune worker` and `dptune migrate`: the service's commands, registered by app.cli."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily below: the engine-only commands need no database
    from app.db import Database
    from app.settings import Settings

logger = logging.getLogger("dptune.serve")

# After its grace period a stopping worker releases its unit; give it that long, plus time to write.
CHILD_EXIT_SLACK_SECONDS = 15.0
SUPERVISE_SECONDS = 1.0
RESTART_PAUSE_SECONDS = 5.0
MAX_RESTART_PAUSE_SECONDS = 60.0
MAX_NICENESS = 19  # the lowest priority on Linux and macOS


def register(subparsers: argparse._SubParsersAction[Any]) -> None:  # Any: app.cli's parser class
    serve = subparsers.add_parser("serve", help="run the REST API (and one worker, unless --no-worker)")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; other than localhost, keys come only from `dptune keys create`",
    )
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--no-worker", action="store_true", help="serve the API only; run `dptune worker`s apart")
    serve.set_defaults(handler=serve_command)

    worker = subparsers.add_parser("worker", help="run a worker: claims trials from the database and runs them")
    worker.set_defaults(handler=worker_command)

    migrate = subparsers.add_parser("migrate", help="upgrade the database schema to the newest revision")
    migrate.set_defaults(handler=migrate_command)

    keys = subparsers.add_parser(
        "keys", help="API keys of the server's database: create (printed once), list, revoke"
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key for an owner (made if new); the key is the last line")
    create.add_argument("--owner", required=True, help="owner name: data sets and jobs belong to an owner")
    create.set_defaults(handler=keys_create_command)
    listing = keys_sub.add_parser("list", help="list keys: id, owner, created, revoked (never the keys)")
    listing.set_defaults(handler=keys_list_command)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id (from `dptune keys list`)")
    revoke.add_argument("key_id", help="the key's id, as `dptune keys list` shows it")
    revoke.set_defaults(handler=keys_revoke_command)
    for command in (create, listing, revoke):
        command.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="the server's data folder, which holds its database dptune.db (default: "
            "DPTUNE_DATA_DIR, else ./dptune-data); DPTUNE_DATABASE_URL names a database instead",
        )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class NoDatabase(Exception):
    """The keys commands found no dptune database where they looked; the message says where and what to do."""


def _server_database(data_dir: Path | None) -> Database:
    """The database of the server the keys are for, brought to the newest schema, after saying on stderr which
    one it is. Never a new one: a key made in a database the server does not read would be refused by it."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import Database, upgrade_schema
    from app.settings import Settings

    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    how_to_point = (
        "point at the server's data folder with --data-dir DIR or DPTUNE_DATA_DIR (or at its database "
        "with DPTUNE_DATABASE_URL); `dptune serve` or `dptune migrate` creates a new one"
    )
    if settings.database_url:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
    else:
        sqlite_file = (settings.data_dir / "dptune.db").resolve()
        where = f"{sqlite_file} (data folder {settings.data_dir.resolve()})"
        if not sqlite_file.is_file():
            raise NoDatabase(f"no dptune database at {sqlite_file}: {how_to_point}")
    database = Database(settings)
    try:
        if not inspect(database.engine).has_table("alembic_version"):
            raise NoDatabase(f"the database {where} has no dptune schema: {how_to_point}")
        print(f"dptune: using the database {where}", file=sys.stderr)
        upgrade_schema(database)
    except SQLAlchemyError as exc:
        database.dispose()
        raise NoDatabase(f"the database {where} cannot be used ({type(exc).__name__}): {how_to_point}") from None
    except NoDatabase:
        database.dispose()
        raise
    return database


def _keys_command(command: Callable[[argparse.Namespace, Database], int]) -> Callable[[argparse.Namespace], int]:
    """A keys command: quiet logging, and a clear one-line error (exit 2) when there is no database to use."""

    def run(args: argparse.Namespace) -> int:
        from app.logs import configure_logging

        configure_logging("WARNING")
        try:
            database = _server_database(args.data_dir)
        except NoDatabase as exc:
            print(f"dptune: error: {exc}", file=sys.stderr)
            return 2
        try:
            return int(command(args, database))
        finally:
            database.dispose()

    return run


@_keys_command
def keys_create_command(args: argparse.Namespace, database: Database) -> int:
    from app.owners.service import create_key

    try:
        with database.transaction() as session:
            created = create_key(session, args.owner)
    except ValueError as exc:
        print(f"dptune: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"created key {created.key_id} for owner '{created.owner_name}'. It is shown only now; send it as "
        "'Authorization: Bearer <key>':"
    )
    print(created.key, flush=True)
    return 0


@_keys_command
def keys_list_command(_args: argparse.Namespace, database: Database) -> int:
    from app.owners import repository

    with database.reading() as session:
        rows = repository.list_keys(session)
    print(f"{'KEY ID':<14} {'OWNER':<24} {'CREATED (UTC)':<20} STATUS")
    for key, owner in rows:
        status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(f"{key.id:<14} {owner.name:<24} {key.created_at:%Y-%m-%d %H:%M:%S}  {status}")
    return 0


@_keys_command
def keys_revoke_command(args: argparse.Namespace, database: Database) -> int:
    from app.owners import repository
    from app.owners.service import revoke

    with database.transaction() as session:
        if repository.get_key(session, args.key_id) is None:
            print(f"dptune: error: no key with id '{args.key_id}'", file=sys.stderr)
            return 1
        revoked = revoke(session, args.key_id)
    print(f"revoked key {args.key_id}" if revoked else f"key {args.key_id} was already revoked")
    return 0


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
    database = Database(settings, application_name="dptune api")
    try:
        upgrade_schema(database)
        _announce_local_key(database, settings, args.host, args.port)
    finally:
        database.dispose()
    supervisor = (
        None
        if args.no_worker
        else WorkerSupervisor(settings.stop_grace_seconds + CHILD_EXIT_SLACK_SECONDS, settings.worker_niceness)
    )
    if supervisor is not None:
        supervisor.start()
    try:
        # log_config=None: uvicorn logs through dptune's JSON lines; access_log off: app.api.middleware logs
        # each request once, with its request id.
        uvicorn.run(
            create_app(settings), host=args.host, port=args.port, log_level="info", log_config=None, access_log=False
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _announce_local_key(database: Database, settings: Settings, host: str, port: int) -> None:
    """The embedded default on localhost: a key for the owner 'local', made on the first start and kept in the
    data folder (mode 0600). Served on other addresses, keys come only from `dptune keys create`."""
    from app.owners.service import ensure_local_key_file

    if host not in LOOPBACK_HOSTS:
        logger.info("serving on %s: create API keys with `dptune keys create --owner NAME`", host)
        return
    from app.owners.service import authenticate, read_key_file

    path, created = ensure_local_key_file(database, settings.local_key_path)
    where = path.resolve()
    verb = "created the local API key in" if created else "the local API key is in"
    message = (
        f"dptune: {verb} {where} (mode 0600); send it as 'Authorization: Bearer <key>', e.g. "
        f'curl -H "Authorization: Bearer $(cat {where})" http://{host}:{port}/v1/datasets; the dashboard '
        f"is at http://{host}:{port}/ (sign in with the key), the API docs at http://{host}:{port}/docs"
    )
    print(message, flush=True)
    logger.info("%s %s", verb, where)
    with database.reading() as session:
        valid = authenticate(session, read_key_file(path)) is not None
    if not valid:
        warning = (
            f"dptune: the key in {where} is not valid for this database (revoked, or made for another "
            "one); delete the file and start again to get a new local key"
        )
        print(warning, flush=True)
        logger.warning("the local API key in %s is not valid for this database", where)


class WorkerSupervisor:
    """Keeps `dptune serve`'s one worker process alive: restarts it (with growing pauses) if it dies, and
    stops it with the server. A restarted worker's unfinished trial is re-run once its lease expires."""

    def __init__(self, stop_timeout: float, niceness: int = 0) -> None:
        self.stop_timeout = stop_timeout
        self.niceness = niceness
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
                [sys.executable, "-m", "workers", "--parent-pid", str(os.getpid())],
                start_new_session=True,
            )
            # Set from here rather than in a preexec_fn, which is unsafe in a process with threads.
            if self.niceness:
                _lower_priority(self.child.pid, self.niceness)
        logger.info("started worker process %d", self.child.pid)

    def _watch(self) -> None:
        pause = RESTART_PAUSE_SECONDS
        while not self._stopping.wait(SUPERVISE_SECONDS):
            child = self.child
            if child is None or child.poll() is None:
                continue
            logger.error(
                "worker process %d exited with %s; restarting it in %.0f s", child.pid, child.returncode, pause
            )
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


def _lower_priority(pid: int, niceness: int) -> None:
    """Raise a process's nice value by `niceness` above this one's, so that it takes only the CPU this process
    leaves (training yields to API requests). Best effort: a failure is logged, the worker runs anyway."""
    try:
        target = min(os.getpriority(os.PRIO_PROCESS, 0) + niceness, MAX_NICENESS)
        os.setpriority(os.PRIO_PROCESS, pid, target)
    except OSError as exc:
        logger.warning("could not lower the priority of worker process %d: %s", pid, exc)
