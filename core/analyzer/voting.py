"""Offset voting: matching patches propose "this part of the image is library image i shifted by (dy, dx)".

Every textured query patch looks up its nearest library patches; each match votes, weighted by how
close it is, for the key ``(image, dy, dx)`` with library position = query position + (dy, dx).
A region copied from one image makes many patches agree on one key, while chance matches scatter.
Votes are pooled in 2×2 offset bins (so a one-pixel misalignment with the library grid still adds
up); each bin is represented by its best exact offset, refined later pixel by pixel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from core.analyzer.descriptors import PatchDescriber, PatchDescriptors, query_descriptors
from core.analyzer.index import ScaleIndex
from core.analyzer.settings import AnalyzerSettings

logger = logging.getLogger(__name__)

_SUPPRESS = 4  # offsets of one image closer than this (pixels on the feature grid) are one candidate


@dataclass
class ScaleVotes:
    """What one scale's patch matches say: offset candidates, and per index row its best offset's votes."""

    candidates: list[Candidate]
    image_scores: np.ndarray  # (index rows,) float: votes of the best (image, offset) bin of each image


@dataclass
class Candidate:
    """A hypothesis: query (y, x) comes from index row ``row`` at (y + dy, x + dx), on the feature grid."""

    row: int
    dy: int
    dx: int
    votes: float
    scale: int

    @property
    def key(self) -> tuple[int, int, int]:
        return (self.row, self.dy, self.dx)


class OffsetVoter:
    """Turns patch matches at one scale into a short list of offset candidates."""

    def __init__(self, settings: AnalyzerSettings) -> None:
        self.settings = settings
        #: the query's descriptors per (patch size, query): the reduced-size searchers of a patch size
        #: all take the same ones; the tensors are kept so that their ids stay theirs
        self._described: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor, PatchDescriptors]] = {}

    def _query_descriptors(self, patch: int, features: torch.Tensor, structure: torch.Tensor) -> PatchDescriptors:
        key = (patch, id(features), id(structure))
        if key not in self._described:
            s = self.settings
            describer = PatchDescriber(patch, s.grid, s.colour_weight, s.flat_std)
            self._described[key] = (features, structure, query_descriptors(describer, features, structure))
        return self._described[key][2]

    def candidates(
        self,
        scale: ScaleIndex,
        features: torch.Tensor,
        structure: torch.Tensor,
        allowed: np.ndarray,
        library_size: int,
        nprobe: int | None = None,
        where: np.ndarray | None = None,
    ) -> ScaleVotes:
        """Offset candidates of ``scale``'s library patches for the query ``features``, and every library
        image's best offset bin score (``nprobe``: search lists probed, default the searcher's).

        ``where``: (H, W) bool on the query's grid: only patches that cover at least one True pixel vote
        (None: all of them)."""
        s = self.settings
        image_scores = np.zeros(allowed.shape[0], dtype=np.float64)
        nothing = ScaleVotes([], image_scores)
        if scale.searcher.count == 0:
            return nothing
        described = self._query_descriptors(scale.patch, features, structure)
        mask = described.textured[0].numpy()
        if where is not None:
            mask = mask & covers(where, described.positions, scale.patch)
        if not mask.any():
            return nothing
        vectors = described.vectors[0].numpy()[mask]
        positions = described.positions[mask]
        dist, idx = scale.searcher.search(vectors, s.top_k, nprobe)
        good = (idx >= 0) & (dist <= s.max_distance)
        if not good.any():
            return nothing
        q_index = np.nonzero(good)[0]
        matched = scale.rows[idx[good]]  # (V, 3)
        weight = 1.0 - dist[good] / s.max_distance
        keep = allowed[matched[:, 0]]
        matched, weight, q_index = matched[keep], weight[keep], q_index[keep]
        if matched.shape[0] == 0:
            return nothing
        span = 4 * library_size + 4
        dy = matched[:, 1].astype(np.int64) - positions[q_index, 0] + 2 * library_size
        dx = matched[:, 2].astype(np.int64) - positions[q_index, 1] + 2 * library_size
        exact = (matched[:, 0].astype(np.int64) * span + dy) * span + dx
        keys, inverse = np.unique(exact, return_inverse=True)
        totals = np.bincount(inverse, weights=weight)
        k_row, rem = np.divmod(keys, span * span)
        k_dy, k_dx = np.divmod(rem, span)
        half = span // 2 + 1
        bins = (k_row * half + k_dy // 2) * half + k_dx // 2
        bin_keys, bin_inverse = np.unique(bins, return_inverse=True)
        bin_totals = np.bincount(bin_inverse, weights=totals)
        np.maximum.at(image_scores, bin_keys // (half * half), bin_totals)
        # best exact key per bin: sort by (bin, -total) and take the first of each bin
        order = np.lexsort((-totals, bin_inverse))
        first = np.ones(order.shape[0], dtype=bool)
        first[1:] = bin_inverse[order][1:] != bin_inverse[order][:-1]
        best_exact = order[first]  # aligned with bin_keys (bins sorted ascending)
        ranking = np.argsort(-bin_totals, kind="stable")
        out: list[Candidate] = []
        for b in ranking[: 20 * s.candidates_per_scale]:
            if bin_totals[b] < 1.5 or len(out) >= s.candidates_per_scale:
                break
            e = best_exact[b]
            row, dy, dx = int(k_row[e]), int(k_dy[e]) - 2 * library_size, int(k_dx[e]) - 2 * library_size
            # non-maximum suppression: textures make near-identical offsets of one image agree
            if any(c.row == row and abs(c.dy - dy) <= _SUPPRESS and abs(c.dx - dx) <= _SUPPRESS for c in out):
                continue
            out.append(Candidate(row=row, dy=dy, dx=dx, votes=float(bin_totals[b]), scale=scale.patch))
        return ScaleVotes(out, image_scores)


def covers(where: np.ndarray, positions: np.ndarray, patch: int) -> np.ndarray:
    """(M,) bool: does the ``patch``-sized window at each top-left ``positions`` (M, 2) hold a True pixel of
    ``where`` (H, W)? Windows are cut at the border."""
    height, width = where.shape
    total = np.zeros((height + 1, width + 1), dtype=np.int64)
    total[1:, 1:] = np.cumsum(np.cumsum(where, axis=0, dtype=np.int64), axis=1)
    top = np.clip(positions[:, 0].astype(np.int64), 0, height)
    left = np.clip(positions[:, 1].astype(np.int64), 0, width)
    bottom, right = np.minimum(top + patch, height), np.minimum(left + patch, width)
    inside = total[bottom, right] - total[top, right] - total[bottom, left] + total[top, left]
    return inside > 0


def supported(candidates: list[Candidate], min_votes: float, radius: int = 2) -> list[Candidate]:
    """Candidates whose hypothesis gathers at least ``min_votes`` over all scales: the votes of every
    candidate of the same image with an offset within ``radius`` (on the feature grid) add up.

    A copied region makes many patches agree, at several sizes; a chance match of a simple shape
    (one edge, a smooth gradient) is supported by a handful of patches only."""
    out = []
    for cand in candidates:
        total = sum(
            other.votes
            for other in candidates
            if other.row == cand.row and abs(other.dy - cand.dy) <= radius and abs(other.dx - cand.dx) <= radius
        )
        if total >= min_votes:
            out.append(cand)
    return out
