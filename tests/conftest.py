"""Test isolation: every test gets its own data directory; nothing touches the user's real one."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# `datasets` keeps its cache here for the whole session (it reads the variable once, when imported)
os.environ.setdefault("HF_DATASETS_CACHE", tempfile.mkdtemp(prefix="mosaic-test-hf-datasets-"))


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """Native kernels are compiled once per test session into a temporary folder."""
    os.environ["MOSAIC_KERNEL_CACHE"] = str(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    data = tmp_path / "mosaic-data"
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(data))
    monkeypatch.delenv("MOSAIC_DATABASE_URL", raising=False)
    monkeypatch.delenv("MOSAIC_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # pages under test start no worker processes of their own: tests run the jobs they need
    # (browser tests start the studio with its workers, see tests/browser/studio.py)
    monkeypatch.setenv("MOSAIC_WORKERS", "0")
    return data


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a PostgreSQL server for this test session (see ``tests/postgres.py``).

    Skips where PostgreSQL is not installed, except under CI (``CI=true``), where that is a failure:
    ``scripts/test.sh`` installs it.
    """
    from tests import postgres

    if os.environ.get(postgres.URL_ENV):
        yield os.environ[postgres.URL_ENV]
        return
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; scripts/test.sh installs it (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = postgres.ThrowawayPostgres()
    server.start()
    try:
        yield server.server_url
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, monkeypatch, isolated_data_dir):
    """Run a test once on SQLite (in the test's data folder) and once on a real PostgreSQL database.

    Sets ``MOSAIC_DATABASE_URL`` so that ``Store()`` and everything built on it use that database.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{isolated_data_dir / 'mosaic.db'}"
        isolated_data_dir.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("MOSAIC_DATABASE_URL", url)
        yield url
        from core.store.store import dispose_engine

        dispose_engine(url)
        return
    from tests import postgres

    server_url = request.getfixturevalue("postgres_server")
    url = postgres.fresh_database(server_url)
    monkeypatch.setenv("MOSAIC_DATABASE_URL", url)
    try:
        yield url
    finally:
        postgres.drop_database(server_url, url)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray instance for this test session (``ray.init(num_cpus=2)``, on loopback), shared by the
    job and index tests.

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
