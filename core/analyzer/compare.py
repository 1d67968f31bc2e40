"""Checking the analyzer against ground truth: images of the local score engine know their sources.

The local score engine saves, per pixel, the library image each pixel came from (see
:mod:`core.mosaic`). :func:`compare_with_exact_sources` measures how often the analyzer names the
same library image.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.analyzer.result import AnalysisResult

logger = logging.getLogger(__name__)


@dataclass
class SourceAgreement:
    """How the analyzer's per-pixel source image compares with the exact one."""

    agreement: float  # fraction of all pixels where both name the same library image
    attributed_agreement: float  # the same, among pixels the analyzer attributed (0 if none)
    coverage: float  # fraction of pixels the analyzer attributed to some library image
    pixels: int


def _resample(source_map: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest sampling of ``source_map`` at the pixel centres of a ``height``×``width`` grid."""
    big_h, big_w = source_map.shape
    ys = np.minimum(((np.arange(height) + 0.5) * big_h / height).astype(int), big_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * big_w / width).astype(int), big_w - 1)
    return source_map[ys][:, xs]


def compare_with_exact_sources(result: AnalysisResult, exact: Any, scale: int | None = None) -> SourceAgreement:
    """Compare with exact sources: an ``(h, w)`` or ``(h, w, 3)`` array of library indices (current load
    order, as in :class:`core.mosaic.Mosaic.sources`) or a ``Mosaic``. ``scale`` picks a per-scale map."""
    sources = getattr(exact, "sources", exact)
    sources = np.asarray(sources)
    if sources.ndim == 3:
        sources = sources[..., 0]
    truth = sources.astype(np.int64)
    estimate_map = result.source_map if scale is None else result.scales[scale].source_map
    estimate = _resample(estimate_map, *truth.shape).astype(np.int64)
    same = (estimate == truth) & (truth >= 0)
    attributed = estimate >= 0
    return SourceAgreement(
        agreement=float(same.mean()),
        attributed_agreement=float(same[attributed].mean()) if attributed.any() else 0.0,
        coverage=float(attributed.mean()),
        pixels=int(truth.size),
    )
