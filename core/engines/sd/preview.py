"""Cheap live previews: latents projected to RGB with a fixed linear map (no VAE decode)."""

from __future__ import annotations

import logging

import numpy as np
import torch
from PIL import Image

from core.engines.sd.families import Family

logger = logging.getLogger(__name__)

MAX_PREVIEW_SIDE = 256


def latent_preview(latents: torch.Tensor, family: Family) -> Image.Image:
    """An RGB approximation of the first latent in ``latents`` ``(B, 4, h, w)``."""
    latent = latents[0].detach().to("cpu", torch.float32)
    if latent.shape[0] != len(family.latent_rgb):
        latent = latent[: len(family.latent_rgb)]
    factors = torch.tensor(family.latent_rgb, dtype=torch.float32)[: latent.shape[0]]
    bias = torch.tensor(family.latent_bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent, factors) + bias
    array = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    image = Image.fromarray(np.ascontiguousarray(array), "RGB")
    scale = max(1, MAX_PREVIEW_SIDE // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image
