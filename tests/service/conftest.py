"""Fixtures for the service: a database per backend (SQLite file, PostgreSQL test database), settings with
short leases, an HTTP client, and a tiny data set."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from app.db import Database, upgrade_schema
from app.main import create_app
from app.settings import Settings

PG_HOST = os.environ.get("DPTUNE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("DPTUNE_TEST_PG_PORT", "5432"))
PG_USERS = ("postgres", "root")
PG_ADMIN_DATABASE = "test"
TABLES = ("recommendations", "trials", "jobs", "datasets")
TEST_OWNER = "test-owner"


# Rows of the tiny data set: enough that validation and test each hold the 20 records of the rarer class the
# engine's baseline gate asks for (with the default fractions, 0.15 of the rows each, about half positive).
TINY_ROWS = 400


def tiny_frame(rows: int = TINY_ROWS, seed: int = 0) -> pd.DataFrame:
    """Learnable but noisy: the label depends on age and income, smokers a little more often positive."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 12, rows).round(1)
    income = rng.lognormal(10, 0.5, rows).round(2)
    smoker = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    region = rng.choice(["north", "south", "east"], rows)
    logit = 0.08 * (age - 50) + 0.8 * (np.log(income) - 10) + 0.7 * (smoker == "yes") + rng.normal(0, 0.8, rows)
    outcome = (logit > 0).astype(int)
    return pd.DataFrame({"age": age, "income": income, "smoker": smoker, "region": region, "outcome": outcome})


def tiny_csv_bytes(rows: int = TINY_ROWS, seed: int = 0) -> bytes:
    buffer = io.StringIO()
    tiny_frame(rows, seed).to_csv(buffer, index=False)
    return buffer.getvalue().encode()


# Tiny jobs: hidden [8], 3 epochs (1 epoch of 15 steps left some seeds near chance, which the baseline gate
# rightly refuses), a few trials.
TINY_MODEL = {"hidden": [8], "epochs": 3, "batch_size": 16, "learning_rate": 0.1}


def tiny_job(dataset_id: str, trials: int = 2, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "dataset_id": dataset_id,
        "split": {"kind": "random"},
        "model": dict(TINY_MODEL),
        "search": {"method": "bayes", "trials": trials, "initial_points": 2},
        "seed": 0,
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------------------------------- PostgreSQL


def _pg_admin_connect() -> tuple[object, str]:
    import psycopg

    errors = []
    for user in PG_USERS:
        try:
            connection = psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=PG_ADMIN_DATABASE, autocommit=True, connect_timeout=3
            )
            return connection, user
        except psycopg.Error as exc:
            errors.append(f"{user}: {type(exc).__name__}")
    raise ConnectionError("; ".join(errors))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test session on the local PostgreSQL, dropped at the end."""
    try:
        admin, user = _pg_admin_connect()
    except (ConnectionError, ImportError) as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} ({exc}); PostgreSQL tests skipped")
    name = f"dptune_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    url = f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    migrated = Database(Settings(database_url=url))
    upgrade_schema(migrated)
    migrated.dispose()
    try:
        yield url
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]


def _empty_postgres(url: str) -> None:
    database = Database(Settings(database_url=url))
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)}, api_keys, stored_blobs RESTART IDENTITY CASCADE"))
        connection.execute(text("DELETE FROM owners WHERE id <> 'local'"))  # 'local' comes with migration 0002
    database.dispose()


# ---------------------------------------------------------------------------------------------- settings


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def new_database_settings(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """Settings of a database no migration has touched (a PostgreSQL database of its own), for upgrade tests."""
    if backend == "sqlite":
        yield make_settings(data_dir)
        return
    request.getfixturevalue("postgres_url")  # skips when PostgreSQL is not there
    admin, user = _pg_admin_connect()
    name = "dptune_test_new_database"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
    admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    try:
        yield make_settings(data_dir, f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def make_settings(data_dir: Path, database_url: str = "", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "lease_seconds": 3.0,
        "heartbeat_seconds": 0.5,
        "poll_seconds": 0.1,
        "stop_grace_seconds": 1.0,
        "max_upload_bytes": 1_000_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _empty_postgres(url)
        return make_settings(data_dir, url)
    return make_settings(data_dir)


@pytest.fixture
def sqlite_settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def postgres_settings(postgres_url: str, data_dir: Path) -> Settings:
    _empty_postgres(postgres_url)
    return make_settings(data_dir, postgres_url)


def create_api_key(settings: Settings, owner: str = TEST_OWNER) -> str:
    """A new API key for `owner` (created if new), straight in the database, as `dptune keys create` does."""
    from app.owners.service import create_key

    database = Database(settings)
    try:
        with database.transaction() as session:
            return create_key(session, owner).key
    finally:
        database.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client of the app that sends the API key of the owner TEST_OWNER with every request."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        test_client.headers.update(bearer(create_api_key(settings)))
        yield test_client


@pytest.fixture
def database(client: TestClient, settings: Settings) -> Iterator[Database]:
    """A second handle on the client's database, for looking behind the API (after the schema exists)."""
    handle = Database(settings)
    yield handle
    handle.dispose()


def row_counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()) for table in TABLES
        }


def stored_files(settings: Settings) -> list[str]:
    """Every stored file wherever its bytes are: each file under the data folder except the SQLite database
    and the migration lock, and the key of each file in the database's stored_blobs."""
    ignored = {"dptune.db", "dptune.db-wal", "dptune.db-shm", ".migrate.lock"}
    in_folder = [
        str(p.relative_to(settings.data_dir))
        for p in settings.data_dir.rglob("*")
        if p.is_file() and p.name not in ignored
    ]
    return sorted(in_folder + stored_blob_keys(settings))


def model_files(settings: Settings, job_id: str) -> list[str]:
    """A job's stored final model files, in the data folder or the database."""
    return [name for name in stored_files(settings) if name.startswith(f"models/{job_id}/")]


def stored_blob_keys(settings: Settings) -> list[str]:
    database = Database(settings)
    try:
        with database.engine.connect() as connection:
            if not inspect(connection).has_table("stored_blobs"):
                return []
            return list(connection.execute(text("SELECT DISTINCT key FROM stored_blobs")).scalars())
    finally:
        database.dispose()


def assert_error_shape(response: object, status: int | None = None) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    if status is not None:
        assert response.status_code == status, response.text
    assert 400 <= response.status_code < 600, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert "Traceback" not in response.text
    return error
