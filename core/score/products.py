"""Patch dot products computed without materialising patches.

* :func:`box_sum`: sums over every ``P×P`` window (integral image), for groups of one position.
* :func:`edge_logits`: the edge buckets of ``bbels`` (exact rows × interior columns), where all
  patches of a group share the same rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.score.kinds import GroupBucket


def box_sum(padded: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Sums over every ``P×P`` window of the last two dims, via a float64 integral image."""
    integral = F.pad(padded.to(torch.float64), (1, 0, 1, 0)).cumsum_(-2).cumsum_(-1)
    p = patch_size
    return integral[..., p:, p:] - integral[..., :-p, p:] - integral[..., p:, :-p] + integral[..., :-p, :-p]


def edge_kind(bucket: GroupBucket) -> str | None:
    """``"rows"`` for exact rows × interior columns, ``"cols"`` for interior rows × exact columns."""
    n_r, _, s_r, _ = bucket.row_index.shape
    _, n_c, _, s_c = bucket.col_index.shape
    if n_r > 1 and s_r == 1 and n_c == 1 and s_c > 1:
        return "rows"
    if n_c > 1 and s_c == 1 and n_r == 1 and s_r > 1:
        return "cols"
    return None


def use_edge_product(bucket: GroupBucket, patch_size: int) -> bool:
    """Edge buckets always use :func:`edge_logits`: its product costs ``(S + P - 1)² · P``
    multiply-adds per group, sample and image against ``S² · P²`` for the patch GEMM, and above
    all it needs no copy of ``S · P²`` patch values per library image (the GEMM path's real cost:
    its few query rows make it memory-bound). Measured faster or equal at every patch size of the
    FashionMNIST schedule (×2.2 at P = 25)."""
    del patch_size
    return edge_kind(bucket) is not None


def edge_logits(
    x_pad: torch.Tensor,
    lib_pad: torch.Tensor,
    squares: torch.Tensor,
    rows: list[int],
    first: int,
    inner: int,
    patch_size: int,
    a: float,
    c: float,
) -> torch.Tensor:
    """Logits of an edge bucket (exact rows × ``inner`` columns from ``first``), without patches.

    For exact row ``i`` the patches of both images span the same padded rows ``i .. i+P-1``, so
    ``⟨Ω_(i,j)(x), Ω_(i,j')(φ)⟩ = Σ_ox M[j+ox, j'+ox]`` with ``M = X_colsᵀ Φ_cols`` the product of
    the ``(C·P)``-long columns of the two strips: one bmm per chunk and ``P`` shifted adds.

    Returns ``(G, inner·B, inner·n)`` with rows ordered (position, sample) and columns
    (position, library image), ``G = len(rows)``.
    """
    batch, channels = x_pad.shape[:2]
    n = lib_pad.shape[0]
    p = patch_size
    wide = inner + p - 1  # the padded columns that the patches of the bucket span
    cols = slice(first, first + wide)
    xs = torch.stack([x_pad[:, :, i : i + p, cols] for i in rows])  # (G, B, C, P, wide)
    xs = xs.permute(0, 1, 4, 2, 3).reshape(len(rows), batch * wide, channels * p)
    ls = torch.stack([lib_pad[:, :, i : i + p, cols] for i in rows])  # (G, n, C, P, wide)
    ls = ls.permute(0, 2, 3, 1, 4).reshape(len(rows), channels * p, n * wide)
    m = torch.bmm(xs, ls).view(len(rows), batch, wide, n, wide)
    dot = m[:, :, :inner, :, :inner].clone()
    for ox in range(1, p):
        dot += m[:, :, ox : ox + inner, :, ox : ox + inner]
    bias = squares[:, rows, first : first + inner].permute(1, 0, 2)  # (G, n, inner)
    dot.mul_(2.0 * a * c).sub_(bias.unsqueeze(1).unsqueeze(1), alpha=a * a * c)
    return dot.permute(0, 2, 1, 4, 3).reshape(len(rows), inner * batch, inner * n)
