"""The migrations build exactly the schema the models declare (what autogenerate would find is nothing)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import app.blobs
import app.datasets.models
import app.jobs.models
import app.owners.models  # noqa: F401  (the models register their tables on Base.metadata)
from app.db import Base, Database, upgrade_schema
from app.settings import Settings

HEAD = "0007"


# Columns that 0002 (owner_id) and 0004 (tune_dataset_id, finish_attempts) add in place on SQLite, where
# ALTER TABLE can add a column but not a foreign key and cannot drop a server default afterwards (see their
# docstrings); PostgreSQL gets the foreign keys and drops the defaults.
SQLITE_NO_FOREIGN_KEY = {("datasets", "owner_id"), ("jobs", "owner_id"), ("jobs", "tune_dataset_id")}
SQLITE_KEPT_SERVER_DEFAULT = {("datasets", "owner_id"), ("jobs", "owner_id"), ("jobs", "finish_attempts")}


def _is_known_sqlite_difference(diff: object) -> bool:
    if isinstance(diff, tuple) and diff[0] == "add_fk":
        constraint = diff[1]
        return {(constraint.parent.name, column.name) for column in constraint.columns} <= SQLITE_NO_FOREIGN_KEY
    if isinstance(diff, list) and len(diff) == 1 and diff[0][0] == "modify_default":
        _kind, _schema, table, column, *_rest = diff[0]
        return (table, column) in SQLITE_KEPT_SERVER_DEFAULT
    return False


def _schema_differences(database: Database) -> list[object]:
    """What autogenerate would write to bring the database to the models (types and server defaults too)."""
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return [
            d
            for d in compare_metadata(context, Base.metadata)
            if not (database.is_sqlite and _is_known_sqlite_difference(d))
        ]


def _tables(database: Database) -> set[str]:
    from sqlalchemy import inspect

    with database.engine.connect() as connection:
        return set(inspect(connection).get_table_names())


def test_migrations_match_the_models(settings: Settings) -> None:
    database = Database(settings)
    try:
        assert upgrade_schema(database) == HEAD
        assert _schema_differences(database) == []
    finally:
        database.dispose()


def test_downgrade_to_base_and_upgrade_to_head_again(new_database_settings: Settings) -> None:
    """Every migration's downgrade runs, in order, down to an empty database, and the upgrade after it builds
    the models' schema again."""
    from alembic import command

    from app.db import alembic_config

    database = Database(new_database_settings)
    try:
        assert upgrade_schema(database) == HEAD
        config = alembic_config(database.url)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert _tables(database) <= {"alembic_version"}
        with database.engine.connect() as connection:
            assert MigrationContext.configure(connection).get_current_revision() is None
        assert upgrade_schema(database) == HEAD
        assert _tables(database) >= set(Base.metadata.tables)
        assert _schema_differences(database) == []
    finally:
        database.dispose()


