"""A small ResNet-style denoiser like Kamb & Ganguli's: 3×3 convolutions at full resolution, no
normalisation of feature maps, time and class embeddings added in every block."""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from core.lab.parameterization import DEFAULT_PREDICTION, check_prediction
from core.lab.unet import TIME_SCALE, _class_index

logger = logging.getLogger(__name__)


class _Block(nn.Module):
    """``x + conv(act(conv(act(x)) + emb))``: two 3×3 convolutions, no normalisation."""

    def __init__(self, width: int, emb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.emb = nn.Linear(emb_dim, width)
        self.act = nn.SiLU()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act(x)) + self.emb(emb)[:, :, None, None]
        return x + self.conv2(self.act(h))


class ResNetDenoiser(nn.Module):
    """ResNet denoiser (ε-, v- or x0-prediction): no down-sampling, so its receptive field grows by 4 pixels per block.

    Time ``t`` in ``[0, 1]`` is embedded as ``t · 1000`` (sinusoidal + MLP, diffusers components);
    with ``num_classes > 0`` a learned class embedding (with a null class for label ``-1``) is added.
    """

    kind = "resnet"

    def __init__(
        self,
        size: int,
        channels: int = 1,
        num_classes: int = 0,
        width: int = 64,
        blocks: int = 6,
        emb_dim: int = 128,
        prediction: str = DEFAULT_PREDICTION,
    ) -> None:
        super().__init__()
        self.prediction = check_prediction(str(prediction))
        self.size = int(size)
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.hparams: dict[str, Any] = {"width": int(width), "blocks": int(blocks), "emb_dim": int(emb_dim)}
        if self.prediction != DEFAULT_PREDICTION:
            self.hparams["prediction"] = self.prediction
        self.time_proj = Timesteps(width, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = TimestepEmbedding(width, emb_dim)
        self.class_embed = nn.Embedding(self.num_classes + 1, emb_dim) if self.num_classes > 0 else None
        self.conv_in = nn.Conv2d(self.channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(width, emb_dim) for _ in range(int(blocks)))
        self.conv_out = nn.Conv2d(width, self.channels, 3, padding=1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The prediction (``self.prediction``) for ``x`` at times ``t`` (``(B,)`` in ``[0, 1]``)."""
        timesteps = (t.to(x.dtype) * TIME_SCALE).expand(x.shape[0])
        emb = self.time_embed(self.time_proj(timesteps).to(x.dtype))
        if self.class_embed is not None:
            emb = emb + self.class_embed(_class_index(labels, x.shape[0], self.num_classes, x.device))
        emb = self.act(emb)
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.conv_out(self.act(h))
