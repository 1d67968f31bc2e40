"""What an analysis returns: maps, shares, regions, near-copy verdict, scores and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.analyzer.verdict import Verdict


@dataclass
class Region:
    """Connected pixels taken from one library image."""

    source: int  # library index (current load order)
    area: float  # fraction of the analysed image
    box: tuple[int, int, int, int]  # (top, left, bottom, right) in the analysed image, exclusive end
    source_box: tuple[int, int, int, int]  # the same area in the library image (working resolution)
    scale: float = 1.0  # how big it appears here relative to the library picture (2: enlarged twice)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "area": round(self.area, 4), "box": list(self.box),
                "source_box": list(self.source_box), "scale": round(self.scale, 3)}


@dataclass
class SourceShare:
    """One library image and how much of the analysed image it supplied."""

    index: int  # position in the library's current load order
    item_id: str
    name: str  # readable name (original file name or built-in item id)
    share: float  # fraction of the analysed image's pixels
    regions: list[Region] = field(default_factory=list)
    colour: str = "#888888"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "item_id": self.item_id, "name": self.name, "share": round(self.share, 4),
                "colour": self.colour, "regions": [r.to_json() for r in self.regions]}


@dataclass
class NearCopy:
    """Whole-image check: is the image a (resized, cropped, re-encoded, mirrored, recoloured) copy?"""

    is_copy: bool
    score: float  # 0..1: share of the image explained by the best library image after alignment
    index: int | None = None
    item_id: str | None = None
    name: str | None = None
    mirrored: bool = False
    crop: tuple[float, float, float, float] | None = None  # (top, left, height, width) of the library image
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"is_copy": self.is_copy, "score": round(self.score, 4), "index": self.index,
                "item_id": self.item_id, "name": self.name, "mirrored": self.mirrored,
                "crop": None if self.crop is None else [round(v, 4) for v in self.crop], "reason": self.reason}


@dataclass
class ScaleResult:
    """The attribution at one patch size (for a scale slider)."""

    patch: int  # patch size in working-resolution pixels
    source_map: np.ndarray  # (H, W) int32 library index or -1
    source_yx: np.ndarray  # (H, W, 2) int32 (y, x) in the library image, -1 where not borrowed
    similarity: np.ndarray  # (H, W) float32 in [0, 1]
    sources: list[SourceShare]
    regions: list[Region]
    borrowed_fraction: float
    largest_region_fraction: float
    largest_region_source: SourceShare | None

    def to_json(self) -> dict[str, Any]:
        return {
            "patch": self.patch,
            "borrowed_fraction": round(self.borrowed_fraction, 4),
            "largest_region_fraction": round(self.largest_region_fraction, 4),
            "largest_region_source": None if self.largest_region_source is None else self.largest_region_source.name,
            "source_count": len(self.sources),
        }


@dataclass
class AnalysisResult:
    """The patch mosaic of an image against a library.

    Maps are at the analysis resolution ``shape`` (the image resized to the area of a working-size
    square, see :func:`~.features.fit_query`); ``source_map`` holds library indices (current load
    order) or -1, ``source_yx`` the matching pixel (y, x) in the library image at the working size,
    ``offset_map`` the shift (library position minus image position).
    """

    library: str
    space: str
    image_size: tuple[int, int]  # (width, height) of the input
    source_map: np.ndarray
    source_yx: np.ndarray
    offset_map: np.ndarray
    similarity: np.ndarray
    sources: list[SourceShare]
    regions: list[Region]
    borrowed_fraction: float
    largest_region_fraction: float
    largest_region_source: SourceShare | None
    near_copy: NearCopy
    originality: int
    copy_risk: str  # "low" | "medium" | "high"
    summary: str
    scales: dict[int, ScaleResult] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    backend: str = ""
    work_size: int = 0
    analysed_image: Any = None  # PIL image at the analysis resolution (for renders)
    #: the verdict shown for this image when it is not the search's own (exact sources of a studio image);
    #: ``originality``, ``copy_risk`` and ``summary`` then follow it (see :func:`core.analyzer.verdict.attach`)
    verdict: Verdict | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.source_map.shape[0]), int(self.source_map.shape[1]))

    @property
    def source_count(self) -> int:
        return len(self.sources)

    def to_json(self, include_maps: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (for ``python -m core analyze --json``); maps only when asked."""
        data: dict[str, Any] = {
            "library": self.library,
            "space": self.space,
            "image_size": list(self.image_size),
            "analysis_size": list(self.shape),
            "summary": self.summary,
            "originality": self.originality,
            "copy_risk": self.copy_risk,
            "borrowed_fraction": round(self.borrowed_fraction, 4),
            "largest_region_fraction": round(self.largest_region_fraction, 4),
            "largest_region_source": (
                None if self.largest_region_source is None else self.largest_region_source.to_json()
            ),
            "source_count": self.source_count,
            "sources": [s.to_json() for s in self.sources],
            "near_copy": self.near_copy.to_json(),
            "scales": {str(p): r.to_json() for p, r in self.scales.items()},
            "notices": list(self.notices),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "backend": self.backend,
        }
        from core.analyzer.verdict import final_verdict

        data["verdict"] = final_verdict(self).to_json()
        if include_maps:
            data["source_map"] = self.source_map.tolist()
            data["similarity"] = np.round(self.similarity, 3).tolist()
            data["source_yx"] = self.source_yx.tolist()
        return data
