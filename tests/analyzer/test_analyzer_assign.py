"""Dense assignment (core/analyzer/assign.py): pictures much smaller than the checked image are compared on
windows around them, with the maps of a comparison over the whole image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.analyzer.assign import DenseAssigner
from core.analyzer.settings import AnalyzerSettings
from core.analyzer.voting import Candidate


class _Pictures:
    """A library of small pictures (a reduced size of the library), as the assigner reads it."""

    def __init__(self, pictures: torch.Tensor) -> None:
        self.pictures = pictures

    def feature_images(self, rows: list[int]) -> torch.Tensor:
        return self.pictures[rows]


def _scene(seed: int, side: int, size: tuple[int, int]):
    gen = torch.Generator().manual_seed(seed)
    pictures = torch.rand(5, 3, side, side, generator=gen) * 2 - 1
    pictures = torch.nn.functional.avg_pool2d(pictures, 3, stride=1, padding=1)  # some texture, not noise
    height, width = size
    query = torch.rand(3, height, width, generator=gen) * 0.4 - 0.2
    placed = [(0, 5, 7), (2, height - side + 4, 20), (3, -6, width - side + 9)]  # one cut by the bottom, one by the top
    candidates = []
    for row, top, left in placed:
        y0, y1 = max(0, top), min(height, top + side)
        x0, x1 = max(0, left), min(width, left + side)
        query[:, y0:y1, x0:x1] = pictures[row][:, y0 - top : y1 - top, x0 - left : x1 - left] * 0.9 + 0.05
        candidates.append(Candidate(row=row, dy=-top, dx=-left, votes=20.0, scale=8))
    candidates.append(Candidate(row=1, dy=-30, dx=-2, votes=14.0, scale=8))  # nothing of it there
    candidates.append(Candidate(row=4, dy=3, dx=-(width - 5), votes=13.0, scale=8))  # mostly outside the image
    return _Pictures(pictures), query, candidates


@pytest.mark.parametrize("side,size,window", [(20, (64, 64), 7), (24, (70, 90), 5), (16, (48, 48), 9)])
def test_small_pictures_compared_on_windows_give_the_maps_of_the_whole_image(side, size, window):
    library, query, candidates = _scene(side, side, size)
    settings = AnalyzerSettings()
    windowed = DenseAssigner(settings, library, 0.06, lambda x: x.mean(dim=1, keepdim=True))
    whole = DenseAssigner(settings, library, 0.06, lambda x: x.mean(dim=1, keepdim=True))
    whole.crop = False
    keys = [c.key for c in candidates]
    assert windowed._crops(keys, *size, window) is not None and whole._crops(keys, *size, window) is None
    assert torch.allclose(windowed.correlation(query, keys, window), whole.correlation(query, keys, window), atol=1e-4)
    moved = [(c.row, c.dy + 1, c.dx - 2) for c in candidates]  # a little off: refinement moves them back
    moved = [Candidate(row, dy, dx, c.votes, c.scale) for (row, dy, dx), c in zip(moved, candidates, strict=True)]
    refined = {(c.key, c.votes) for c in windowed.refine(query, moved, window)}
    assert refined == {(c.key, c.votes) for c in whole.refine(query, moved, window)}
    assert {c.key for c in candidates[:2]} <= {key for key, _ in refined}
    got = windowed.assign(query, candidates, window, two_way_anchors=2)
    want = whole.assign(query, candidates, window, two_way_anchors=2)
    assert np.allclose(got.similarity, want.similarity, atol=1e-4)
    assert (got.candidate == want.candidate).mean() > 0.999
    assert {int(c) for c in np.unique(want.candidate)} >= {0, 1}  # the whole pieces are found


def test_pictures_as_large_as_the_image_are_compared_on_the_whole_image():
    library, query, candidates = _scene(1, 48, (64, 64))
    assigner = DenseAssigner(AnalyzerSettings(), library, 0.06, lambda x: x.mean(dim=1, keepdim=True))
    assert assigner._crops([c.key for c in candidates], 64, 64, 7) is None
