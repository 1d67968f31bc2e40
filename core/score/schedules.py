"""Noise schedule and patch-size schedules of the local score machines.

The noise level of a diffusion time ``t`` in ``[0, 1]`` is the cosine schedule
``alpha_bar(t) = cos²((t / 1.008) · π / 2)``: ``t = 0`` is a clean image, ``t = 1`` (almost) pure noise.

A patch-size schedule says how big the patches compared at each sampling step are. Kamb & Ganguli
(ICML 2025) calibrated one schedule on a FashionMNIST UNet at 32×32: large patches while the image
is mostly noise, small patches at the end. :func:`patch_schedule` scales a named preset to another
image size and step count.
"""

from __future__ import annotations

import logging
import math

import torch

from core.errors import BadInputError

logger = logging.getLogger(__name__)

#: Patch sizes of the paper's FashionMNIST-UNet calibration (32×32, 20 steps), listed from LOW to
#: HIGH noise. Sampling starts at high noise, so the sampling order is the reverse.
FASHION_UNET_LOW_TO_HIGH: tuple[int, ...] = (
    3,
    3,
    5,
    5,
    7,
    7,
    7,
    9,
    11,
    11,
    11,
    13,
    15,
    15,
    21,
    23,
    25,
    25,
    25,
    25,
)

#: The image size the calibrated schedule was measured at.
REFERENCE_SIZE = 32

#: Preset name -> one-line plain-language description.
PRESETS: dict[str, str] = {
    "fashion-unet": "The schedule measured on a FashionMNIST UNet (Kamb & Ganguli 2025).",
    "fine": "Smaller patches: more novel mosaics that mix many library images.",
    "balanced": "The calibrated middle ground: patch sizes measured on a trained network.",
    "coarse": "Bigger patches: results stay closer to single library images.",
    "whole-image": "Each patch covers the whole image: the machine copies library images.",
}

# How much each preset scales the calibrated patch sizes (whole-image is handled apart).
_PRESET_SCALE: dict[str, float] = {"fashion-unet": 1.0, "fine": 0.6, "balanced": 1.0, "coarse": 1.6}


def alpha_bar(t: float | torch.Tensor) -> float | torch.Tensor:
    """Signal fraction ``ā(t) = cos²((t / 1.008) · π / 2)`` of the cosine schedule.

    ``x_t = sqrt(ā) x0 + sqrt(1 - ā) ε``. Accepts a float (returns a float) or a tensor.
    """
    if isinstance(t, torch.Tensor):
        return torch.cos((t / 1.008) * (math.pi / 2)) ** 2
    return math.cos((float(t) / 1.008) * (math.pi / 2)) ** 2


def sampling_times(steps: int) -> list[float]:
    """Times ``t_k = 1 - k / steps`` for ``k = 0..steps`` (``t_0 = 1`` is noise, ``t_steps = 0``)."""
    if steps < 1:
        raise BadInputError(f"The number of steps must be at least 1 (got {steps}).")
    return [1.0 - k / steps for k in range(steps + 1)]


#: sampling grids of :func:`core.score.sample`: ``uniform`` (the default) and ``reference``
GRIDS: dict[str, str] = {
    "uniform": "One step per patch size, from pure noise (t = 1) to a clean image (t = 0).",
    "reference": "The authors' grid: 19 steps at t = 0.95 … 0.05 on the 20-entry patch schedule, unclamped.",
}

#: entries of the patch schedule the reference grid is defined on
REFERENCE_STEPS = 20


def sampling_plan(grid: str, patch_sizes: list[int]) -> list[tuple[float, float, int]]:
    """The machine evaluations of a sampling run: ``(t, t_next, patch size)`` each, in order.

    ``uniform``: ``t_k = 1 - k / S`` for the ``S = len(patch_sizes)`` sizes (first = highest noise).
    ``reference`` (Kamb & Ganguli's code): 19 evaluations at ``t = i / 20`` for ``i = 19 … 1``, the one
    at ``t = i / 20`` with entry ``i`` of the 20-entry schedule counted from low noise (here, in
    sampling order, entry ``19 - i``); the run starts at ``t = 0.95`` and ends with the ``t = 0.05``
    estimate.

    Raises:
        BadInputError: unknown grid, or a reference grid without exactly 20 patch sizes.
    """
    if grid not in GRIDS:
        raise BadInputError(f"Unknown sampling grid {grid!r}: choose {' or '.join(repr(g) for g in GRIDS)}.")
    if grid == "uniform":
        times = sampling_times(len(patch_sizes))
        return [(times[k], times[k + 1], int(p)) for k, p in enumerate(patch_sizes)]
    if len(patch_sizes) != REFERENCE_STEPS:
        raise BadInputError(
            f"The reference grid runs on a {REFERENCE_STEPS}-entry patch schedule: give {REFERENCE_STEPS} "
            f"patch sizes (got {len(patch_sizes)}), e.g. patch_schedule(preset, size, steps=20)."
        )
    last = REFERENCE_STEPS - 1
    return [(i / REFERENCE_STEPS, (i - 1) / REFERENCE_STEPS, int(patch_sizes[last - i])) for i in range(last, 0, -1)]


def _odd_clamped(value: float, size: int) -> int:
    """Nearest odd integer to ``value``, at least 1 and at most ``2 * size - 1``."""
    odd = 2 * int(math.floor((value - 1.0) / 2.0 + 0.5)) + 1
    return max(1, min(odd, 2 * size - 1))


def _resample(values: list[int], steps: int) -> list[int]:
    """Nearest-neighbour resampling of a schedule to ``steps`` entries (keeps both ends)."""
    if steps == len(values):
        return list(values)
    if steps == 1:
        return [values[0]]
    last = len(values) - 1
    return [values[int(math.floor(i * last / (steps - 1) + 0.5))] for i in range(steps)]


def patch_schedule(preset: str, size: int, steps: int = 20) -> list[int]:
    """Patch sizes in sampling order (first entry = highest noise) for a ``size``×``size`` image.

    The calibrated 32×32 sizes are scaled by ``size / 32`` (and by the preset's factor), rounded to
    the nearest odd number, kept ≥ 1 and capped at ``2 * size - 1`` (a patch that covers the whole
    image from any pixel), then resampled to ``steps`` entries.

    Raises:
        BadInputError: unknown preset, size < 1 or steps < 1.
    """
    if preset not in PRESETS:
        valid = ", ".join(sorted(PRESETS))
        raise BadInputError(f"Unknown patch schedule preset {preset!r}. Valid presets: {valid}.")
    if size < 1:
        raise BadInputError(f"The image size must be at least 1 pixel (got {size}).")
    if steps < 1:
        raise BadInputError(f"The number of steps must be at least 1 (got {steps}).")
    if preset == "whole-image":
        return [2 * size - 1] * steps
    scale = _PRESET_SCALE[preset] * size / REFERENCE_SIZE
    high_to_low = list(reversed(FASHION_UNET_LOW_TO_HIGH))
    sizes = [_odd_clamped(p * scale, size) for p in high_to_low]
    return _resample(sizes, steps)
