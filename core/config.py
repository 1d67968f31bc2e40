"""Where the studio keeps its data.

``MOSAIC_DATA_DIR`` sets the data directory (default ``~/.mosaic-studio``) and
``MOSAIC_DATABASE_URL`` the SQLAlchemy database URL (default: SQLite file ``mosaic.db`` in the
data directory). Both are read at call time, so tests can point them at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MOSAIC_DATA_DIR"
DATABASE_URL_ENV = "MOSAIC_DATABASE_URL"


def data_dir() -> Path:
    """The data directory, created if missing."""
    raw = os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".mosaic-studio")
    path = Path(raw).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    """The SQLAlchemy URL of the store."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{data_dir() / 'mosaic.db'}"


def libraries_dir() -> Path:
    path = data_dir() / "libraries"
    path.mkdir(parents=True, exist_ok=True)
    return path


def images_dir() -> Path:
    path = data_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def score_indexes_dir() -> Path:
    """Where the local score engine keeps the patch indexes of its fast drafts (rebuildable)."""
    return data_dir() / "score-indexes"
