"""Small patches are matched only against a shortlist of library images, described on the fly.

An 8 px patch alone matches something in almost every image of a large library, and indexing every
small patch of every image makes the index slow to build and search. So patch sizes below
``index_min_patch`` are not indexed: the library images whose larger patches got the most
offset-consistent votes are shortlisted (up to ``shortlist_vectors`` library patches; a small library
is shortlisted whole), described now, and searched exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from core.analyzer.descriptors import PatchDescriber, library_stride
from core.analyzer.index import PatchIndex, ScaleIndex
from core.analyzer.search import ExactSearch
from core.analyzer.settings import AnalyzerSettings

logger = logging.getLogger(__name__)

_BATCH = 64


def patches_per_image(side: int, patch: int) -> int:
    """Library patches of one ``side``×``side`` image at ``patch`` (before dropping flat ones)."""
    if side < patch:
        return 0
    per_side = (side - patch) // library_stride(patch) + 1
    return per_side * per_side


def shortlist(scores: np.ndarray, allowed: np.ndarray, limit: int) -> np.ndarray:
    """Index rows to search: all allowed rows if they are at most ``limit``, else the ``limit`` best-scored
    rows among those with some votes (best first)."""
    rows = np.nonzero(allowed)[0]
    if rows.shape[0] <= limit:
        return rows
    voted = rows[scores[rows] > 0]
    order = np.argsort(-scores[voted], kind="stable")
    return voted[order[:limit]]


def fine_scale_index(
    index: PatchIndex,
    rows: np.ndarray,
    patch: int,
    settings: AnalyzerSettings,
    structure: Callable[[torch.Tensor], torch.Tensor],
) -> ScaleIndex:
    """An exact :class:`ScaleIndex` of ``patch``-sized patches of the index rows ``rows``."""
    describer = PatchDescriber(patch, settings.grid, settings.colour_weight, settings.flat_std)
    vectors: list[np.ndarray] = []
    where: list[np.ndarray] = []
    for start in range(0, rows.shape[0], _BATCH):
        part = rows[start : start + _BATCH]
        features = index.feature_images(part.tolist())
        described = describer(features, structure(features), library_stride(patch))
        keep = described.textured.numpy()
        for b, row in enumerate(part.tolist()):
            mask = keep[b]
            vectors.append(described.vectors[b].numpy()[mask])
            pos = described.positions[mask]
            where.append(np.concatenate([np.full((pos.shape[0], 1), row, dtype=np.int32), pos], axis=1))
    if not vectors:
        return ScaleIndex(patch, ExactSearch(np.zeros((0, 1), np.float32)), np.zeros((0, 3), np.int32))
    stacked = np.concatenate(vectors).astype(np.float32)
    return ScaleIndex(patch, ExactSearch(stacked), np.concatenate(where).astype(np.int32))
