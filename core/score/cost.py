"""Rough cost of a sampling run, to warn before starting something slow or too big."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.errors import BadInputError
from core.score import inputs, ivf
from core.score.approximate import exact_steps
from core.score.memory import FLOAT_BYTES, default_budget_bytes, local_bytes_per_image, plan_chunks
from core.score.offsets import chunk_images, working_bytes
from core.score.paths import (
    GEMM_FLOPS_PER_SECOND,
    SECONDS_PER_LOGIT,
    StepShape,
    gemm_work,
    implementation,
    step_seconds,
)
from core.score.schedules import alpha_bar

#: Approximate steps with the patch index, per query–patch pair and patch value (``C·P²``: the
#: index compares whole patches): 7.2e-11 s measured on ``faces`` (gray) and ``photos`` (RGB) at
#: 32 px, indexes already built (``bench_generate_estimates.py``, BENCHMARKS.md). The PyTorch entry
#: applies only when asked for explicitly: without the kernel the approximate mode uses candidate
#: images (``uses_index``).
SECONDS_PER_INDEXED_VALUE = {"native": 7.2e-11, "torch": 1.1e-9}
#: The draft's exact first steps at a patch size it indexes later run through the index, probing
#: every list (``core.score.sampler``): per pair and patch value, 3.5–5.0e-11 s measured (digits
#: 16 px ELS, faces and photos 32 px bbELS, indexes built); PyTorch scaled like the entry above.
SECONDS_PER_EVERY_LIST_VALUE = {"native": 4.2e-11, "torch": 6.4e-10}
#: Building a patch index (k-means, list layout), per library image, pixel and patch size, for gray
#: images: 9.7 CPU-s per FashionMNIST class (~361 images, 32×32, 10 patch sizes); colour adds 30 %
#: per extra channel (``photos`` at 32 px: 15 s measured).
SECONDS_PER_INDEX_BUILD_PATCH = 2.6e-6
#: Memory of building the indexes, per library value (image × channel × pixel) at patch size 25,
#: growing with the square of the largest indexed patch: 640 MB for ``photos`` at 32 px (P ≤ 23),
#: 10.6 GB at 64 px (P ≤ 47), measured above the same runs with their indexes built.
INDEX_BUILD_BYTES_PER_VALUE = 640
#: The approximate steps' measured peak over the sum of their main buffers (probe lists, copies of
#: patches into cache, per-list scratch): 2.2 on ``faces``, 3.0 on ``photos`` at 32 px.
INDEXED_MEMORY_FACTOR = 3
#: The ideal score's fixed cost per step, and per library value and step (it reads the library twice, for its
#: logits and its means, without copying it: 20 steps at 128 px took 0.36 s on ``digits``, 1,797 images, and 0.30 s
#: on ``photos``, 398 RGB images; 0.05 s at 32 px; BENCHMARKS.md, ninth look).
IDEAL_SECONDS_PER_STEP = 0.0008
IDEAL_SECONDS_PER_LIBRARY_VALUE = 5.5e-10
#: Memory every run adds besides its library, results and working memory (Python objects, thread
#: stacks, allocator slack): measured 8–10 MB on the smallest runs (BENCHMARKS.md).
RUN_OVERHEAD_BYTES = 8 * 1024**2

@dataclass
class Cost:
    """Estimated work of a run: ``flops`` of the distance GEMMs, ``peak_bytes`` of memory the run
    adds to its process (library, results, the working memory of its parallel workers) and
    ``seconds_estimate`` on a machine like the 2-core development CPU; ``index_build_seconds``: the
    extra time of the first approximate run with a library and size (building its patch indexes,
    which later runs reuse; not in ``seconds_estimate``) and ``index_build_bytes`` the extra
    memory it takes then (not in ``peak_bytes``)."""

    flops: float
    peak_bytes: int
    seconds_estimate: float
    logits: float = 0.0
    index_build_seconds: float = 0.0
    index_build_bytes: int = 0


def indexed_step_bytes(batch: int, channels: int, size: int, patch_size: int, num_library: int) -> int:
    """Working memory of one approximate step with the patch index, per worker: the query patches
    of its pixels, the index's library columns (image, y, x and values) and the padded library,
    times :data:`INDEXED_MEMORY_FACTOR`."""
    pixels = size * size
    queries = batch * pixels * (channels * patch_size * patch_size + 1) * FLOAT_BYTES
    columns = num_library * pixels * (3 * 8 + channels * FLOAT_BYTES)
    padded = num_library * channels * (size + patch_size) * (size + patch_size + 8) * FLOAT_BYTES
    return INDEXED_MEMORY_FACTOR * (queries + columns + padded)


def index_bytes(num_library: int, channels: int, size: int) -> int:
    """Memory of one patch index in use: its library columns (image, y, x and values), one per
    library position (measured 28.7 B per column on gray, 35.6 B on RGB at 32 px)."""
    return num_library * size * size * (3 * 8 + channels * FLOAT_BYTES)


def step_work(shape: StepShape, indexed: bool = False) -> tuple[float, float]:
    """``(flops, logits)`` of one machine evaluation: GEMM-path flops ``2·queries·patches·d`` and the
    number of logits (query–patch pairs). ``indexed``: an approximate step with the patch index,
    where pixels of shared classes compare with about ``NPROBE · LIST_SIZE`` patches."""
    if shape.kind == "is":
        dim = shape.channels * shape.height * shape.width
        pairs = float(shape.batch) * shape.num_library
        return 2.0 * dim * pairs, pairs
    return gemm_work(shape, ivf.NPROBE * ivf.LIST_SIZE if indexed else None)


def estimate_cost(
    num_library: int,
    channels: int,
    size: int,
    batch: int,
    kind: str,
    patch_sizes: Sequence[int],
    approximate_top_k: int | None = None,
    indexed: bool = False,
) -> Cost:
    """Estimate a run of ``len(patch_sizes)`` steps on ``size``×``size`` images.

    ``num_library`` is the number of library images each sample compares with (for
    class-conditional runs: the images of its class). ``approximate_top_k``: estimate the approximate
    mode instead: after its exact steps, each sample compares with that many images or, with
    ``indexed`` (see :func:`core.score.approximate.uses_index`), each pixel with the patches of
    :data:`~core.score.ivf.NPROBE` lists of its patch index (the one-time index build is not counted).
    """
    inputs.check_kind(kind)
    if num_library < 1 or channels < 1 or size < 1 or batch < 1:
        raise BadInputError("num_library, channels, size and batch must all be at least 1.")
    if approximate_top_k is not None and approximate_top_k < 1:
        raise BadInputError(f"top_k must be at least 1 (got {approximate_top_k}).")
    sizes = inputs.check_patch_sizes(patch_sizes, kind, size, size)
    flops = logits = indexed_pairs = 0.0
    working = 0
    # the machine splits the batch between single-threaded workers sharing the budget (map_jobs)
    workers = max(1, min(torch.get_num_threads(), batch))
    per_worker = -(-batch // workers)
    budget = default_budget_bytes(torch.device("cpu")) // workers
    approximate = approximate_top_k is not None
    exact = exact_steps(len(sizes), size, indexed)
    path = implementation()
    seconds = 0.0
    for k, patch_size in enumerate(sizes):
        through_index = approximate and indexed and (k >= exact or patch_size in sizes[exact:])
        if through_index and k >= exact:
            f, n = step_work(StepShape(kind, size, size, channels, batch, num_library, patch_size), indexed=True)
            indexed_pairs += n
            step = n * channels * patch_size * patch_size * SECONDS_PER_INDEXED_VALUE[path]
            choice = "gemm"
        elif through_index:  # an exact step probing every list of the index
            f, n = step_work(StepShape(kind, size, size, channels, batch, num_library, patch_size))
            logits += n
            step = n * channels * patch_size * patch_size * SECONDS_PER_EVERY_LIST_VALUE[path]
            choice = "gemm"
        else:
            members = num_library if not approximate or k < exact else min(num_library, approximate_top_k)
            shape = StepShape(kind, size, size, channels, batch, members, patch_size)
            f, n = step_work(shape)
            logits += n
            if kind == "is":
                step = f / GEMM_FLOPS_PER_SECOND[path] + n * SECONDS_PER_LOGIT[path] + IDEAL_SECONDS_PER_STEP
                step += members * channels * size * size * IDEAL_SECONDS_PER_LIBRARY_VALUE
                choice = "gemm"
            else:
                ab = float(alpha_bar(1.0 - k / len(sizes)))
                paths = step_seconds(shape, path, ab)
                choice = min(paths, key=paths.__getitem__)
                step = paths[choice]
        flops += f
        seconds += step
        if through_index:
            step_bytes = indexed_step_bytes(per_worker, channels, size, patch_size, num_library)
        elif choice == "offsets":
            images = min(num_library, chunk_images(channels, size, size, patch_size, kind, budget // 2))
            step_bytes = working_bytes(per_worker, channels, size, size, patch_size, kind, images)
        else:
            if kind == "is":  # logits, weights and their float32 copy per sample: the library is read in place
                step_bytes = 3 * per_worker * num_library * 8
            else:
                per_image = local_bytes_per_image(channels, size, size, patch_size, per_worker, kind)
                plan = plan_chunks(budget, torch.device("cpu"), per_image, num_library)
                step_bytes = plan.images_per_chunk * per_image + 2 * plan.tile_elements * FLOAT_BYTES
        working = max(working, workers * step_bytes)
    pixels = batch * size * size
    # library + per-step results (x0, sources, entropy)
    stored = num_library * channels * size * size * FLOAT_BYTES
    stored += len(sizes) * pixels * (channels * FLOAT_BYTES + 3 * 8 + FLOAT_BYTES)
    if approximate and indexed:
        # the patch indexes of every indexed patch size stay in memory for the run (and the next)
        stored += len(set(sizes[exact:])) * index_bytes(num_library, channels, size)
    build = 0.0
    build_bytes = 0
    if approximate and indexed and kind in ivf.IVF_KINDS:
        build = num_library * size * size * len(set(sizes[exact:])) * SECONDS_PER_INDEX_BUILD_PATCH
        build *= 1.0 + 0.3 * (channels - 1)
        largest = max(max(sizes[exact:], default=25), 25)
        build_bytes = num_library * channels * size * size * INDEX_BUILD_BYTES_PER_VALUE * (largest / 25) ** 2
    return Cost(
        flops=flops,
        peak_bytes=int(stored + working + RUN_OVERHEAD_BYTES),
        seconds_estimate=seconds,
        logits=logits + indexed_pairs,
        index_build_seconds=build,
        index_build_bytes=int(build_bytes),
    )
