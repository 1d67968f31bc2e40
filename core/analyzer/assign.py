"""Dense assignment: per pixel, which offset candidate explains the image best, as connected regions.

1. *Refine* each candidate's offset: the best-correlating offset within two pixels
   (votes come from a coarse patch grid, so offsets can be a pixel or two off; see :mod:`.refine`).
2. *Anchor*: pixels whose neighbourhood correlates strongly (``anchor_correlation``) with one
   candidate, where the image has texture, anchor that candidate. Candidates without anchors drop.
3. *Colour fit*: per candidate, a per-channel gain and offset fitted on its anchors, so a colour
   shift of a pasted region does not hide it.
4. *Similarity*: ``1 - local residual / (local contrast + noise floor)``, in [0, 1], for every
   candidate; each pixel takes the best candidate, borrowed if similarity ≥ ``similarity_threshold``.
5. *Regions*: connected pixels of one candidate form a region; regions without anchors or smaller
   than ``min_region_fraction`` are dropped (flat areas alone never count as borrowed). Optionally
   (``two_way_anchors``, used at other sizes) a region also needs that many anchors where detail runs
   both ways (:func:`~.features.corner_ratio`): a match along one edge or soft curve alone is what any
   edge of similar curvature gives, at one of the many sizes searched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from core.analyzer.features import box_sum, corner_ratio, local_variance
from core.analyzer.index import PatchIndex
from core.analyzer.refine import ncc_floor, refine_offsets, shifted, windows_at
from core.analyzer.settings import AnalyzerSettings
from core.analyzer.voting import Candidate

logger = logging.getLogger(__name__)

_CHUNK = 96
_RADIUS = 2  # pixels (feature grid) an offset may move when refined
_ANCHOR_SHARE = 0.15  # a region needs at least this share of anchor pixels
_PIXEL_TOLERANCE = 0.25  # a pixel's own squared error may add this share of the local contrast
_TWO_WAY = 0.05  # structure-tensor eigenvalue ratio above which detail runs both ways (an edge: ~0)


@dataclass
class Assignment:
    """Per-pixel outcome on the feature grid."""

    candidate: np.ndarray  # (h, w) int: position in ``candidates`` or -1
    similarity: np.ndarray  # (h, w) float32 in [0, 1] (best candidate, even if not borrowed)
    candidates: list[Candidate]


def _masked_stats(query: torch.Tensor, lib: torch.Tensor, valid: torch.Tensor, window: int):
    """Windowed means over valid pixels: n (valid count), E[q], E[l] (per channel), and summed over the
    channels E[ql], E[q²], E[l²] (box sums are linear: the channels are added before the one box sum each
    of those takes, not after one per channel)."""
    n = box_sum(valid, window).clamp_min(1e-6)
    query = query if query.dim() == 4 else query[None]  # one query for all, or one (crop) per candidate
    q = query * valid
    lib_valid = lib * valid
    e_q = box_sum(q, window) / n
    e_l = box_sum(lib_valid, window) / n
    e_ql = box_sum((q * lib).sum(dim=1, keepdim=True), window) / n
    e_qq = box_sum((q * query).sum(dim=1, keepdim=True), window) / n
    e_ll = box_sum((lib_valid * lib).sum(dim=1, keepdim=True), window) / n
    return n, e_q, e_l, e_ql, e_qq, e_ll


@dataclass
class _Crops:
    """Where each candidate's library picture lands in the query, for pictures much smaller than the query (the
    library at a reduced size): the same ``(height, width)`` window of the query for every candidate, at
    ``origins`` (top-left, query coordinates: may lie outside the query), the picture at ``(margin, margin)``
    inside it. Everything a candidate's maps hold outside its picture is fixed (no correlation, no similarity),
    and the margin covers the windows of its pixels: computing on the windows gives the maps of the whole
    query there, at a fraction of the cost."""

    height: int
    width: int
    margin: int
    origins: list[tuple[int, int]]

    def take(self, maps: torch.Tensor, fill: float) -> torch.Tensor:
        """(..., H, W) maps of the whole query -> (K, ..., height, width), ``fill`` outside the query."""
        return windows_at(maps, self.origins, (self.height, self.width), fill)

    def put(self, values: torch.Tensor, height: int, width: int, fill: float) -> torch.Tensor:
        """(K, h, w) window values -> (K, height, width) maps of the whole query, ``fill`` elsewhere."""
        out = torch.full((values.shape[0], height, width), fill, dtype=values.dtype)
        for k, (oy, ox) in enumerate(self.origins):
            y0, y1 = max(0, oy), min(height, oy + self.height)
            x0, x1 = max(0, ox), min(width, ox + self.width)
            if y1 > y0 and x1 > x0:
                out[k, y0:y1, x0:x1] = values[k, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        return out


class DenseAssigner:
    """Assigns every pixel of a query feature map to one of a set of offset candidates (or none).

    Shifted library images are cached per key, so several assignments (all scales together, then
    each scale) of one query share that work."""

    def __init__(
        self,
        settings: AnalyzerSettings,
        index: PatchIndex,
        noise_floor: float,
        structure: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.settings = settings
        self.index = index
        self.noise_floor = noise_floor
        self.structure = structure
        self._library: dict[int, torch.Tensor] = {}
        self._structure: dict[int, torch.Tensor] = {}
        self._shifted: dict[tuple[int, int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        #: compare candidates whose library pictures are much smaller than the query on windows around them
        #: (:class:`_Crops`: the same maps); False: always on the whole query
        self.crop = True

    def _lib(self, row: int) -> torch.Tensor:
        if row not in self._library:
            self._library[row] = self.index.feature_images([row])[0]
        return self._library[row]

    def _lib_structure(self, row: int) -> torch.Tensor:
        if row not in self._structure:
            self._structure[row] = self.structure(self._lib(row)[None])[0]
        return self._structure[row]

    def _stack(self, keys: list[tuple[int, int, int]], height: int, width: int):
        libs, valids = [], []
        for key in keys:
            if key not in self._shifted:
                row, dy, dx = key
                self._shifted[key] = shifted(self._lib(row), dy, dx, height, width)
            lib, valid = self._shifted[key]
            libs.append(lib)
            valids.append(valid)
        return torch.stack(libs), torch.stack(valids)

    def _crops(self, keys: list[tuple[int, int, int]], height: int, width: int, window: int) -> _Crops | None:
        """Windows around the candidates' pictures when those are all one size and much smaller than the query
        (half its area or less with the margin), else None: the whole query is compared."""
        if not self.crop or not keys:
            return None
        shapes = {tuple(self._lib(row).shape[-2:]) for row, _, _ in keys}
        if len(shapes) != 1:
            return None
        side_h, side_w = shapes.pop()
        margin = window // 2 + 1
        crop_h, crop_w = side_h + 2 * margin, side_w + 2 * margin
        if 2 * crop_h * crop_w > height * width:
            return None
        return _Crops(crop_h, crop_w, margin, [(-dy - margin, -dx - margin) for _, dy, dx in keys])

    def _cropped(self, crops: _Crops, keys: list[tuple[int, int, int]], height: int, width: int):
        """(K, C, h, w) library pictures in their windows and (K, 1, h, w) where they hold a pixel of the query."""
        m = crops.margin
        canvas: dict[int, torch.Tensor] = {}
        libs = []
        for row, _, _ in keys:
            if row not in canvas:
                picture = self._lib(row)
                placed = torch.zeros(picture.shape[0], crops.height, crops.width)
                placed[:, m : m + picture.shape[1], m : m + picture.shape[2]] = picture
                canvas[row] = placed
            libs.append(canvas[row])
        side_h, side_w = crops.height - 2 * m, crops.width - 2 * m
        inside_picture = torch.zeros(1, crops.height, crops.width)
        inside_picture[:, m : m + side_h, m : m + side_w] = 1.0
        inside_query = crops.take(torch.ones(1, height, width), 0.0)  # (K, 1, h, w)
        return torch.stack(libs), inside_query * inside_picture

    def _chunk(
        self,
        keys: list[tuple[int, int, int]],
        query: torch.Tensor,
        window: int,
        maps: list[tuple[torch.Tensor, float]],
    ) -> tuple[_Crops | None, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """What comparing ``keys`` with ``query`` (C, H, W) takes, over the whole query or on windows around
        their pictures (:meth:`_crops`): the windows (None: whole query), the shifted library pictures
        (K, C, h, w), where they are valid (K, 1, h, w), the query (1 or K, C, h, w) and each of ``maps``
        ((..., H, W), the value outside the query) on the same grid."""
        height, width = query.shape[-2:]
        crops = self._crops(keys, height, width, window)
        if crops is None:
            lib, valid = self._stack(keys, height, width)
            return None, lib, valid, query[None], [values for values, _ in maps]
        lib, valid = self._cropped(crops, keys, height, width)
        return crops, lib, valid, crops.take(query, 0.0), [crops.take(values, fill) for values, fill in maps]

    def correlation(self, query: torch.Tensor, keys: list[tuple[int, int, int]], window: int) -> torch.Tensor:
        """Local (windowed, masked) correlation of the query with each shifted candidate, (K, h, w)."""
        channels, height, width = query.shape
        eps = ncc_floor(channels, self.settings.flat_std)
        area = box_sum(torch.ones(1, 1, height, width), window)[0]
        out = []
        for start in range(0, len(keys), _CHUNK):
            crops, lib, valid, q, (part_area,) = self._chunk(keys[start : start + _CHUNK], query, window,
                                                             [(area, 1.0)])
            n, e_q, e_l, e_ql, e_qq, e_ll = _masked_stats(q, lib, valid, window)
            cov = e_ql[:, 0] - (e_q * e_l).sum(dim=1)
            var_q = (e_qq[:, 0] - (e_q**2).sum(dim=1)).clamp_min(0)
            var_l = (e_ll[:, 0] - (e_l**2).sum(dim=1)).clamp_min(0)
            ncc = cov / torch.sqrt((var_q + eps) * (var_l + eps))
            inside = (n / part_area)[:, 0] > 0.5
            ncc = torch.where(inside & (valid[:, 0] > 0), ncc, torch.full_like(ncc, -1.0))
            out.append(ncc if crops is None else crops.put(ncc, height, width, -1.0))
        return torch.cat(out) if out else torch.zeros(0, height, width)

    def refine(self, query: torch.Tensor, candidates: list[Candidate], window: int) -> list[Candidate]:
        """Move each candidate to its best offset within two pixels; merge duplicates, drop unmatched ones."""
        textured = local_variance(query[None], window)[0] > self.settings.flat_std**2
        struct_query = self.structure(query[None])[0]
        unique = list(dict.fromkeys(c.key for c in candidates))  # scales often agree on an offset
        moved, values = refine_offsets(
            struct_query, self._lib_structure, unique, textured, window, _RADIUS, self.settings.flat_std, self.crop
        )
        found = dict(zip(unique, zip(moved, values, strict=True), strict=True))
        keys = [found[c.key][0] for c in candidates]
        scores = [found[c.key][1] for c in candidates]
        merged: dict[tuple[tuple[int, int, int], int], Candidate] = {}
        for cand, key, value in zip(candidates, keys, scores, strict=True):
            if value <= 0:
                continue
            if (key, cand.scale) in merged:
                merged[(key, cand.scale)].votes += cand.votes
            else:
                merged[(key, cand.scale)] = Candidate(key[0], key[1], key[2], cand.votes, cand.scale)
        return list(merged.values())

    def assign(
        self, query: torch.Tensor, candidates: list[Candidate], window: int, two_way_anchors: int = 0
    ) -> Assignment:
        """Each pixel's best candidate; a region also needs ``two_way_anchors`` anchors with detail
        running both ways (0: no such rule)."""
        s = self.settings
        channels, height, width = query.shape
        if not candidates:
            return Assignment(np.full((height, width), -1), np.zeros((height, width), np.float32), [])
        keys = [c.key for c in candidates]
        local_var = local_variance(query[None], window)[0]
        textured = local_var > s.flat_std**2
        ncc = self.correlation(query, keys, window)
        best_ncc, winner = ncc.max(dim=0)
        anchor = (best_ncc >= s.anchor_correlation) & textured
        min_anchors = max(4, window)
        counts = torch.bincount(winner[anchor], minlength=len(keys))
        kept = [k for k in range(len(keys)) if int(counts[k]) >= min_anchors]
        if not kept:
            return Assignment(np.full((height, width), -1), np.zeros((height, width), np.float32), [])
        fits: list[tuple[torch.Tensor, torch.Tensor]] = []
        anchor_maps: list[np.ndarray] = []
        for k in kept:
            mask = anchor & (winner == k)
            lib, _ = self._stack([keys[k]], height, width)
            q = query[:, mask]
            lv = lib[0][:, mask]
            qm, lm = q.mean(dim=1, keepdim=True), lv.mean(dim=1, keepdim=True)
            cov = ((q - qm) * (lv - lm)).mean(dim=1, keepdim=True)
            var = ((lv - lm) ** 2).mean(dim=1, keepdim=True)
            gain = (cov / var.clamp_min(1e-6)).clamp(0.5, 2.0)
            bias = qm - gain * lm
            fits.append((gain[:, 0], bias[:, 0]))
            anchor_maps.append(mask.numpy())
        area = box_sum(torch.ones(1, 1, height, width), window)[0]
        floor = local_var + self.noise_floor**2
        tolerance = (2.0 * self.noise_floor) ** 2 + _PIXEL_TOLERANCE * local_var
        sims = []
        pad = window // 2
        for start in range(0, len(kept), _CHUNK):
            part = kept[start : start + _CHUNK]
            crops, lib, valid, q, (part_area, part_floor, part_tolerance) = self._chunk(
                [keys[k] for k in part], query, window, [(area, 1.0), (floor, 1.0), (tolerance, 0.0)]
            )
            gain = torch.stack([fits[start + i][0] for i in range(len(part))])[:, :, None, None]
            bias = torch.stack([fits[start + i][1] for i in range(len(part))])[:, :, None, None]
            err = ((q - (gain * lib + bias)) ** 2).mean(dim=1, keepdim=True) * valid
            n = box_sum(valid, window).clamp_min(1e-6)
            residual = (box_sum(err, window) / n)[:, 0]
            sim = (1.0 - residual / part_floor).clamp(0.0, 1.0)
            sim = torch.where(((n / part_area)[:, 0] > 0.5) & (valid[:, 0] > 0), sim, torch.zeros_like(sim))
            # a pixel is explained by any well-matching window that contains it (so borders are not
            # lost), provided the pixel itself matches too (so the match does not bleed outwards)
            pooled = F.max_pool2d(sim[:, None], (window, 1), stride=1, padding=(pad, 0))  # a max is separable:
            pooled = F.max_pool2d(pooled, (1, window), stride=1, padding=(0, pad))[:, 0]  # rows, then columns
            pixel_ok = (err[:, 0] <= part_tolerance) & (valid[:, 0] > 0)
            picked = torch.where(pixel_ok, pooled, sim)
            sims.append(picked if crops is None else crops.put(picked, height, width, 0.0))
        sim_all = torch.cat(sims)
        best_sim, best = sim_all.max(dim=0)
        best_np = best.numpy()
        borrowed = (best_sim >= s.similarity_threshold).numpy()
        label = np.where(borrowed, best_np, -1)
        min_area = max(int(window * window), int(s.min_region_fraction * height * width))
        two_way = (corner_ratio(query[None], window)[0] > _TWO_WAY).numpy() if two_way_anchors > 0 else None
        out = np.full((height, width), -1, dtype=np.int64)
        for slot, k in enumerate(kept):
            mask = label == slot
            if not mask.any():
                continue
            components, count = ndimage.label(mask)
            if count == 0:
                continue
            areas = np.bincount(components.ravel(), minlength=count + 1)
            anchors = np.bincount(components.ravel(), weights=anchor_maps[slot].ravel(), minlength=count + 1)
            good = (areas >= min_area) & (anchors >= np.maximum(min_anchors, _ANCHOR_SHARE * areas))
            if two_way is not None:
                corners = np.bincount(components.ravel(), weights=(anchor_maps[slot] & two_way).ravel(),
                                      minlength=count + 1)
                good &= corners >= two_way_anchors
            good[0] = False
            out[good[components]] = k
        return Assignment(out, best_sim.numpy().astype(np.float32), candidates)
