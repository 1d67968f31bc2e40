"""Building blocks of the search: exact k-NN, query patch pattern, shortlist, vote support, alignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analyzer_synth import library_crops
from PIL import Image

from core.analyzer.descriptors import PatchDescriber, latin_mask, library_stride, query_descriptors
from core.analyzer.nearcopy import VERIFY, align, sample_boxes, verify
from core.analyzer.search import ExactSearch, FaissSearch
from core.analyzer.shortlist import shortlist
from core.analyzer.voting import Candidate, supported
from core.images import to_tensor
from core.score import native


@pytest.mark.parametrize("path", ["native", "torch"])
def test_exact_search_equals_brute_force_across_chunks(path, monkeypatch):
    monkeypatch.setenv(native.NATIVE_ENV, "1" if path == "native" else "0")
    native.reset()
    searcher = ExactSearch(np.zeros((4, 19), np.float32))
    assert searcher._native(3) == (path == "native")  # the path under test is the one taken
    rng = np.random.default_rng(0)
    library = rng.standard_normal((3000, 19)).astype(np.float32)
    queries = rng.standard_normal((700, 19)).astype(np.float32)  # several query chunks
    dist, rows = ExactSearch(library).search(queries, 3)
    full = ((queries[:, None, :] - library[None]) ** 2).sum(-1)
    assert np.array_equal(rows, np.argsort(full, axis=1)[:, :3])
    assert np.allclose(dist, np.sort(full, axis=1)[:, :3], atol=1e-4)
    few_dist, few_rows = ExactSearch(library[:2]).search(queries[:5], 3)  # k above the library size
    assert few_rows.shape == (5, 2) and set(few_rows[0]) == {0, 1}
    assert ExactSearch(library).search(queries[:0], 3)[0].shape == (0, 3)
    native.reset()


def test_faiss_search_finds_the_exact_neighbour_of_library_vectors():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    library = rng.standard_normal((5000, 19)).astype(np.float32)
    searcher = FaissSearch.build(library, nprobe=12)
    dist, rows = searcher.search(library[:200] + 0.01, 1)
    assert (rows[:, 0] == np.arange(200)).mean() >= 0.95


@pytest.mark.parametrize("period", [2, 4])
def test_latin_pattern_keeps_a_quarter_or_half_and_every_offset_class(period):
    ys, xs = np.mgrid[0 : 4 * period, 0 : 4 * period]
    positions = np.stack([ys.ravel(), xs.ravel()], axis=1)
    keep = latin_mask(positions, period)
    assert keep.mean() == pytest.approx(1 / period)
    block = positions[keep & (positions[:, 0] < 2 * period) & (positions[:, 1] < 2 * period)]
    classes = {(int(y) % period, int(x) % period) for y, x in block}
    assert len(classes) == period * period  # every offset class within one 2×2 group of blocks


def test_small_patches_line_up_with_the_library_grid_at_every_offset():
    describer = PatchDescriber(8, 4, 0.5, 0.03)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    described = query_descriptors(describer, image, image.mean(dim=1, keepdim=True))
    stride = library_stride(8)
    ys, xs = described.positions[:, 0], described.positions[:, 1]
    for dy in range(stride):
        for dx in range(stride):
            aligned = ((ys + dy) % stride == 0) & ((xs + dx) % stride == 0)
            assert aligned.sum() >= 8, (dy, dx)


def test_shortlist_takes_everything_small_and_the_best_voted_otherwise():
    scores = np.array([0.0, 5.0, 1.0, 9.0, 0.0, 3.0])
    allowed = np.array([True, True, True, True, True, False])
    assert shortlist(scores, allowed, 10).tolist() == [0, 1, 2, 3, 4]
    assert shortlist(scores, allowed, 2).tolist() == [3, 1]
    assert shortlist(np.zeros(6), allowed, 2).tolist() == []  # no evidence: nothing to search


def test_support_adds_votes_of_nearby_offsets_of_the_same_image():
    strong = [Candidate(1, 10, 10, 4.0, 8), Candidate(1, 11, 9, 3.0, 16)]  # one hypothesis, two scales
    weak = [Candidate(2, 0, 0, 4.0, 8), Candidate(1, 30, 30, 2.0, 8)]
    kept = supported(strong + weak, min_votes=6.0)
    assert kept == strong


def test_alignment_recovers_a_sub_pixel_crop_and_scores_it_as_a_copy():
    array = library_crops()[0][1]
    reference = to_tensor(Image.fromarray(array))
    small = torch.nn.functional.interpolate(reference[None], size=(VERIFY, VERIFY), mode="bilinear", antialias=True)
    truth = torch.tensor([[0.031, 0.047, 0.93, 0.91]])
    query = sample_boxes(small, truth)[0]
    start = torch.tensor([[0.05, 0.05, 0.9, 0.9]])
    before = float(verify(query, sample_boxes(small, start))[0])
    boxes, scores = align(query[None], small, start)
    assert float(scores[0]) > max(0.9, before)
    assert torch.allclose(boxes, truth, atol=0.01)
