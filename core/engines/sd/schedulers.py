"""Sampler names (as AUTOMATIC1111 shows them) mapped to diffusers scheduler classes."""

from __future__ import annotations

import logging
from typing import Any

from core.errors import BadInputError

logger = logging.getLogger(__name__)

#: name -> (diffusers class name, extra config)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": True}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "use_karras_sigmas": False}),
    "DPM++ 2M SDE Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    ),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "Euler": ("EulerDiscreteScheduler", {}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "PNDM": ("PNDMScheduler", {}),
}
#: keep whatever scheduler the model ships with
MODEL_DEFAULT = "Model default"
SCHEDULER_NAMES = (*SCHEDULERS, MODEL_DEFAULT)

_ALIASES = {name.lower().replace(" ", "").replace("+", "p"): name for name in SCHEDULERS}
_ALIASES.update({
    "default": MODEL_DEFAULT, "modeldefault": MODEL_DEFAULT, "eulerancestral": "Euler a",
    "dpmpp2mkarras": "DPM++ 2M Karras", "dpmpp2m": "DPM++ 2M", "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_karras": "DPM++ 2M Karras", "euler_ancestral": "Euler a", "ddim": "DDIM", "unipc": "UniPC",
})


def canonical_name(name: str) -> str:
    """The display name for ``name`` (case/spacing-insensitive; ComfyUI names accepted)."""
    if name in SCHEDULERS or name == MODEL_DEFAULT:
        return name
    key = name.strip().lower().replace(" ", "").replace("+", "p")
    if key in _ALIASES:
        return _ALIASES[key]
    raise BadInputError(f"Unknown sampler {name!r}. Choose one of: {', '.join(SCHEDULER_NAMES)}.")


def make_scheduler(name: str, base: Any) -> Any:
    """A new scheduler ``name`` configured from the model's own scheduler ``base``."""
    import diffusers

    name = canonical_name(name)
    if name == MODEL_DEFAULT:
        return base.__class__.from_config(base.config)
    class_name, extra = SCHEDULERS[name]
    cls = getattr(diffusers, class_name)
    config = dict(base.config)
    if class_name == "DPMSolverMultistepScheduler" and config.get("prediction_type") == "v_prediction":
        extra = dict(extra)  # SD 2.x v-prediction works with DPM++ as configured
    return cls.from_config(config, **extra)
