"""The pipeline's VAE as an encoder/decoder, so a library can be put into the same latent space."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from core.engines.sd.loader import LoadedModel

logger = logging.getLogger(__name__)


@dataclass
class LatentCodec:
    """Encode images to (scaled) latents and back with a loaded model's VAE; thread-safe."""

    loaded: LoadedModel

    @property
    def vae(self):
        return self.loaded.vae

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.get("scaling_factor", 0.18215) or 0.18215)

    @property
    def shift_factor(self) -> float:
        return float(self.vae.config.get("shift_factor", 0.0) or 0.0)

    @property
    def downscale(self) -> int:
        return int(getattr(self.loaded.pipe, "vae_scale_factor", 8))

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.get("latent_channels", 4))

    def _run(self, fn):
        vae = self.vae
        upcast = vae.dtype == torch.float16 and bool(vae.config.get("force_upcast", False))
        with self.loaded.lock, torch.no_grad():
            if upcast:
                vae.to(torch.float32)
            try:
                return fn(vae)
            finally:
                if upcast:
                    vae.to(torch.float16)

    def encode(
        self, images: Sequence[Image.Image], width: int | None = None, height: int | None = None
    ) -> torch.Tensor:
        """Latents ``(N, C, H/f, W/f)`` in the space the UNet sees (mean of the VAE posterior, scaled)."""
        processor = self.loaded.pipe.image_processor
        rgb = [img.convert("RGB") for img in images]
        pixels = processor.preprocess(rgb, height=height, width=width)

        def encode(vae):
            x = pixels.to(vae.device, vae.dtype)
            latents = vae.encode(x).latent_dist.mean
            return ((latents - self.shift_factor) * self.scaling_factor).to("cpu", torch.float32)

        return self._run(encode)

    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        """Images from latents in the UNet's space."""
        processor = self.loaded.pipe.image_processor

        def decode(vae):
            x = latents.to(vae.device, vae.dtype) / self.scaling_factor + self.shift_factor
            return vae.decode(x).sample.to("cpu", torch.float32)

        return processor.postprocess(self._run(decode), output_type="pil")
