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
from core.analyzer.refine import ncc_floor, refine_offsets, shifted
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
    q = query[None] * valid
    lib_valid = lib * valid
    e_q = box_sum(q, window) / n
    e_l = box_sum(lib_valid, window) / n
    e_ql = box_sum((q * lib).sum(dim=1, keepdim=True), window) / n
    e_qq = box_sum((q * query[None]).sum(dim=1, keepdim=True), window) / n
    e_ll = box_sum((lib_valid * lib).sum(dim=1, keepdim=True), window) / n
    return n, e_q, e_l, e_ql, e_qq, e_ll


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

    def correlation(self, query: torch.Tensor, keys: list[tuple[int, int, int]], window: int) -> torch.Tensor:
        """Local (windowed, masked) correlation of the query with each shifted candidate, (K, h, w)."""
        channels, height, width = query.shape
        eps = ncc_floor(channels, self.settings.flat_std)
        area = box_sum(torch.ones(1, 1, height, width), window)[0]
        out = []
        for start in range(0, len(keys), _CHUNK):
            lib, valid = self._stack(keys[start : start + _CHUNK], height, width)
            n, e_q, e_l, e_ql, e_qq, e_ll = _masked_stats(query, lib, valid, window)
            cov = e_ql[:, 0] - (e_q * e_l).sum(dim=1)
            var_q = (e_qq[:, 0] - (e_q**2).sum(dim=1)).clamp_min(0)
            var_l = (e_ll[:, 0] - (e_l**2).sum(dim=1)).clamp_min(0)
            ncc = cov / torch.sqrt((var_q + eps) * (var_l + eps))
            inside = (n / area)[:, 0] > 0.5
            ncc = torch.where(inside & (valid[:, 0] > 0), ncc, torch.full_like(ncc, -1.0))
            out.append(ncc)
        return torch.cat(out) if out else torch.zeros(0, height, width)

    def refine(self, query: torch.Tensor, candidates: list[Candidate], window: int) -> list[Candidate]:
        """Move each candidate to its best offset within two pixels; merge duplicates, drop unmatched ones."""
        textured = local_variance(query[None], window)[0] > self.settings.flat_std**2
        struct_query = self.structure(query[None])[0]
        unique = list(dict.fromkeys(c.key for c in candidates))  # scales often agree on an offset
        moved, values = refine_offsets(
            struct_query, self._lib_structure, unique, textured, window, _RADIUS, self.settings.flat_std
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
            lib, valid = self._stack([keys[k] for k in part], height, width)
            gain = torch.stack([fits[start + i][0] for i in range(len(part))])[:, :, None, None]
            bias = torch.stack([fits[start + i][1] for i in range(len(part))])[:, :, None, None]
            err = ((query[None] - (gain * lib + bias)) ** 2).mean(dim=1, keepdim=True) * valid
            n = box_sum(valid, window).clamp_min(1e-6)
            residual = (box_sum(err, window) / n)[:, 0]
            sim = (1.0 - residual / floor).clamp(0.0, 1.0)
            sim = torch.where(((n / area)[:, 0] > 0.5) & (valid[:, 0] > 0), sim, torch.zeros_like(sim))
            # a pixel is explained by any well-matching window that contains it (so borders are not
            # lost), provided the pixel itself matches too (so the match does not bleed outwards)
            pooled = F.max_pool2d(sim[:, None], (window, 1), stride=1, padding=(pad, 0))  # a max is separable:
            pooled = F.max_pool2d(pooled, (1, window), stride=1, padding=(0, pad))[:, 0]  # rows, then columns
            pixel_ok = (err[:, 0] <= tolerance) & (valid[:, 0] > 0)
            sims.append(torch.where(pixel_ok, pooled, sim))
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
