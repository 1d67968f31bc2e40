"""A small convolution-only UNet (diffusers ``UNet2DModel`` with no attention blocks)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import UNet2DModel
from torch import nn

from core.lab.parameterization import DEFAULT_PREDICTION, check_prediction

logger = logging.getLogger(__name__)

#: diffusion time t in [0, 1] is given to the network as ``t * TIME_SCALE`` (diffusers embeddings
#: are tuned for timesteps in the hundreds).
TIME_SCALE = 1000.0


class ConvUNet(nn.Module):
    """UNet (ε-, v- or x0-prediction): only ``DownBlock2D`` / ``UpBlock2D`` (3×3 ResNet blocks, no attention).

    The continuous diffusion time ``t`` in ``[0, 1]`` (see :func:`core.score.alpha_bar`) is embedded
    as ``t · 1000``. With ``num_classes > 0`` a class embedding (``num_class_embeds``) is added to the
    time embedding; label ``-1`` (or ``None``) means "no class" and uses an extra learned null class.
    """

    kind = "unet"

    def __init__(
        self,
        size: int,
        channels: int = 1,
        num_classes: int = 0,
        block_channels: tuple[int, ...] = (32, 64, 64),
        layers_per_block: int = 1,
        norm_groups: int = 8,
        prediction: str = DEFAULT_PREDICTION,
    ) -> None:
        super().__init__()
        self.prediction = check_prediction(str(prediction))
        levels = len(block_channels)
        if size % (2 ** (levels - 1)) != 0:
            raise ValueError(f"image size {size} must be divisible by {2 ** (levels - 1)} for {levels} levels")
        self.size = int(size)
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.hparams: dict[str, Any] = {
            "block_channels": [int(c) for c in block_channels],
            "layers_per_block": int(layers_per_block),
            "norm_groups": int(norm_groups),
        }
        if self.prediction != DEFAULT_PREDICTION:
            self.hparams["prediction"] = self.prediction
        self.net = UNet2DModel(
            sample_size=self.size,
            in_channels=self.channels,
            out_channels=self.channels,
            block_out_channels=tuple(int(c) for c in block_channels),
            down_block_types=("DownBlock2D",) * levels,
            up_block_types=("UpBlock2D",) * levels,
            layers_per_block=int(layers_per_block),
            norm_num_groups=int(norm_groups),
            num_class_embeds=(self.num_classes + 1) if self.num_classes > 0 else None,
            add_attention=False,
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction (``self.prediction``) for ``x`` at times ``t`` (``(B,)`` in ``[0, 1]``)."""
        timesteps = (t.to(x.dtype) * TIME_SCALE).expand(x.shape[0])
        class_labels = None
        if self.num_classes > 0:
            class_labels = _class_index(labels, x.shape[0], self.num_classes, x.device)
        return self.net(x, timesteps, class_labels=class_labels).sample


def _class_index(labels: torch.Tensor | None, batch: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """Labels with ``-1`` / ``None`` mapped to the null class ``num_classes``."""
    if labels is None:
        return torch.full((batch,), num_classes, dtype=torch.long, device=device)
    labels = labels.to(device=device, dtype=torch.long)
    return torch.where(labels < 0, torch.full_like(labels, num_classes), labels)
