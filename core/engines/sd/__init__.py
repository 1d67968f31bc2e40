"""Stable Diffusion (1.x, 2.x, XL, Turbo) through diffusers.

Entry points for the page and the CLI:

* :class:`StableDiffusionEngine` with :meth:`~StableDiffusionEngine.generate` (an :class:`SDRequest`),
  :meth:`~StableDiffusionEngine.load`, :meth:`~StableDiffusionEngine.vae_for`;
* :func:`list_models` for the model picker, :data:`CURATED` for well-known downloads;
* :func:`read_settings` to read settings back from a PNG (this studio, AUTOMATIC1111, ComfyUI).
"""

from __future__ import annotations

from core.engines.sd.catalog import CURATED, CuratedModel
from core.engines.sd.codec import LatentCodec
from core.engines.sd.devices import MEMORY_MODES, MemoryPlan, plan_memory, select_device
from core.engines.sd.engine import StableDiffusionEngine, prompt_notices, resolve_settings
from core.engines.sd.families import FAMILIES, PRESETS, Family, detect_family, validate_size
from core.engines.sd.loader import PIPELINES, LoadedModel, PipelineCache
from core.engines.sd.request import TASKS, SDRequest
from core.engines.sd.schedulers import SCHEDULER_NAMES
from core.engines.sd.settings import read_settings
from core.engines.sd.sources import ModelEntry, ModelSource, list_models, models_dir, resolve_source

__all__ = [
    "CURATED", "FAMILIES", "MEMORY_MODES", "PIPELINES", "PRESETS", "SCHEDULER_NAMES", "TASKS",
    "CuratedModel", "Family", "LatentCodec", "LoadedModel", "MemoryPlan", "ModelEntry", "ModelSource",
    "PipelineCache", "SDRequest", "StableDiffusionEngine", "detect_family", "list_models", "models_dir",
    "plan_memory", "prompt_notices", "read_settings", "resolve_settings", "resolve_source", "select_device",
    "validate_size",
]
