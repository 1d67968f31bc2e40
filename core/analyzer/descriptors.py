"""Patch descriptors: mean-subtracted, L2-normalised structure plus a small mean-colour term.

A descriptor of a ``p``×``p`` patch pools its structure channels to ``g``×``g`` cells (``g`` divides
``p``), removes each channel's mean and scales the result to unit length, so brightness/contrast
shifts and JPEG noise barely change it. The patch's mean colour, times ``colour_weight``, is appended:
squared L2 distance = ``2 - 2·correlation + colour_weight²·|Δ mean colour|²``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def cells_for(patch: int, grid: int) -> int:
    """Cells per side: the largest divisor of ``patch`` not above ``grid``."""
    for cells in range(min(grid, patch), 0, -1):
        if patch % cells == 0:
            return cells
    return 1


@dataclass
class PatchDescriptors:
    """Descriptors of all patches of a batch at one scale."""

    vectors: torch.Tensor  # (B, M, D) float32
    positions: np.ndarray  # (M, 2) int32: top-left (y, x) of each patch
    textured: torch.Tensor  # (B, M) bool: not flat


class PatchDescriber:
    """Dense descriptors of ``patch``-sized patches every ``stride`` pixels."""

    def __init__(self, patch: int, grid: int, colour_weight: float, flat_std: float) -> None:
        self.patch = patch
        self.cells = cells_for(patch, grid)
        self.cell = patch // self.cells
        self.colour_weight = colour_weight
        self.flat_std = flat_std

    def dim(self, structure_channels: int, channels: int) -> int:
        return structure_channels * self.cells * self.cells + channels

    def __call__(self, features: torch.Tensor, structure: torch.Tensor, stride: int) -> PatchDescriptors:
        batch, _, height, width = features.shape
        if height < self.patch or width < self.patch:
            empty = torch.zeros(batch, 0, self.dim(structure.shape[1], features.shape[1]))
            return PatchDescriptors(empty, np.zeros((0, 2), np.int32), torch.zeros(batch, 0, dtype=torch.bool))
        pooled = F.avg_pool2d(structure, self.cell, stride=1) if self.cell > 1 else structure
        cols = F.unfold(pooled, kernel_size=self.cells, dilation=self.cell, stride=stride)  # (B, Cs*g*g, L)
        cs = structure.shape[1]
        cols = cols.view(batch, cs, self.cells * self.cells, -1)
        cols = cols - cols.mean(dim=2, keepdim=True)
        cols = cols.reshape(batch, cs * self.cells * self.cells, -1).transpose(1, 2)  # (B, L, Ds)
        norm = cols.norm(dim=2, keepdim=True)
        std = norm[..., 0] / np.sqrt(cols.shape[2])
        structure_part = cols / norm.clamp_min(1e-6)
        colour = F.avg_pool2d(features, self.patch, stride=stride)  # (B, C, ny, nx)
        ny, nx = colour.shape[-2:]
        colour = colour.flatten(2).transpose(1, 2) * self.colour_weight
        vectors = torch.cat([structure_part, colour], dim=2).contiguous()
        ys, xs = np.meshgrid(np.arange(ny) * stride, np.arange(nx) * stride, indexing="ij")
        positions = np.stack([ys.ravel(), xs.ravel()], axis=1).astype(np.int32)
        assert vectors.shape[1] == positions.shape[0], (vectors.shape, positions.shape)
        return PatchDescriptors(vectors, positions, std > self.flat_std)


def library_stride(patch: int) -> int:
    """Library patches are taken every half patch (at least every 2 px)."""
    return max(2, patch // 2)


def query_stride(patch: int) -> int:
    """Query patches are denser, so some of them line up with the library grid."""
    return max(2, patch // 8)


def latin_mask(positions: np.ndarray, period: int) -> np.ndarray:
    """Keep one position in ``period`` per row of each ``period``×``period`` block, the column phase
    changing from block to block, so that every (y mod period, x mod period) class appears in every
    2×2 group of blocks (for periods up to 4)."""
    ys, xs = positions[:, 0].astype(np.int64), positions[:, 1].astype(np.int64)
    phase = ys // period + 2 * (xs // period)
    return (xs - ys - phase) % period == 0


def query_descriptors(describer: PatchDescriber, features: torch.Tensor, structure: torch.Tensor) -> PatchDescriptors:
    """Descriptors of the query's patches for matching against a library grid of ``library_stride``.

    Large patches use a regular grid (``query_stride``): a neighbour one or two pixels off still
    matches, since their cells are 4 px or more. Small patches (library grid of 4 px or less) would
    only ever line up with the library grid at even offsets, and a one-pixel miss of 2 px cells is
    not a match; so they use a pattern as dense as a stride-2 grid that contains every offset
    class (see :func:`latin_mask`): every offset gets exactly aligned patches."""
    period = library_stride(describer.patch)
    if period > 4:
        return describer(features, structure, query_stride(describer.patch))
    dense = describer(features, structure, 1)
    keep = latin_mask(dense.positions, period)
    return PatchDescriptors(dense.vectors[:, keep], dense.positions[keep], dense.textured[:, keep])