def test_rows_from_before_measurement_v2_are_brought_to_it(new_database_settings: Settings) -> None:
    """Old split specs read as five-way ones; old results, which v2 cannot read, are removed: a finished job
    fails with measured_before_v2, a running one is queued again. The API reads every job afterwards."""
    import json

    from sqlalchemy import text

    from app.jobs import service
    from app.jobs.models import JobRecord
    from tests.service.helpers import upgrade_to

    database = Database(new_database_settings)
    try:
        upgrade_to(database, "0002")
        old_baseline = json.dumps({"utility_test": 0.9, "attack_accuracy": 0.6, "attack": {}})
        old_split = json.dumps({"kind": "kmeans", "columns": ["a"], "test_fraction": 0.2})
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO datasets (id, owner_id, name, source, file_format, storage_key, size_bytes, sha256, "
                    "label, rows, columns, class_counts, default_split, created_at) VALUES ('d', 'local', 'd', 'upload', "
                    "'csv', 'datasets/d.csv', 1, 'x', 'y', 1, '[\"a\", \"y\"]', '{}', :split, '2026-01-01 00:00:00')"
                ),
                {"split": json.dumps({"kind": "random", "members": 0.5, "test": 0.25, "nonmembers": 0.25})},
            )
            for job_id, status in (("done", "succeeded"), ("busy", "running")):
                connection.execute(
                    text(
                        "INSERT INTO jobs (id, dataset_id, owner_id, status, split, model, search, tradeoff, seed, budget, "
                        "parallelism, trials_version, baseline_attempts, baseline, delta, created_at) VALUES (:id, 'd', "
                        "'local', :status, :split, '{}', '{\"trials\": 2}', 0.5, 0, 2, 1, 0, 1, :baseline, 0.001, "
                        "'2026-01-01 00:00:00')"
                    ),
                    {"id": job_id, "status": status, "split": old_split, "baseline": old_baseline},
                )
                connection.execute(
                    text(
                        "INSERT INTO trials (job_id, trial_index, status, clip, noise, measurement, attempts, started_at) "
                        "VALUES (:id, 0, 'succeeded', 1.0, 1.0, '{}', 1, '2026-01-01 00:00:00')"
                    ),
                    {"id": job_id},
                )
        assert upgrade_schema(database) == HEAD
        with database.session(write=False) as session:
            done, busy = session.get(JobRecord, "done"), session.get(JobRecord, "busy")
            assert done is not None and busy is not None
            assert done.split == {"kind": "kmeans", "columns": ["a"]}
            assert (done.status, done.error_code, done.baseline) == ("failed", "measured_before_v2", None)
            assert "Submit the same job again" in (done.error or "")
            assert (busy.status, busy.baseline, busy.baseline_attempts) == ("queued", None, 0)
            assert session.execute(text("SELECT COUNT(*) FROM trials")).scalar_one() == 0
            default = session.execute(text("SELECT default_split FROM datasets")).scalar_one()
            assert (json.loads(default) if isinstance(default, str) else default) == {"kind": "random"}
            for job in (done, busy):  # what GET /v1/jobs/{id} builds
                view = service.job_view(session, job)
                assert view.split.kind == "kmeans" and view.baseline is None
    finally:
        database.dispose()


def test_jobs_from_before_recommendation_v2_read_as_no_guarantee_jobs(new_database_settings: Settings) -> None:
    """0004: old jobs searched noise from 0, so their guarantee is the no-guarantee spec; a running one is in
    its search; an old-shape recommendation is removed and the API re-chooses from the trials, unconfirmed.
    The downgrade drops the new columns and the upgrade runs again."""
    import json

    from alembic import command
    from sqlalchemy import text

    from app.db import alembic_config
    from app.jobs import service
    from app.jobs.models import JobRecord
    from app.tuning.recommendation import NOT_CONFIRMED_NOTE
    from tests.service.helpers import make_baseline, make_measurement, upgrade_to

    database = Database(new_database_settings)
    try:
        upgrade_to(database, "0003")
        baseline = make_baseline().model_dump_json()
        preparation = json.dumps(
            {
                "rows_used": 400,
                "split_sizes": {"members": 100, "holdout": 100, "validation": 50, "test": 50, "external": None},
            }
        )
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO datasets (id, owner_id, name, source, file_format, storage_key, size_bytes, sha256, "
                    "label, rows, columns, class_counts, created_at) VALUES ('d', 'local', 'd', 'upload', 'csv', "
                    "'datasets/d.csv', 1, 'x', 'y', 1, '[\"a\", \"y\"]', '{}', '2026-01-01 00:00:00')"
                )
            )
            for job_id, status in (("done", "succeeded"), ("busy", "running")):
                connection.execute(
                    text(
                        "INSERT INTO jobs (id, dataset_id, owner_id, status, split, model, search, tradeoff, seed, "
                        "budget, parallelism, trials_version, baseline_attempts, baseline, delta, preparation, "
                        "created_at, started_at, baseline_finished_at, finished_at) VALUES (:id, 'd', 'local', :status, "
                        '\'{"kind": "random"}\', \'{"epochs": 1, "batch_size": 16}\', '
                        '\'{"method": "random", "trials": 2}\', 0.5, 0, 2, 1, 2, 1, :baseline, 0.01, '
                        ":preparation, '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:01', :finished)"
                    ),
                    {
                        "id": job_id,
                        "status": status,
                        "baseline": baseline,
                        "preparation": preparation,
                        "finished": "2026-01-01 00:01:00" if status == "succeeded" else None,
                    },
                )
                for index, noise in enumerate((0.0, 1.0)):
                    connection.execute(
                        text(
                            "INSERT INTO trials (job_id, trial_index, status, clip, noise, measurement, objective, "
                            "attempts, started_at, finished_at) VALUES (:id, :index, 'succeeded', 1.0, :noise, "
                            ":measurement, 0.0, 1, '2026-01-01 00:00:02', '2026-01-01 00:00:03')"
                        ),
                        {
                            "id": job_id,
                            "index": index,
                            "noise": noise,
                            "measurement": make_measurement(1.0, noise).model_dump_json(),
                        },
                    )
            connection.execute(
                text(
                    "INSERT INTO recommendations (job_id, tradeoff, trial_index, recommendation, pareto_front, "
                    "created_at) VALUES ('done', 0.5, 0, '{\"index\": 0, \"notes\": []}', '[0]', "
                    "'2026-01-01 00:01:00')"
                )
            )
        assert upgrade_schema(database) == HEAD
        with database.session(write=False) as session:
            done, busy = session.get(JobRecord, "done"), session.get(JobRecord, "busy")
            assert done is not None and busy is not None
            for job in (done, busy):
                assert job.guarantee is not None and job.guarantee["max_epsilon"] is None
                assert service.job_view(session, job).guarantee.mode == "no_guarantee"
            assert (done.stage, busy.stage, busy.finish_attempts) == (None, "search", 0)
            assert session.execute(text("SELECT COUNT(*) FROM recommendations")).scalar_one() == 0
            recommendation = service.recommendation_view(session, done, None)
            assert recommendation.confirmation is None and recommendation.mode == "no_guarantee"
            assert NOT_CONFIRMED_NOTE.format(tradeoff=0.5) in recommendation.notes
            result = service.tuning_result(session, done)
            assert result.recommendation is not None and result.final_model is None
        config = alembic_config(database.url)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0003")
        with database.engine.connect() as connection:
            columns = {
                row[1] if database.is_sqlite else row[0]
                for row in connection.execute(
                    text(
                        "PRAGMA table_info(jobs)"
                        if database.is_sqlite
                        else "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs'"
                    )
                )
            }
            assert "guarantee" not in columns and "tune_dataset_id" not in columns and "stage" not in columns
            assert connection.execute(text("SELECT COUNT(*) FROM trials")).scalar_one() == 4  # nothing cascaded
        assert upgrade_schema(database) == HEAD
    finally:
        database.dispose()


