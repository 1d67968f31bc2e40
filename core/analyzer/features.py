"""Feature spaces: what the analyzer compares. Pixels (RGB or gray) or SD-VAE latents.

A space turns images into feature maps ``(B, C, H, W)`` on a grid ``factor`` times coarser than the
working resolution, and says which channels carry "structure" for the patch descriptors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import BadInputError
from core.images import to_tensor

logger = logging.getLogger(__name__)


def fit_query(image: Image.Image, work_size: int, channels: int, multiple: int = 1) -> torch.Tensor:
    """``image`` resized to the area of a ``work_size`` square, its long side at most twice ``work_size``
    (sides rounded to ``multiple``), ``(C, h, w)``.

    A square picture is ``work_size`` on each side; a wide banner keeps the same number of pixels (and so
    about the same cost) rather than shrinking its short side, whose detail the comparison needs."""
    image = image.convert("L" if channels == 1 else "RGB")
    width, height = image.size
    scale = min(work_size / float(np.sqrt(width * height)), 2.0 * work_size / max(width, height))
    new_w = max(multiple, int(round(width * scale / multiple)) * multiple)
    new_h = max(multiple, int(round(height * scale / multiple)) * multiple)
    if (new_w, new_h) != (width, height):
        resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        image = image.resize((new_w, new_h), resample)
    return to_tensor(image)


class PixelSpace:
    """Compare pixels; structure is the luminance (so colour shifts barely matter)."""

    name = "pixel"
    factor = 1

    def key_extra(self) -> str:
        return ""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images

    @staticmethod
    def structure(features: torch.Tensor) -> torch.Tensor:
        return features.mean(dim=1, keepdim=True)

    def describe(self) -> str:
        return "pixel space"


class LatentSpace:
    """Compare SD-VAE latents (``AutoencoderKL.encode(x).latent_dist.mean``); all channels are structure."""

    name = "latent"

    def __init__(self, vae: Any, batch_size: int = 8) -> None:
        if vae is None or not hasattr(vae, "encode"):
            raise BadInputError(
                "Latent-space analysis needs an image model's VAE (autoencoder); "
                "choose a model, or analyse in pixel space."
            )
        self.vae = vae
        self.batch_size = batch_size
        config = getattr(vae, "config", None)
        blocks = list(getattr(config, "block_out_channels", None) or [0, 0, 0, 0])
        self.factor = 2 ** (len(blocks) - 1)
        self.in_channels = int(getattr(config, "in_channels", 3) or 3)
        self._fingerprint: str | None = None

    def fingerprint(self) -> str:
        """A short id of the VAE: its config and a sample of its weights (random inits differ)."""
        if self._fingerprint is None:
            digest = hashlib.sha256()
            config = getattr(self.vae, "config", {})
            try:
                digest.update(json.dumps(dict(config), sort_keys=True, default=str).encode())
            except (TypeError, ValueError):
                digest.update(repr(config).encode())
            with torch.no_grad():
                for name, param in sorted(self.vae.state_dict().items()):
                    digest.update(name.encode())
                    digest.update(str(tuple(param.shape)).encode())
                    sample = param.detach().reshape(-1)[:256].to(torch.float32).cpu().numpy()
                    digest.update(np.ascontiguousarray(sample).tobytes())
            self._fingerprint = digest.hexdigest()[:12]
        return self._fingerprint

    def key_extra(self) -> str:
        return f"vae-{self.fingerprint()}"

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Latent means of ``(B, C, H, W)`` images in [-1, 1] (gray is repeated to RGB)."""
        if images.shape[1] != self.in_channels:
            images = images[:, :1].repeat(1, self.in_channels, 1, 1)
        parameters = list(self.vae.parameters())
        device = parameters[0].device if parameters else torch.device("cpu")
        dtype = parameters[0].dtype if parameters else torch.float32
        out = []
        with torch.no_grad():
            for start in range(0, images.shape[0], self.batch_size):
                batch = images[start : start + self.batch_size].to(device=device, dtype=dtype)
                encoded = self.vae.encode(batch)
                dist = getattr(encoded, "latent_dist", encoded)
                latents = dist.mean if hasattr(dist, "mean") else dist
                out.append(latents.to("cpu", torch.float32))
        return torch.cat(out)

    @staticmethod
    def structure(features: torch.Tensor) -> torch.Tensor:
        return features

    def describe(self) -> str:
        return f"latent space (VAE {self.fingerprint()})"


def box_sum(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a ``window``×``window`` neighbourhood (odd window; zero outside), via integral images."""
    r = window // 2
    height, width = x.shape[-2:]
    padded = F.pad(x, (r + 1, r, r + 1, r))
    c = padded.cumsum(-2).cumsum(-1)
    k = 2 * r + 1
    return (
        c[..., k : k + height, k : k + width]
        - c[..., :height, k : k + width]
        - c[..., k : k + height, :width]
        + c[..., :height, :width]
    )


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over a ``window``×``window`` neighbourhood (same size; edges average what is inside)."""
    ones = torch.ones((1, 1) + tuple(x.shape[-2:]), dtype=x.dtype)
    return box_sum(x, window) / box_sum(ones, window)


def local_variance(images: torch.Tensor, window: int) -> torch.Tensor:
    """(K, h, w) variance over ``window``×``window`` neighbourhoods of (K, C, h, w) images, averaged over
    channels: how much detail each pixel's surroundings have."""
    mean = box_mean(images, window)
    return (box_mean(images**2, window) - mean**2).clamp_min(0).mean(dim=1)


def corner_ratio(images: torch.Tensor, window: int) -> torch.Tensor:
    """(K, h, w) ratio of the small to the large eigenvalue of the structure tensor of (K, C, h, w) images
    (gradients summed over channels, averaged over ``window``×``window``), in [0, 1].

    Near 0 where the surroundings vary along one direction only (an edge, a soft curve: any other edge
    of that curvature lines up with it); well above 0 where detail runs both ways (texture, corners)."""
    channels = images.shape[1]
    sobel = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]) / 8.0
    kernels = torch.stack([sobel, sobel.T])[:, None].repeat(channels, 1, 1, 1)  # (2C, 1, 3, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    grads = F.conv2d(padded, kernels, groups=channels).unflatten(1, (channels, 2))
    gy, gx = grads[:, :, 0], grads[:, :, 1]
    jyy = box_sum((gy * gy).sum(dim=1, keepdim=True), window)[:, 0]
    jxx = box_sum((gx * gx).sum(dim=1, keepdim=True), window)[:, 0]
    jxy = box_sum((gx * gy).sum(dim=1, keepdim=True), window)[:, 0]
    half_trace = (jxx + jyy) / 2
    spread = torch.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
    return ((half_trace - spread) / (half_trace + spread).clamp_min(1e-12)).clamp(0.0, 1.0)
