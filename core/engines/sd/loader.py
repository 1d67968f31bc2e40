"""Loading pipelines safely, and keeping them loaded once per process."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.engines.sd import hub
from core.engines.sd.catalog import curated
from core.engines.sd.families import Family, detect_family
from core.engines.sd.safety import check_folder_weights, read_model_index, safetensors_header
from core.engines.sd.schedulers import make_scheduler
from core.engines.sd.sources import ModelSource
from core.errors import BadInputError

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str, float], None]
#: how many pipelines stay loaded per process (least recently used ones are dropped)
MAX_LOADED_ENV = "MOSAIC_SD_MAX_PIPELINES"


@dataclass
class LoadedModel:
    """One loaded set of components, shared by the txt2img, img2img and inpaint pipelines.

    Diffusers pipelines keep per-call state (scheduler timesteps, guidance, interrupt flag), so
    every use goes through :attr:`lock`.
    """

    source: ModelSource
    family: Family
    device: str
    dtype: torch.dtype
    offload: bool
    pipe: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    _tasks: dict[str, Any] = field(default_factory=dict)
    _schedulers: dict[str, Any] = field(default_factory=dict)

    def pipeline(self, task: str) -> Any:
        """The pipeline for ``task``; img2img/inpaint share the txt2img components (``from_pipe``). Hold the lock."""
        if task == "txt2img":
            return self.pipe
        if task not in self._tasks:
            from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

            auto = AutoPipelineForImage2Image if task == "img2img" else AutoPipelineForInpainting
            pipe = auto.from_pipe(self.pipe)
            pipe.set_progress_bar_config(disable=True)
            self._tasks[task] = pipe
        return self._tasks[task]

    def scheduler(self, name: str) -> Any:
        """A scheduler ``name`` configured for this model (cached). Hold the lock."""
        if name not in self._schedulers:
            self._schedulers[name] = make_scheduler(name, self._base_scheduler)
        return self._schedulers[name]

    def __post_init__(self) -> None:
        self._base_scheduler = self.pipe.scheduler

    @property
    def vae(self) -> Any:
        return self.pipe.vae

    @property
    def class_name(self) -> str:
        return type(self.pipe).__name__


def _status(callback: StatusCallback | None, message: str, fraction: float = 0.0) -> None:
    logger.debug("%s (%.0f%%)", message, 100 * fraction)
    if callback is not None:
        callback(message, fraction)


def _wrap_load_error(name: str, exc: Exception) -> BadInputError:
    text = str(exc)
    detail = f"{type(exc).__name__}: {text[:2000]}"
    if "safetensors" in text.lower() or "deserializ" in text.lower() or "header" in text.lower():
        return BadInputError(f"{name}: the weights are damaged or incomplete. Download the model again.",
                             detail=detail)
    return BadInputError(
        f"{name} could not be opened as a Stable Diffusion model. Pick another model, or ask whoever sets up "
        "the studio to check this one.",
        detail=detail,
    )


#: the parts of a pipeline, in the words the progress message uses (load order: small parts first)
PART_WORDS = {
    "scheduler": "noise schedule",
    "tokenizer": "word list",
    "tokenizer_2": "second word list",
    "feature_extractor": "safety checker's image reader",
    "text_encoder": "text reader",
    "text_encoder_2": "second text reader",
    "image_encoder": "image reader",
    "safety_checker": "safety checker",
    "vae": "image decoder",
    "unet": "image generator",
}
PartProgress = Callable[[str, int, int, float], None]


def _part_class(library: str, class_name: str) -> Any:
    """The class of one pipeline part named in model_index.json (libraries already checked by the safety checks)."""
    import importlib

    module = library if library in ("diffusers", "transformers") else f"diffusers.pipelines.{library}"
    return getattr(importlib.import_module(module), class_name)


def _part_bytes(folder: Path, name: str) -> int:
    return sum(f.stat().st_size for f in (folder / name).glob("*.safetensors")) if (folder / name).is_dir() else 0


def load_parts(folder: Path, index: dict[str, Any], dtype: torch.dtype, variant: str | None,
               on_part: PartProgress | None = None) -> dict[str, Any]:
    """Every part of a diffusers folder, one after another; ``on_part(name, number, count, fraction)`` is
    called as each part starts (``fraction``: share of the weights' bytes loaded before it) and once at the end.

    Models get ``dtype``, safetensors only, local files only; ``variant`` where that part has such weights.
    """
    parts = [(name, spec) for name, spec in index.items()
             if not name.startswith("_") and isinstance(spec, list) and len(spec) == 2 and spec[0] and spec[1]]
    order = list(PART_WORDS)
    parts.sort(key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]))
    sizes = {name: _part_bytes(folder, name) for name, _ in parts}
    total = max(1, sum(sizes.values()))
    loaded: dict[str, Any] = {}
    done = 0
    for number, (name, (library, class_name)) in enumerate(parts, start=1):
        if on_part is not None:
            on_part(name, number, len(parts), done / total)
        cls = _part_class(library, class_name)
        kwargs: dict[str, Any] = {"subfolder": name, "local_files_only": True}
        if isinstance(cls, type) and issubclass(cls, torch.nn.Module):
            kwargs.update(dtype=dtype, use_safetensors=True)
            if variant and any((folder / name).glob(f"*.{variant}.safetensors")):
                kwargs["variant"] = variant
        loaded[name] = cls.from_pretrained(str(folder), **kwargs)
        done += sizes[name]
    if on_part is not None:
        on_part("", len(parts), len(parts), 1.0)
    return loaded


def load_folder(folder: Path, dtype: torch.dtype, on_status: StatusCallback | None = None) -> Any:
    """A text-to-image pipeline from a diffusers folder (safetensors only, no remote code).

    The parts are loaded one by one (:func:`load_parts`), each announced to ``on_status`` with the share of
    the weights loaded so far, then put together.
    """
    from diffusers import AutoPipelineForText2Image

    index = read_model_index(folder)
    check_folder_weights(folder, index)
    variant = None
    if dtype == torch.float16 and any(folder.glob("unet/*.fp16.safetensors")):
        variant = "fp16"

    def on_part(name: str, number: int, count: int, fraction: float) -> None:
        if name:
            what = PART_WORDS.get(name, name.replace("_", " "))
            _status(on_status, f"Loading the model: part {number} of {count} ({what})…", fraction)
        else:
            _status(on_status, f"Loading the model: all {count} parts loaded.", 1.0)

    try:
        parts = load_parts(folder, index, dtype, variant, on_part)
        pipe = AutoPipelineForText2Image.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, local_files_only=True, variant=variant, **parts,
        )
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - diffusers raises many kinds; the message says what to do
        raise _wrap_load_error(folder.name, exc) from exc
    return pipe


def _meta_checkpoint(header: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Keys and shapes of a checkpoint without reading its tensors (for model-type detection)."""
    return {name: torch.empty(info["shape"], device="meta") for name, info in header.items() if name != "__metadata__"}


def single_file_config(path: Path, header: dict[str, Any], on_status: StatusCallback | None) -> str:
    """A diffusers config folder for a single-file checkpoint: the HF cache, or a small config download."""
    from diffusers.loaders.single_file_utils import fetch_diffusers_config

    try:
        repo_id = fetch_diffusers_config(_meta_checkpoint(header))["pretrained_model_name_or_path"]
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{path.name} does not look like a Stable Diffusion model. Pick another model.",
                            detail=f"{type(exc).__name__}: {exc}") from exc
    snapshot = hub.cached_snapshot(repo_id)
    if snapshot is not None and any(snapshot.glob("unet/config.json")):
        return str(snapshot)
    if hub.is_offline():
        raise BadInputError(
            f"{path.name} needs a few small configuration files that aren't on this computer, and the studio "
            "works offline. Ask whoever sets up the studio to add them, or pick another model.",
            detail=f"{path.name} looks like a {repo_id} checkpoint. To load a single .safetensors file, diffusers "
            f"needs that model's config files (a few kB). Either put a diffusers-format config folder next to the "
            f"file, named '{path.stem}' (with model_index.json, unet/config.json, ...), or connect once (unset "
            f"HF_HUB_OFFLINE) so the configs of {repo_id} can be downloaded "
            f"(`huggingface-cli download {repo_id} --include '*.json' '*.txt'`).",
        )
    _status(on_status, "Downloading the model's settings (a few kB)…")
    return str(hub.download(repo_id, config_only=True))


