"""Fast real generation settings for campaign tests: the local score engine on faces at 16 px, 2 steps."""

from __future__ import annotations

import pytest

FAST = {"library": "faces", "size": 16, "steps": 2}


@pytest.fixture
def fast() -> dict:
    return dict(FAST)


@pytest.fixture(autouse=True)
def _both_databases(database_url):
    """Every campaign test runs on SQLite and on a real PostgreSQL server."""
    return database_url
