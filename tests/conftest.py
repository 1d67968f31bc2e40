"""Test isolation: every test gets its own data directory; nothing touches the user's real one."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """Native kernels are compiled once per test session into a temporary folder."""
    os.environ["MOSAIC_KERNEL_CACHE"] = str(tmp_path_factory.mktemp("kernels"))


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch):
    data = tmp_path / "mosaic-data"
    monkeypatch.setenv("MOSAIC_DATA_DIR", str(data))
    monkeypatch.delenv("MOSAIC_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return data
