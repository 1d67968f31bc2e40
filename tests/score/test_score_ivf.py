"""The patch index of the approximate mode (core/score/ivf.py), on both softmax paths."""

from __future__ import annotations

import pytest
import torch

from core.score import ivf, sample
from core.score.approximate import exact_steps, uses_index
from core.score.machine import denoise


def _library(seed: int, channels: int = 1, n: int = 6, height: int = 10, width: int = 9) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, height, width, generator=gen) * 2 - 1


@pytest.fixture
def small_lists(monkeypatch):
    """Lists of about 8 patches, so that tiny libraries still have many lists."""
    monkeypatch.setattr(ivf, "LIST_SIZE", 8)


@pytest.mark.parametrize("kind", ["els", "bbels"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("patch_size", [3, 5])
@pytest.mark.parametrize("singles_max", [1, 15])
def test_probing_every_list_is_the_exact_machine(small_lists, monkeypatch, kind, channels, patch_size, singles_max):
    monkeypatch.setattr(ivf, "SINGLES_MAX_PATCH", singles_max)  # corners exact (box sums) or indexed
    library = _library(1, channels)
    x = torch.randn(2, channels, 10, 9, generator=torch.Generator().manual_seed(2))
    index = ivf.build_index(library, kind, patch_size)
    lists = max(centroids.shape[0] for _, centroids in index.classes)
    assert lists > 1
    exact = denoise(x, 0.6, library, kind, patch_size)
    approx = ivf.ivf_denoise(x, 0.6, library, index, 1 << 26, None, nprobe=lists)
    torch.testing.assert_close(approx.x0, exact.x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(approx.entropy, exact.entropy, atol=1e-4, rtol=1e-4)
    assert torch.equal(approx.sources, exact.sources)


def test_index_lists_cover_every_library_patch_once(small_lists, monkeypatch):
    library = _library(3, n=5)
    index = ivf.build_index(library, "bbels", 5)
    real = index.image >= 0
    assert int(real.sum()) == int(index.list_cols.sum())
    # every class: each (image, position) once, and nothing of the corners (left to the exact machine)
    seen = set(zip(index.image[real].tolist(), (index.y[real] * 9 + index.x[real]).tolist(), strict=True))
    assert len(seen) == int(real.sum())
    class_positions = torch.cat([flat for flat, _ in index.classes])
    assert len(seen) == library.shape[0] * class_positions.numel()
    assert not index.exact  # bbels corners: classes of one position (one list)
    # lists start on blocks of 16 columns and hold only real columns
    for block, cols in zip(index.list_block.tolist(), index.list_cols.tolist(), strict=True):
        assert bool(real[block * 16 : block * 16 + cols].all())
        assert not bool(real[block * 16 + cols : -(-(block * 16 + cols) // 16) * 16].any())
    # the centre values are the library pixels at the centres
    picked = library[index.image[real], :, index.y[real], index.x[real]].T
    assert torch.equal(index.values[:, real], picked)
    # deterministic
    again = ivf.build_index(library, "bbels", 5)
    assert torch.equal(again.image, index.image) and torch.equal(again.y, index.y)
    monkeypatch.setattr(ivf, "SINGLES_MAX_PATCH", 3)
    assert ivf.build_index(library, "bbels", 5).exact  # corners now left to the exact machine


def test_few_probes_skip_patches(small_lists):
    library = _library(4, n=8)
    x = torch.randn(1, 1, 10, 9, generator=torch.Generator().manual_seed(5))
    index = ivf.build_index(library, "els", 3)
    exact = denoise(x, 0.6, library, "els", 3)
    approx = ivf.ivf_denoise(x, 0.6, library, index, 1 << 26, None, nprobe=1)
    assert torch.isfinite(approx.x0).all()
    assert not torch.allclose(approx.x0, exact.x0, atol=1e-4)
    # the top patch of a pixel is one of its probed patches: never better than the exact top patch
    assert bool((approx.entropy <= exact.entropy + 1e-4).all())


def test_index_cache_reuses_and_forgets(small_lists):
    cache = ivf.IndexCache(capacity=2)
    library = _library(6, n=3)
    key = ivf.fingerprint(library)
    first = cache.get(library, key, "els", 3)
    assert cache.get(library, key, "els", 3) is first
    cache.get(library, key, "els", 5)
    cache.get(library, key, "bbels", 3)  # evicts the oldest entry
    assert cache.get(library, key, "els", 3) is not first
    assert ivf.fingerprint(library) != ivf.fingerprint(library * 0.5)


def test_approximate_sampler_uses_the_index_for_els_and_bbels(small_lists, monkeypatch, softmax_path):
    library = _library(7, n=8)
    labels, class_labels = torch.tensor([0, 1] * 4), torch.tensor([1, 0])
    noise = torch.randn(2, 1, 10, 9, generator=torch.Generator().manual_seed(8))
    calls = []
    original = ivf.ivf_denoise

    def counting(*args, **kwargs):
        calls.append((args[3].kind, args[3].patch_size, args[6] if len(args) > 6 else kwargs.get("nprobe")))
        return original(*args, **kwargs)

    monkeypatch.setattr("core.score.approximate.ivf_denoise", counting)
    sizes = [7, 5, 5, 5, 3, 3, 3, 3, 3, 3]
    first = exact_steps(len(sizes), library.shape[-1], indexed=True)
    assert first == 1
    exact = sample(library, noise, "bbels", sizes, labels=labels, class_labels=class_labels)
    approx = sample(library, noise, "bbels", sizes, labels=labels, class_labels=class_labels, approximate=True)
    torch.testing.assert_close(approx.step_x0[0], exact.step_x0[0])  # exact step (7 px: no index built for it)
    if softmax_path == "torch":
        # without the native kernel the index would be slower than exact: candidate images instead
        assert calls == [] and not uses_index("bbels", "cpu")
        return
    # one call per class and approximate step (default probes)
    assert calls == [("bbels", p, None) for p in sizes[first:] for _ in range(2)]
    assert approx.images.shape == exact.images.shape and torch.isfinite(approx.images).all()
    # sources point into the right class
    assert bool((labels[approx.sources[..., 0]] == class_labels.view(2, 1, 1)).all())
    calls.clear()
    sample(library, noise, "ls", sizes, approximate=True, top_k=3)
    assert calls == []  # ls has no shared dictionaries: candidate images instead


def test_exact_steps_at_indexed_patch_sizes_probe_every_list(small_lists, monkeypatch, softmax_path):
    if softmax_path != "native":
        pytest.skip("the sampler uses the patch index only with the native kernel")
    library = _library(9, n=8)
    noise = torch.randn(2, 1, 10, 9, generator=torch.Generator().manual_seed(10))
    calls = []
    original = ivf.ivf_denoise

    def counting(*args, **kwargs):
        calls.append((args[3].patch_size, args[6] if len(args) > 6 else kwargs.get("nprobe")))
        return original(*args, **kwargs)

    monkeypatch.setattr("core.score.approximate.ivf_denoise", counting)
    sizes = [5] * 10
    exact = sample(library, noise, "els", sizes)
    approx = sample(library, noise, "els", sizes, approximate=True)
    parts = len(calls) // len(sizes)  # samples split over the worker threads
    assert [nprobe for _, nprobe in calls[:parts]] == [ivf.MAX_LISTS] * parts  # the exact step: every list
    assert all(nprobe is None for _, nprobe in calls[parts:])
    torch.testing.assert_close(approx.step_x0[0], exact.step_x0[0], atol=1e-5, rtol=1e-5)
    assert torch.equal(approx.step_sources[0], exact.step_sources[0])


def test_patch_window_drops_the_zero_padding_of_edges_and_corners():
    height, width, p = 10, 9, 5  # r = 2
    row0 = torch.tensor([0 * width + x for x in range(2, 7)])
    assert ivf.patch_window("bbels", height, width, p, row0) == (2, 3, 0, 5)
    row1_bottom = torch.tensor([9 * width + x for x in range(2, 7)])  # last row: rows 3-4 padding
    assert ivf.patch_window("bbels", height, width, p, row1_bottom) == (0, 3, 0, 5)
    corner = torch.tensor([1 * width + 8])  # second row, last column
    assert ivf.patch_window("bbels", height, width, p, corner) == (1, 4, 0, 3)
    interior = torch.tensor([y * width + x for y in range(2, 8) for x in range(2, 7)])
    assert ivf.patch_window("bbels", height, width, p, interior) == (0, 5, 0, 5)
    assert ivf.patch_window("els", height, width, p, row0) == (0, 5, 0, 5)  # circular: nothing is padding
    # the index keeps each class's window, and the windowed patches are the non-zero part
    library = _library(11, n=3)
    index = ivf.build_index(library, "bbels", p)
    assert (2, 3, 0, 5) in index.windows and (0, 5, 0, 5) in index.windows
    grid = ivf.patch_grid(ivf.pad(library, p, "constant"), p)  # (H, W, N, C, P, P)
    for (flat, _), window in zip(index.classes, index.windows, strict=True):
        patches = grid[flat // width, flat % width]
        y0, rows, x0, cols = window
        outside = patches.clone()
        outside[..., y0 : y0 + rows, x0 : x0 + cols] = 0
        assert not outside.any()


def test_nearest_centroid_in_parts_is_the_brute_force_argmin():
    gen = torch.Generator().manual_seed(12)
    vectors, centroids = torch.randn(2500, 7, generator=gen), torch.randn(33, 7, generator=gen)
    expected = torch.cdist(vectors.double(), centroids.double()).argmin(1)
    assert torch.equal(ivf.nearest_centroid(vectors, centroids, part=1000), expected)
    assert torch.equal(ivf.nearest_centroid(vectors[:5], centroids), expected[:5])
