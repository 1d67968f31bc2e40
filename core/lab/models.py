"""Model kinds of the Creativity Lab and how to build one from its JSON config."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from core.errors import BadInputError
from core.lab.resnet import ResNetDenoiser
from core.lab.unet import ConvUNet

logger = logging.getLogger(__name__)

#: kind -> (class, one-line description)
MODEL_KINDS: dict[str, tuple[type[nn.Module], str]] = {
    "unet": (ConvUNet, "Small convolution-only UNet (no attention)."),
    "resnet": (ResNetDenoiser, "Small ResNet denoiser: 3×3 convolutions at full resolution, no normalisation."),
}


def build_model(kind: str, size: int, channels: int, num_classes: int, hparams: dict[str, Any]) -> nn.Module:
    """A freshly initialised network of ``kind`` (see :data:`MODEL_KINDS`)."""
    if kind not in MODEL_KINDS:
        raise BadInputError(f"Unknown model kind {kind!r}. Valid kinds: {', '.join(MODEL_KINDS)}.")
    cls = MODEL_KINDS[kind][0]
    try:
        return cls(size=size, channels=channels, num_classes=num_classes, **hparams)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"Invalid settings for a {kind} model: {exc}") from exc


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
