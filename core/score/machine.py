"""One evaluation of a training-free score machine (Kamb & Ganguli, ICML 2025).

Given a noisy image ``x_t`` at noise level ``ā``, the machine estimates the clean image pixel by
pixel. For pixel ``p`` with patch ``Ω_p(x)`` and the allowed library patches ``φ`` of its kind,

    w_φ = softmax_φ( -‖Ω_p(x) − a φ‖² / (2 (1 − ā)) ),   a = sqrt(ā),
    x0_hat(p) = Σ_φ w_φ · centre(φ).

``‖Ω_p(x)‖²`` is the same for every ``φ`` and drops out, so the logits are
``(2a ⟨Ω_p(x), φ⟩ − a² ‖φ‖²) / (2 (1 − ā))``: one batched matrix product with a fused bias per
group of pixels (see :mod:`core.score.kinds`), folded into an exact streaming softmax
(:mod:`core.score.streaming`) over library chunks.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from core.errors import BadInputError
from core.score import inputs
from core.score.local import local_score
from core.score.memory import ChunkPlan, default_budget_bytes, local_bytes_per_image, plan_chunks
from core.score.offsets import chunk_images as offset_chunk_images
from core.score.offsets import offset_score
from core.score.paths import StepShape, choose_path
from core.score.result import CancelCheck, DenoiseResult, raise_if_cancelled, scatter_parts

logger = logging.getLogger(__name__)


def resolve_device(device: torch.device | str | None, like: torch.Tensor) -> torch.device:
    return torch.device(device) if device is not None else like.device


def _ideal_score(
    x: torch.Tensor, library: torch.Tensor, ab: float, plan: ChunkPlan, should_cancel: CancelCheck | None
) -> DenoiseResult:
    """The ideal score: whole-image patches, one softmax over library images per sample.

    Its logits are one row per sample (``B × N``): two matrix products with the library as it lies
    (no copy of it per step), chunk by chunk so that a run stays cancellable, and the softmax in float64.
    """
    batch, channels, height, width = x.shape
    num = library.shape[0]
    dim = channels * height * width
    a, c = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab))
    flat_x = x.reshape(batch, dim)
    flat_lib = library.reshape(num, dim)
    step = plan.images_per_chunk
    logits = torch.empty(batch, num, dtype=torch.float64, device=x.device)
    for start in range(0, num, step):
        raise_if_cancelled(should_cancel)
        chunk = flat_lib[start : start + step]
        norms = torch.linalg.vector_norm(chunk, dim=1).double().square_()
        dots = (flat_x @ chunk.T).double()
        logits[:, start : start + step] = dots.mul_(2.0 * a * c).sub_(norms.mul_(a * a * c))
    best = logits.argmax(dim=1)  # the first maximum, in library order
    weights = torch.softmax(logits, dim=1)
    entropy = -torch.special.xlogy(weights, weights).sum(dim=1)
    weights32 = weights.to(torch.float32)
    x0 = torch.zeros(batch, dim, dtype=torch.float32, device=x.device)
    for start in range(0, num, step):
        raise_if_cancelled(should_cancel)
        x0.addmm_(weights32[:, start : start + step], flat_lib[start : start + step])
    sources = torch.empty(batch, height, width, 3, dtype=torch.long, device=x.device)
    sources[..., 0] = best.view(batch, 1, 1)
    sources[..., 1] = torch.arange(height, device=x.device).view(1, height, 1)
    sources[..., 2] = torch.arange(width, device=x.device).view(1, 1, width)
    ent = entropy.to(torch.float32).clamp_min_(0.0).view(batch, 1, 1).expand(batch, height, width).contiguous()
    return DenoiseResult(x0=x0.view(batch, channels, height, width), sources=sources, entropy=ent)


#: How the local machines compute their logits: "gemm" (patch matrix products, cost per pair
#: growing with P²) or "offsets" (per-offset box sums, :mod:`core.score.offsets`).
PATHS: tuple[str, ...] = ("gemm", "offsets")


def _run_machine(
    x: torch.Tensor,
    library: torch.Tensor,
    ab: float,
    kind: str,
    patch_size: int,
    budget: int,
    should_cancel: CancelCheck | None,
    path: str | None = None,
) -> DenoiseResult:
    channels, height, width = library.shape[1:]
    if kind == "is":
        plan = plan_chunks(budget, x.device, channels * height * width * 4, library.shape[0])  # chunks: views
        return _ideal_score(x, library, ab, plan, should_cancel)
    if path is None:
        shape = StepShape(kind, height, width, channels, x.shape[0], library.shape[0], patch_size)
        path = choose_path(shape, x.device, ab)
    if path == "offsets":
        images = offset_chunk_images(channels, height, width, patch_size, kind, budget // 2)
        return offset_score(x, library, ab, kind, patch_size, images, should_cancel)
    per_image = local_bytes_per_image(channels, height, width, patch_size, x.shape[0], kind)
    plan = plan_chunks(budget, x.device, per_image, library.shape[0])
    return local_score(x, library, ab, kind, patch_size, plan, should_cancel)


def denoise(
    x_t: torch.Tensor,
    alpha_bar: float,
    library: torch.Tensor,
    kind: str,
    patch_size: int,
    labels: torch.Tensor | None = None,
    class_labels: torch.Tensor | None = None,
    device: torch.device | str | None = None,
    memory_budget_bytes: int | None = None,
    should_cancel: CancelCheck | None = None,
    path: str | None = None,
) -> DenoiseResult:
    """One machine evaluation: the estimate of the clean image behind ``x_t``.

    Args:
        x_t: ``(B, C, H, W)`` noisy images.
        alpha_bar: noise level ``ā`` in ``(0, 1)``; ``x_t = sqrt(ā) x0 + sqrt(1 - ā) ε``.
        library: ``(N, C, H, W)`` library images in ``[-1, 1]``.
        kind: one of :data:`~core.score.kinds.MACHINE_KINDS`.
        patch_size: odd patch side ``P`` (ignored for ``"is"``).
        labels: ``(N,)`` integer label of every library image (class-conditional only).
        class_labels: ``(B,)`` label of every sample; sample ``b`` only uses library images with
            its label.
        device: where to compute (default: the device of ``x_t``).
        memory_budget_bytes: working memory; default a quarter of the free memory. Smaller budgets
            give the same result in more chunks.
        should_cancel: polled between chunks; when it returns True, raises ``GenerationCancelled``.
        path: how the local machines compute their logits, one of :data:`PATHS` (same results up
            to float32 rounding); default the one the cost model expects to be faster
            (:func:`core.score.paths.choose_path`).

    Returns:
        :class:`DenoiseResult` on ``device``.
    """
    inputs.check_kind(kind)
    inputs.check_library(library)
    inputs.check_images(x_t, library, "noisy image")
    inputs.check_alpha_bar(alpha_bar)
    inputs.check_patch_size(patch_size, kind, library.shape[2], library.shape[3])
    inputs.check_labels(labels, class_labels, library.shape[0], x_t.shape[0])
    if path is not None and path not in PATHS:
        raise BadInputError(f"Unknown path {path!r}: choose {' or '.join(PATHS)}.")
    dev = resolve_device(device, x_t)
    budget = memory_budget_bytes if memory_budget_bytes is not None else default_budget_bytes(dev)
    x = x_t.to(dev, torch.float32)
    lib = library.to(dev, torch.float32)
    if class_labels is None:
        return _unconditional(x, lib, float(alpha_bar), kind, patch_size, budget, should_cancel, path)
    return _conditional(x, lib, float(alpha_bar), kind, patch_size, labels, class_labels, budget, should_cancel, path)


def _unconditional(
    x: torch.Tensor,
    library: torch.Tensor,
    ab: float,
    kind: str,
    patch_size: int,
    budget: int,
    should_cancel: CancelCheck | None,
    path: str | None = None,
) -> DenoiseResult:
    """All samples against the whole library; on a multi-core CPU the batch is split between
    single-threaded workers (see :func:`map_jobs`)."""
    workers = min(torch.get_num_threads(), x.shape[0]) if x.device.type == "cpu" else 1
    if workers < 2:
        return _run_machine(x, library, ab, kind, patch_size, budget, should_cancel, path)
    jobs = [(part, part) for part in torch.arange(x.shape[0], device=x.device).tensor_split(workers)]

    def run(job: tuple[torch.Tensor, torch.Tensor], job_budget: int) -> DenoiseResult:
        return _run_machine(x[job[0]], library, ab, kind, patch_size, job_budget, should_cancel, path)

    parts = map_jobs(run, jobs, budget, x.device)
    return DenoiseResult(
        x0=torch.cat([p.x0 for p in parts]),
        sources=torch.cat([p.sources for p in parts]),
        entropy=torch.cat([p.entropy for p in parts]),
    )


def _conditional(
    x: torch.Tensor,
    library: torch.Tensor,
    ab: float,
    kind: str,
    patch_size: int,
    labels: torch.Tensor | None,
    class_labels: torch.Tensor,
    budget: int,
    should_cancel: CancelCheck | None,
    path: str | None = None,
) -> DenoiseResult:
    """Run the machine once per class, on the samples and library images of that class.

    On a multi-core CPU with several classes, the classes run side by side, one thread each
    (:func:`map_jobs`): a class is a whole independent machine evaluation, which scales far
    better than splitting each small operation of one class over the cores.
    """
    assert labels is not None
    labels = labels.to(x.device)
    class_labels = class_labels.to(x.device)
    jobs = []
    for label in torch.unique(class_labels).tolist():
        samples = torch.nonzero(class_labels == label).flatten()
        members = torch.nonzero(labels == label).flatten()
        jobs.append((samples, members))

    def run(job: tuple[torch.Tensor, torch.Tensor], job_budget: int) -> DenoiseResult:
        samples, members = job
        return _run_machine(x[samples], library[members], ab, kind, patch_size, job_budget, should_cancel, path)

    parts = map_jobs(run, jobs, budget, x.device)
    for (_, members), part in zip(jobs, parts, strict=True):
        part.sources[..., 0] = members[part.sources[..., 0]]
    return scatter_parts(x, [samples for samples, _ in jobs], parts)


def map_jobs(
    run: Callable[[tuple[torch.Tensor, torch.Tensor], int], DenoiseResult],
    jobs: list[tuple[torch.Tensor, torch.Tensor]],
    budget: int,
    device: torch.device,
) -> list[DenoiseResult]:
    """``run(job, budget)`` for every independent job (a class, a sample): in order on one thread,
    or on CPU with several cores and jobs, on a pool of single-threaded workers that share the
    memory budget."""
    workers = min(torch.get_num_threads(), len(jobs))
    if device.type != "cpu" or workers < 2:
        return [run(job, budget) for job in jobs]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="score-class") as pool:
            futures = [pool.submit(run, job, max(1, budget // workers)) for job in jobs]
            return [future.result() for future in futures]
    finally:
        torch.set_num_threads(threads)
