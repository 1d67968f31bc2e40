"""Deterministic DDIM for a trained Lab network (ε-, v- or x0-prediction), on the grid of :func:`core.score.sample`.

Both use ``t_k = 1 - k / S`` and ``ā = alpha_bar(t)`` (cosine schedule of :mod:`core.score.schedules`),
and the same update from a clean-image estimate ``x0_hat``::

    eps_hat = (x - sqrt(ā_k) x0_hat) / sqrt(1 - ā_k)
    x ← sqrt(ā_{k+1}) x0_hat + sqrt(1 - ā_{k+1}) eps_hat

For the network ``x0_hat`` is its output turned into a clean image (:func:`core.lab.parameterization.x0_from_output`),
clamped to ``[-1, 1]``; so the network
and a score machine started from the same noise can be compared step by step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from core.errors import BadInputError, GenerationCancelled
from core.lab.parameterization import model_prediction, x0_from_output
from core.score.noise import seeded_noise  # noqa: F401  (re-exported for core.lab)
from core.score.schedules import GRIDS, REFERENCE_STEPS, alpha_bar, sampling_plan, sampling_times

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int, torch.Tensor], None]


@dataclass
class NetworkSample:
    """One DDIM run of a network (``S`` steps, ``B`` samples).

    Attributes:
        images: ``(B, C, H, W)`` final images in ``[-1, 1]``.
        step_x: ``(S, B, C, H, W)`` the noisy input ``x_{t_k}`` of every step.
        step_x0: ``(S, B, C, H, W)`` the network's clean-image estimate at every step.
        times: the ``S + 1`` times ``t_k``.
    """

    images: torch.Tensor
    step_x: torch.Tensor
    step_x0: torch.Tensor
    times: list[float]


def predict_x0(model: nn.Module, x: torch.Tensor, t: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The network's clean-image estimate at time ``t`` (clamped to ``[-1, 1]``)."""
    ab = float(alpha_bar(t))
    tt = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
    return x0_from_output(model_prediction(model), x, model(x, tt, labels), ab).clamp(-1.0, 1.0)


@torch.no_grad()
def ddim_sample(
    model: nn.Module,
    noise: torch.Tensor,
    steps: int = 20,
    labels: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    batch_size: int = 64,
    grid: str = "uniform",
) -> NetworkSample:
    """Generate from ``noise`` ``(B, C, H, W)`` with ``steps`` deterministic DDIM steps.

    ``labels`` ``(B,)`` are class labels (``-1`` = unconditional) for class-conditional models.
    ``on_step(step_done, steps, x0_hat)`` is called after every step. Samples are processed in
    chunks of ``batch_size`` (results do not depend on it up to float rounding).
    ``grid="reference"``: the authors' grid of :func:`core.score.sampling_plan` instead (19 steps at
    ``t = 0.95 … 0.05``, ``steps`` ignored; the ``t = 0.05`` estimate is returned unclamped), so a
    network and a machine compared on it see the same times.
    """
    if grid not in GRIDS:
        raise BadInputError(f"Unknown sampling grid {grid!r}: choose {' or '.join(GRIDS)}.")
    if steps < 1:
        raise BadInputError(f"The number of steps must be at least 1 (got {steps}).")
    if noise.dim() != 4:
        raise BadInputError("The noise must be a tensor (B, C, H, W).")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = noise.to(device, torch.float32).clone()
    lab = labels.to(device) if labels is not None else None
    if grid == "reference":
        pairs = [(t, t_next) for t, t_next, _ in sampling_plan("reference", [1] * REFERENCE_STEPS)]
        times = [pairs[0][0]] + [t_next for _, t_next in pairs]
    else:
        times = sampling_times(steps)
    steps = len(times) - 1
    step_x, step_x0 = [], []
    try:
        for k in range(steps):
            if should_cancel is not None and should_cancel():
                raise GenerationCancelled()
            ab_now, ab_next = float(alpha_bar(times[k])), float(alpha_bar(times[k + 1]))
            chunks = []
            for start in range(0, x.shape[0], batch_size):
                part_labels = lab[start : start + batch_size] if lab is not None else None
                chunks.append(predict_x0(model, x[start : start + batch_size], times[k], part_labels))
            x0 = torch.cat(chunks)
            step_x.append(x)
            step_x0.append(x0)
            eps = (x - math.sqrt(ab_now) * x0) / math.sqrt(1.0 - ab_now)
            x = math.sqrt(ab_next) * x0 + math.sqrt(1.0 - ab_next) * eps
            if on_step is not None:
                on_step(k + 1, steps, x0)
    finally:
        model.train(was_training)
    return NetworkSample(
        images=step_x0[-1] if grid == "reference" else step_x0[-1].clamp(-1.0, 1.0),
        step_x=torch.stack(step_x),
        step_x0=torch.stack(step_x0),
        times=times,
    )
