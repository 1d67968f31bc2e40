"""Offset refinement (core/analyzer/refine.py): the windowed cross terms of every offset at once."""

from __future__ import annotations

import pytest
import torch

from core.analyzer.refine import box_valid, cross_means


@pytest.mark.parametrize(
    "count,channels,height,width,window,radius,step",
    [(5, 1, 128, 128, 7, 2, 4), (3, 4, 37, 50, 5, 2, 4), (2, 3, 20, 17, 3, 1, 1), (1, 1, 9, 9, 9, 2, 4)],
)
def test_cross_means_equal_a_product_image_and_box_filter_per_offset(count, channels, height, width, window, radius,
                                                                     step):
    gen = torch.Generator().manual_seed(count * 100 + height)
    ext = torch.randn(count, channels, height + 2 * radius, width + 2 * radius, generator=gen)
    query = torch.randn(channels, height, width, generator=gen)
    got = cross_means(ext, query, window, radius, step)
    for a in range(-radius, radius + 1):
        for b in range(-radius, radius + 1):
            view = ext[:, :, radius + a : radius + a + height, radius + b : radius + b + width]
            want = box_valid(view * query, window, step).sum(dim=1)
            assert got[..., radius + a, radius + b].shape == want.shape
            assert torch.allclose(got[..., radius + a, radius + b], want, atol=1e-5), (a, b)
