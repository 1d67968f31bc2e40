"""Job tests run on SQLite and on a real PostgreSQL server (``database_url``)."""

import pytest


@pytest.fixture(autouse=True)
def _both_databases(database_url):
    return database_url


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance for this test session (``ray.init(num_cpus=2)``, on loopback).

    Returns the value for ``MOSAIC_RAY_ADDRESS``: ``auto`` (the studio's code finds this process's
    instance already running and uses it).
    """
    import ray

    from core.jobs.ray_backend import connect

    connect(address="local", num_cpus=2)
    try:
        yield "auto"
    finally:
        ray.shutdown()
