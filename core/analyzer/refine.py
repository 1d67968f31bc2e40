"""Offset refinement: votes come from a coarse patch grid, so a candidate's offset can be a pixel or two off.

For every candidate, all offsets within ``radius`` pixels are scored at once: the local (windowed)
correlation of the query's structure channels with the shifted library image, summed over textured
pixels where it exceeds 0.5 (on a 4-pixel grid of window centres). Windows must lie inside the query and the
library image. Library-side
window statistics are computed once per candidate on an enlarged patch and sliced per offset, so only
the cross term needs a box filter per offset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

_ELEMENTS = 2_000_000  # floats of the enlarged library patches per chunk
_STEP = 4  # offsets are scored on every 4th pixel of every 4th row (windows still cover all pixels)


def ncc_floor(channels: int, flat_std: float) -> float:
    """Variance added to both sides of a local correlation, so that flat windows do not correlate."""
    return channels * (flat_std * 0.7) ** 2


def shifted(lib: torch.Tensor, dy: int, dx: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``lib`` (C, S, S) sampled at (y + dy, x + dx) for a (height, width) grid, and a validity mask."""
    channels, size_y, size_x = lib.shape
    out = torch.zeros(channels, height, width)
    valid = torch.zeros(1, height, width)
    y0, y1 = max(0, -dy), min(height, size_y - dy)
    x0, x1 = max(0, -dx), min(width, size_x - dx)
    if y1 > y0 and x1 > x0:
        out[:, y0:y1, x0:x1] = lib[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
        valid[:, y0:y1, x0:x1] = 1.0
    return out, valid


def box_valid(x: torch.Tensor, window: int, stride: int = 1) -> torch.Tensor:
    """Means over ``window``×``window`` windows lying fully inside the last two dims (no padding), every
    ``stride`` pixels."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-2], shape[-1])
    pooled = F.avg_pool2d(flat, (window, 1), stride=(stride, 1))
    pooled = F.avg_pool2d(pooled, (1, window), stride=(1, stride))
    return pooled.reshape(shape[:-2] + pooled.shape[-2:])


def cross_means(ext: torch.Tensor, query: torch.Tensor, window: int, radius: int, step: int) -> torch.Tensor:
    """Windowed means of ``query`` times ``ext`` shifted by every offset within ``radius``, summed over
    channels, on the grid of :func:`box_valid` (``window``, ``step``): (K, ny, nx, 2·radius + 1, 2·radius + 1),
    entry ``[..., radius + a, radius + b]`` for the offset (a, b).

    ``ext`` (K, C, H + 2·radius, W + 2·radius): the library side, enlarged by ``radius`` on every side;
    ``query`` (C, H, W), or (K, C, H, W): one per candidate. One depthwise convolution of every grid window of
    the query with its enlarged window in ``ext`` gives all the offsets at once (4x faster than a product image
    and box filter per offset)."""
    count, channels = ext.shape[:2]
    height, width = query.shape[-2:]
    ny, nx = (height - window) // step + 1, (width - window) // step + 1
    big = window + 2 * radius
    cells = ny * nx
    patches = F.unfold(ext, big, stride=step)  # (K, C * big * big, cells)
    patches = patches.view(count, channels, big, big, cells).permute(0, 1, 4, 2, 3)
    patches = patches.reshape(count, channels * cells, big, big)
    batched = query.dim() == 4
    windows = F.unfold(query if batched else query[None], window, stride=step)  # (K or 1, C * window², cells)
    windows = windows.view(-1, channels, window, window, cells).permute(0, 1, 4, 2, 3)
    windows = windows.reshape(-1, 1, window, window)  # (K or 1 · C · cells, 1, window, window)
    if batched:  # every candidate its own windows: one group per (candidate, channel, cell)
        sums = F.conv2d(patches.reshape(1, count * channels * cells, big, big), windows,
                        groups=count * channels * cells)
    else:
        sums = F.conv2d(patches, windows, groups=channels * cells)  # (K, C * cells, 2r + 1, 2r + 1)
    sums = sums.view(count, channels, ny, nx, 2 * radius + 1, 2 * radius + 1).sum(dim=1)
    return sums / float(window * window)


def windows_at(
    maps: torch.Tensor, starts: list[tuple[int, int]], size: tuple[int, int], fill: float = 0.0
) -> torch.Tensor:
    """(..., H, W) -> (K, ..., h, w): the ``size`` window at every (top, left) of ``starts`` (which may lie
    outside the maps), ``fill`` outside them."""
    h, w = size
    height, width = maps.shape[-2:]
    top = max(0, -min(y for y, _ in starts))
    left = max(0, -min(x for _, x in starts))
    bottom = max(0, max(y for y, _ in starts) + h - height)
    right = max(0, max(x for _, x in starts) + w - width)
    padded = F.pad(maps, (left, right, top, bottom), value=fill)
    return torch.stack([padded[..., y + top : y + top + h, x + left : x + left + w] for y, x in starts])


def _at_offsets(stats: torch.Tensor, side: int, step: int, ny: int, nx: int) -> torch.Tensor:
    """(..., H', W') stride-1 window means -> (..., ny, nx, side, side): entry [i, j, radius + a, radius + b] is
    the window of grid cell (i, j) (every ``step`` pixels) moved by (a, b)."""
    return stats.unfold(-2, side, step).unfold(-2, side, step)[..., :ny, :nx, :, :]


def _offsets(radius: int) -> list[tuple[int, int]]:
    """Offsets within ``radius``, the unshifted one first (so ties keep the voted offset)."""
    rest = [(a, b) for a in range(-radius, radius + 1) for b in range(-radius, radius + 1) if (a, b) != (0, 0)]
    return [(0, 0)] + rest


def _cells(
    keys: list[tuple[int, int, int]],
    library: Callable[[int], torch.Tensor],
    window: int,
    radius: int,
    step: int,
    height: int,
    width: int,
) -> tuple[list[tuple[int, int]], tuple[int, int]] | None:
    """The grid cells each candidate's library picture can fill (a window lies inside it for some offset
    within ``radius``), when the pictures are all one size and those cells cover at most half the query: the
    first cell (may lie outside the grid) of each, and how many per side. None: the whole grid for all."""
    shapes = {tuple(library(row).shape[-2:]) for row, _, _ in keys}
    if len(shapes) != 1:
        return None
    side_h, side_w = shapes.pop()
    count_y = (side_h - window + 2 * radius) // step + 2
    count_x = (side_w - window + 2 * radius) // step + 2
    if min(count_y, count_x) < 1:
        return None
    if 2 * (step * (count_y - 1) + window) * (step * (count_x - 1) + window) > height * width:
        return None
    # the first cell whose window, moved by up to radius, starts inside the picture: ceil((-d - radius) / step)
    starts = [(-((dy + radius) // step), -((dx + radius) // step)) for _, dy, dx in keys]
    return starts, (count_y, count_x)


def refine_offsets(
    query: torch.Tensor,
    library: Callable[[int], torch.Tensor],
    keys: list[tuple[int, int, int]],
    textured: torch.Tensor,
    window: int,
    radius: int,
    flat_std: float,
    crop: bool = True,
) -> tuple[list[tuple[int, int, int]], list[float]]:
    """Best key within ``radius`` of each of ``keys`` and its score (0: no textured pixel correlates).

    ``query``: (Cs, H, W) structure channels; ``library(row)``: (Cs, S, S) structure of a library image;
    ``textured``: (H, W) bool, pixels with some contrast. ``crop``: library pictures much smaller than the
    query (the library at a reduced size) are scored on the grid cells they can cover only (:func:`_cells`; the
    same scores, the other cells add nothing); False: always on the whole grid.
    """
    channels, height, width = query.shape
    r = window // 2
    inner_h, inner_w = height - 2 * r, width - 2 * r
    if not keys or inner_h <= 0 or inner_w <= 0:
        return list(keys), [1.0] * len(keys)
    offsets = _offsets(radius)
    eps = ncc_floor(channels, flat_std)
    step = _STEP
    m_q = box_valid(query, window, step)
    var_q = (box_valid(query * query, window, step) - m_q**2).clamp_min(0).sum(dim=0)
    weight = textured[r : height - r : step, r : width - r : step].float()
    big_h, big_w = height + 2 * radius, width + 2 * radius
    chunk = max(1, _ELEMENTS // (channels * big_h * big_w))
    out_keys: list[tuple[int, int, int]] = []
    out_scores: list[float] = []
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        cells = _cells(part, library, window, radius, step, height, width) if crop else None
        if cells is None:  # every candidate over the whole query
            pairs = [shifted(library(row), dy - radius, dx - radius, big_h, big_w) for row, dy, dx in part]
            q, part_m_q, part_var_q, part_weight = query, m_q[None], var_q[None], weight[None]
        else:  # every candidate over the grid cells its picture can cover (the same scores: others add 0)
            starts, (count_y, count_x) = cells
            size = (step * (count_y - 1) + window, step * (count_x - 1) + window)
            pairs = [shifted(library(row), dy - radius + step * i, dx - radius + step * j, size[0] + 2 * radius,
                             size[1] + 2 * radius) for (row, dy, dx), (i, j) in zip(part, starts, strict=True)]
            q = windows_at(query, [(step * i, step * j) for i, j in starts], size)
            part_m_q = windows_at(m_q, starts, (count_y, count_x))
            part_var_q = windows_at(var_q, starts, (count_y, count_x))
            part_weight = windows_at(weight, starts, (count_y, count_x))
        ext = torch.stack([p[0] for p in pairs])  # (K, Cs, big_h, big_w)
        m_l = box_valid(ext, window)
        m_ll = box_valid(ext * ext, window)
        m_v = box_valid(torch.stack([p[1] for p in pairs]), window)[:, 0]
        side = 2 * radius + 1
        cross = cross_means(ext, q, window, radius, step)  # (K, ny, nx, side, side)
        ny, nx = cross.shape[1:3]

        l_mean = _at_offsets(m_l, side, step, ny, nx)  # (K, Cs, ny, nx, side, side)
        cov = cross - (part_m_q[..., None, None] * l_mean).sum(dim=1)
        var_l = (_at_offsets(m_ll, side, step, ny, nx) - l_mean**2).clamp_min(0).sum(dim=1)
        ncc = cov / torch.sqrt((part_var_q[..., None, None] + eps) * (var_l + eps))
        inside = _at_offsets(m_v, side, step, ny, nx) > 1.0 - 1e-4
        gain = (ncc - 0.5).clamp_min(0) * inside * part_weight[..., None, None]
        by_offset = gain.sum(dim=(1, 2)).flatten(1)  # (K, side * side), offset (a, b) at (radius + a) * side + ...
        order = torch.tensor([(radius + a) * side + radius + b for a, b in offsets])
        scores = by_offset[:, order]
        best, pick = scores.max(dim=1)
        for (row, dy, dx), j, value in zip(part, pick.tolist(), best.tolist(), strict=True):
            a, b = offsets[j]
            out_keys.append((row, dy + a, dx + b))
            out_scores.append(float(value))
    return out_keys, out_scores
