"""Brute-force float64 reference of the score machines: explicit padding, explicit enumeration of
the allowed library patches of every pixel, plain loops. Only for tiny inputs."""

from __future__ import annotations

import math

import numpy as np


def alpha_bar(t: float) -> float:
    return math.cos((t / 1.008) * math.pi / 2) ** 2


def _pad(img: np.ndarray, r: int, circular: bool) -> np.ndarray:
    mode = "wrap" if circular else "constant"
    return np.pad(img, ((0, 0), (r, r), (r, r)), mode=mode)


def _patch(padded: np.ndarray, i: int, j: int, p: int) -> np.ndarray:
    return padded[:, i : i + p, j : j + p].ravel()


def _row_class(i: int, length: int, r: int) -> object:
    return i if (i < r or i >= length - r) else "interior"


def allowed_positions(kind: str, i: int, j: int, h: int, w: int, p: int) -> list[tuple[int, int]]:
    """Library patch centres pixel (i, j) may use."""
    r = p // 2
    if kind == "ls":
        return [(i, j)]
    if kind == "els":
        return [(a, b) for a in range(h) for b in range(w)]
    if kind == "bbels":
        return [
            (a, b)
            for a in range(h)
            for b in range(w)
            if _row_class(a, h, r) == _row_class(i, h, r) and _row_class(b, w, r) == _row_class(j, w, r)
        ]
    raise ValueError(kind)


def reference_denoise(
    x: np.ndarray,
    ab: float,
    library: np.ndarray,
    kind: str,
    p: int,
    labels: np.ndarray | None = None,
    class_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Returns x0 (B,C,H,W), sources (B,H,W,3), entropy (B,H,W) and the nearest-patch centre
    (B,C,H,W) by plain distance ‖Ω_p(x) − φ‖ (for the t→0 limit)."""
    x = x.astype(np.float64)
    library = library.astype(np.float64)
    b_count, c, h, w = x.shape
    a = math.sqrt(ab)
    x0 = np.zeros_like(x)
    nearest = np.zeros_like(x)
    sources = np.zeros((b_count, h, w, 3), dtype=np.int64)
    entropy = np.zeros((b_count, h, w))
    r = p // 2
    circular = kind == "els"
    for b in range(b_count):
        members = range(len(library))
        if class_labels is not None:
            members = [n for n in range(len(library)) if labels[n] == class_labels[b]]
        if kind == "is":
            cands = [(n, None) for n in members]
            vecs = np.stack([library[n].ravel() for n in members])
            query = x[b].ravel()
            dist = ((query[None] - a * vecs) ** 2).sum(1)
            plain = ((query[None] - vecs) ** 2).sum(1)
            logit = -dist / (2 * (1 - ab))
            wts = np.exp(logit - logit.max())
            wts /= wts.sum()
            best = int(np.argmax(logit))
            x0[b] = np.tensordot(wts, np.stack([library[n] for n in members]), axes=1)
            nearest[b] = library[members[int(np.argmin(plain))]]
            for i in range(h):
                for j in range(w):
                    sources[b, i, j] = (cands[best][0], i, j)
            entropy[b] = -(wts[wts > 0] * np.log(wts[wts > 0])).sum()
            continue
        qpad = _pad(x[b], r, circular)
        lpads = {n: _pad(library[n], r, circular) for n in members}
        for i in range(h):
            for j in range(w):
                query = _patch(qpad, i, j, p)
                cands = [(n, ii, jj) for n in members for (ii, jj) in allowed_positions(kind, i, j, h, w, p)]
                vecs = np.stack([_patch(lpads[n], ii, jj, p) for (n, ii, jj) in cands])
                centres = np.stack([library[n][:, ii, jj] for (n, ii, jj) in cands])
                dist = ((query[None] - a * vecs) ** 2).sum(1)
                plain = ((query[None] - vecs) ** 2).sum(1)
                logit = -dist / (2 * (1 - ab))
                wts = np.exp(logit - logit.max())
                wts /= wts.sum()
                x0[b, :, i, j] = wts @ centres
                nearest[b, :, i, j] = centres[int(np.argmin(plain))]
                sources[b, i, j] = cands[int(np.argmax(logit))]
                entropy[b, i, j] = -(wts[wts > 0] * np.log(wts[wts > 0])).sum()
    return x0, sources, entropy, nearest


def reference_sample(
    library: np.ndarray,
    noise: np.ndarray,
    kind: str,
    patch_sizes: list[int],
    labels: np.ndarray | None = None,
    class_labels: np.ndarray | None = None,
) -> list[np.ndarray]:
    """The x0 estimate of every DDIM step."""
    steps = len(patch_sizes)
    x = noise.astype(np.float64)
    out = []
    for k, p in enumerate(patch_sizes):
        ab, ab_next = alpha_bar(1 - k / steps), alpha_bar(1 - (k + 1) / steps)
        x0 = reference_denoise(x, ab, library, kind, p, labels, class_labels)[0]
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        x = math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps
        out.append(x0)
    return out


def reference_grid_sample(
    library: np.ndarray, noise: np.ndarray, kind: str, low_to_high: list[int]
) -> tuple[list[np.ndarray], list[int]]:
    """Kamb & Ganguli's grid, written from its description: ``x = noise`` at t = 0.95; for i = 19 … 1 the
    machine at t = i/20 with entry i of the 20-entry schedule (counted from low noise), DDIM to (i-1)/20.
    Returns every x0 estimate (the last, at t = 0.05, is the result, unclamped) and the sizes used."""
    x = noise.astype(np.float64)
    out, used = [], []
    for i in range(19, 0, -1):
        ab, ab_next = alpha_bar(i / 20), alpha_bar((i - 1) / 20)
        x0 = reference_denoise(x, ab, library, kind, low_to_high[i])[0]
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        x = math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps
        out.append(x0)
        used.append(low_to_high[i])
    return out, used
