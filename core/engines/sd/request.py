"""The Stable Diffusion request: every setting of one generation."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PIL import Image

from core.engines.base import GenerationRequest
from core.errors import BadInputError

logger = logging.getLogger(__name__)

TASKS = ("txt2img", "img2img", "inpaint")
MAX_COUNT = 16
MAX_STEPS = 150


@dataclass
class SDRequest(GenerationRequest):
    """Settings of the Stable Diffusion engine.

    ``steps``, ``guidance``, ``width``, ``height`` and ``scheduler`` left as ``None`` take the
    model family's recommendation for ``preset`` (``fast`` / ``balanced`` / ``quality``).
    ``model`` is a local diffusers folder, a ``.safetensors`` file, a Hugging Face id or the name
    of an entry of :func:`core.engines.sd.list_models`. ``model_config`` optionally names a
    diffusers-format folder holding the configs a single-file checkpoint needs.
    """

    model: str = ""
    task: str = "txt2img"
    prompt: str = ""
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    scheduler: str | None = None
    strength: float = 0.75
    init_image: Image.Image | None = None
    mask_image: Image.Image | None = None
    preset: str = "balanced"
    memory: str = "auto"
    device: str = "auto"
    return_trajectory: bool = False
    model_config: str | None = None

    def validate(self) -> None:
        """Checks that need no model; raises :class:`BadInputError`."""
        from core.engines.sd.families import PRESETS

        if not str(self.model).strip():
            raise BadInputError("Choose a model first (a downloaded model, a folder or a .safetensors file).")
        if self.task not in TASKS:
            raise BadInputError(f"Unknown task {self.task!r}. Choose one of: {', '.join(TASKS)}.")
        if self.preset not in PRESETS:
            raise BadInputError(f"Unknown preset {self.preset!r}. Choose one of: {', '.join(PRESETS)}.")
        if not 1 <= int(self.count) <= MAX_COUNT:
            raise BadInputError(f"Number of images must be between 1 and {MAX_COUNT} (got {self.count}).")
        self.check_seed()
        if self.steps is not None and not 1 <= int(self.steps) <= MAX_STEPS:
            raise BadInputError(f"Steps must be between 1 and {MAX_STEPS} (got {self.steps}).")
        for side, value in (("Width", self.width), ("Height", self.height)):
            if value is not None and int(value) <= 0:
                raise BadInputError(f"{side} must be a positive number of pixels (got {value}).")
        if self.guidance is not None and not 0 <= float(self.guidance) <= 30:
            raise BadInputError(f"Guidance must be between 0 and 30 (got {self.guidance}).")
        if self.task in ("img2img", "inpaint"):
            if self.init_image is None:
                what = "Varying an image" if self.task == "img2img" else "Replacing part of an image"
                raise BadInputError(f"{what} needs a starting image ({self.task}): upload one first.")
            if not 0 < float(self.strength) <= 1:
                raise BadInputError(f"Strength must be above 0 and at most 1 (got {self.strength}).")
        if self.task == "inpaint" and self.mask_image is None:
            raise BadInputError("Inpainting needs a mask: paint the area to replace (white = replace).")
