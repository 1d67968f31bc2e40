"""Whole-image near-copy check: retrieve with global descriptors, then align and verify pixel by pixel.

Each library image is described at 49 crops (keeping 100 %, 95 % or 90 % of each side, at the
start, middle or end of the side): a tiny mean-subtracted, unit-length luminance thumbnail. A query
is described whole and centre-squared, each also mirrored; the images whose crops match best are found
by :mod:`core.analyzer.globalindex` (a full scan for small libraries, a compressed index for large ones).
The best crops of the best few images are then aligned and verified at 64×64: the crop box (top, left,
height, width, continuous) is refined by coordinate descent with shrinking steps down to a sixth of a
pixel, the library crop's colours are fitted to the query's (per-channel gain and offset, so colour
shifts do not hide a copy) and the share of pixels whose neighbourhood matches is the copy score (see
:func:`verify`). Different images fail verification even when their thumbnails correlate, so the score
is robust to resizing, JPEG, flips, colour shifts and small crops. An almost flat query (detail on
under 5 % of it) is not compared: a flat colour lines up with any smooth picture, so a "match" would
say nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from core.analyzer.features import box_mean, local_variance
from core.analyzer.globalindex import GlobalIndex

logger = logging.getLogger(__name__)

THUMB = 16
VERIFY = 64
_KEEP = (1.0, 0.95, 0.9)
_NOISE = 0.06  # local contrast below which a pixel counts as flat ([-1, 1] units)
_MIN_SIDE = 0.85  # smallest crop side kept by the alignment (fraction of the library image)
_MIN_CROP = 0.33  # smallest crop side a region-based check aligns to
_STEPS = (0.02, 0.01, 0.005, 0.0025)  # alignment steps (fractions of the side; 0.0025 ≈ 1/6 px at 64)
_ROUNDS = 4  # moves per step size at most
_REFINED = 4  # picks aligned per query at most (the best few after a first verification)
#: a query with detail (local contrast above the noise floor) on less of its area than this is never
#: compared as a whole: a flat colour or a soft gradient lines up with any smooth library picture
_MIN_DETAIL = 0.05
_TYPICAL_STD = 0.3  # a photo's contrast (standard deviation, [-1, 1] units)
_MAX_STRETCH = 4.0  # a dim picture's contrast is stretched towards it by at most this much
#: alignment moves of (top, left, height, width): each edge on its own, and the whole box, both ways
_MOVES = torch.tensor(
    [
        [sign * a for a in move]
        for move in ((1, 0, -1, 0), (0, 0, 1, 0), (0, 1, 0, -1), (0, 0, 0, 1), (1, 0, 0, 0), (0, 1, 0, 0))
        for sign in (-1.0, 1.0)
    ]
)


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
    y0 = min(height - 1, max(0, int(round(top * height))))  # a box at (or past) an edge keeps one pixel
    x0 = min(width - 1, max(0, int(round(left * width))))
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


def sample_boxes(references: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Crops ``boxes`` (K, 4: top, left, height, width as fractions) of ``references`` (K, C, R, R), each
    resampled to VERIFY×VERIFY (bilinear; pixel centres map to pixel centres)."""
    if boxes.shape[0] == 0:
        return references.new_zeros((0, references.shape[1], VERIFY, VERIFY))
    top, left, height, width = boxes.unbind(1)
    theta = torch.zeros(boxes.shape[0], 2, 3)
    theta[:, 0, 0] = width
    theta[:, 0, 2] = 2 * left + width - 1
    theta[:, 1, 1] = height
    theta[:, 1, 2] = 2 * top + height - 1
    grid = F.affine_grid(theta, [boxes.shape[0], 1, VERIFY, VERIFY], align_corners=False)
    return F.grid_sample(references, grid, mode="bilinear", padding_mode="border", align_corners=False)


