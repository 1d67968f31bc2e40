"""Whole-image near-copy check: retrieve with global descriptors, then verify pixel by pixel.

Each library image is described at 49 crops (keeping 100 %, 95 % or 90 % of each side, at the
start, middle or end of the side): a tiny mean-subtracted, unit-length luminance thumbnail. A query
is described whole and centre-squared, each also mirrored. The best crops of the best few images are
then verified: both are resized to 64×64, the library crop's colours are fitted to the query's
(per-channel gain and offset, so colour shifts do not hide a copy) and the share of pixels whose
neighbourhood matches is the copy score. Different images fail verification even when their
thumbnails correlate, so the score is robust to resizing, JPEG, flips, colour shifts and small crops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.analyzer.features import box_mean

logger = logging.getLogger(__name__)

THUMB = 16
VERIFY = 64
_KEEP = (1.0, 0.95, 0.9)
_NOISE = 0.06  # local contrast below which a pixel counts as flat ([-1, 1] units)


def crop_boxes() -> list[tuple[float, float, float, float]]:
    """Normalised crop boxes ``(top, left, height, width)``."""
    spans: list[tuple[float, float]] = []
    for keep in _KEEP:
        slack = 1.0 - keep
        starts = (0.0,) if slack == 0 else (0.0, slack / 2, slack)
        spans.extend((start, keep) for start in starts)
    return [(top, left, height, width) for top, height in spans for left, width in spans]


BOXES = crop_boxes()


def _crop(images: torch.Tensor, box: tuple[float, float, float, float], size: int) -> torch.Tensor:
    height, width = images.shape[-2:]
    top, left, box_h, box_w = box
    y0 = int(round(top * height))
    x0 = int(round(left * width))
    y1 = max(y0 + 1, min(height, int(round((top + box_h) * height))))
    x1 = max(x0 + 1, min(width, int(round((left + box_w) * width))))
    crop = images[..., y0:y1, x0:x1]
    return F.interpolate(crop, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def _normalise(thumbs: torch.Tensor) -> torch.Tensor:
    flat = thumbs.flatten(1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-6)


def library_descriptors(images: torch.Tensor) -> np.ndarray:
    """``(N, len(BOXES), THUMB²)`` descriptors of ``(N, C, S, S)`` images in [-1, 1]."""
    gray = images.mean(dim=1, keepdim=True)
    per_box = [_normalise(_crop(gray, box, THUMB)) for box in BOXES]
    return torch.stack(per_box, dim=1).numpy().astype(np.float32)


def _variants(query: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """The query as a square: squashed whole and centre-cropped, each also mirrored."""
    _, height, width = query.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = query[:, top : top + side, left : left + side]
    out = []
    for name, image in (("whole", query), ("centre", square)):
        resized = F.interpolate(image[None], size=(VERIFY, VERIFY), mode="bilinear", antialias=True)[0]
        out.append((name, resized))
        out.append((name + "+mirror", resized.flip(-1)))
    if height == width:
        out = out[:2]
    return out


def verify(query: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of pixels of ``query`` (C, 64, 64) explained by ``reference`` after a colour fit."""
    q = query.reshape(query.shape[0], -1)
    r = reference.reshape(reference.shape[0], -1)
    if r.shape[0] != q.shape[0]:
        r = r.mean(dim=0, keepdim=True).expand_as(q)
    qm, rm = q.mean(dim=1, keepdim=True), r.mean(dim=1, keepdim=True)
    cov = ((q - qm) * (r - rm)).mean(dim=1, keepdim=True)
    var = ((r - rm) ** 2).mean(dim=1, keepdim=True)
    gain = (cov / var.clamp_min(1e-6)).clamp(0.3, 3.0)
    fitted = (gain * (r - rm) + qm).reshape(query.shape)
    residual = box_mean(((query - fitted) ** 2).mean(dim=0, keepdim=True)[None], 5)[0, 0]
    mean_q = box_mean(query[None], 5)[0]
    local_var = (box_mean((query**2)[None], 5)[0] - mean_q**2).clamp_min(0).mean(dim=0)
    similarity = (1.0 - residual / (local_var + _NOISE**2)).clamp(0.0, 1.0)
    return float(similarity.mean())


@dataclass
class CopyMatch:
    """The best whole-image match: index row, verified score, which variant and crop."""

    row: int
    score: float
    retrieval: float
    variant: str
    box: tuple[float, float, float, float]


class NearCopyChecker:
    """Finds whether a query is a near copy of one library image."""

    def __init__(self, descriptors: np.ndarray, pixels: np.ndarray, candidates: int = 5) -> None:
        self.descriptors = torch.from_numpy(descriptors.reshape(-1, descriptors.shape[-1]))
        self.per_item = descriptors.shape[1]
        self.pixels = pixels  # (N, C, S, S) uint8
        self.candidates = candidates

    def check(self, query: torch.Tensor, allowed: np.ndarray | None = None) -> CopyMatch | None:
        """``query`` (C, h, w) in [-1, 1]; ``allowed``: bool mask of index rows still in the library."""
        if self.descriptors.shape[0] == 0:
            return None
        variants = _variants(query)
        gray = torch.stack([v.mean(dim=0, keepdim=True) for _, v in variants])
        thumbs = _normalise(F.interpolate(gray, size=(THUMB, THUMB), mode="bilinear", antialias=True))
        scores = (thumbs @ self.descriptors.T).view(len(variants), -1, self.per_item)  # (V, N, B)
        per_item = scores.amax(dim=(0, 2))
        if allowed is not None:
            per_item[~torch.from_numpy(allowed)] = -2.0
        top = torch.topk(per_item, min(self.candidates, per_item.shape[0])).indices.tolist()
        best: CopyMatch | None = None
        for row in top:
            if per_item[row] <= -2.0:
                continue
            reference = torch.from_numpy(self.pixels[row]).float() / 127.5 - 1.0
            flat = scores[:, row, :].flatten()
            for pick in torch.topk(flat, min(3, flat.shape[0])).indices.tolist():
                v, b = divmod(pick, self.per_item)
                name, image = variants[v]
                box, score = self._refine(image, reference, BOXES[b])
                if best is None or score > best.score:
                    best = CopyMatch(row, score, float(flat[pick]), name, box)
        return best

    @staticmethod
    def _refine(query: torch.Tensor, reference: torch.Tensor, box: tuple[float, float, float, float]):
        def score_of(candidate: tuple[float, float, float, float]) -> float:
            return verify(query, _crop(reference[None], candidate, VERIFY)[0])

        best_box, best = box, score_of(box)
        step = 0.0125
        for _ in range(3):
            improved = False
            for axis in range(4):
                for sign in (-1.0, 1.0):
                    trial = list(best_box)
                    trial[axis] += sign * step
                    top, left, height, width = trial
                    if min(top, left) < -1e-6 or height < 0.85 or width < 0.85:
                        continue
                    if top + height > 1.0 + 1e-6 or left + width > 1.0 + 1e-6:
                        continue
                    value = score_of((top, left, height, width))
                    if value > best + 1e-4:
                        best_box, best, improved = (top, left, height, width), value, True
            if not improved:
                break
        return best_box, best
