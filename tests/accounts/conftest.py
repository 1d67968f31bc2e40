"""Every accounts test runs on SQLite and on a real PostgreSQL server."""

import pytest


@pytest.fixture(autouse=True)
def _both_databases(database_url):
    return database_url
