"""Training-free local score machines (Kamb & Ganguli, ICML 2025).

A score machine denoises an image by softmax-weighting library patches; sampled with DDIM it makes
"mosaics" of library patches, and every output pixel can be traced to the patch it came from.

* :func:`sample` – generate images (deterministic DDIM, :mod:`core.score.sampler`).
* :func:`denoise` – one machine evaluation (:mod:`core.score.machine`).
* :func:`patch_schedule` / :data:`PRESETS` – patch sizes per step; :func:`sampling_plan` / :data:`GRIDS` – the
  time grid (:mod:`core.score.schedules`).
* :func:`estimate_cost` – flops, memory and time of a run (:mod:`core.score.cost`).
"""

from core.score.cost import Cost, estimate_cost
from core.score.kinds import MACHINE_KINDS, MACHINE_LABELS
from core.score.machine import denoise
from core.score.noise import seeded_noise
from core.score.result import DenoiseResult
from core.score.sampler import SampleResult, sample
from core.score.schedules import GRIDS, PRESETS, alpha_bar, patch_schedule, sampling_plan

__all__ = [
    "GRIDS",
    "MACHINE_KINDS",
    "MACHINE_LABELS",
    "PRESETS",
    "Cost",
    "DenoiseResult",
    "SampleResult",
    "alpha_bar",
    "denoise",
    "estimate_cost",
    "patch_schedule",
    "sample",
    "sampling_plan",
    "seeded_noise",
]
