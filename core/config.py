"""Where the studio keeps its data.

``MOSAIC_DATA_DIR`` sets the data directory (default ``~/.mosaic-studio``) and
``MOSAIC_DATABASE_URL`` the SQLAlchemy database URL (default: SQLite file ``mosaic.db`` in the
data directory). Both are read at call time, so tests can point them at a temporary folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from core.errors import BadInputError, MosaicError

DATA_DIR_ENV = "MOSAIC_DATA_DIR"
DATABASE_URL_ENV = "MOSAIC_DATABASE_URL"


def data_dir() -> Path:
    """The data directory, created if missing.

    Raises :class:`~core.errors.MosaicError` when it cannot be used: the path is a file, cannot be
    created, or cannot be written to.
    """
    raw = os.environ.get(DATA_DIR_ENV) or str(Path.home() / ".mosaic-studio")
    path = Path(raw).expanduser().resolve()
    fix = f"Set {DATA_DIR_ENV} to a folder you can write to (or remove it to use ~/.mosaic-studio)."
    if path.exists() and not path.is_dir():
        raise MosaicError(f"The data folder {path} is a file, not a folder. {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MosaicError(f"The data folder {path} could not be created ({err.strerror or err}). {fix}") from err
    if not os.access(path, os.W_OK | os.X_OK):
        raise MosaicError(f"The data folder {path} cannot be written to. {fix}")
    return path


SESSION_IDLE_ENV = "MOSAIC_SESSION_IDLE_MINUTES"
DEFAULT_SESSION_IDLE_MINUTES = 60


def session_idle_seconds() -> float:
    """How long a signed-in browser may stay unused before it must sign in again (``MOSAIC_SESSION_IDLE_MINUTES``)."""
    raw = os.environ.get(SESSION_IDLE_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSION_IDLE_MINUTES * 60.0
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 1 <= minutes <= 60 * 24 * 30:
        raise MosaicError(
            f"{SESSION_IDLE_ENV} must be a number of minutes from 1 to 43200 (got {raw!r}); "
            f"remove it for the default of {DEFAULT_SESSION_IDLE_MINUTES} minutes."
        )
    return minutes * 60.0


def database_url() -> str:
    """The SQLAlchemy URL of the store."""
    url = os.environ.get(DATABASE_URL_ENV)
    if url:
        return url
    return f"sqlite:///{data_dir() / 'mosaic.db'}"


def _subfolder(name: str) -> Path:
    return _make(data_dir() / name)


def _make(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file of that name in the data folder
        raise MosaicError(
            f"The folder {path} could not be created ({err.strerror or err}): move away whatever is there."
        ) from err
    return path


#: a short name that is safe as a folder name: workspaces, libraries
SLUG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_WORKSPACE = "default"


def check_slug(name: object, what: str, example: str) -> str:
    """``name`` if it can name a ``what`` (a short slug), else :class:`BadInputError` saying the rule."""
    if not isinstance(name, str) or not SLUG_PATTERN.fullmatch(name):
        raise BadInputError(
            f"{name!r} is not a valid {what} name. Use 1 to 64 lowercase letters, digits, '-' or '_', "
            f"starting with a letter or digit (for example '{example}')."
        )
    return name


def check_workspace_name(name: object) -> str:
    return check_slug(name, "workspace", "acme-shoes")


def workspace_dir(workspace: str = DEFAULT_WORKSPACE) -> Path:
    """The folder of a workspace's own files (libraries, templates, indexes), created if missing.

    The default workspace's is the data folder itself, so a data folder from before workspaces
    keeps its layout; the others live in ``workspaces/<name>``.
    """
    check_workspace_name(workspace)
    if workspace == DEFAULT_WORKSPACE:
        return data_dir()
    return _subfolder(f"workspaces/{workspace}")


def libraries_dir(workspace: str = DEFAULT_WORKSPACE) -> Path:
    """A workspace's libraries (the built-in libraries are made in the default one's, shared by all)."""
    folder = workspace_dir(workspace) / "libraries"
    _make(folder)
    return folder


def images_dir() -> Path:
    return _subfolder("images")


def score_indexes_dir() -> Path:
    """Where the local score engine keeps the patch indexes of its fast drafts (rebuildable)."""
    return data_dir() / "score-indexes"
