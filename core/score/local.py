"""The local machines ``ls``, ``els`` and ``bbels`` (see :mod:`core.score.kinds` for the groups).

Three ways to get the logits of a group bucket:

* groups of one position (``ls``, corners of ``bbels``): the patch dot product
  ``⟨Ω_p(x), Ω_p(φ)⟩`` is a box sum of ``x ⊙ φ`` over the patch window, computed for every pixel
  at once with float64 integral images, whatever the patch size;
* long edge buckets of ``bbels``: products of row strips (:func:`~core.score.products.edge_logits`);
* other groups: one ``baddbmm`` of the gathered query patches with the gathered library patches.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from core.score.kinds import PADDING, GroupBucket, group_buckets
from core.score.memory import ChunkPlan
from core.score.products import box_sum, edge_kind, edge_logits, use_edge_product
from core.score.result import CancelCheck, DenoiseResult, raise_if_cancelled
from core.score.tiles import GroupRun, row_tile, values_with_ones

logger = logging.getLogger(__name__)


def pad(images: torch.Tensor, patch_size: int, padding: str) -> torch.Tensor:
    r = patch_size // 2
    if r == 0:
        return images
    if padding == "circular":
        return F.pad(images, (r, r, r, r), mode="circular")
    return F.pad(images, (r, r, r, r))


def patch_grid(padded: torch.Tensor, patch_size: int) -> torch.Tensor:
    """View ``(H, W, N, C, P, P)`` of the patches centred on every pixel (no copy)."""
    return padded.unfold(2, patch_size, 1).unfold(3, patch_size, 1).permute(2, 3, 0, 1, 4, 5)


def gather(grid: torch.Tensor, bucket: GroupBucket) -> torch.Tensor:
    """``(H, W, N, ...)`` -> ``(G, S·N, ...)`` rows ordered (position, image); one copy."""
    picked = grid[bucket.row_index, bucket.col_index]  # (n_r, n_c, s_r, s_c, N, ...)
    return picked.reshape(bucket.groups, bucket.size * grid.shape[2], *grid.shape[3:])


def _as_range(index: torch.Tensor) -> tuple[int, int] | None:
    """``(start, stop)`` when ``index`` holds consecutive positions, else None."""
    flat = index.flatten()
    start, count = int(flat[0]), flat.numel()
    if torch.equal(flat, torch.arange(start, start + count, device=flat.device)):
        return start, start + count
    return None


def gather_into(grid: torch.Tensor, bucket: GroupBucket, out: torch.Tensor) -> None:
    """:func:`gather` of ``(H, W, N, C, P, P)`` patches into ``out`` ``(G, S·N, C·P·P)`` (may be strided).

    Groups over a block of consecutive rows and columns (every group of ``bbels`` and ``els``) are
    copied straight from the patch view, without the intermediate copy of :func:`gather`.
    """
    n_r, n_c = bucket.row_index.shape[0], bucket.col_index.shape[1]
    row_ranges = [_as_range(bucket.row_index[i]) for i in range(n_r)]
    col_ranges = [_as_range(bucket.col_index[:, j]) for j in range(n_c)]
    if any(r is None for r in row_ranges) or any(c is None for c in col_ranges):
        out.copy_(gather(grid, bucket).view(out.shape))
        return
    for i, rows in enumerate(row_ranges):
        for j, cols in enumerate(col_ranges):
            assert rows is not None and cols is not None
            block = grid[rows[0] : rows[1], cols[0] : cols[1]]  # (s_r, s_c, N, C, P, P) view
            out[i * n_c + j].unflatten(0, block.shape[:3]).unflatten(-1, block.shape[3:]).copy_(block)


def local_score(
    x: torch.Tensor,
    library: torch.Tensor,
    ab: float,
    kind: str,
    patch_size: int,
    plan: ChunkPlan,
    should_cancel: CancelCheck | None,
    singles_only: bool = False,
) -> DenoiseResult:
    """The machine's estimate of every pixel. With ``singles_only`` only the pixels whose class has
    a single position (all of ``ls``, the corners of ``bbels``) are computed; the others are left
    uninitialised for the caller to fill (:mod:`core.score.ivf`)."""
    batch, channels, height, width = x.shape
    num = library.shape[0]
    padding = PADDING[kind]
    a, c = math.sqrt(ab), 1.0 / (2.0 * (1.0 - ab))
    dim = channels * patch_size * patch_size
    x_pad = pad(x, patch_size, padding)
    x_grid = patch_grid(x_pad, patch_size)
    buckets = [b.to(x.device) for b in group_buckets(kind, height, width, patch_size)]
    singles = [b for b in buckets if b.size == 1]
    multis = [b for b in buckets if b.size > 1 and not singles_only]
    # Positions of all single-position groups, handled together by box sums.
    single_flat = torch.cat([b.flat.reshape(-1) for b in singles]) if singles else None
    single_run = GroupRun(x.new_empty(single_flat.numel(), batch, 1), channels, batch, 1) if singles else None

    multi_runs = []
    for bucket in multis:
        if use_edge_product(bucket, patch_size):
            multi_runs.append(GroupRun(x.new_empty(bucket.groups, bucket.size * batch, 1), channels, 1 << 62, 1))
            continue
        q = gather(x_grid, bucket).reshape(bucket.groups, bucket.size * batch, dim).mul_(2.0 * a * c)
        rows = row_tile(bucket.groups, q.shape[1], plan.images_per_chunk * bucket.size, plan.tile_elements)
        multi_runs.append(GroupRun(q, channels, rows, plan.tile_elements))

    for start in range(0, num, plan.images_per_chunk):
        raise_if_cancelled(should_cancel)
        chunk = library[start : start + plan.images_per_chunk]
        n = chunk.shape[0]
        lib_pad = pad(chunk, patch_size, padding)
        squares = box_sum(lib_pad * lib_pad, patch_size).sum(1).to(x.dtype)  # (n, H, W) ‖φ‖²
        centres = chunk.permute(2, 3, 0, 1)  # (H, W, n, C)
        if single_run is not None:
            assert single_flat is not None
            dots = box_sum(x_pad.unsqueeze(1) * lib_pad.unsqueeze(0), patch_size).sum(2)  # (B, n, H, W)
            logits = dots.mul_(2.0 * a * c).sub_(squares.unsqueeze(0), alpha=a * a * c).to(x.dtype)
            logits = logits.view(batch, n, height * width).permute(2, 0, 1)[single_flat].contiguous()
            cen = centres.reshape(height * width, n, channels)[single_flat]
            single_run.add_logits(logits, values_with_ones(cen), lambda arg, start=start: arg + start)
        if not multis:
            continue
        lib_grid = patch_grid(lib_pad, patch_size)
        sq_grid = squares.permute(1, 2, 0)  # (H, W, n)
        for bucket, run in zip(multis, multi_runs, strict=True):
            size = bucket.size
            values = values_with_ones(gather(centres, bucket))

            def to_global(arg: torch.Tensor, n: int = n, start: int = start, size: int = size) -> torch.Tensor:
                position = torch.div(arg, n, rounding_mode="floor")
                return (start + arg - position * n) * size + position

            edge = edge_kind(bucket)
            if use_edge_product(bucket, patch_size):
                raise_if_cancelled(should_cancel)
                if edge == "rows":
                    rows, cols, images, sq = bucket.row_index, bucket.col_index, (x_pad, lib_pad), squares
                else:
                    rows, cols = bucket.col_index, bucket.row_index
                    images, sq = (x_pad.transpose(2, 3), lib_pad.transpose(2, 3)), squares.transpose(1, 2)
                inner = cols.flatten()
                logits = edge_logits(
                    *images, sq, rows.flatten().tolist(), int(inner[0]), inner.numel(), patch_size, a, c
                )
                run.add_logits(logits, values, to_global)
                continue
            # [φ, bias, 1] columns of the augmented GEMM (see GroupRun), with one copy of the patches.
            library_aug = x.new_empty(bucket.groups, size * n, dim + 2)
            gather_into(lib_grid, bucket, library_aug[..., :dim])
            torch.mul(gather(sq_grid, bucket), -a * a * c, out=library_aug[..., dim])
            library_aug[..., dim + 1] = 1.0
            run.add_augmented(library_aug, values, to_global, should_cancel)

    x0 = x.new_empty(batch, channels, height * width)
    entropy = x.new_empty(batch, height * width)
    sources = torch.empty(batch, height * width, 3, dtype=torch.long, device=x.device)
    if single_run is not None:
        assert single_flat is not None
        means, best, ent = single_run.results()  # (P1, B, C), (P1, B), (P1, B)
        x0[:, :, single_flat] = means.permute(1, 2, 0)
        entropy[:, single_flat] = ent.t()
        rows, cols = (single_flat // width).unsqueeze(1), (single_flat % width).unsqueeze(1)
        src = torch.stack([best, rows.expand_as(best), cols.expand_as(best)], dim=-1)  # (P1, B, 3)
        sources[:, single_flat] = src.transpose(0, 1)
    for bucket, run in zip(multis, multi_runs, strict=True):
        groups, size = bucket.groups, bucket.size
        index = bucket.flat.reshape(-1)
        means, best, ent = run.results()  # rows ordered (position, sample)
        x0[:, :, index] = means.view(groups, size, batch, channels).permute(2, 3, 0, 1).reshape(batch, channels, -1)
        entropy[:, index] = ent.view(groups, size, batch).permute(2, 0, 1).reshape(batch, -1)
        image = torch.div(best, size, rounding_mode="floor")
        position = torch.gather(bucket.flat, 1, best - image * size)  # library pixel of the best patch
        src = torch.stack([image, position // width, position % width], dim=-1)  # (G, S·B, 3)
        sources[:, index] = src.view(groups, size, batch, 3).permute(2, 0, 1, 3).reshape(batch, -1, 3)
    return DenoiseResult(
        x0=x0.view(batch, channels, height, width),
        sources=sources.view(batch, height, width, 3),
        entropy=entropy.view(batch, height, width),
    )