def test_job_names_and_tags_upgrade_and_downgrade(new_database_settings: Settings) -> None:
    """0005: a job from before has no name and no tags, and the API reads it; tags added afterwards are found
    by the filter. The downgrade drops the column and the table and keeps the jobs; the upgrade runs again."""
    from alembic import command
    from sqlalchemy import inspect, text

    from app.api.pagination import PageParams
    from app.db import alembic_config
    from app.jobs import repository, service
    from app.jobs.models import JobRecord
    from tests.service.helpers import upgrade_to

    database = Database(new_database_settings)
    try:
        upgrade_to(database, "0004")
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO datasets (id, owner_id, name, source, file_format, storage_key, size_bytes, sha256, "
                    "label, rows, columns, class_counts, created_at) VALUES ('d', 'local', 'd', 'upload', 'csv', "
                    "'datasets/d.csv', 1, 'x', 'y', 1, '[\"a\", \"y\"]', '{}', '2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO jobs (id, dataset_id, owner_id, status, split, model, search, tradeoff, seed, budget, "
                    "parallelism, trials_version, baseline_attempts, finish_attempts, stage, created_at) VALUES ('old', "
                    "'d', 'local', 'queued', '{\"kind\": \"random\"}', '{}', '{\"trials\": 2}', 0.5, 0, 2, 1, 0, 0, 0, "
                    "'baseline', '2026-01-01 00:00:00')"
                )
            )
        assert upgrade_schema(database) == HEAD
        with database.transaction() as session:
            job = session.get(JobRecord, "old")
            assert job is not None
            view = service.job_view(session, job)
            assert (view.name, view.tags) == (None, [])
            repository.add_tags(session, "old", ["kept", "legacy"])
        with database.reading() as session:
            page = service.list_jobs(session, "local", None, None, PageParams(offset=0, limit=10), tags=["legacy"])
            assert [item.tags for item in page.items] == [["kept", "legacy"]]
        config = alembic_config(database.url)
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0004")
        with database.engine.connect() as connection:
            inspector = inspect(connection)
            assert "job_tags" not in inspector.get_table_names()
            assert "name" not in {column["name"] for column in inspector.get_columns("jobs")}
            assert connection.execute(text("SELECT COUNT(*) FROM jobs")).scalar_one() == 1
        assert upgrade_schema(database) == HEAD
    finally:
        database.dispose()
