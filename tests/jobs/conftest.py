"""Job tests run on SQLite and on a real PostgreSQL server (``database_url``)."""

import pytest


@pytest.fixture(autouse=True)
def _both_databases(database_url):
    return database_url
