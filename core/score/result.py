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


def scatter_parts(x: torch.Tensor, samples: list[torch.Tensor], parts: list[DenoiseResult]) -> DenoiseResult:
    """One result for the batch ``x`` from the results of jobs that each handled the rows ``samples[i]``."""
    batch, _, height, width = x.shape
    x0 = torch.empty_like(x)
    sources = torch.empty(batch, height, width, 3, dtype=torch.long, device=x.device)
    entropy = x.new_empty(batch, height, width)
    for rows, part in zip(samples, parts, strict=True):
        x0[rows], sources[rows], entropy[rows] = part.x0, part.sources, part.entropy
    return DenoiseResult(x0=x0, sources=sources, entropy=entropy)
