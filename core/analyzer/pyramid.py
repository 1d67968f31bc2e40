"""Other sizes: library content shrunk into a collage, or a detail of a library picture blown up.

Patches are compared at one size, so a piece that appears at another size in the checked image than
in the library would never match. The analyzer therefore looks at a few *levels*: ``k`` is how big
the content appears in the checked image relative to the library picture (both at the working size).

* ``k < 1`` (shrunk): the library is described ahead, at each reduced size, in the index
  (:func:`level_side`); the checked image is searched at its working size against those patches.
* ``k > 1`` (enlarged): the checked image is reduced by ``1 / k`` and searched against the library
  at its normal size.

Both give an ordinary translation-only match on some grid; :class:`LevelLibrary` gives the assigner
the library pictures at a reduced size, and :func:`to_base` maps a level's per-pixel result back onto
the checked image's working grid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)


def level_side(side: int, k: float) -> int:
    """The side of a ``side`` px picture reduced by ``k`` (at least 8 px)."""
    return max(8, int(round(side * k)))


def resized(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(B, C, H, W)`` resized with antialiasing (the one resampling used for every level)."""
    if images.shape[-2:] == (height, width):
        return images
    return F.interpolate(images, size=(height, width), mode="bilinear", antialias=True, align_corners=False)


class LevelLibrary:
    """The index's library pictures at a reduced side, for the assigner (``feature_images``)."""

    def __init__(self, index, side: int) -> None:
        self.index = index
        self.side = side

    def feature_images(self, rows: list[int]) -> torch.Tensor:
        return resized(self.index.feature_images(rows), self.side, self.side)


@dataclass
class LevelMaps:
    """One level's result on the base grid: library index, source (y, x) at the library's working size,
    similarity, and where the level found something."""

    source_map: np.ndarray  # (H, W) int32, -1 where nothing
    source_yx: np.ndarray  # (H, W, 2) int32
    similarity: np.ndarray  # (H, W) float32
    scale: float


def to_base(
    source_map: np.ndarray,
    source_yx: np.ndarray,
    similarity: np.ndarray,
    height: int,
    width: int,
    library_scale: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A level's maps (on its own grid) sampled at the base grid's pixel centres (nearest), with source
    positions divided by ``library_scale`` (the reduced library side over the working size)."""
    level_h, level_w = source_map.shape
    ys = np.minimum(((np.arange(height) + 0.5) * level_h / height).astype(np.int64), level_h - 1)
    xs = np.minimum(((np.arange(width) + 0.5) * level_w / width).astype(np.int64), level_w - 1)
    smap = source_map[ys][:, xs]
    syx = source_yx[ys][:, xs].astype(np.float64)
    if level_h != height or level_w != width:
        # within a level pixel, the base pixels move on by a fraction of a library pixel
        fy = (np.arange(height) + 0.5) * level_h / height - 0.5 - ys
        fx = (np.arange(width) + 0.5) * level_w / width - 0.5 - xs
        syx[..., 0] += fy[:, None]
        syx[..., 1] += fx[None, :]
    syx = np.rint(syx / library_scale).astype(np.int32)
    syx[smap < 0] = -1
    return smap.astype(np.int32), syx, similarity[ys][:, xs].astype(np.float32)
