"""Tunable constants of the patch-mosaic analyzer, in one place.

Changing anything that affects stored descriptors changes :meth:`AnalyzerSettings.index_key`, so
old indexes are simply not used any more (and can be deleted).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

#: Bump when the on-disk index layout or the descriptors change.
INDEX_VERSION = 5

#: ``on_progress(fraction in [0, 1], message)``; matches ``st.progress(value, text)``.
ProgressFn = Callable[[float, str], None]

SPACES = ("pixel", "latent")


@dataclass(frozen=True)
class AnalyzerSettings:
    """How images are compared. Defaults suit marketing images and libraries of up to ~10k images."""

    #: library images are squared and resized to this side; queries get the area of such a square
    #: (long side at most twice this)
    work_size: int = 128
    #: patch sizes in working-resolution pixels (latent space divides them by the VAE factor)
    scales: tuple[int, ...] = (8, 16, 32)
    #: patch sizes (working-resolution pixels) from this size up are indexed over the whole library;
    #: smaller ones are matched only against the shortlisted library images (see ``shortlist_vectors``)
    index_min_patch: int = 16
    #: small-patch search covers the library images that larger patches point to most, up to this many
    #: library patches (all images of a small library)
    shortlist_vectors: int = 48_000
    #: descriptors pool each patch to at most this many cells per side
    grid: int = 4
    #: weight of the mean-colour term of a descriptor (structure part has unit length)
    colour_weight: float = 0.5
    #: patches flatter than this standard deviation (in [-1, 1] units) do not vote
    flat_std: float = 0.03
    #: matches per query patch
    top_k: int = 3
    #: a match votes only if its squared descriptor distance is below this (≈ correlation 0.75)
    max_distance: float = 0.5
    #: offset candidates kept per scale
    candidates_per_scale: int = 24
    #: a candidate needs this many (distance-weighted) patch votes, over all scales, for its image at
    #: about its offset; chance matches of simple shapes (an edge, a soft gradient) gather a handful
    min_votes: float = 6.0
    #: exact (matmul) search up to this many library patches per scale, FAISS above
    exact_max_vectors: int = 150_000
    #: FAISS IVF lists probed per query
    nprobe: int = 12
    #: ... when the library's reduced sizes are searched (18 searches of the 36 of an analysis at 100,000
    #: pictures): a third of the lists, agreement with an exhaustive search at 5,000 pictures unchanged
    #: (98.87 % with 4, 98.88 % with 6, 98.99 % with 12 before the reduced sizes were searched only where the
    #: whole size left pixels unexplained; the checked image's reduced copies lose more: they keep ``nprobe``)
    level_nprobe: int = 4
    #: per-pixel similarity needed to call a pixel borrowed
    similarity_threshold: float = 0.5
    #: pixels well matched (by local correlation) that anchor a borrowed region
    anchor_correlation: float = 0.85
    #: smallest borrowed region kept, as a fraction of the image
    min_region_fraction: float = 0.004
    #: whole-image copy check: verified similarity needed for a near copy
    copy_threshold: float = 0.6
    #: a single borrowed region this large (fraction of the image) is also a near copy
    copy_region_fraction: float = 0.6
    #: window (pixels) of the local comparison for the combined map
    window: int = 7
    #: other sizes at which library content is looked for: how big it appears in the checked image
    #: relative to the library picture (both at the working size). Below 1 (a picture shrunk into a
    #: collage) the library is searched at reduced sizes (indexed ahead); above 1 (a detail blown up)
    #: the checked image is searched at reduced sizes. Pixel space only.
    scale_levels: tuple[float, ...] = (
        0.18, 0.21, 0.25, 0.3, 0.35, 0.42, 0.5, 0.59, 0.71, 0.84,  # steps of 2^(1/4): a piece between
        1.19, 1.41, 1.68, 2.0, 2.38, 2.83, 3.36, 4.0,  # two levels is at most 9 % off one of them
    )  # fmt: skip
    #: votes a candidate at another size needs (more than ``min_votes``: with sixteen sizes searched,
    #: chance agreements of a few simple shapes must not add up to a "borrowed" region)
    level_min_votes: float = 12.0
    #: a region at another size needs this many anchor pixels where detail runs both ways (texture,
    #: corners): an orange rim on black lines up with any curved rim blown up to the right size
    level_two_way_anchors: int = 4
    #: the small (not indexed) patches are also searched in reduced copies of the checked image up to
    #: this enlargement (above it, a small patch of the reduced copy is a large patch of the image)
    small_patches_up_to: float = 3.0
    #: ... against this many library images at most (those the large patches of all sizes point to most)
    level_shortlist_images: int = 8
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def scales_for(self, factor: int) -> tuple[int, ...]:
        """Patch sizes on a grid downsampled by ``factor`` (1 for pixels, 8 for an SD latent)."""
        out: list[int] = []
        for scale in self.scales:
            value = max(2, scale // max(1, factor))
            if value not in out:
                out.append(value)
        return tuple(out)

    def indexed_scales(self, factor: int) -> tuple[int, ...]:
        """The patch sizes (feature grid) indexed over the whole library: large ones, at least the largest."""
        scales = self.scales_for(factor)
        indexed = tuple(p for p in scales if p * max(1, factor) >= self.index_min_patch)
        return indexed or (max(scales),)

    def library_levels(self, factor: int) -> tuple[float, ...]:
        """Reduced sizes of the library that are indexed ahead (pixel space only)."""
        if factor != 1:
            return ()
        return tuple(sorted(k for k in self.scale_levels if 0 < k < 1))

    def level_patches(self, factor: int, side: int) -> tuple[int, ...]:
        """Patch sizes indexed for the library reduced to ``side`` px: the indexed sizes, or on a small
        picture (under 64 px) every size up to half its side, so that it still has a few dozen patches."""
        if side >= 64:
            return self.indexed_scales(factor)
        return tuple(p for p in self.scales_for(factor) if 2 * p <= side) or (min(self.scales_for(factor)),)

    def query_levels(self, factor: int) -> tuple[float, ...]:
        """Enlargements looked for by searching the checked image at reduced sizes (pixel space only)."""
        if factor != 1:
            return ()
        return tuple(sorted(k for k in self.scale_levels if k > 1))

    def index_key(self, space: str, extra: str = "") -> str:
        """Folder name of an index: space, working size, scales and a hash of descriptor settings."""
        described = {
            "v": INDEX_VERSION,
            "work_size": self.work_size,
            "scales": list(self.scales),
            "grid": self.grid,
            "colour_weight": self.colour_weight,
            "index_min_patch": self.index_min_patch,
            "library_levels": [k for k in self.scale_levels if 0 < k < 1],
            "level_patches_rule": 1,  # bump when level_patches() changes
            "extra": extra,
        }
        digest = hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:10]
        scales = ".".join(str(s) for s in self.scales)
        return f"{space}-w{self.work_size}-s{scales}-{digest}"

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("extra", None)
        data["scales"] = list(self.scales)
        data["scale_levels"] = list(self.scale_levels)
        return data
