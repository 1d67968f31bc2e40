"""Hugging Face Hub access: the cache first, downloads with progress, clear offline messages."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from core.errors import BadInputError

logger = logging.getLogger(__name__)

#: files a single-file checkpoint needs from its base model (configs and tokenizers only)
CONFIG_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model"]
_REJECT = re.compile(r"\.(ckpt|bin|pt|pth|onnx|onnx_data|msgpack|h5|pb|pkl)$")

DownloadProgress = Callable[[int, int, str], None]


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not at import)."""
    value = os.environ.get("HF_HUB_OFFLINE", "")
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE) and value == ""
    except ImportError:  # pragma: no cover
        return True


def offline_message(repo_id: str, what: str = "model") -> str:
    from core.engines.sd.sources import models_dir

    reason = (
        "the studio is offline (HF_HUB_OFFLINE is set)" if is_offline() else "the Hugging Face Hub cannot be reached"
    )
    return (
        f"The {what} '{repo_id}' is not on this computer and {reason}. To use it: connect to the internet "
        f"(and unset HF_HUB_OFFLINE) and choose it again to download it; or on a connected computer run "
        f"`huggingface-cli download {repo_id}` and copy the Hugging Face cache here; or save the model "
        f"folder (with model_index.json) into {models_dir()} and pick it from the list."
    )


def cached_snapshot(repo_id: str, filename: str = "model_index.json") -> Path | None:
    """The snapshot folder of ``repo_id`` in the local cache, if ``filename`` is there."""
    from huggingface_hub import try_to_load_from_cache

    from core.engines.sd.sources import hf_cache_dir

    try:
        hit = try_to_load_from_cache(repo_id, filename, cache_dir=str(hf_cache_dir()))
    except Exception:  # noqa: BLE001 - an invalid id is simply "not cached"
        return None
    return Path(hit).parent if isinstance(hit, str) else None


def select_files(files: list[str], variant: str | None = None) -> list[str]:
    """The files of a diffusers repo to download: configs, tokenizers and safetensors weights only.

    Root-level weights (big single-file checkpoints) and pickle/ONNX/Flax files are skipped; with
    ``variant`` (e.g. ``"fp16"``) a component's variant weights are taken when present.
    """
    chosen: list[str] = []
    weights: dict[str, list[str]] = {}
    pickled: dict[str, str] = {}
    for name in files:
        parts = name.split("/")
        if name == "model_index.json":
            chosen.append(name)
        elif len(parts) != 2:
            continue
        elif name.endswith((".json", ".txt", ".model")) and ".safetensors.index" not in name:
            chosen.append(name)
        elif name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            weights.setdefault(parts[0], []).append(name)
        elif _REJECT.search(name) and name.endswith((".bin", ".ckpt", ".pt", ".pth")):
            pickled.setdefault(parts[0], name)
    for names in weights.values():
        tagged = [n for n in names if variant and f".{variant}." in n]
        plain = [n for n in names if not re.search(r"\.(fp16|bf16|fp32|non_ema|ema)\.", n)]
        chosen.extend(tagged or plain or names)
    for component, name in pickled.items():
        if component not in weights and component not in ("safety_checker",):
            raise BadInputError(
                f"The '{component}' part of this model is only published as a pickle file ({name}). "
                "The studio loads only .safetensors weights, because pickle files can run code."
            )
    return sorted(set(chosen))


def _tqdm_class(on_progress: DownloadProgress | None):
    from huggingface_hub.utils import tqdm as hf_tqdm

    class _Progress(hf_tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            result = super().update(n)
            if on_progress is not None and self.total:
                on_progress(int(self.n), int(self.total), str(self.desc or ""))
            return result

    return _Progress


def download(repo_id: str, on_progress: DownloadProgress | None = None, variant: str | None = None,
             config_only: bool = False) -> Path:
    """Download ``repo_id`` (safetensors weights or only configs) and return its snapshot folder."""
    if is_offline():
        raise BadInputError(offline_message(repo_id))
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from core.engines.sd.sources import hf_cache_dir

    try:
        if config_only:
            patterns = CONFIG_PATTERNS
        else:
            patterns = select_files(HfApi().list_repo_files(repo_id), variant)
        logger.info("downloading %d files of %s", len(patterns), repo_id)
        path = snapshot_download(repo_id, allow_patterns=patterns, cache_dir=str(hf_cache_dir()),
                                 tqdm_class=_tqdm_class(on_progress))
    except GatedRepoError as exc:
        raise BadInputError(
            f"'{repo_id}' needs you to accept its licence on huggingface.co and log in "
            "(`huggingface-cli login`) before it can be downloaded."
        ) from exc
    except RepositoryNotFoundError as exc:
        raise BadInputError(f"There is no model '{repo_id}' on the Hugging Face Hub. Check the spelling.") from exc
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection errors come in many classes
        if _is_connection_error(exc):
            raise BadInputError(offline_message(repo_id)) from exc
        raise BadInputError(f"Downloading '{repo_id}' failed: {exc}") from exc
    return Path(path)


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    markers = {"ConnectionError", "ConnectError", "Timeout", "TimeoutException", "OfflineModeIsEnabled",
               "LocalEntryNotFoundError", "ProxyError", "NetworkError"}
    return bool(names & markers) or (exc.__cause__ is not None and _is_connection_error(exc.__cause__))
