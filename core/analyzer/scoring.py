"""From a source map to shares and regions; the one rule for the originality score and the copy-risk flag.

The verdict built on this rule (figures, label, summary) is in :mod:`core.analyzer.verdict`.

The definitions (and why) are explained for non-specialists in ``docs/originality.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from core.analyzer.result import Region, SourceShare

logger = logging.getLogger(__name__)

PALETTE = [
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#B68100", "#750D86", "#EB663B",
    "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16",
    "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038", "#22FFA7",
]  # fmt: skip  (same colours as core.mosaic, without importing plotly)

#: copy-risk thresholds (fractions of the image); see docs/originality.md
HIGH_REGION = 0.25
MEDIUM_REGION = 0.10
MEDIUM_SOURCE_SHARE = 0.25


def regions_and_shares(
    source_map: np.ndarray,
    source_yx: np.ndarray,
    names: Mapping[int, tuple[str, str]],
    scale_map: np.ndarray | None = None,
) -> tuple[list[SourceShare], list[Region]]:
    """Per-source shares (largest first) and connected regions (largest first). ``scale_map``: per pixel,
    how big the content appears relative to its library picture (a region gets its median)."""
    from scipy import ndimage  # here: loading scipy takes a third of a second of every command

    total = source_map.size
    ids, counts = np.unique(source_map[source_map >= 0], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    shares: list[SourceShare] = []
    regions: list[Region] = []
    for rank, j in enumerate(order):
        index = int(ids[j])
        item_id, name = names.get(index, ("?", f"image #{index}"))
        share = SourceShare(index, item_id, name, float(counts[j]) / total, colour=PALETTE[rank % len(PALETTE)])
        components, count = ndimage.label(source_map == index)
        for slices_index, slices in enumerate(ndimage.find_objects(components), start=1):
            if slices is None:
                continue
            mask = components[slices] == slices_index
            ys, xs = slices
            yx = source_yx[slices][mask]
            region = Region(
                source=index,
                area=float(mask.sum()) / total,
                box=(ys.start, xs.start, ys.stop, xs.stop),
                source_box=(int(yx[:, 0].min()), int(yx[:, 1].min()), int(yx[:, 0].max()) + 1, int(yx[:, 1].max()) + 1),
                scale=1.0 if scale_map is None else float(np.median(scale_map[slices][mask])),
            )
            share.regions.append(region)
            regions.append(region)
        share.regions.sort(key=lambda r: -r.area)
        shares.append(share)
    regions.sort(key=lambda r: -r.area)
    return shares, regions


#: a single borrowed region this large is a near copy (the default of ``AnalyzerSettings.copy_region_fraction``)
NEAR_COPY_REGION = 0.6


def originality_score(borrowed: float, largest: float, near_copy: bool) -> int:
    """100 = nothing borrowed. Minus half a point per % borrowed, minus a point per % of the largest region."""
    if near_copy:
        return 0
    return int(np.clip(round(100.0 - 50.0 * borrowed - 100.0 * largest), 0, 100))


def risk_driver(largest: float, top_share: float, near_copy: bool) -> str:
    """Which figure decides the copy risk: ``near_copy``, ``region`` (the largest piece from one picture),
    ``source`` (the share of the largest source picture) or ``none`` (nothing reaches a threshold: low risk)."""
    if near_copy:
        return "near_copy"
    if largest >= MEDIUM_REGION:
        return "region"
    if top_share >= MEDIUM_SOURCE_SHARE:
        return "source"
    return "none"


def copy_risk(largest: float, top_share: float, near_copy: bool) -> str:
    """The copy-risk flag (the one rule, used for searched and for exactly known sources alike)."""
    if near_copy or largest >= HIGH_REGION:
        return "high"
    if largest >= MEDIUM_REGION or top_share >= MEDIUM_SOURCE_SHARE:
        return "medium"
    return "low"
