"""The exact local machines through per-offset box sums: a cost per pair that does not grow with ``P``.

For a fixed offset ``d`` between a query pixel ``p`` and a library position ``q = p + d``, the patch
inner product ``⟨Ω_p(x), Ω_q(φ)⟩`` is the sum, over the ``P×P`` window at ``p``, of the product
image ``Z_d(y) = Σ_c x(c, y) φ(c, y + d)``. Box sums of ``Z_d`` give it for every ``p`` of a
rectangle at once, so every (pixel, library position) pair costs ``O(C)`` whatever the patch size:
the way fast non-local means works (Darbon et al. 2008), the local machines being non-local means
against a library. Squared norms of library patches are box sums of ``φ²`` in the same way.

Which offsets a pixel may use follows :mod:`core.score.kinds`, written here as *descriptors*: a
query rectangle, where the library windows of its pixels start and which library position they
read. Per axis a kind has runs of positions: *exact* runs (each position only matches itself: all
of ``ls``, the border rows and columns of ``bbels``), *shared* runs (every position matches every
other of its run: the interior of ``bbels``) and the *circular* run of ``els`` (every position,
wrapping around).

Two implementations with the same results up to float32 rounding: the native kernel
(``mosaic_offsets`` in ``fold.c``: running sums in float64 down the columns, the softmax folded as
the logits come out) and a PyTorch version (float64 integral images per offset), used without the
kernel.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from core.score import native
from core.score.products import box_sum
from core.score.result import CancelCheck, DenoiseResult, raise_if_cancelled
from core.score.streaming import LOGIT_FLOOR

logger = logging.getLogger(__name__)

#: Library images per kernel call are chosen so that one call handles about this many pairs: the
#: run stays cancellable every fraction of a second.
PAIRS_PER_CALL = 200_000_000
#: At most this much working memory per library chunk (more is not faster: the kernel's work is per
#: image), and the float64 norm sums of at most NORM_IMAGES images at a time.
CHUNK_BYTES = 48 * 1024**2
NORM_IMAGES = 16
#: Readable zero columns after every row of the windows: the kernel reads whole vectors of 16.
SLACK = 16
#: Columns of padding after every row of the softmax state, library norms and centres: the kernel
#: folds whole vectors of 8 pixels, the lanes past a row's end without weight.
STATE_PAD = 8


@dataclass(frozen=True)
class Run:
    """Positions ``[start, stop)`` of one axis; ``mode`` "exact", "shared" or "circular"."""

    start: int
    stop: int
    mode: str


def axis_runs(kind: str, length: int, patch_size: int) -> list[Run]:
    """The runs of one axis (see the module docstring), covering every position once."""
    if kind == "ls":
        return [Run(0, length, "exact")]
    if kind == "els":
        return [Run(0, length, "circular")]
    if kind != "bbels":
        raise ValueError(f"no offsets for kind {kind!r}")
    r = patch_size // 2
    if 2 * r >= length:
        return [Run(0, length, "exact")]
    runs = [Run(r, length - r, "shared")]
    if r:
        runs = [Run(0, r, "exact"), *runs, Run(length - r, length, "exact")]
    return runs


def _axis_offsets(run: Run, length: int) -> list[tuple[int, int, int, int, int]]:
    """``(p0, p1, window_offset, position_offset, wrap)`` for every offset of one axis run."""
    if run.mode == "exact":
        return [(run.start, run.stop, 0, 0, 0)]
    if run.mode == "circular":
        return [(0, length, d, d, 1) for d in range(length)]
    size = run.stop - run.start
    result = []
    for d in range(-(size - 1), size):
        p0, p1 = max(run.start, run.start - d), min(run.stop, run.stop - d)
        result.append((p0, p1, d, d, 0))
    return result


@dataclass(frozen=True)
class OffsetPlan:
    """The descriptors of one kind, image size and patch size.

    ``descriptors`` ``(K, 9)`` int64: query rows ``[py0, py1)`` and columns ``[px0, px1)``, the
    start of the library window of pixel ``p`` at ``p + (woy, wox)`` (in the coordinates of
    :func:`library_windows`), the library position ``q = p + (qoy, qox)``, and ``wrap`` (``q``
    wraps around the image: ``els``). ``pairs``: (pixel, library position) pairs per sample and
    library image; ``region``: product-image elements computed per sample and library image;
    ``rows``: query rows of all descriptors (each costs a fixed overhead in the kernel).
    """

    kind: str
    height: int
    width: int
    patch_size: int
    descriptors: torch.Tensor
    pairs: int
    region: int
    rows: int


@lru_cache(maxsize=64)
def offset_plan(kind: str, height: int, width: int, patch_size: int) -> OffsetPlan:
    rows = [(run, _axis_offsets(run, height)) for run in axis_runs(kind, height, patch_size)]
    cols = [(run, _axis_offsets(run, width)) for run in axis_runs(kind, width, patch_size)]
    descriptors = []
    pairs = region = query_rows = 0
    p = patch_size
    for _, row_offsets in rows:
        for _, col_offsets in cols:
            for py0, py1, woy, qoy, wrap_y in row_offsets:
                for px0, px1, wox, qox, wrap_x in col_offsets:
                    descriptors.append((py0, py1, px0, px1, woy, wox, qoy, qox, wrap_y | wrap_x))
                    pairs += (py1 - py0) * (px1 - px0)
                    region += (py1 - py0 + p - 1) * (px1 - px0 + p - 1)
                    query_rows += py1 - py0
    table = torch.tensor(descriptors, dtype=torch.int64).view(-1, 9)
    return OffsetPlan(kind, height, width, patch_size, table, pairs, region, query_rows)


def border_descriptors(plan: OffsetPlan) -> torch.Tensor:
    """The descriptors of ``plan`` outside ``bbels``'s shared block (interior pixels against interior
    positions), which :func:`core.score.native.shared` folds on its own."""
    r = plan.patch_size // 2
    d = plan.descriptors
    inside = (d[:, 0] >= r) & (d[:, 1] <= plan.height - r) & (d[:, 2] >= r) & (d[:, 3] <= plan.width - r)
    return d[~inside].contiguous()


def _circular_index(length: int, before: int, total: int) -> torch.Tensor:
    return (torch.arange(total) - before) % length


def query_windows(x: torch.Tensor, kind: str, patch_size: int) -> torch.Tensor:
    """``x`` padded so that the window of pixel ``p`` starts at ``p`` (circularly for ``els``)."""
    r = patch_size // 2
    if kind != "els":
        return F.pad(x, (r, r + SLACK, r, r)).contiguous()
    h, w = x.shape[-2:]
    rows = _circular_index(h, r, h + patch_size - 1).to(x.device)
    cols = _circular_index(w, r, w + patch_size - 1).to(x.device)
    return F.pad(x[..., rows, :][..., cols], (0, SLACK)).contiguous()


def library_windows(library: torch.Tensor, kind: str, patch_size: int) -> torch.Tensor:
    """Library images in the window coordinates of the descriptors: zero-padded by ``P // 2``, or
    for ``els`` tiled so that the window at ``p + d`` (``0 ≤ d < H``) is the circular window at
    ``(p + d) mod H``."""
    r = patch_size // 2
    if kind != "els":
        return F.pad(library, (r, r + SLACK, r, r)).contiguous()
    h, w = library.shape[-2:]
    rows = _circular_index(h, r, 2 * h + patch_size - 1).to(library.device)
    cols = _circular_index(w, r, 2 * w + patch_size - 1).to(library.device)
    return F.pad(library[..., rows, :][..., cols], (0, SLACK)).contiguous()


def patch_norms(library: torch.Tensor, kind: str, patch_size: int) -> torch.Tensor:
    """``(N, H, W)`` squared norm of the library patch centred at every position (float64 sums of
    the channels' squares, :data:`NORM_IMAGES` images at a time)."""
    parts = []
    for start in range(0, library.shape[0], NORM_IMAGES):
        squares = library[start : start + NORM_IMAGES].to(torch.float64).square_().sum(1, keepdim=True)
        padded = query_windows(squares, kind, patch_size)[..., : library.shape[-1] + patch_size - 1]
        parts.append(box_sum(padded, patch_size)[:, 0].to(torch.float32))
    return torch.cat(parts).contiguous()


def bytes_per_image(channels: int, height: int, width: int, patch_size: int, kind: str) -> int:
    """Working memory per library image of one chunk: its windows, centres and norms (float32)."""
    grow = 2 if kind == "els" else 1
    windows = channels * (grow * height + patch_size) * (grow * width + patch_size + SLACK)
    return 4 * (windows + (channels + 1) * height * (width + STATE_PAD))


def chunk_images(channels: int, height: int, width: int, patch_size: int, kind: str, budget_bytes: int) -> int:
    """Library images per chunk: within ``budget_bytes`` and :data:`CHUNK_BYTES`, at least one."""
    per_image = bytes_per_image(channels, height, width, patch_size, kind)
    return max(1, min(budget_bytes, CHUNK_BYTES) // per_image)


def working_bytes(
    batch: int, channels: int, height: int, width: int, patch_size: int, kind: str, images: int
) -> int:
    """Peak working memory of one evaluation with ``images`` library images per chunk: the chunk
    (twice: padding and indexing make a copy before the windows), the norm sums of
    :data:`NORM_IMAGES` images, the queries, the state and the kernel's scratch."""
    padded = channels * (height + patch_size) * (width + patch_size + SLACK)
    norm_sums = NORM_IMAGES * padded * (4 + 3 * 8)
    state = batch * (channels + 4) * height * (width + STATE_PAD) * 4
    threads = torch.get_num_threads()
    scratch = 4 * threads * scratch_floats(height, width, patch_size)
    if kind == "bbels":  # the shared block's kernel: its scratch, and a state per thread when it splits the library
        scratch += 4 * threads * shared_scratch_floats(height, width, patch_size) + threads * state
    chunk = 2 * images * bytes_per_image(channels, height, width, patch_size, kind)
    return chunk + norm_sums + 2 * state + scratch


def shared_scratch_floats(height: int, width: int, patch_size: int) -> int:
    """Floats of scratch space per thread of the shared-block kernel (``mosaic_shared_scratch``)."""
    group, pad, restart, max_channels = 4, 16, 16, 4  # SHARED_GROUP, SPAD, RESTART_D, SHARED_MAX_CHANNELS
    size = width - 2 * (patch_size // 2)
    a = size + patch_size - 1
    stride = -(-(pad + a + 32) // 16) * 16
    drow = -(-(size + restart + 16) // 16) * 16
    seg = -(-size // 16) * 16 * group + 16
    return group * (a * stride + 2 * drow) + (2 + max_channels) * seg + 64


@dataclass(frozen=True)
class SharedWork:
    """The work of ``bbels``'s shared block per sample and library image (:func:`core.score.native.shared`):
    ``columns`` column sums moved down a row (``rows of pairs × a² × C``), ``pairs`` (pixel, position)
    pairs, and the rest of the plan (``border``: region, pairs and rows of the other descriptors)."""

    columns: int
    pairs: int
    border_region: int
    border_pairs: int
    border_rows: int


@lru_cache(maxsize=64)
def shared_work(height: int, width: int, channels: int, patch_size: int) -> SharedWork:
    plan = offset_plan("bbels", height, width, patch_size)
    r = patch_size // 2
    sy, sx = height - 2 * r, width - 2 * r
    a = sx + patch_size - 1
    border = border_descriptors(plan)
    rows, cols = border[:, 1] - border[:, 0], border[:, 3] - border[:, 2]
    p = patch_size - 1
    return SharedWork(
        columns=sy * sy * a * a * channels,
        pairs=sy * sy * sx * sx,
        border_region=int(((rows + p) * (cols + p)).sum()),
        border_pairs=int((rows * cols).sum()),
        border_rows=int(rows.sum()),
    )


def scratch_floats(height: int, width: int, patch_size: int) -> int:
    """Floats of scratch space per thread of the kernel (``mosaic_offsets_scratch`` in ``fold.c``)."""
    zcap, lcap = 131072, 8192  # ZCAP and LCAP in fold.c
    region = max(zcap, (height + patch_size - 1) * (width + patch_size - 1 + 32))
    row = max(lcap, width + patch_size - 1 + 32)
    return region + 6 * (row + 32) + 64


class PixelSoftmax:
    """Running softmax state of every pixel of a batch: ``m, s, t`` ``(B, H, W + 8)``, ``v``
    ``(B, C, H, W + 8)``, ``best`` (``image · H · W + q``); the last :data:`STATE_PAD` columns are
    padding. Same meaning as :class:`core.score.streaming.StreamingSoftmax`, laid out by pixel."""

    def __init__(self, batch: int, channels: int, height: int, width: int, like: torch.Tensor) -> None:
        wide = width + STATE_PAD
        self.m = like.new_full((batch, height, wide), torch.finfo(torch.float32).min)
        self.s = like.new_zeros(batch, height, wide)
        self.t = like.new_zeros(batch, height, wide)
        self.v = like.new_zeros(batch, channels, height, wide)
        self.best = torch.zeros(batch, height, wide, dtype=torch.long, device=like.device)

    def fold(self, rows: slice, cols: slice, logits: torch.Tensor, values: torch.Tensor, ids: torch.Tensor) -> None:
        """Fold ``logits`` ``(B, n, h, w)`` of the pixels ``[rows, cols]`` with the centres
        ``values`` ``(n, C, h, w)`` and ids ``(n, h, w)`` of their library positions."""
        chunk_max, chunk_arg = logits.max(dim=1)
        m_old = self.m[:, rows, cols]
        m_new = torch.maximum(m_old, chunk_max)
        rel = logits - m_new.unsqueeze(1)
        keep = rel >= LOGIT_FLOOR
        e = torch.where(keep, torch.exp(rel.clamp_min(LOGIT_FLOOR)), torch.zeros_like(rel))
        shift = m_old - m_new  # ≤ 0
        scale = torch.where(shift >= LOGIT_FLOOR, torch.exp(shift.clamp_min(LOGIT_FLOOR)), torch.zeros_like(shift))
        s_old = self.s[:, rows, cols]
        self.t[:, rows, cols] = scale * (self.t[:, rows, cols] + shift.clamp_min(LOGIT_FLOOR) * s_old) + (
            e * rel.clamp_min(LOGIT_FLOOR)
        ).sum(1)
        self.s[:, rows, cols] = scale * s_old + e.sum(1)
        weighted = torch.einsum("bnyx,ncyx->bcyx", e, values)
        self.v[:, :, rows, cols] = scale.unsqueeze(1) * self.v[:, :, rows, cols] + weighted
        improved = chunk_max > m_old
        picked = torch.gather(ids.unsqueeze(0).expand(logits.shape[0], -1, -1, -1), 1, chunk_arg.unsqueeze(1))[:, 0]
        self.best[:, rows, cols] = torch.where(improved, picked, self.best[:, rows, cols])
        self.m[:, rows, cols] = m_new


def _torch_chunk(
    state: PixelSoftmax,
    x_win: torch.Tensor,
    lib_win: torch.Tensor,
    norms: torch.Tensor,
    centres: torch.Tensor,
    plan: OffsetPlan,
    k1: float,
    k2: float,
    first_image: int,
) -> None:
    height, width, p = plan.height, plan.width, plan.patch_size
    n = lib_win.shape[0]
    image_ids = (torch.arange(n, device=x_win.device) + first_image) * (height * width)
    for py0, py1, px0, px1, woy, wox, qoy, qox, wrap in plan.descriptors.tolist():
        xs = x_win[:, :, py0 : py1 + p - 1, px0 : px1 + p - 1]
        ls = lib_win[:, :, py0 + woy : py1 + woy + p - 1, px0 + wox : px1 + wox + p - 1]
        product = torch.einsum("bcyx,ncyx->bnyx", xs.double(), ls.double())
        dots = box_sum(product, p)  # (B, n, h, w) float64
        q_rows = torch.arange(py0, py1, device=x_win.device) + qoy
        q_cols = torch.arange(px0, px1, device=x_win.device) + qox
        if wrap:
            q_rows, q_cols = q_rows % height, q_cols % width
        sq = norms[:, q_rows][:, :, q_cols]  # (n, h, w)
        logits = (dots * k1 - sq.double().unsqueeze(0) * k2).to(torch.float32)
        values = centres[:, :, q_rows][:, :, :, q_cols]
        ids = image_ids.view(n, 1, 1) + (q_rows.view(1, -1, 1) * width + q_cols.view(1, 1, -1))
        state.fold(slice(py0, py1), slice(px0, px1), logits, values, ids)


def offset_score(
    x: torch.Tensor,
    library: torch.Tensor,
    ab: float,
    kind: str,
    patch_size: int,
    images_per_chunk: int,
    should_cancel: CancelCheck | None,
    use_native: bool | None = None,
) -> DenoiseResult:
    """The machine's estimate of every pixel of ``x`` ``(B, C, H, W)`` (kinds ``ls``, ``els``,
    ``bbels``) against ``library`` ``(N, C, H, W)``; ``images_per_chunk`` bounds the working memory.
    ``use_native``: force the kernel (True) or the PyTorch version (False); default the kernel where
    it is available."""
    batch, channels, height, width = x.shape
    num = library.shape[0]
    plan = offset_plan(kind, height, width, patch_size)
    a, c = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab))
    k1, k2 = 2.0 * a * c, a * a * c
    if use_native is None:
        use_native = native.available(x.device)
    x_win = query_windows(x, kind, patch_size)
    state = PixelSoftmax(batch, channels, height, width, x)
    per_call = max(1, PAIRS_PER_CALL // max(1, plan.pairs * batch))
    step = max(1, min(images_per_chunk, per_call))
    descriptors = plan.descriptors
    shared = use_native and native.shared_applies(kind, channels, height, width, patch_size)
    if use_native:
        threads = torch.get_num_threads()
        scratch = x.new_empty(threads * native.offsets_scratch(height, width, patch_size))
        if shared:
            descriptors = border_descriptors(plan)
            shared_scratch = x.new_empty(threads * native.shared_scratch(height, width, patch_size))
    for start in range(0, num, step):
        raise_if_cancelled(should_cancel)
        chunk = library[start : start + step]
        if use_native:
            lib_win, norms, centres = native.library_chunk(chunk, patch_size, kind == "els", SLACK)
        else:
            lib_win = library_windows(chunk, kind, patch_size)
            norms = F.pad(patch_norms(chunk, kind, patch_size), (0, STATE_PAD)).contiguous()
            centres = F.pad(chunk, (0, STATE_PAD)).contiguous()
        if use_native:
            if shared:
                native.shared(x_win, lib_win, norms, centres, patch_size, k1, k2, start, state, shared_scratch)
            if descriptors.shape[0]:
                native.offsets(x_win, lib_win, norms, centres, descriptors, patch_size, k1, k2, start, state, scratch)
        else:
            _torch_chunk(state, x_win, lib_win, norms, centres, plan, k1, k2, start)
    s, t, v, best = state.s[..., :width], state.t[..., :width], state.v[..., :width], state.best[..., :width]
    x0 = v / s.unsqueeze(1)
    entropy = (torch.log(s) - t / s).clamp_min_(0.0)
    plane = height * width
    image = torch.div(best, plane, rounding_mode="floor")
    position = best - image * plane
    sources = torch.stack([image, position // width, position % width], dim=-1)
    return DenoiseResult(x0=x0.contiguous(), sources=sources, entropy=entropy.contiguous())
