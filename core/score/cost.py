"""Rough cost of a sampling run, to warn before starting something slow or too big."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.errors import BadInputError
from core.score import inputs, ivf, native
from core.score.approximate import exact_steps
from core.score.kinds import group_buckets
from core.score.memory import FLOAT_BYTES, default_budget_bytes, local_bytes_per_image, plan_chunks

#: Fitted to whole runs on the 2-core CPU dev machine (class-conditional bbels, FashionMNIST 32×32,
#: 20 steps; BENCHMARKS.md): the distance GEMM speed and the time of the per-logit work that is not
#: a GEMM (max, exp, weighted sums), with the native kernels (4.9 s/image measured) and with the
#: PyTorch path (9.2 s/image). A busy machine is several times slower.
GEMM_FLOPS_PER_SECOND = {"native": 110e9, "torch": 60e9}
SECONDS_PER_LOGIT = {"native": 1.2e-9, "torch": 2.2e-9}
#: Approximate steps with the patch index, per query–patch pair (copying patches into cache, the
#: probes, the fold), fitted so that the estimate keeps the measured ratio to the exact run (×6.0 in
#: the same benchmark: 0.57 against 3.41 s/image). The PyTorch entry applies only when asked for
#: explicitly: without the kernel the approximate mode uses candidate images (``uses_index``).
SECONDS_PER_INDEXED_PAIR = {"native": 5.4e-9, "torch": 8.5e-8}
#: Building a patch index (k-means, list layout), per library image, pixel and patch size: 9.7 CPU-s
#: per FashionMNIST class (~361 images, 32×32, 10 patch sizes) in the same benchmark.
SECONDS_PER_INDEX_BUILD_PATCH = 2.6e-6

@dataclass
class Cost:
    """Estimated work of a run: ``flops`` of the distance GEMMs, ``peak_bytes`` of memory and
    ``seconds_estimate`` on a machine like the 2-core development CPU; ``index_build_seconds``: the
    extra time of the first approximate run with a library and size (building its patch indexes,
    which later runs reuse; not in ``seconds_estimate``)."""

    flops: float
    peak_bytes: int
    seconds_estimate: float
    logits: float = 0.0
    index_build_seconds: float = 0.0


def step_work(
    kind: str,
    height: int,
    width: int,
    channels: int,
    batch: int,
    num_library: int,
    patch_size: int,
    indexed: bool = False,
) -> tuple[float, float]:
    """``(flops, logits)`` of one machine evaluation: GEMM flops ``2·queries·patches·d`` and the
    number of logits (query–patch pairs). ``indexed``: an approximate step with the patch index,
    where pixels of shared classes compare with about ``NPROBE · LIST_SIZE`` patches."""
    if kind == "is":
        dim = channels * height * width
        pairs = float(batch) * num_library
        return 2.0 * dim * pairs, pairs
    dim = channels * patch_size * patch_size
    pairs = 0.0
    for bucket in group_buckets(kind, height, width, patch_size):
        groups, size = bucket.groups, bucket.size
        patches = num_library * size
        if indexed and size > 1:
            patches = min(patches, ivf.NPROBE * ivf.LIST_SIZE)
        pairs += float(groups) * (batch * size) * patches
    return 2.0 * dim * pairs, pairs


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
    budget = default_budget_bytes(torch.device("cpu"))
    approximate = approximate_top_k is not None
    exact = exact_steps(len(sizes), indexed)
    for k, patch_size in enumerate(sizes):
        if approximate and k >= exact and indexed:
            f, n = step_work(kind, size, size, channels, batch, num_library, patch_size, indexed=True)
            indexed_pairs += n
        else:
            members = num_library if not approximate or k < exact else min(num_library, approximate_top_k)
            f, n = step_work(kind, size, size, channels, batch, members, patch_size)
            logits += n
        flops += f
        if kind == "is":
            per_image = 3 * channels * size * size * FLOAT_BYTES
        else:
            per_image = local_bytes_per_image(channels, size, size, patch_size, batch, kind)
        plan = plan_chunks(budget, torch.device("cpu"), per_image, num_library)
        working = max(working, plan.images_per_chunk * per_image + 2 * plan.tile_elements * FLOAT_BYTES)
    pixels = batch * size * size
    # library + per-step results (x0, sources, entropy)
    stored = num_library * channels * size * size * FLOAT_BYTES
    stored += len(sizes) * pixels * (channels * FLOAT_BYTES + 3 * 8 + FLOAT_BYTES)
    path = "native" if native.available(torch.device("cpu")) else "torch"
    seconds = flops / GEMM_FLOPS_PER_SECOND[path] + logits * SECONDS_PER_LOGIT[path]
    seconds += indexed_pairs * SECONDS_PER_INDEXED_PAIR[path]
    build = 0.0
    if approximate and indexed and kind in ivf.IVF_KINDS:
        build = num_library * size * size * len(set(sizes[exact:])) * SECONDS_PER_INDEX_BUILD_PATCH
    return Cost(
        flops=flops,
        peak_bytes=int(stored + working),
        seconds_estimate=seconds,
        logits=logits + indexed_pairs,
        index_build_seconds=build,
    )
