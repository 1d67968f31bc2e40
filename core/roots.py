"""Which folders of the server the studio's web pages may read.

The pages let a visitor type a folder of pictures (Libraries) or a model location (Stable Diffusion).
Anyone who can open the studio in a browser could otherwise make the server read any of its files, so
what comes from a page is only accepted inside the *allowed folders*:

- the data folder (``MOSAIC_DATA_DIR``), which holds the models folder ``<data dir>/models``;
- the folders the administrator lists in ``MOSAIC_ALLOWED_FOLDERS`` (separated by ``:``, ``;`` on Windows).

Symbolic links and ``..`` are resolved before the check, so neither leads out of an allowed folder.
The command line is run by the computer's own user and keeps reading any path; this limit is for the
pages, which call :func:`check_folder` and :func:`check_model_location`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from core import config
from core.errors import BadInputError

logger = logging.getLogger(__name__)

ALLOWED_FOLDERS_ENV = "MOSAIC_ALLOWED_FOLDERS"
#: a Hugging Face model id such as ``stabilityai/sdxl-turbo`` (same rule as core.engines.sd.sources)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def models_folder() -> Path:
    """``<data dir>/models``, where Stable Diffusion models are dropped (see core.engines.sd.sources.models_dir)."""
    return config.data_dir() / "models"


def allowed_folders() -> list[Path]:
    """The folders the pages may read from, resolved, in order: data folder, models folder, the listed ones."""
    folders = [config.data_dir(), models_folder()]
    for raw in (os.environ.get(ALLOWED_FOLDERS_ENV) or "").split(os.pathsep):
        raw = raw.strip()
        if not raw:
            continue
        folder = Path(raw).expanduser()
        if not folder.is_absolute():
            logger.warning("%s: ignoring %r, which is not a full path", ALLOWED_FOLDERS_ENV, raw)
            continue
        folders.append(folder)
    resolved: list[Path] = []
    for folder in folders:
        path = folder.resolve()
        if path not in resolved:
            resolved.append(path)
    return resolved


def _refusal(what: str, folders: list[Path]) -> BadInputError:
    listed = "; ".join(str(folder) for folder in folders)
    return BadInputError(
        f"For safety the studio only reads {what} from these folders and the folders inside them: {listed}. "
        f"Move it into one of them, or ask your administrator to add its folder with {ALLOWED_FOLDERS_ENV}."
    )


def is_allowed(path: Path, folders: list[Path] | None = None) -> bool:
    """Whether ``path`` (symlinks and ``..`` resolved) lies inside one of the allowed folders."""
    resolved = Path(path).expanduser().resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in folders or allowed_folders())


def check_folder(raw: str | Path, what: str = "folders") -> Path:
    """The resolved path of a folder or file typed in a page, if it is inside an allowed folder.

    A path that is not a full path is taken inside the data folder. Anything outside the allowed
    folders is a ``BadInputError`` naming them (nothing about the path itself is looked up first).
    """
    text = str(raw).strip()
    if not text or "\x00" in text:
        raise BadInputError("Type the full path of a folder, for example " + str(config.data_dir() / "pictures"))
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = config.data_dir() / path
    folders = allowed_folders()
    resolved = path.resolve()
    if not is_allowed(resolved, folders):
        logger.warning("refused a path outside the allowed folders: %s", text)
        raise _refusal(what, folders)
    return resolved


def check_model_location(raw: str) -> str:
    """A model location typed in a page, made safe: a Hugging Face id as it is, a path only inside the allowed
    folders (returned as a full path, so it cannot be read as anything else later).

    A bare name is first looked up in the models folder (as ``core.engines.sd`` does).
    """
    text = str(raw or "").strip()
    if not text:
        return text
    if "\x00" in text:
        raise BadInputError("The model location contains a character that cannot be part of a path.")
    in_models = models_folder() / text
    path = Path(text).expanduser()
    if not path.is_absolute() and not text.startswith(("~", ".")) and in_models.exists():
        path = in_models
    elif (
        _HUB_ID.match(text)
        and not text.startswith(("~", "."))
        and path.suffix.lower() not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
        and ".." not in Path(text).parts
        and not path.exists()
    ):
        return text  # a Hugging Face model id: downloaded by the engine, never a file of this server
    elif not path.is_absolute():
        path = config.data_dir() / path
    return str(check_folder(path, what="models"))
