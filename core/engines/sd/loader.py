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
    logger.info(message)
    if callback is not None:
        callback(message, fraction)


def _wrap_load_error(name: str, exc: Exception) -> BadInputError:
    text = str(exc)
    if "safetensors" in text.lower() or "deserializ" in text.lower() or "header" in text.lower():
        return BadInputError(f"{name}: the weights are damaged or incomplete. Download the model again.")
    return BadInputError(f"{name} could not be loaded as a Stable Diffusion model: {text.splitlines()[0][:300]}")


def load_folder(folder: Path, dtype: torch.dtype) -> Any:
    """A text-to-image pipeline from a diffusers folder (safetensors only, no remote code)."""
    from diffusers import AutoPipelineForText2Image

    index = read_model_index(folder)
    check_folder_weights(folder, index)
    variant = None
    if dtype == torch.float16 and any(folder.glob("unet/*.fp16.safetensors")):
        variant = "fp16"
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(
            str(folder), dtype=dtype, use_safetensors=True, local_files_only=True, variant=variant,
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
        raise BadInputError(f"{path.name} does not look like a Stable Diffusion checkpoint ({exc}).") from exc
    snapshot = hub.cached_snapshot(repo_id)
    if snapshot is not None and any(snapshot.glob("unet/config.json")):
        return str(snapshot)
    if hub.is_offline():
        raise BadInputError(
            f"{path.name} looks like a {repo_id} checkpoint. To load a single .safetensors file, diffusers needs "
            f"that model's small config files, which are not on this computer and the studio is offline. "
            f"Either put a diffusers-format config folder next to the file, named '{path.stem}' (with "
            f"model_index.json, unet/config.json, ...), or connect once so the configs (a few kB) of {repo_id} "
            "can be downloaded."
        )
    _status(on_status, f"Downloading the configuration of {repo_id}…")
    return str(hub.download(repo_id, config_only=True))


def load_single_file(source: ModelSource, dtype: torch.dtype, on_status: StatusCallback | None) -> Any:
    """A text-to-image pipeline from one ``.safetensors`` checkpoint."""
    import diffusers

    path = Path(source.location)
    header = safetensors_header(path)
    config_dir = source.config or single_file_config(path, header, on_status)
    index = read_model_index(Path(config_dir))
    cls = getattr(diffusers, str(index["_class_name"]).replace("Img2Img", "").replace("Inpaint", ""))
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
            return load_folder(snapshot, dtype)
        except BadInputError as exc:
            if hub.is_offline():
                raise BadInputError(f"{exc} {hub.offline_message(repo_id)}") from exc
            logger.info("cached %s incomplete (%s); downloading", repo_id, exc)
    elif hub.is_offline():
        raise BadInputError(hub.offline_message(repo_id))

    def progress(done: int, total: int, what: str) -> None:
        _status(on_status, f"Downloading {repo_id}: {done}/{total} files", done / max(1, total))

    _status(on_status, f"Downloading {repo_id}…")
    variant = "fp16" if dtype == torch.float16 else None
    return load_folder(hub.download(repo_id, progress, variant=variant), dtype)


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
        _status(on_status, f"Loading {source.name or source.location}…")
        if source.kind == "folder":
            pipe = load_folder(Path(source.location), dtype)
        elif source.kind == "single_file":
            pipe = load_single_file(source, dtype, on_status)
        else:
            pipe = load_hub(source, dtype, on_status)
        if offload:
            pipe.enable_model_cpu_offload()
        else:
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
