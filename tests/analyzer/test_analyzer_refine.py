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


def _reference_scores(query, library, key, textured, window, radius, flat_std):
    """Each offset's score the plain way: shift, product image, box filter, correlation, per offset."""
    from core.analyzer.refine import _STEP, _offsets, ncc_floor, shifted

    channels, height, width = query.shape
    r = window // 2
    eps = ncc_floor(channels, flat_std)
    m_q = box_valid(query, window, _STEP)
    var_q = (box_valid(query * query, window, _STEP) - m_q**2).clamp_min(0).sum(dim=0)
    weight = textured[r : height - r : _STEP, r : width - r : _STEP].float()
    row, dy, dx = key
    scores = []
    for a, b in _offsets(radius):
        lib, valid = shifted(library(row), dy + a, dx + b, height, width)
        m_l = box_valid(lib, window, _STEP)
        cov = (box_valid(lib * query, window, _STEP) - m_q * m_l).sum(dim=0)
        var_l = (box_valid(lib * lib, window, _STEP) - m_l**2).clamp_min(0).sum(dim=0)
        ncc = cov / torch.sqrt((var_q + eps) * (var_l + eps))
        inside = box_valid(valid, window, _STEP)[0] > 1.0 - 1e-4
        scores.append(float(((ncc - 0.5).clamp_min(0) * inside * weight).sum()))
    return scores


@pytest.mark.parametrize("height,width", [(64, 64), (50, 37), (20, 90)])
def test_refined_offsets_are_the_best_scored_ones_of_a_plain_per_offset_search(height, width):
    from core.analyzer.refine import _offsets, refine_offsets

    gen = torch.Generator().manual_seed(height + width)
    query = torch.randn(1, height, width, generator=gen)
    pictures = {i: torch.randn(1, 70, 70, generator=gen) for i in range(1, 4)}
    pictures[0] = torch.randn(1, 70, 70, generator=gen)
    pictures[0][:, 3 : 3 + min(height, 67), 1 : 1 + min(width, 69)] = query[:, : min(height, 67), : min(width, 69)]
    keys = [(0, 3, 1), (0, 4, 0), (0, 2, 3)] + [(i % 4, int(y), int(x)) for i, (y, x) in
                                                enumerate(torch.randint(-5, 5, (12, 2), generator=gen).tolist())]
    textured = torch.rand(height, width, generator=gen) > 0.3
    moved, scores = refine_offsets(query, pictures.__getitem__, keys, textured, 7, 2, 0.03)
    for key, got_key, got_score in zip(keys, moved, scores, strict=True):
        want = _reference_scores(query, pictures.__getitem__, key, textured, 7, 2, 0.03)
        best = max(range(len(want)), key=lambda j: (want[j], -j))  # the first of equal best ones
        a, b = _offsets(2)[best]
        assert got_key == (key[0], key[1] + a, key[2] + b) and got_score == pytest.approx(want[best], abs=1e-3)
    assert moved[0] == (0, 3, 1) and moved[1] == (0, 3, 1) and moved[2] == (0, 3, 1)  # found where it was put


@pytest.mark.parametrize("side,height,width", [(20, 64, 64), (31, 90, 70), (12, 40, 56)])
def test_small_pictures_are_scored_on_the_cells_they_can_cover_with_the_scores_of_the_whole_grid(side, height, width):
    from core.analyzer.refine import _cells, refine_offsets

    gen = torch.Generator().manual_seed(side)
    query = torch.randn(1, height, width, generator=gen)
    pictures = {i: torch.randn(1, side, side, generator=gen) for i in range(3)}
    pictures[0] = query[:, 10 : 10 + side, 5 : 5 + side].clone()  # a piece of the query, and pieces cut by the edges
    keys = [(0, -10, -5), (0, -9, -6), (1, 4, -3), (2, -(height - 6), 7), (1, -(height - side // 2), -(width - 3))]
    textured = torch.rand(height, width, generator=gen) > 0.2
    cropped = refine_offsets(query, pictures.__getitem__, keys, textured, 7, 2, 0.03, crop=True)
    whole = refine_offsets(query, pictures.__getitem__, keys, textured, 7, 2, 0.03, crop=False)
    assert cropped[0] == whole[0] and cropped[1] == pytest.approx(whole[1], abs=1e-3)
    assert cropped[0][:2] == [(0, -10, -5), (0, -10, -5)] and cropped[1][0] > 0.0
    assert _cells(keys, pictures.__getitem__, 7, 2, 4, height, width) is not None  # the cells were used
