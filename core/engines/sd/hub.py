"""Hugging Face Hub access: the cache first, downloads with progress, clear offline messages."""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from core.errors import BadInputError

logger = logging.getLogger(__name__)

#: files a single-file checkpoint needs from its base model (configs and tokenizers only)
CONFIG_PATTERNS = ["model_index.json", "*/*.json", "*/*.txt", "*/*.model"]
_REJECT = re.compile(r"\.(ckpt|bin|pt|pth|onnx|onnx_data|msgpack|h5|pb|pkl)$")

#: ``(bytes done, bytes in all)`` of a download
DownloadProgress = Callable[[int, int], None]


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
    """The technical detail of a missing model (for whoever sets up the studio): what to run or copy where."""
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


def offline_error(repo_id: str, before: str = "") -> BadInputError:
    """A missing model in the user's words; what to run or copy goes into the error's ``detail``."""
    from core.engines.sd.catalog import curated

    known = curated(repo_id)
    name = known.title if known else repo_id
    why = "the studio works offline" if is_offline() else "the internet can't be reached from here"
    message = (
        f"{before}{' ' if before else ''}{name} isn't on this computer yet, and {why}. "
        "Ask whoever sets up the studio to download it, or pick one of the models already here."
    )
    return BadInputError(message, detail=offline_message(repo_id))


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


class DownloadMeter:
    """Bytes written by a ``snapshot_download`` (all files together), reported as ``on_progress(done, total)``.

    ``expected`` is the size of the files still to fetch (from the repository's file list); the total
    is never below what huggingface_hub has announced so far. Files already in the cache count as done.
    """

    def __init__(self, on_progress: DownloadProgress | None, expected: int = 0) -> None:
        self.on_progress = on_progress
        self.expected = int(expected)
        self.done = 0
        self.announced = 0
        self._lock = threading.Lock()

    def add(self, n: float | None, announced: float | None) -> None:
        with self._lock:
            self.done += int(n or 0)
            self.announced = max(self.announced, int(announced or 0))
            done, total = self.done, max(self.expected, self.announced, self.done)
        if self.on_progress is not None:
            self.on_progress(done, total)

    def tqdm_class(self):
        """A tqdm class for ``snapshot_download``: its byte bars (one per download, all files summed) feed the meter.

        huggingface_hub makes one bar of bytes written (``unit="B"``, named ``huggingface_hub.snapshot_download``),
        one of bytes transferred and one of files; only the first is counted, so no byte counts twice. The
        counting does not rely on the bar being shown (bars may be switched off in a server).
        """
        from huggingface_hub.utils import tqdm as hf_tqdm

        meter = self

        class _Progress(hf_tqdm):
            def __init__(self, *args, **kwargs) -> None:
                self._counts = kwargs.get("unit") == "B" and kwargs.get("name") == "huggingface_hub.snapshot_download"
                super().__init__(*args, **kwargs)

            def update(self, n: float | None = 1) -> bool | None:
                if self._counts:
                    meter.add(n, getattr(self, "total", 0))
                return super().update(n)

        return _Progress


def _files_to_fetch(repo_id: str, variant: str | None, config_only: bool) -> tuple[list[str], int]:
    """The files of ``repo_id`` to download, and the bytes of those not in the cache yet."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    from core.engines.sd.sources import hf_cache_dir

    sizes = {
        entry.path: int(getattr(entry, "size", 0) or 0)
        for entry in HfApi().list_repo_tree(repo_id, recursive=True)
        if getattr(entry, "size", None) is not None
    }
    if config_only:
        patterns = CONFIG_PATTERNS
        wanted = [name for name in sizes if any(fnmatch.fnmatch(name, p) for p in CONFIG_PATTERNS)]
    else:
        patterns = wanted = select_files(list(sizes), variant)
    missing = 0
    for name in wanted:
        try:
            cached = try_to_load_from_cache(repo_id, name, cache_dir=str(hf_cache_dir()))
        except Exception:  # noqa: BLE001 - "not cached" in any form
            cached = None
        if not isinstance(cached, str):
            missing += sizes.get(name, 0)
    return patterns, missing


def download(repo_id: str, on_progress: DownloadProgress | None = None, variant: str | None = None,
             config_only: bool = False) -> Path:
    """Download ``repo_id`` (safetensors weights or only configs) and return its snapshot folder.

    ``on_progress(done_bytes, total_bytes)`` follows the bytes written, all files together.
    """
    if is_offline():
        raise offline_error(repo_id)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    from core.engines.sd.sources import hf_cache_dir

    try:
        patterns, missing = _files_to_fetch(repo_id, variant, config_only)
        logger.info("downloading %d files of %s (%d bytes)", len(patterns), repo_id, missing)
        meter = DownloadMeter(on_progress, missing)
        path = snapshot_download(repo_id, allow_patterns=patterns, cache_dir=str(hf_cache_dir()),
                                 tqdm_class=meter.tqdm_class())
    except GatedRepoError as exc:
        raise BadInputError(
            f"'{repo_id}' can only be downloaded after its licence is accepted on the Hugging Face website. "
            "Ask whoever sets up the studio to accept it and sign in, or pick another model.",
            detail=f"Accept the licence of {repo_id} on huggingface.co, then run `huggingface-cli login` "
            f"(or set HF_TOKEN) on the studio's computer. ({exc})",
        ) from exc
    except RepositoryNotFoundError as exc:
        raise BadInputError(
            f"There is no model '{repo_id}' on the Hugging Face Hub. Check the spelling.", detail=str(exc)
        ) from exc
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection errors come in many classes
        if _is_connection_error(exc):
            raise offline_error(repo_id) from exc
        raise BadInputError(
            f"Downloading '{repo_id}' did not work. Try again later, or pick one of the models already here.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc
    if on_progress is not None and meter.done == 0:  # everything was in the cache already
        on_progress(1, 1)
    return Path(path)


def _is_connection_error(exc: BaseException) -> bool:
    names = {cls.__name__ for cls in type(exc).__mro__}
    markers = {"ConnectionError", "ConnectError", "Timeout", "TimeoutException", "OfflineModeIsEnabled",
               "LocalEntryNotFoundError", "ProxyError", "NetworkError"}
    return bool(names & markers) or (exc.__cause__ is not None and _is_connection_error(exc.__cause__))