def detail_share(image: torch.Tensor) -> float:
    """Share of a (C, V, V) image whose neighbourhood has more contrast than the noise floor.

    A dim, low-contrast picture (a grey face) is first stretched to a typical photo's contrast (at most
    ×4), so it counts as detailed: it is faint, not flat."""
    stretch = min(_MAX_STRETCH, max(1.0, _TYPICAL_STD / max(float(image.std()), 1e-6)))
    return float((local_variance(image[None] * stretch, 5)[0] > _NOISE**2).float().mean())


def verify(queries: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Per pair, the share of the query explained by the reference after a colour fit, in [0, 1].

    ``queries``: (K, C, V, V) or one (C, V, V) for all; ``references``: (K, C', V, V). Per pixel:
    ``1 - residual / (local contrast + noise floor)`` over 5×5 neighbourhoods, clamped to [0, 1] and
    averaged over the image."""
    if queries.ndim == 3:
        queries = queries[None].expand(references.shape[0], -1, -1, -1)
    count = references.shape[0]
    channels = queries.shape[1]
    q = queries.reshape(count, channels, -1)
    r = references.reshape(count, references.shape[1], -1)
    if r.shape[1] != channels:
        r = r.mean(dim=1, keepdim=True).expand(count, channels, r.shape[-1])
    qm, rm = q.mean(dim=-1, keepdim=True), r.mean(dim=-1, keepdim=True)
    cov = ((q - qm) * (r - rm)).mean(dim=-1, keepdim=True)
    var = ((r - rm) ** 2).mean(dim=-1, keepdim=True)
    gain = (cov / var.clamp_min(1e-6)).clamp(0.3, 3.0)
    fitted = (gain * (r - rm) + qm).reshape(queries.shape)
    residual = box_mean(((queries - fitted) ** 2).mean(dim=1, keepdim=True), 5)[:, 0]
    similarity = (1.0 - residual / (local_variance(queries, 5) + _NOISE**2)).clamp(0.0, 1.0)
    return similarity.flatten(1).mean(dim=1)


def _inside(boxes: torch.Tensor, min_side: float = _MIN_SIDE) -> torch.Tensor:
    top, left, height, width = boxes.unbind(-1)
    return (
        (top >= -1e-6)
        & (left >= -1e-6)
        & (height >= min_side)
        & (width >= min_side)
        & (top + height <= 1.0 + 1e-6)
        & (left + width <= 1.0 + 1e-6)
    )


def align(
    queries: torch.Tensor, references: torch.Tensor, boxes: torch.Tensor, min_side: float = _MIN_SIDE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine crop boxes so each library crop lines up with its query; returns (boxes, scores).

    ``queries``: (P, C, V, V); ``references``: (P, C', R, R); ``boxes``: (P, 4). All picks move together:
    per round every pick tries the 12 moves of the current step (each edge alone, the whole box) and
    takes the best one."""
    picks, moves = boxes.shape[0], _MOVES.shape[0]
    scores = verify(queries, sample_boxes(references, boxes))
    for step in _STEPS:
        for _ in range(_ROUNDS):
            trials = boxes[:, None, :] + step * _MOVES[None]  # (P, 8, 4)
            ok = _inside(trials, min_side).flatten()
            owner = torch.arange(picks).repeat_interleave(moves)[ok]
            values = torch.full((picks * moves,), -1.0)
            if bool(ok.any()):
                values[ok] = verify(queries[owner], sample_boxes(references[owner], trials.reshape(-1, 4)[ok]))
            best, move = values.view(picks, moves).max(dim=1)
            better = best > scores + 1e-4
            if not bool(better.any()):
                break
            boxes = torch.where(better[:, None], trials[torch.arange(picks), move], boxes)
            scores = torch.where(better, best, scores)
    return boxes, scores


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

    def __init__(self, global_index: GlobalIndex, pixels: np.ndarray, candidates: int = 5) -> None:
        self.global_index = global_index
        self.per_item = global_index.boxes
        self.pixels = pixels  # (N, C, S, S) uint8
        self.candidates = candidates

    def _reference(self, row: int) -> torch.Tensor:
        """A library image at the verification size (antialiased), ready to be cropped with sub-pixel boxes."""
        image = torch.from_numpy(np.array(self.pixels[row], dtype=np.float32)) / 127.5 - 1.0
        return F.interpolate(image[None], size=(VERIFY, VERIFY), mode="bilinear", antialias=True)[0]

    def check(self, query: torch.Tensor, allowed: np.ndarray | None = None) -> CopyMatch | None:
        """``query`` (C, h, w) in [-1, 1]; ``allowed``: bool mask of index rows still in the library."""
        if self.global_index.count == 0:
            return None
        variants = _variants(query)
        if detail_share(variants[0][1]) < _MIN_DETAIL:
            logger.debug("near-copy check skipped: the image is almost flat")
            return None
        gray = torch.stack([v.mean(dim=0, keepdim=True) for _, v in variants])
        thumbs = _normalise(F.interpolate(gray, size=(THUMB, THUMB), mode="bilinear", antialias=True))
        top = self.global_index.retrieve(thumbs, allowed, self.candidates)  # best images first
        scores = self.global_index.box_scores(thumbs, top)  # (V, len(top), B)
        picks: list[tuple[int, int, int, float]] = []  # (row, variant, box, retrieval score)
        references: dict[int, torch.Tensor] = {}
        for i, row in enumerate(top):
            references[row] = self._reference(row)
            flat = scores[:, i, :].flatten()
            for pick in torch.topk(flat, min(3, flat.shape[0])).indices.tolist():
                v, b = divmod(pick, self.per_item)
                picks.append((row, v, b, float(flat[pick])))
        if not picks:
            return None
        queries = torch.stack([variants[v][1] for _, v, _, _ in picks])
        refs = torch.stack([references[row] for row, _, _, _ in picks])
        boxes = torch.tensor([BOXES[b] for _, _, b, _ in picks])
        first = verify(queries, sample_boxes(refs, boxes))
        chosen = torch.argsort(first, descending=True)[:_REFINED]
        aligned, verified = align(queries[chosen], refs[chosen], boxes[chosen])
        best = int(verified.argmax())
        row, v, _, retrieval = picks[int(chosen[best])]
        box = tuple(float(x) for x in aligned[best].tolist())
        return CopyMatch(row, float(verified[best]), retrieval, variants[v][0], box)  # type: ignore[arg-type]

    def check_box(self, query: torch.Tensor, row: int, box: tuple[float, float, float, float]) -> CopyMatch:
        """Verify one hypothesis: the whole ``query`` is the crop ``box`` (top, left, height, width as
        fractions) of index row ``row``, possibly resized and recoloured. The box (e.g. from a large
        region found at another size) is aligned first; crops down to a third of a side are allowed."""
        whole = F.interpolate(query[None], size=(VERIFY, VERIFY), mode="bilinear", antialias=True)
        reference = self._reference_at(row, box)
        start = torch.tensor([box], dtype=torch.float32)
        aligned, verified = align(whole, reference[None], start, min_side=_MIN_CROP)
        return CopyMatch(row, float(verified[0]), 0.0, "whole", tuple(float(x) for x in aligned[0].tolist()))  # type: ignore[arg-type]

    def _reference_at(self, row: int, box: tuple[float, float, float, float]) -> torch.Tensor:
        """A library image at a resolution that keeps the detail of a crop of ``box``'s size."""
        image = torch.from_numpy(np.array(self.pixels[row], dtype=np.float32)) / 127.5 - 1.0
        side = int(min(image.shape[-1], max(VERIFY, round(VERIFY / max(0.05, min(box[2], box[3]))))))
        return F.interpolate(image[None], size=(side, side), mode="bilinear", antialias=True)[0]