def load_single_file(source: ModelSource, dtype: torch.dtype, on_status: StatusCallback | None) -> Any:
    """A text-to-image pipeline from one ``.safetensors`` checkpoint."""
    import diffusers

    path = Path(source.location)
    header = safetensors_header(path)
    config_dir = source.config or single_file_config(path, header, on_status)
    index = read_model_index(Path(config_dir))
    cls = getattr(diffusers, str(index["_class_name"]).replace("Img2Img", "").replace("Inpaint", ""))
    _status(on_status, f"Loading the model from one file ({_amount(path.stat().st_size)})…", 0.0)
    try:
        pipe = cls.from_single_file(str(path), config=config_dir, dtype=dtype, local_files_only=True)
    except Exception as exc:  # noqa: BLE001
        raise _wrap_load_error(path.name, exc) from exc
    _repair_text_projection(pipe, path)
    _check_no_meta(pipe, path.name)
    return pipe


def _repair_text_projection(pipe: Any, path: Path) -> None:
    """diffusers 0.42 + transformers 5 leave SDXL's second text projection unloaded from single files."""
    encoder = getattr(pipe, "text_encoder_2", None)
    proj = getattr(encoder, "text_projection", None)
    if proj is None or not proj.weight.is_meta:
        return
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        key = next((k for k in handle.keys() if k.endswith("embedders.1.model.text_projection")), None)
        if key is None:
            return
        weight = handle.get_tensor(key).T.contiguous().to(encoder.dtype)
    proj.weight = torch.nn.Parameter(weight, requires_grad=False)


