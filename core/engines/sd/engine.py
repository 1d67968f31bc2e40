"""The Stable Diffusion engine: txt2img, img2img and inpaint with diffusers.

One set of components is loaded per model (and device/dtype) and shared by the three tasks
(``AutoPipeline.from_pipe``). Each image ``i`` of a batch is made on its own with seed
``seed + i`` and its own ``torch.Generator``, so any image can be reproduced alone.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.engines.base import (
    CancelToken,
    Engine,
    GeneratedImage,
    GenerationRequest,
    ImageCallback,
    Progress,
    ProgressCallback,
)
from core.engines.sd.codec import LatentCodec
from core.engines.sd.devices import MemoryPlan, plan_memory, select_device, select_dtype
from core.engines.sd.families import FAMILIES, SD1, Family, validate_size
from core.engines.sd.loader import PIPELINES, LoadedModel, PipelineCache
from core.engines.sd.preview import latent_preview
from core.engines.sd.request import SDRequest
from core.engines.sd.schedulers import canonical_name
from core.engines.sd.sources import ModelEntry, guess_family, list_models, resolve_source
from core.engines.sd.trajectory import capture_x0
from core.errors import BadInputError, GenerationCancelled

logger = logging.getLogger(__name__)


#: resolution of the loading bar (a download or load reports fractions, sent as steps of this many)
LOAD_STEPS = 1000


class _Interrupted(Exception):
    """Raised from the step callback to stop diffusers at once (no final decode)."""


def resolve_settings(request: SDRequest, family: Family) -> dict[str, Any]:
    """The effective steps/guidance/size/sampler: the request's values, else the family's for its preset."""
    width, height = request.width, request.height
    if width is None:
        width = family.default_size[0]
    if height is None:
        height = family.default_size[1]
    validate_size(family, width, height)
    steps = int(request.steps) if request.steps is not None else family.steps_for(request.preset)
    guidance = float(request.guidance) if request.guidance is not None else family.guidance
    sampler = canonical_name(request.scheduler) if request.scheduler else family.scheduler
    if request.task != "txt2img" and int(steps * float(request.strength)) < 1:
        raise BadInputError(
            f"With strength {request.strength} and {steps} steps no denoising step would run. "
            f"Raise the strength or use at least {int(np.ceil(1 / float(request.strength)))} steps."
        )
    return {"width": int(width), "height": int(height), "steps": steps, "guidance": guidance, "sampler": sampler}


def prompt_notices(pipe: Any, prompt: str, negative_prompt: str) -> list[str]:
    """Warnings for prompts longer than the text encoder reads (77 tokens with start/end)."""
    notices: list[str] = []
    tokenizers = [t for t in (getattr(pipe, "tokenizer", None), getattr(pipe, "tokenizer_2", None)) if t is not None]
    if not tokenizers:
        return notices
    tokenizer = tokenizers[0]
    limit = int(getattr(tokenizer, "model_max_length", 77) or 77)
    for label, text in (("prompt", prompt), ("negative prompt", negative_prompt)):
        if not text:
            continue
        ids = tokenizer(text, truncation=False, add_special_tokens=True)["input_ids"]
        if len(ids) > limit:
            dropped = tokenizer.decode(ids[limit - 1 : -1], skip_special_tokens=True).strip()
            shown = dropped if len(dropped) <= 60 else dropped[:60].rstrip() + "…"
            notices.append(
                f"The {label} is {len(ids) - 2} tokens long, but the model reads only the first {limit - 2}; "
                f"everything from “{shown}” on was ignored. Shorten it or put the important words first."
            )
    for notice in notices:
        logger.warning(notice)
    return notices


class StableDiffusionEngine(Engine):
    """Stable Diffusion 1.x / 2.x / XL / Turbo through diffusers."""

    name = "sd"
    label = "Stable Diffusion (diffusers)"

    def __init__(self, cache: PipelineCache | None = None) -> None:
        self.cache = cache if cache is not None else PIPELINES  # an empty cache is falsy (it has a length)

    # -- models ---------------------------------------------------------------------------------

    @staticmethod
    def list_models() -> list[ModelEntry]:
        """Models on this computer plus curated ones to download (see :func:`sources.list_models`)."""
        return list_models()

    def load(self, model: str, device: str = "auto", memory: str = "auto", model_config: str | None = None,
             on_progress: ProgressCallback | None = None, width: int | None = None,
             height: int | None = None) -> LoadedModel:
        """Load (or reuse) ``model``; raises ``BadInputError`` with what to do when it cannot."""
        device = select_device(device)
        dtype = select_dtype(device)
        source = resolve_source(model, model_config)
        guess = FAMILIES.get(guess_family(source.location) or "sd1", SD1)
        plan = plan_memory(memory, device, guess.key, width or guess.default_size[0],
                           height or guess.default_size[1])

        def status(message: str, fraction: float) -> None:
            # loading has its own bar: bytes downloaded, then the model's parts loaded (share of their weights)
            if on_progress is not None:
                step = round(max(0.0, min(1.0, float(fraction))) * LOAD_STEPS)
                on_progress(Progress(step=step, total_steps=LOAD_STEPS, message=message))

        return self.cache.get(source, device, dtype, plan.cpu_offload, on_status=status)

    def vae_for(self, model: str, device: str = "auto", model_config: str | None = None) -> LatentCodec:
        """The model's VAE, to encode a library into the latent space this model generates in."""
        return LatentCodec(self.load(model, device=device, model_config=model_config))

    def family_of(self, model: str, device: str = "auto") -> Family:
        return self.load(model, device=device).family

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        on_image: ImageCallback | None = None,
    ) -> list[GeneratedImage]:
        """Make the images one after another; ``on_image`` gets each as soon as it is made."""
        if not isinstance(request, SDRequest):
            raise BadInputError("The Stable Diffusion engine needs an SDRequest.")
        request.validate()
        if cancel is not None:
            cancel.raise_if_cancelled()
        loaded = self.load(request.model, request.device, request.memory, request.model_config, on_progress,
                           request.width, request.height)
        family = loaded.family
        settings = resolve_settings(request, family)
        plan = plan_memory(request.memory, loaded.device, family.key, settings["width"], settings["height"])
        init, mask = self._images(request, settings)
        self._acquire(loaded, cancel)
        try:
            pipe = loaded.pipeline(request.task)
            pipe.scheduler = loaded.scheduler(settings["sampler"])
            self._apply_memory(loaded, pipe, plan)
            notices = prompt_notices(pipe, request.prompt, request.negative_prompt)
            outputs = []
            for index, seed in enumerate(request.seeds()):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                image = self._one(loaded, pipe, request, settings, plan, init, mask, index, seed, notices,
                                  on_progress, cancel)
                outputs.append(image)
                if on_image is not None:
                    on_image(image)
            return outputs
        finally:
            loaded.lock.release()

    @staticmethod
    def _acquire(loaded: LoadedModel, cancel: CancelToken | None) -> None:
        """Wait for the model (another generation may be using it), staying cancellable."""
        while not loaded.lock.acquire(timeout=0.1):
            if cancel is not None and cancel.cancelled:
                raise GenerationCancelled()

    @staticmethod
    def _images(request: SDRequest, settings: dict[str, Any]) -> tuple[Image.Image | None, Image.Image | None]:
        size = (settings["width"], settings["height"])
        init = mask = None
        if request.task in ("img2img", "inpaint") and request.init_image is not None:
            init = request.init_image.convert("RGB")
            if init.size != size:
                init = init.resize(size, Image.Resampling.LANCZOS)
        if request.task == "inpaint" and request.mask_image is not None:
            mask = request.mask_image.convert("L")
            if mask.size != size:
                mask = mask.resize(size, Image.Resampling.NEAREST)
        return init, mask

    @staticmethod
    def _apply_memory(loaded: LoadedModel, pipe: Any, plan: MemoryPlan) -> None:
        state = getattr(loaded, "_memory_state", (False, False))
        if state == (plan.attention_slicing, plan.vae_tiling):
            return
        if plan.attention_slicing:
            pipe.enable_attention_slicing()
        else:
            pipe.disable_attention_slicing()
        if plan.vae_tiling:
            loaded.vae.enable_tiling()
        else:
            loaded.vae.disable_tiling()
        loaded._memory_state = (plan.attention_slicing, plan.vae_tiling)  # type: ignore[attr-defined]

    def _one(self, loaded: LoadedModel, pipe: Any, request: SDRequest, settings: dict[str, Any], plan: MemoryPlan,
             init: Image.Image | None, mask: Image.Image | None, index: int, seed: int, notices: list[str],
             on_progress: ProgressCallback | None, cancel: CancelToken | None) -> GeneratedImage:
        family = loaded.family
        state: dict[str, Any] = {"latents": None}
        x0s: list[torch.Tensor] = []
        timesteps: list[float] = []

        def on_step_end(p: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            latents = tensors["latents"]
            state["latents"] = latents
            timesteps.append(float(timestep))
            if cancel is not None and cancel.cancelled:
                raise _Interrupted()
            if on_progress is not None:
                shown = x0s[-1] if x0s else latents
                total = int(getattr(p, "num_timesteps", 0) or settings["steps"])
                on_progress(Progress(step=step + 1, total_steps=total, image_index=index, count=request.count,
                                     message=f"Image {index + 1} of {request.count}: step {step + 1} of {total}",
                                     preview=latent_preview(shown, family)))
            return {}

        kwargs: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or None,
            "num_inference_steps": settings["steps"],
            "guidance_scale": settings["guidance"],
            "generator": torch.Generator("cpu").manual_seed(int(seed)),
            "callback_on_step_end": on_step_end,
            "callback_on_step_end_tensor_inputs": ["latents"],
        }
        if request.task == "txt2img":
            kwargs.update(width=settings["width"], height=settings["height"])
        else:
            kwargs.update(image=init, strength=float(request.strength))
        if request.task == "inpaint":
            kwargs.update(mask_image=mask, width=settings["width"], height=settings["height"])
        started = time.perf_counter()
        want_x0 = request.return_trajectory or on_progress is not None
        try:
            if want_x0:
                with capture_x0(pipe.scheduler, x0s):
                    result = pipe(**kwargs)
            else:
                result = pipe(**kwargs)
        except _Interrupted as exc:
            raise GenerationCancelled() from exc
        image = result.images[0]
        nsfw = getattr(result, "nsfw_content_detected", None)
        params = self._params(loaded, request, settings, plan, seed, notices)
        params["seconds"] = round(time.perf_counter() - started, 3)
        if nsfw and nsfw[0]:
            params["nsfw_filtered"] = True
            params["notices"] = [*params["notices"], "The model's safety checker blanked this image."]
        arrays: dict[str, np.ndarray] = {}
        if state["latents"] is not None:
            arrays["latents"] = state["latents"][0].detach().to("cpu", torch.float32).numpy()
        if request.return_trajectory and x0s:
            arrays["x0_trajectory"] = torch.cat(x0s).to(torch.float16).numpy()
            arrays["timesteps"] = np.asarray(timesteps, dtype=np.float32)
        return GeneratedImage(image=image, seed=seed, engine=self.name, params=params, arrays=arrays)

    def _params(self, loaded: LoadedModel, request: SDRequest, settings: dict[str, Any], plan: MemoryPlan,
                seed: int, notices: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "engine": self.name,
            "task": request.task,
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": int(seed),
            "steps": settings["steps"],
            "guidance": settings["guidance"],
            "sampler": settings["sampler"],
            "width": settings["width"],
            "height": settings["height"],
            "model": loaded.source.name or loaded.source.location,
            "model_source": loaded.source.location,
            "family": loaded.family.key,
            "speed_preset": request.preset,
            "device": loaded.device,
            "dtype": str(loaded.dtype).replace("torch.", ""),
            "memory": plan.describe() if not loaded.offload else "CPU offload, " + plan.describe(),
            "notices": list(notices),
        }
        if request.task != "txt2img":
            params["strength"] = float(request.strength)
        return params
