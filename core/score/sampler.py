"""Deterministic DDIM sampling with a score machine as the denoiser."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.errors import BadInputError, GenerationCancelled
from core.score import inputs
from core.score.approximate import IndexedRun, choose_candidates, denoise_pruned, exact_steps, uses_index
from core.score.machine import denoise, resolve_device
from core.score.memory import default_budget_bytes
from core.score.schedules import alpha_bar, sampling_plan

logger = logging.getLogger(__name__)

StepCallback = Callable[[int, int, torch.Tensor], None]
#: The approximate mode's two ways (see :mod:`core.score.approximate`).
DRAFTS = ("index", "images")
#: ``(steps_done, total_steps, patch_size)``: a patch index is about to be built (a long pause).
IndexBuildCallback = Callable[[int, int, int], None]


@dataclass
class SampleResult:
    """Everything one sampling run produced (all on the compute device, S = number of steps).

    Attributes:
        images: ``(B, C, H, W)`` final images, float32, clamped to ``[-1, 1]`` (not on the reference grid).
        sources: ``(B, H, W, 3)`` int64 (library index, y, x) of each pixel's top patch at the last step.
        entropy: ``(B, H, W)`` patch-weight entropy (nats) at the last step.
        step_sources: ``(S, B, H, W, 3)`` the same at every step.
        step_entropy: ``(S, B, H, W)``.
        step_x0: ``(S, B, C, H, W)`` the machine's clean-image estimate at every step.
        patch_sizes: the patch size used at each step.
    """

    images: torch.Tensor
    sources: torch.Tensor
    entropy: torch.Tensor
    step_sources: torch.Tensor
    step_entropy: torch.Tensor
    step_x0: torch.Tensor
    patch_sizes: list[int]


def sample(
    library: torch.Tensor,
    noise: torch.Tensor,
    kind: str,
    patch_sizes: Sequence[int],
    labels: torch.Tensor | None = None,
    class_labels: torch.Tensor | None = None,
    on_step: StepCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    device: torch.device | str | None = None,
    memory_budget_bytes: int | None = None,
    approximate: bool = False,
    top_k: int | None = None,
    index_dir: Path | None = None,
    on_index_build: IndexBuildCallback | None = None,
    grid: str = "uniform",
    draft: str | None = None,
) -> SampleResult:
    """Generate images by deterministic DDIM with a training-free score machine.

    Starting from ``x = noise`` at ``t_0 = 1``, for ``k = 0..S-1`` with ``t_k = 1 - k / S`` and
    ``ā_k = alpha_bar(t_k)`` (cosine schedule):

        x0_hat = machine(x, ā_k, patch_sizes[k])
        eps_hat = (x - sqrt(ā_k) x0_hat) / sqrt(1 - ā_k)
        x ← sqrt(ā_{k+1}) x0_hat + sqrt(1 - ā_{k+1}) eps_hat

    ``S = len(patch_sizes)``; the first entry is used at the highest noise. The result is the
    ``x0_hat`` of the last step (which equals ``x`` at ``t = 0``).

    ``grid="reference"`` runs the authors' grid instead (see :func:`~core.score.schedules.sampling_plan`):
    20 patch sizes, 19 evaluations at ``t = 0.95 … 0.05`` starting from ``x = noise``, and the
    ``t = 0.05`` estimate returned unclamped.

    The machine (``kind``) is ``"is"`` (ideal score, whole images), ``"ls"`` (local score),
    ``"els"`` (equivariant local score, circular padding) or ``"bbels"`` (boundary-broken ELS):
    see :func:`core.score.machine.denoise`.

    Args:
        library: ``(N, C, H, W)`` float images in ``[-1, 1]``.
        noise: ``(B, C, H, W)`` standard normal noise; one sample per entry.
        kind: machine kind.
        patch_sizes: odd patch size per step, high noise first (see
            :func:`core.score.schedules.patch_schedule`).
        labels: ``(N,)`` int labels of the library images, for class-conditional sampling.
        class_labels: ``(B,)`` label of every sample: it only uses library images with that label.
        on_step: called after each step as ``on_step(step_done, total_steps, x0_hat)`` (1-based).
        should_cancel: polled before each step and between library chunks; when it returns True
            the run stops with :class:`~core.errors.GenerationCancelled`.
        device: compute device (default: the device of ``noise``).
        memory_budget_bytes: working memory of one machine evaluation (default: a quarter of the
            free memory). It changes speed, not results.
        approximate: faster, not exact: after the first steps each pixel only compares with the
            nearest lists of a patch index (``els``, ``bbels`` on CPU), or each sample with the
            ``top_k`` library images its pixels came from most; see :mod:`core.score.approximate`.
        top_k: library images kept per sample in the candidate-image approximate mode (default:
            :func:`~core.score.approximate.default_top_k` of the images it may use at this size).
        index_dir: a folder where the approximate mode keeps the patch indexes it builds, so that
            later runs (other processes too) reuse them; default: kept in memory only.
        on_index_build: called before a step that first has to build a patch index (approximate
            mode), as ``on_index_build(steps_done, total_steps, patch_size)``.
        grid: ``"uniform"`` (default) or ``"reference"`` (see above).
        draft: how the approximate mode narrows the comparison: ``"index"`` (the patch index; ``els``
            and ``bbels`` on a CPU with the native kernel) or ``"images"`` (candidate images; any
            machine). Default: the index where it can be used (:func:`~core.score.approximate.uses_index`).
            Which one is faster depends on the size (``core.engines.local_score`` asks the cost model).

    Returns:
        :class:`SampleResult` on ``device``.

    Reproducibility: the computation is deterministic; the same library, noise, kind, patch sizes,
    labels and device give the same result (up to float32 rounding differences between machines).

    Raises:
        BadInputError: invalid shapes, patch sizes, kinds or labels.
        GenerationCancelled: ``should_cancel()`` returned True.
    """
    inputs.check_kind(kind)
    inputs.check_library(library)
    inputs.check_images(noise, library, "noise")
    height, width = library.shape[2], library.shape[3]
    plan = sampling_plan(grid, inputs.check_patch_sizes(patch_sizes, kind, height, width))
    sizes = [p for _, _, p in plan]
    inputs.check_labels(labels, class_labels, library.shape[0], noise.shape[0])
    if approximate and top_k is not None and top_k < 1:
        raise BadInputError(f"top_k must be at least 1 (got {top_k}).")
    if draft not in (None, *DRAFTS):
        raise BadInputError(f"Unknown draft method {draft!r}: choose {' or '.join(DRAFTS)}.")
    dev = resolve_device(device, noise)
    if draft == "index" and not uses_index(kind, dev):
        raise BadInputError(
            f"The patch-index draft needs the els or bbels machine on a CPU with the native kernel (got {kind} on "
            f"{dev.type}): use draft='images'."
        )
    budget = memory_budget_bytes if memory_budget_bytes is not None else default_budget_bytes(dev)
    lib = library.to(dev, torch.float32)
    x = noise.to(dev, torch.float32).clone()
    steps = len(plan)
    step_x0, step_sources, step_entropy = [], [], []
    candidates: list[torch.Tensor] | None = None
    indexed = approximate and (draft == "index" if draft is not None else uses_index(kind, dev))
    indexed_run = IndexedRun(lib, kind, labels, class_labels, x.shape[0], index_dir) if indexed else None
    first_approximate = exact_steps(steps, max(height, width), indexed)
    for k, patch_size in enumerate(sizes):
        if should_cancel is not None and should_cancel():
            raise GenerationCancelled()
        ab_now = float(alpha_bar(plan[k][0]))
        ab_next = float(alpha_bar(plan[k][1]))
        if indexed_run is not None and (k >= first_approximate or patch_size in sizes[first_approximate:]):
            if on_index_build is not None and indexed_run.missing(patch_size):
                on_index_build(k, steps, patch_size)
            # exact steps at an indexed patch size probe every list: the exact machine, and faster
            every = k < first_approximate
            result = indexed_run.denoise(x, ab_now, patch_size, budget, should_cancel, every_list=every)
        elif approximate and k >= first_approximate:
            if candidates is None:
                candidates = choose_candidates(step_x0[-1], step_sources[-1], lib, top_k, labels, class_labels)
            result = denoise_pruned(x, ab_now, lib, kind, patch_size, candidates, budget, should_cancel)
        else:
            result = denoise(x, ab_now, lib, kind, patch_size, labels, class_labels, dev, budget, should_cancel)
        x0 = result.x0
        eps = (x - math.sqrt(ab_now) * x0) / math.sqrt(1.0 - ab_now)
        x = math.sqrt(ab_next) * x0 + math.sqrt(1.0 - ab_next) * eps
        step_x0.append(x0)
        step_sources.append(result.sources)
        step_entropy.append(result.entropy)
        logger.debug("step %d/%d patch %d done", k + 1, steps, patch_size)
        if on_step is not None:
            on_step(k + 1, steps, x0)
    return SampleResult(
        images=step_x0[-1] if grid == "reference" else step_x0[-1].clamp(-1.0, 1.0),
        sources=step_sources[-1],
        entropy=step_entropy[-1],
        step_sources=torch.stack(step_sources),
        step_entropy=torch.stack(step_entropy),
        step_x0=torch.stack(step_x0),
        patch_sizes=sizes,
    )
