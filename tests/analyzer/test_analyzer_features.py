"""Small image measures of :mod:`core.analyzer.features`."""

from __future__ import annotations

import numpy as np
import torch

from core.analyzer.features import corner_ratio, local_variance


def _disc(radius: float, size: int = 64) -> torch.Tensor:
    """An orange disc on black with a soft (anti-aliased, two-pixel) rim, as in a photo."""
    ys, xs = np.mgrid[0:size, 0:size]
    distance = np.sqrt((ys - size / 2) ** 2 + (xs - size / 2) ** 2)
    inside = np.clip((radius - distance) / 2 + 0.5, 0, 1).astype(np.float32)
    return torch.from_numpy(np.stack([inside, 0.5 * inside, 0 * inside]))[None] * 2 - 1


def test_an_edge_runs_one_way_and_texture_both_ways():
    edge = torch.zeros(1, 3, 32, 32)
    edge[..., 16:] = 1.0
    assert float(corner_ratio(edge, 7)[0, 8:24, 12:20].max()) < 0.01
    texture = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
    assert float(corner_ratio(texture, 7)[0, 4:-4, 4:-4].median()) > 0.3
    corner = torch.zeros(1, 1, 32, 32)
    corner[..., 16:, 16:] = 1.0
    assert float(corner_ratio(corner, 7)[0, 16, 16]) > 0.3


def test_a_large_curved_rim_is_an_edge_at_the_window_size():
    ratio = corner_ratio(_disc(26.0), 7)[0]
    rim = local_variance(_disc(26.0), 7)[0] > 0.01
    assert rim.sum() > 100
    assert float(ratio[rim].max()) < 0.05  # what the analyzer's two-way anchor rule relies on
    small = corner_ratio(_disc(3.0), 7)[0]
    assert float(small[32, 32]) > 0.3  # a dot is detail both ways


def test_flat_is_zero_not_nan():
    ratio = corner_ratio(torch.zeros(2, 3, 16, 16), 5)
    assert torch.isfinite(ratio).all() and float(ratio.abs().max()) == 0.0
