"""Which way a local machine step computes its logits, decided by measured cost.

Two exact paths give the same results up to float32 rounding:

* ``"gemm"``: patch matrix products (:mod:`core.score.local`), ``2·C·P²`` flops per (pixel,
  library position) pair, fast BLAS, plus the per-logit fold;
* ``"offsets"``: per-offset box sums (:mod:`core.score.offsets`), ``O(C)`` per pair whatever ``P``,
  plus the product image around every rectangle (``region``: its ``P - 1`` extra rows and columns).

:func:`step_seconds` estimates both from constants fitted to measured steps on the 2-core
development CPU (``benchmarks/bench_local_paths.py``, BENCHMARKS.md); :func:`choose_path` picks
the cheaper one for every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from core.score import native
from core.score.kinds import group_buckets
from core.score.offsets import PAIRS_PER_CALL, offset_plan, shared_work

#: The GEMM path: seconds per flop, per logit and per step. Native: least squares over 40 els/bbels
#: steps at 16–64 px on ``photos``, ``faces`` and ``digits`` (``bench_local_paths.py``; every step
#: within ×0.45–×1.4 of its measured time, 137 GFLOP/s). PyTorch: the earlier fit to whole runs
#: without the kernels. A busy machine is several times slower.
GEMM_FLOPS_PER_SECOND = {"native": 137e9, "torch": 60e9}
SECONDS_PER_LOGIT = {"native": 2.3e-10, "torch": 2.2e-9}
GEMM_SECONDS_PER_STEP = {"native": 0.07, "torch": 0.07}
#: ``ls`` on the GEMM path compares each pixel with one position per image: a small product per
#: pixel, bound by copying patches, not by flops. Per (pixel, library image) pair, measured
#: 0.7e-7–2e-7 s at 32–128 px on ``digits`` and ``photos`` (2026-12-07, BENCHMARKS.md, issue 17):
#: the offsets path was 3–10× faster on every one of those steps, so with this term it is chosen.
LS_GEMM_SECONDS_PER_PAIR = {"native": 8e-8}


@dataclass(frozen=True)
class OffsetCosts:
    """Seconds of the offsets path per product-image element and channel (``region``), per pair,
    per pair weighted by the noise ``1 − ā`` (fewer logits fall below the floor at high noise, each
    costing an exp), per query row of a descriptor, and per step."""

    region: float
    pair: float
    noisy_pair: float
    row: float
    step: float
    #: ``bbels``'s shared block on the kernel (:class:`core.score.offsets.SharedWork`): per column sum
    #: moved down a row and channel, per pair, per pair weighted by the noise.
    shared_column: float = 0.0
    shared_pair: float = 0.0
    shared_noisy_pair: float = 0.0


#: Fitted like the GEMM path, per kind: non-negative least squares on relative error over 41 steps
#: per kind at 16–64 px on ``photos``, ``faces`` and ``digits`` after the kernel's fast fold path
#: (``bench_local_paths.py``, BENCHMARKS.md; every step within ×0.68–×1.17 of its measured time for
#: els). ls refitted after the library chunks moved into the kernel (2026-12-08, 45 steps on ``photos`` 32–128 px
#: and ``digits`` 32 and 128 px: ×0.37–×1.33 of the ``digits`` steps, median ×1.02). bbels, refitted with its
#: shared block on ``mosaic_shared`` (2026-12-07, 66
#: steps at 16–128 px on the three libraries, 128 px on 100 ``photos`` images): ×0.50–×1.36 of every
#: step but one 16 px ``digits`` step (×0.23), the 128 px steps ×0.62–×0.99 (fitted without them they
#: came out at half their time). PyTorch: 16 px
#: with 50 library images (mostly Python work
#: per descriptor and library chunk: only the fallback without a compiler; there the GEMM path
#: nearly always wins, and always for ``ls``).
OFFSET_COSTS = {
    ("native", "ls"): OffsetCosts(region=4.39e-10, pair=1.44e-9, noisy_pair=1.12e-9, row=3.8e-8, step=0.000945),
    ("native", "els"): OffsetCosts(region=3.1e-11, pair=1.7e-10, noisy_pair=5.6e-10, row=1.5e-8, step=0.0),
    ("native", "bbels"): OffsetCosts(
        region=3.31e-10, pair=0.0, noisy_pair=2.63e-10, row=4.36e-8, step=0.00148,
        shared_column=1.95e-11, shared_pair=4.05e-10, shared_noisy_pair=5.07e-10,
    ),
    ("torch", "els"): OffsetCosts(region=1.3e-9, pair=1.6e-8, noisy_pair=0.0, row=0.0, step=0.0),
    ("torch", "bbels"): OffsetCosts(region=1.3e-9, pair=1.6e-8, noisy_pair=0.0, row=0.0, step=0.0),
}
#: The PyTorch offsets path: seconds per descriptor and library chunk.
TORCH_SECONDS_PER_DESCRIPTOR = 3.7e-4


def implementation(device: torch.device | None = None) -> str:
    """``"native"`` where the kernel runs (CPU with a compiler), else ``"torch"``."""
    return "native" if native.available(device or torch.device("cpu")) else "torch"


@dataclass(frozen=True)
class StepShape:
    """What one machine evaluation's cost depends on: the kind, the image (``height × width``,
    ``channels``), the samples (``batch``), the library images it compares with and the patch size."""

    kind: str
    height: int
    width: int
    channels: int
    batch: int
    num_library: int
    patch_size: int


def gemm_work(shape: StepShape, max_patches: int | None = None) -> tuple[float, float]:
    """``(flops, pairs)`` of one evaluation on the GEMM path: ``2·queries·patches·C·P²`` and the
    (pixel, library patch) pairs; ``max_patches`` caps the patches a pixel of a shared class
    compares with (the patch index's probes)."""
    dim = shape.channels * shape.patch_size * shape.patch_size
    pairs = 0.0
    for bucket in group_buckets(shape.kind, shape.height, shape.width, shape.patch_size):
        patches = shape.num_library * bucket.size
        if max_patches is not None and bucket.size > 1:
            patches = min(patches, max_patches)
        pairs += float(bucket.groups) * (shape.batch * bucket.size) * patches
    return 2.0 * dim * pairs, pairs


def offset_features(shape: StepShape, impl: str = "native", alpha_bar: float = 0.5) -> dict[str, float]:
    """The work of one evaluation on the offsets path, by :class:`OffsetCosts` term (all samples and
    library images): ``bbels`` on the kernel folds its shared block apart (``shared_*``), the rest
    by descriptors."""
    images = shape.batch * shape.num_library
    shared: dict[str, float] = {}
    if impl == "native" and native.shared_applies(
        shape.kind, shape.channels, shape.height, shape.width, shape.patch_size
    ):
        work = shared_work(shape.height, shape.width, shape.channels, shape.patch_size)
        region, pairs, rows = work.border_region, work.border_pairs, work.border_rows
        shared = {
            "shared_column": images * work.columns,
            "shared_pair": images * work.pairs,
            "shared_noisy_pair": images * work.pairs * (1.0 - alpha_bar),
        }
    else:
        plan = offset_plan(shape.kind, shape.height, shape.width, shape.patch_size)
        region, pairs, rows = plan.region, plan.pairs, plan.rows
    return {
        "region": images * region * shape.channels,
        "pair": images * pairs,
        "noisy_pair": images * pairs * (1.0 - alpha_bar),
        "row": images * rows,
        **shared,
    }


def step_seconds(shape: StepShape, impl: str = "native", alpha_bar: float = 0.5) -> dict[str, float]:
    """Estimated seconds of one evaluation at noise level ``alpha_bar`` on each path (``impl``: see
    :func:`implementation`). Kinds without fitted offsets costs (``is``; ``ls`` on the PyTorch
    fallback) are costed on the GEMM path only."""
    flops, pairs = gemm_work(shape)
    gemm = flops / GEMM_FLOPS_PER_SECOND[impl] + pairs * SECONDS_PER_LOGIT[impl] + GEMM_SECONDS_PER_STEP[impl]
    if shape.kind == "ls":
        gemm += pairs * LS_GEMM_SECONDS_PER_PAIR.get(impl, 0.0)
    if (impl, shape.kind) not in OFFSET_COSTS:
        return {"gemm": gemm, "offsets": float("inf")}
    costs = OFFSET_COSTS[(impl, shape.kind)]
    features = offset_features(shape, impl, alpha_bar)
    offsets = sum(getattr(costs, name) * value for name, value in features.items()) + costs.step
    if impl == "torch":
        plan = offset_plan(shape.kind, shape.height, shape.width, shape.patch_size)
        per_call = max(1, PAIRS_PER_CALL // max(1, plan.pairs * shape.batch))
        offsets += plan.descriptors.shape[0] * math.ceil(shape.num_library / per_call) * TORCH_SECONDS_PER_DESCRIPTOR
    return {"gemm": gemm, "offsets": offsets}


def choose_path(shape: StepShape, device: torch.device | None = None, alpha_bar: float = 0.5) -> str:
    """The path with the lower :func:`step_seconds`. Always the GEMM path off the CPU (where BLAS
    rules)."""
    if device is not None and device.type != "cpu":
        return "gemm"
    seconds = step_seconds(shape, implementation(device), alpha_bar)
    return min(seconds, key=seconds.__getitem__)
