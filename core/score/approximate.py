"""Approximate sampling: after the high-noise steps, each sample only compares with a few
library images.

The first 40 % of the steps (high noise, big patches: cheap) are exact and set the layout of the
image. The remaining low-noise steps with small patches are the expensive ones, and nearly all
their weight goes to patches of library images that resemble the current estimate. Each sample
then keeps its ``top_k`` library images (of its class) nearest to its ``x0`` estimate, and the
machine is exact on that subset. The result is deterministic but no longer equal to the exact
sampler (see BENCHMARKS.md for the agreement measured on FashionMNIST).
"""

from __future__ import annotations

import logging

import torch

from core.score.machine import denoise, map_jobs
from core.score.result import CancelCheck, DenoiseResult

logger = logging.getLogger(__name__)


#: Fraction of the steps (from the highest noise) that stay exact.
EXACT_FRACTION = 0.4


def exact_steps(steps: int) -> int:
    """Number of leading (high-noise) steps that stay exact."""
    return max(1, round(steps * EXACT_FRACTION))


def choose_candidates(
    x0: torch.Tensor,
    library: torch.Tensor,
    top_k: int,
    labels: torch.Tensor | None,
    class_labels: torch.Tensor | None,
) -> list[torch.Tensor]:
    """Sorted library indices each sample keeps: its ``top_k`` nearest images (L2 to ``x0``)."""
    flat_lib = library.flatten(1)
    lib_norms = flat_lib.pow(2).sum(1)
    result = []
    for b in range(x0.shape[0]):
        allowed = torch.arange(library.shape[0], device=library.device)
        if class_labels is not None:
            assert labels is not None
            allowed = torch.nonzero(labels.to(library.device) == class_labels[b].to(library.device)).flatten()
        distances = lib_norms[allowed] - 2.0 * (flat_lib[allowed] @ x0[b].flatten())
        nearest = allowed[torch.topk(distances, min(top_k, allowed.numel()), largest=False).indices]
        result.append(torch.sort(nearest).values)
    return result


def denoise_pruned(
    x: torch.Tensor,
    ab: float,
    library: torch.Tensor,
    kind: str,
    patch_size: int,
    candidates: list[torch.Tensor],
    budget: int,
    should_cancel: CancelCheck | None,
) -> DenoiseResult:
    """The exact machine of each sample on its own candidate images (indices mapped back); the
    samples run side by side on a multi-core CPU (:func:`core.score.machine.map_jobs`)."""
    def run(job: tuple[torch.Tensor, torch.Tensor], job_budget: int) -> DenoiseResult:
        sample_index, members = job
        part = denoise(
            x[sample_index],
            ab,
            library[members],
            kind,
            patch_size,
            memory_budget_bytes=job_budget,
            should_cancel=should_cancel,
        )
        part.sources[..., 0] = members[part.sources[..., 0]]
        return part

    jobs = [(torch.tensor([b], device=x.device), members) for b, members in enumerate(candidates)]
    parts = map_jobs(run, jobs, budget, x.device)
    return DenoiseResult(
        x0=torch.cat([p.x0 for p in parts]),
        sources=torch.cat([p.sources for p in parts]),
        entropy=torch.cat([p.entropy for p in parts]),
    )
