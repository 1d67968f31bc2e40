"""The result of one machine evaluation, and the cancellation check shared by the machines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from core.errors import GenerationCancelled

CancelCheck = Callable[[], bool]


@dataclass
class DenoiseResult:
    """Output of one machine evaluation.

    Attributes:
        x0: ``(B, C, H, W)`` float32 estimate of the clean image.
        sources: ``(B, H, W, 3)`` int64: for every pixel the (library image index, y, x) of the
            centre of its highest-weight library patch. Indices refer to the full library passed in.
        entropy: ``(B, H, W)`` float32 entropy of the patch weights, in nats.
    """

    x0: torch.Tensor
    sources: torch.Tensor
    entropy: torch.Tensor


def raise_if_cancelled(should_cancel: CancelCheck | None) -> None:
    if should_cancel is not None and should_cancel():
        raise GenerationCancelled()
