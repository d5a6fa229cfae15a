"""The service's fixtures (a database per backend, settings, a client with an API key), shared from
tests/service/conftest.py."""

from tests.service.conftest import (  # noqa: F401  (fixtures, found by name)
    backend,
    client,
    data_dir,
    database,
    postgres_settings,
    postgres_url,
    settings,
    sqlite_settings,
)