def _check_no_meta(pipe: Any, name: str) -> None:
    for component_name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module) and any(p.is_meta for p in module.parameters()):
            raise BadInputError(f"{name}: the checkpoint is missing weights of its {component_name}.")


def load_hub(source: ModelSource, dtype: torch.dtype, on_status: StatusCallback | None) -> Any:
    """A pipeline from the HF cache, downloading it first when online."""
    repo_id = source.location
    snapshot = hub.cached_snapshot(repo_id)
    if snapshot is not None:
        try:
            return load_folder(snapshot, dtype, on_status)
        except BadInputError as exc:
            if hub.is_offline():
                error = hub.offline_error(repo_id, before=f"{exc}")
                error.detail = "\n\n".join(d for d in (exc.detail, error.detail) if d)
                raise error from exc
            logger.info("cached %s incomplete (%s); downloading", repo_id, exc)
    elif hub.is_offline():
        raise hub.offline_error(repo_id)

    def progress(done: int, total: int) -> None:
        _status(on_status, f"Downloading the model: {_amount(done)} of {_amount(total)}…", done / max(1, total))

    _status(on_status, "Downloading the model…")
    variant = "fp16" if dtype == torch.float16 else None
    return load_folder(hub.download(repo_id, progress, variant=variant), dtype, on_status)


def _amount(size: int) -> str:
    """Bytes as a person reads them: 820 MB, 2.3 GB."""
    if size >= 10**9:
        return f"{size / 1e9:.1f} GB"
    if size >= 10**6:
        return f"{size / 1e6:.0f} MB"
    return f"{max(1, round(size / 1e3))} kB"


def _text_encoder_config(pipe: Any) -> dict[str, Any]:
    encoder = getattr(pipe, "text_encoder", None)
    return encoder.config.to_dict() if encoder is not None else {}


def family_of(pipe: Any, source: ModelSource) -> Family:
    known = curated(source.location) if source.kind == "hub" else None
    name = source.location + (" " + known.family if known else "")
    return detect_family(type(pipe).__name__, _text_encoder_config(pipe), name)


class PipelineCache:
    """Pipelines loaded once per process, keyed by source + device + dtype + offload."""

    def __init__(self, max_loaded: int | None = None) -> None:
        self.max_loaded = max_loaded or int(os.environ.get(MAX_LOADED_ENV, "2"))
        self._items: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple, threading.Lock] = {}

    def get(self, source: ModelSource, device: str, dtype: torch.dtype, offload: bool = False,
            on_status: StatusCallback | None = None) -> LoadedModel:
        key = (source.key, device, str(dtype), offload)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one thread loads, the others wait for it
            with self._lock:
                if key in self._items:
                    return self._items[key]
            loaded = self._load(source, device, dtype, offload, on_status)
            with self._lock:
                self._items[key] = loaded
                while len(self._items) > self.max_loaded:
                    old_key, _ = self._items.popitem(last=False)
                    logger.info("unloading %s", old_key[0])
                self._loading.pop(key, None)
            return loaded

    def _load(self, source: ModelSource, device: str, dtype: torch.dtype, offload: bool,
              on_status: StatusCallback | None) -> LoadedModel:
        _status(on_status, "Loading the model…")
        if source.kind == "folder":
            pipe = load_folder(Path(source.location), dtype, on_status)
        elif source.kind == "single_file":
            pipe = load_single_file(source, dtype, on_status)
        else:
            pipe = load_hub(source, dtype, on_status)
        if offload:
            pipe.enable_model_cpu_offload()
        else:
            if device != "cpu":
                _status(on_status, "Moving the model onto the graphics card…", 1.0)
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        family = family_of(pipe, source)
        logger.info("loaded %s as %s on %s (%s)", source.location, family.key, device, dtype)
        return LoadedModel(source=source, family=family, device=device, dtype=dtype, offload=offload, pipe=pipe)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: the process-wide cache
PIPELINES = PipelineCache()


def describe(loaded: LoadedModel) -> dict[str, Any]:
    """A JSON-able summary of a loaded model (for logs and the UI)."""
    return json.loads(json.dumps({
        "source": loaded.source.location, "kind": loaded.source.kind, "family": loaded.family.key,
        "pipeline": loaded.class_name, "device": loaded.device, "dtype": str(loaded.dtype),
    }))
