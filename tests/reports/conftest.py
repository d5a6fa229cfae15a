"""The service's fixtures the report's API tests use (a database per backend, a client with an API key)."""

from tests.service.conftest import backend, client, data_dir, database, postgres_url, settings  # noqa: F401
