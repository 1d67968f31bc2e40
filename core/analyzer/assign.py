"""Dense assignment: per pixel, which offset candidate explains the image best, as connected regions.

1. *Refine* each candidate's offset by a few steps of hill climbing on its local-correlation map
   (votes come from a coarse patch grid, so offsets can be a pixel or two off).
2. *Anchor*: pixels whose neighbourhood correlates strongly (``anchor_correlation``) with one
   candidate, where the image has texture, anchor that candidate. Candidates without anchors drop.
3. *Colour fit*: per candidate, a per-channel gain and offset fitted on its anchors, so a colour
   shift of a pasted region does not hide it.
4. *Similarity*: ``1 - local residual / (local contrast + noise floor)``, in [0, 1], for every
   candidate; each pixel takes the best candidate, borrowed if similarity ≥ ``similarity_threshold``.
5. *Regions*: connected pixels of one candidate form a region; regions without anchors or smaller
   than ``min_region_fraction`` are dropped (flat areas alone never count as borrowed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from core.analyzer.features import box_mean
from core.analyzer.index import PatchIndex
from core.analyzer.settings import AnalyzerSettings
from core.analyzer.voting import Candidate

logger = logging.getLogger(__name__)

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_CHUNK = 96
_ANCHOR_SHARE = 0.15  # a region needs at least this share of anchor pixels
_PIXEL_TOLERANCE = 0.25  # a pixel's own squared error may add this share of the local contrast


@dataclass
class Assignment:
    """Per-pixel outcome on the feature grid."""

    candidate: np.ndarray  # (h, w) int: position in ``candidates`` or -1
    similarity: np.ndarray  # (h, w) float32 in [0, 1] (best candidate, even if not borrowed)
    candidates: list[Candidate]


def _shifted(lib: torch.Tensor, dy: int, dx: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``lib`` (C, S, S) sampled at (y + dy, x + dx) for a (height, width) grid, and a validity mask."""
    channels, size, _ = lib.shape
    out = torch.zeros(channels, height, width)
    valid = torch.zeros(1, height, width)
    y0, y1 = max(0, -dy), min(height, size - dy)
    x0, x1 = max(0, -dx), min(width, size - dx)
    if y1 > y0 and x1 > x0:
        out[:, y0:y1, x0:x1] = lib[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
        valid[:, y0:y1, x0:x1] = 1.0
    return out, valid


def _masked_stats(query: torch.Tensor, lib: torch.Tensor, valid: torch.Tensor, window: int):
    """Windowed means over valid pixels: n, E[q], E[l], E[ql], E[q²], E[l²] (per channel)."""
    n = box_mean(valid, window).clamp_min(1e-6)
    q = query[None] * valid
    e_q = box_mean(q, window) / n
    e_l = box_mean(lib * valid, window) / n
    e_ql = box_mean(q * lib, window) / n
    e_qq = box_mean(q * query[None], window) / n
    e_ll = box_mean(lib * lib * valid, window) / n
    return n, e_q, e_l, e_ql, e_qq, e_ll


class DenseAssigner:
    """Assigns every pixel of a query feature map to one of a set of offset candidates (or none)."""

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

    def _lib(self, row: int) -> torch.Tensor:
        if row not in self._library:
            self._library[row] = self.index.feature_images([row])[0]
        return self._library[row]

    def _lib_structure(self, row: int) -> torch.Tensor:
        if row not in self._structure:
            self._structure[row] = self.structure(self._lib(row)[None])[0]
        return self._structure[row]

    def _stack(self, keys: list[tuple[int, int, int]], height: int, width: int, structure: bool = False):
        libs, valids = [], []
        source = self._lib_structure if structure else self._lib
        for row, dy, dx in keys:
            lib, valid = _shifted(source(row), dy, dx, height, width)
            libs.append(lib)
            valids.append(valid)
        return torch.stack(libs), torch.stack(valids)

    def correlation(
        self, query: torch.Tensor, keys: list[tuple[int, int, int]], window: int, structure: bool = False
    ) -> torch.Tensor:
        """Local (windowed, masked) correlation of the query with each shifted candidate, (K, h, w).

        With ``structure`` the query must be structure channels and library images are converted too."""
        _, height, width = query.shape
        channels = query.shape[0]
        eps = channels * (self.settings.flat_std * 0.7) ** 2
        out = []
        for start in range(0, len(keys), _CHUNK):
            lib, valid = self._stack(keys[start : start + _CHUNK], height, width, structure)
            n, e_q, e_l, e_ql, e_qq, e_ll = _masked_stats(query, lib, valid, window)
            cov = (e_ql - e_q * e_l).sum(dim=1)
            var_q = (e_qq - e_q**2).clamp_min(0).sum(dim=1)
            var_l = (e_ll - e_l**2).clamp_min(0).sum(dim=1)
            ncc = cov / torch.sqrt((var_q + eps) * (var_l + eps))
            ncc = torch.where((n[:, 0] > 0.5) & (valid[:, 0] > 0), ncc, torch.full_like(ncc, -1.0))
            out.append(ncc)
        return torch.cat(out) if out else torch.zeros(0, height, width)

    def refine(self, query: torch.Tensor, candidates: list[Candidate], window: int) -> list[Candidate]:
        """Hill-climb each candidate's offset on its correlation map; merge duplicates."""
        textured = self._textured(query, window)
        struct_query = self.structure(query[None])[0]

        def scores(keys: list[tuple[int, int, int]]) -> np.ndarray:
            ncc = self.correlation(struct_query, keys, window, structure=True)
            return ((ncc - 0.5).clamp_min(0) * textured).flatten(1).sum(dim=1).numpy()

        current = [c.key for c in candidates]
        best = scores(current) if current else np.zeros(0)
        for _ in range(3):
            trials = [(r, dy + a, dx + b) for r, dy, dx in current for a, b in _NEIGHBOURS]
            if not trials:
                break
            values = scores(trials).reshape(len(current), len(_NEIGHBOURS))
            moved = False
            for i in range(len(current)):
                j = int(values[i].argmax())
                if values[i, j] > best[i] * 1.0001 + 1e-6:
                    r, dy, dx = current[i]
                    current[i] = (r, dy + _NEIGHBOURS[j][0], dx + _NEIGHBOURS[j][1])
                    best[i] = values[i, j]
                    moved = True
            if not moved:
                break
        merged: dict[tuple[tuple[int, int, int], int], Candidate] = {}
        for cand, key, value in zip(candidates, current, best, strict=True):
            if value <= 0:
                continue
            if (key, cand.scale) in merged:
                merged[(key, cand.scale)].votes += cand.votes
            else:
                merged[(key, cand.scale)] = Candidate(key[0], key[1], key[2], cand.votes, cand.scale)
        return list(merged.values())

    def _textured(self, query: torch.Tensor, window: int) -> torch.Tensor:
        mean = box_mean(query[None], window)[0]
        var = (box_mean((query**2)[None], window)[0] - mean**2).clamp_min(0).mean(dim=0)
        return (var > self.settings.flat_std**2).float()

    def assign(self, query: torch.Tensor, candidates: list[Candidate], window: int) -> Assignment:
        s = self.settings
        channels, height, width = query.shape
        if not candidates:
            return Assignment(np.full((height, width), -1), np.zeros((height, width), np.float32), [])
        keys = [c.key for c in candidates]
        textured = self._textured(query, window) > 0
        ncc = self.correlation(query, keys, window)
        best_ncc, winner = ncc.max(dim=0)
        anchor = (best_ncc >= s.anchor_correlation) & textured
        min_anchors = max(4, window)
        kept: list[int] = []
        fits: list[tuple[torch.Tensor, torch.Tensor]] = []
        anchor_maps: list[np.ndarray] = []
        for k, (row, dy, dx) in enumerate(keys):
            mask = anchor & (winner == k)
            if int(mask.sum()) < min_anchors:
                continue
            lib, _ = _shifted(self._lib(row), dy, dx, height, width)
            q = query[:, mask]
            lv = lib[:, mask]
            qm, lm = q.mean(dim=1, keepdim=True), lv.mean(dim=1, keepdim=True)
            cov = ((q - qm) * (lv - lm)).mean(dim=1, keepdim=True)
            var = ((lv - lm) ** 2).mean(dim=1, keepdim=True)
            gain = (cov / var.clamp_min(1e-6)).clamp(0.5, 2.0)
            bias = qm - gain * lm
            kept.append(k)
            fits.append((gain[:, 0], bias[:, 0]))
            anchor_maps.append(mask.numpy())
        if not kept:
            return Assignment(
                np.full((height, width), -1), np.zeros((height, width), np.float32), []
            )
        mean_q = box_mean(query[None], window)[0]
        local_var = (box_mean((query**2)[None], window)[0] - mean_q**2).clamp_min(0).mean(dim=0)
        sims = []
        pad = window // 2
        for start in range(0, len(kept), _CHUNK):
            part = kept[start : start + _CHUNK]
            lib, valid = self._stack([keys[k] for k in part], height, width)
            gain = torch.stack([fits[start + i][0] for i in range(len(part))])[:, :, None, None]
            bias = torch.stack([fits[start + i][1] for i in range(len(part))])[:, :, None, None]
            fitted = gain * lib + bias
            err = ((query[None] - fitted) ** 2).mean(dim=1, keepdim=True) * valid
            n = box_mean(valid, window).clamp_min(1e-6)
            floor = local_var + self.noise_floor**2
            residual = (box_mean(err, window) / n)[:, 0]
            sim = (1.0 - residual / floor).clamp(0.0, 1.0)
            sim = torch.where((n[:, 0] > 0.5) & (valid[:, 0] > 0), sim, torch.zeros_like(sim))
            # a pixel is explained by any well-matching window that contains it (so borders are not
            # lost), provided the pixel itself matches too (so the match does not bleed outwards)
            pooled = F.max_pool2d(sim[:, None], window, stride=1, padding=pad)[:, 0]
            tolerance = (2.0 * self.noise_floor) ** 2 + _PIXEL_TOLERANCE * local_var
            pixel_ok = (err[:, 0] <= tolerance) & (valid[:, 0] > 0)
            sims.append(torch.where(pixel_ok, pooled, sim))
        sim_all = torch.cat(sims)
        best_sim, best = sim_all.max(dim=0)
        best_np = best.numpy()
        borrowed = (best_sim >= s.similarity_threshold).numpy()
        label = np.where(borrowed, best_np, -1)
        min_area = max(int(window * window), int(s.min_region_fraction * height * width))
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
            good[0] = False
            out[good[components]] = k
        return Assignment(out, best_sim.numpy().astype(np.float32), candidates)
