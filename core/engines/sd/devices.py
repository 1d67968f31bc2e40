"""Device, dtype and memory-saving options, chosen from what the machine has free."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from core.errors import BadInputError
from core.resources import available_memory_bytes

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cuda", "mps", "cpu")
MEMORY_MODES = ("auto", "fast", "balanced", "low")


def select_device(preference: str = "auto") -> str:
    """``"cuda"``, ``"mps"`` or ``"cpu"``: the best available for ``"auto"``, else the one asked for."""
    pref = (preference or "auto").lower()
    if pref not in DEVICES and not pref.startswith("cuda:"):
        raise BadInputError(f"Unknown device {preference!r}. Choose one of: {', '.join(DEVICES)}.")
    mps = getattr(torch.backends, "mps", None)
    mps_ok = bool(mps is not None and mps.is_available())
    if pref == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if mps_ok else "cpu"
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError("No CUDA GPU is available on this computer. Choose device 'auto' or 'cpu'.")
    if pref == "mps" and not mps_ok:
        raise BadInputError("Apple MPS is not available on this computer. Choose device 'auto' or 'cpu'.")
    return pref


def select_dtype(device: str) -> torch.dtype:
    """Half precision on GPUs, full precision on the CPU."""
    return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32


@dataclass(frozen=True)
class MemoryPlan:
    """Memory-saving switches for one run."""

    mode: str
    attention_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = False

    def describe(self) -> str:
        parts = [n for n, on in (("attention slicing", self.attention_slicing), ("VAE tiling", self.vae_tiling),
                                 ("CPU offload", self.cpu_offload)) if on]
        return ", ".join(parts) or "none"


#: rough working memory (bytes, weights included) at 512x512 in fp16; grows with the square root of the pixels
_BASE_NEED = {"sdxl": int(4.5 * 2**30), "sd": int(2.5 * 2**30)}


def plan_memory(mode: str, device: str, family_key: str, width: int, height: int,
                free_bytes: int | None = None) -> MemoryPlan:
    """Memory switches for ``mode`` (``auto`` decides from the free memory of ``device``)."""
    mode = (mode or "auto").lower()
    if mode not in MEMORY_MODES:
        raise BadInputError(f"Unknown memory mode {mode!r}. Choose one of: {', '.join(MEMORY_MODES)}.")
    if mode == "fast":
        return MemoryPlan(mode)
    if mode == "balanced":
        return MemoryPlan(mode, attention_slicing=True, vae_tiling=True)
    if mode == "low":
        return MemoryPlan(mode, attention_slicing=True, vae_tiling=True, cpu_offload=device.startswith("cuda"))
    if not device.startswith(("cuda", "mps")):
        return MemoryPlan("auto")  # CPU RAM: the switches only slow things down
    free = available_memory_bytes(device) if free_bytes is None else free_bytes
    base = _BASE_NEED["sdxl" if family_key.startswith("sdxl") else "sd"]
    need = base * max(1.0, (width * height) / (512 * 512)) ** 0.5
    if free >= 1.5 * need:
        return MemoryPlan("auto")
    if free >= need:
        return MemoryPlan("auto", attention_slicing=True, vae_tiling=True)
    return MemoryPlan("auto", attention_slicing=True, vae_tiling=True, cpu_offload=device.startswith("cuda"))
