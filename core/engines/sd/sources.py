"""Where a model comes from: a diffusers folder, a single .safetensors file or a Hugging Face id.

:func:`resolve_source` turns what the person chose into a :class:`ModelSource`;
:func:`list_models` lists everything usable on this computer (models folder, Hugging Face
cache) plus the curated well-known models.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import config
from core.engines.sd.catalog import CURATED, curated
from core.engines.sd.safety import PICKLE_SUFFIXES, refuse_pickle
from core.errors import BadInputError

logger = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
#: folders next to ``model.safetensors`` that may hold its diffusers configs
_CONFIG_DIR_PATTERNS = ("{stem}", "{stem}.config", "{stem}-config", "{stem}_config")


def models_dir() -> Path:
    """``<data dir>/models``: drop diffusers folders and .safetensors files here."""
    path = config.data_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class ModelSource:
    """A resolved model location. ``key`` identifies it in the pipeline cache."""

    kind: str  # "folder" | "single_file" | "hub"
    location: str
    config: str | None = None
    name: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.location}:{self.config or ''}"


@dataclass
class ModelEntry:
    """One choice for the model picker."""

    id: str  # what to put in SDRequest.model
    title: str
    kind: str  # "folder" | "single_file" | "hub"
    family: str | None = None
    description: str = ""
    recommended: dict[str, Any] = field(default_factory=dict)
    available: bool = True  # False: needs a download first
    location: str = ""


def resolve_source(model: str, model_config: str | None = None) -> ModelSource:
    """Turn a folder, a file, a models-folder name or a hub id into a :class:`ModelSource`."""
    raw = str(model or "").strip()
    if not raw:
        raise BadInputError("Choose a model first (a downloaded model, a folder or a .safetensors file).")
    path = Path(raw).expanduser()
    if not path.is_absolute() and not path.exists() and (models_dir() / raw).exists():
        path = models_dir() / raw
    if path.suffix.lower() in PICKLE_SUFFIXES:
        refuse_pickle(path)
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            return _folder_source(path)
        if path.suffix.lower() == ".safetensors":
            return ModelSource("single_file", str(path), _config_dir(path, model_config), path.stem)
        raise BadInputError(
            f"{path.name} is not a model the studio can load: choose a diffusers model folder "
            "(with model_index.json) or a .safetensors checkpoint."
        )
    if _HUB_ID.match(raw) and not raw.startswith((".", "~")) and not path.suffix == ".safetensors":
        return ModelSource("hub", raw, None, raw)
    raise BadInputError(
        f"Model {raw!r} was not found: no such folder or file on this computer, and it is not a "
        "Hugging Face model id (like 'stabilityai/sdxl-turbo'). Check the path."
    )


def _folder_source(path: Path) -> ModelSource:
    if (path / "model_index.json").is_file():
        return ModelSource("folder", str(path), None, path.name)
    singles = sorted(path.glob("*.safetensors"))
    hint = (
        f" It contains {singles[0].name}: choose that file instead." if len(singles) == 1 else
        " Choose the folder that contains model_index.json (with unet/, vae/, text_encoder/ inside)."
    )
    raise BadInputError(f"The folder {path.name} is not a Stable Diffusion model in diffusers format "
                        f"(it has no model_index.json).{hint}")


def _config_dir(path: Path, explicit: str | None) -> str | None:
    if explicit:
        folder = Path(explicit).expanduser()
        if not (folder / "model_index.json").is_file():
            raise BadInputError(
                f"The config folder {folder} has no model_index.json: it must be a diffusers-format folder "
                "(the configs of the base model this checkpoint was made from)."
            )
        return str(folder.resolve())
    for pattern in _CONFIG_DIR_PATTERNS:
        folder = path.parent / pattern.format(stem=path.stem)
        if (folder / "model_index.json").is_file():
            return str(folder.resolve())
    if (path.parent / "model_index.json").is_file():
        return str(path.parent.resolve())
    return None


# ---------------------------------------------------------------------------------------------
# listing
# ---------------------------------------------------------------------------------------------


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_pipelines(cache_dir: Path | None = None) -> dict[str, Path]:
    """Every diffusers pipeline in the Hugging Face cache: repo id -> newest snapshot folder."""
    cache = Path(cache_dir) if cache_dir else hf_cache_dir()
    found: dict[str, Path] = {}
    if not cache.is_dir():
        return found
    try:
        from huggingface_hub import scan_cache_dir

        info = scan_cache_dir(cache)
        for repo in info.repos:
            if repo.repo_type != "model":
                continue
            revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
            for revision in revisions:
                if (Path(revision.snapshot_path) / "model_index.json").is_file():
                    found[repo.repo_id] = Path(revision.snapshot_path)
                    break
    except Exception as exc:  # noqa: BLE001 - a damaged cache must not break the model list
        logger.info("scan_cache_dir failed (%s); scanning %s by hand", exc, cache)
    for index in cache.glob("models--*/snapshots/*/model_index.json"):
        repo_id = index.parents[2].name[len("models--"):].replace("--", "/")
        found.setdefault(repo_id, index.parent)
    return found


def _index_class(folder: Path) -> str:
    try:
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else ""


def guess_family(name: str, class_name: str = "") -> str | None:
    low = name.lower()
    if "xl" in class_name.lower() or "xl" in low:
        return "sdxl-turbo" if "turbo" in low else "sdxl"
    if "turbo" in low:
        return "sd-turbo"
    if "2-1" in low or "2.1" in low or "-2-" in low or "v2" in low:
        return "sd2"
    return "sd1" if class_name or low else None


def list_models(cache_dir: Path | None = None) -> list[ModelEntry]:
    """Local models first (models folder, HF cache), then curated models still to download."""
    entries: list[ModelEntry] = []
    folder = models_dir()
    for item in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if item.is_dir() and (item / "model_index.json").is_file():
            entries.append(ModelEntry(item.name, item.name, "folder", guess_family(item.name, _index_class(item)),
                                      "Saved on this computer (in the studio's models folder).", location=str(item)))
        elif item.is_file() and item.suffix.lower() == ".safetensors":
            entries.append(ModelEntry(item.name, item.stem, "single_file", guess_family(item.stem),
                                      "Saved on this computer as one file (in the studio's models folder).",
                                      location=str(item)))
        elif item.is_file() and item.suffix.lower() in PICKLE_SUFFIXES:
            logger.info("skipping %s: pickle checkpoints are not loaded", item)
    cached = cached_pipelines(cache_dir)
    for repo_id, snapshot in sorted(cached.items()):
        known = curated(repo_id)
        entries.append(ModelEntry(
            repo_id, known.title if known else repo_id, "hub",
            known.family if known else guess_family(repo_id, _index_class(snapshot)),
            known.description if known else "Downloaded from the Hugging Face Hub.",
            dict(known.recommended) if known else {}, True, str(snapshot),
        ))
    for model in CURATED:
        if model.repo_id in cached:
            continue
        entries.append(ModelEntry(
            model.repo_id, model.title, "hub", model.family,
            f"{model.description} (download about {model.download_gb:.1f} GB)", dict(model.recommended), False,
        ))
    return entries
