"""The per-offset box-sum path of the local machines (``core.score.offsets``): against the float64
brute force and the GEMM path, on awkward shapes, both implementations (see conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from score_reference import reference_denoise

from core.errors import BadInputError
from core.score import denoise
from core.score.kinds import group_buckets
from core.score.machine import PATHS
from core.score.offsets import offset_plan, patch_norms
from core.score.paths import StepShape, choose_path, implementation, step_seconds
from core.score.result import GenerationCancelled

LOCAL = ("ls", "els", "bbels")


def _data(shape, seed=0):
    batch, channels, height, width, num = shape
    gen = torch.Generator().manual_seed(seed)
    library = torch.rand(num, channels, height, width, generator=gen) * 2 - 1
    x = torch.randn(batch, channels, height, width, generator=gen)
    return library, x


@pytest.mark.parametrize("kind", LOCAL)
@pytest.mark.parametrize("shape", [(2, 2, 6, 7, 3), (1, 3, 9, 5, 4), (3, 1, 4, 4, 2), (1, 1, 1, 6, 3)])
@pytest.mark.parametrize("ab", [0.3, 0.9])
def test_offsets_match_brute_force(kind, shape, ab):
    library, x = _data(shape)
    height, width = shape[2:4]
    largest = 2 * (min(height, width) if kind == "els" else max(height, width)) - 1
    for patch in sorted({1, 3, 5, largest}):
        if patch > largest:
            continue
        result = denoise(x, ab, library, kind, patch, path="offsets")
        x0, sources, entropy, _ = reference_denoise(x.numpy(), ab, library.numpy(), kind, patch)
        np.testing.assert_allclose(result.x0.numpy(), x0, atol=2e-4, rtol=1e-4)
        np.testing.assert_array_equal(result.sources.numpy(), sources)
        np.testing.assert_allclose(result.entropy.numpy(), entropy, atol=2e-4, rtol=1e-3)
        assert result.sources.dtype == torch.int64 and result.x0.dtype == torch.float32


@pytest.mark.parametrize("kind", LOCAL)
@pytest.mark.parametrize("shape", [(2, 3, 21, 19, 3), pytest.param((1, 1, 40, 33, 2), marks=pytest.mark.slow)])
def test_offsets_equal_the_gemm_path_on_larger_images(kind, shape):
    """Patch sizes above 8 with rows longer than 8 take the sliding window sums of the kernel."""
    library, _ = _data(shape, seed=1)
    gen = torch.Generator().manual_seed(2)
    x = library[:1].flip(-1).expand(shape[0], -1, -1, -1) + 0.3 * torch.randn(shape[0], *shape[1:4], generator=gen)
    height, width = shape[2:4]
    for patch in (9, 13, 17, 2 * min(height, width) - 1):
        gemm = denoise(x, 0.9, library, kind, patch, path="gemm")
        offsets = denoise(x, 0.9, library, kind, patch, path="offsets")
        torch.testing.assert_close(offsets.x0, gemm.x0, atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(offsets.entropy, gemm.entropy, atol=1e-2, rtol=1e-2)
        assert torch.equal(offsets.sources, gemm.sources)


@pytest.mark.parametrize("kind", LOCAL)
def test_class_conditional_offsets_match_brute_force(kind):
    library, x = _data((2, 2, 6, 7, 3))
    labels, class_labels = torch.tensor([4, 7, 4]), torch.tensor([7, 4])
    result = denoise(x, 0.5, library, kind, 3, labels=labels, class_labels=class_labels, path="offsets")
    x0, sources, entropy, _ = reference_denoise(
        x.numpy(), 0.5, library.numpy(), kind, 3, labels.numpy(), class_labels.numpy()
    )
    np.testing.assert_allclose(result.x0.numpy(), x0, atol=2e-4, rtol=1e-4)
    np.testing.assert_array_equal(result.sources.numpy(), sources)


@pytest.mark.parametrize("kind", LOCAL)
def test_a_tiny_memory_budget_gives_the_same_result(kind):
    library, x = _data((2, 2, 6, 7, 5))
    whole = denoise(x, 0.6, library, kind, 3, path="offsets")
    tiny = denoise(x, 0.6, library, kind, 3, memory_budget_bytes=64, path="offsets")
    torch.testing.assert_close(tiny.x0, whole.x0, atol=1e-5, rtol=1e-5)
    assert torch.equal(tiny.sources, whole.sources)


@pytest.mark.parametrize("kind", ["els", "bbels"])
def test_a_large_image_split_into_bands_of_rows_equals_the_gemm_path(kind, softmax_path):
    """One sample whose state is too large to copy per thread (over 256 KB): the kernel gives its
    rows to threads in bands."""
    if softmax_path != "native":
        pytest.skip("bands of rows are the kernel's")
    library, _ = _data((1, 3, 90, 96, 2), seed=5)
    gen = torch.Generator().manual_seed(6)
    x = library[1:].flip(-1) + 0.2 * torch.randn(1, 3, 90, 96, generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        gemm = denoise(x, 0.8, library, kind, 5, path="gemm")
        offsets = denoise(x, 0.8, library, kind, 5, path="offsets")
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(offsets.x0, gemm.x0, atol=1e-3, rtol=1e-3)
    assert torch.equal(offsets.sources, gemm.sources)


@pytest.mark.parametrize("threads", [2, 3])
def test_a_library_split_between_threads_keeps_the_first_of_tied_sources(threads):
    """One sample, several threads: the library is split between them and their states merged;
    an image repeated in later parts never takes the source from its first copy."""
    library, _ = _data((1, 2, 7, 6, 3), seed=3)
    library = torch.cat([library[:2], library[1:2], library[2:], library[1:2]])  # copies of image 1 at 2 and 4
    gen = torch.Generator().manual_seed(4)
    x = library[1:2] + 0.05 * torch.randn(1, 2, 7, 6, generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for kind in LOCAL:
            result = denoise(x, 0.95, library, kind, 3, path="offsets")
            x0, sources, entropy, _ = reference_denoise(x.numpy(), 0.95, library.numpy(), kind, 3)
            np.testing.assert_allclose(result.x0.numpy(), x0, atol=2e-4, rtol=1e-4)
            np.testing.assert_array_equal(result.sources.numpy(), sources)
            np.testing.assert_allclose(result.entropy.numpy(), entropy, atol=2e-4, rtol=1e-3)
            assert int((result.sources[..., 0] == 1).sum()) > 0 and not bool((result.sources[..., 0] >= 2).all())
    finally:
        torch.set_num_threads(before)


def test_offsets_run_can_be_cancelled():
    library, x = _data((1, 1, 6, 6, 4))
    with pytest.raises(GenerationCancelled):
        denoise(x, 0.5, library, "els", 3, path="offsets", should_cancel=lambda: True)


def test_unknown_path_is_refused():
    library, x = _data((1, 1, 4, 4, 2))
    with pytest.raises(BadInputError, match="gemm or offsets"):
        denoise(x, 0.5, library, "bbels", 3, path="fast")


@pytest.mark.parametrize("kind", LOCAL)
@pytest.mark.parametrize("patch", [1, 3, 5, 9])
@pytest.mark.parametrize("size", [(5, 5), (7, 4)])
def test_descriptors_allow_exactly_the_positions_of_the_kind(kind, patch, size):
    height, width = size
    if patch > 2 * (min(height, width) if kind == "els" else max(height, width)) - 1:
        pytest.skip("patch larger than the machine allows")
    expected = set()
    for bucket in group_buckets(kind, height, width, patch):
        for group in bucket.flat.tolist():
            expected.update((p, q) for p in group for q in group)
    found = []
    for py0, py1, px0, px1, _woy, _wox, qoy, qox, wrap in offset_plan(kind, height, width, patch).descriptors.tolist():
        for y in range(py0, py1):
            for x in range(px0, px1):
                qy, qx = y + qoy, x + qox
                if wrap:
                    qy, qx = qy % height, qx % width
                assert 0 <= qy < height and 0 <= qx < width
                found.append((y * width + x, qy * width + qx))
    assert len(found) == len(set(found))  # every pair once
    assert set(found) == expected
    plan = offset_plan(kind, height, width, patch)
    assert plan.pairs == len(found)


def test_the_cost_model_picks_the_cheaper_path():
    seconds = step_seconds(StepShape("bbels", 64, 64, 3, 1, 398, 31), "native")
    assert seconds["offsets"] < seconds["gemm"] / 2  # the GEMM costs P² per pair
    for kind in ("ls", "els", "bbels"):
        for patch in (3, 7, 25):
            shape = StepShape(kind, 32, 32, 3, 1, 100, patch)
            seconds = step_seconds(shape, implementation())
            assert set(seconds) == set(PATHS) and min(seconds.values()) > 0
            assert choose_path(shape) == min(seconds, key=seconds.__getitem__)
    assert choose_path(StepShape("els", 32, 32, 3, 1, 100, 25), torch.device("meta")) == "gemm"  # off the CPU
    # ls: box sums on both paths, the offsets path's are native (measured 4-6x faster at 64 px)
    ls = step_seconds(StepShape("ls", 64, 64, 3, 1, 398, 51), "native")
    assert ls["offsets"] < ls["gemm"]
    # and at small patches too: ls on the GEMM path is bound by copying patches (measured 3-10x slower at 32-128 px)
    for size, channels, patch in ((32, 1, 3), (64, 3, 7), (128, 1, 13)):
        ls = step_seconds(StepShape("ls", size, size, channels, 1, 1797, patch), "native")
        assert ls["offsets"] < ls["gemm"]
    # no fitted cost for the PyTorch fallback: the GEMM path there
    assert step_seconds(StepShape("ls", 64, 64, 3, 1, 398, 51), "torch")["offsets"] == float("inf")


def test_the_scratch_estimate_matches_the_kernel(softmax_path):
    from core.score import native
    from core.score.offsets import scratch_floats, shared_scratch_floats

    if softmax_path != "native":
        pytest.skip("the kernel is off")
    for height, width, patch in ((8, 8, 3), (64, 64, 51), (128, 128, 255), (33, 17, 9)):
        assert scratch_floats(height, width, patch) == native.offsets_scratch(height, width, patch)
    for height, width, patch in ((8, 8, 3), (64, 64, 51), (128, 128, 125), (33, 17, 9), (32, 32, 1)):
        assert shared_scratch_floats(height, width, patch) == native.shared_scratch(height, width, patch)


@pytest.mark.parametrize("kind", ["ls", "els", "bbels"])
def test_patch_norms_are_the_squared_norms_of_the_patches(kind):
    gen = torch.Generator().manual_seed(4)
    library = torch.rand(3, 2, 7, 6, generator=gen) * 2 - 1
    r = 2
    if kind == "els":
        padded = library.repeat(1, 1, 3, 3)[..., 7 - r : 14 + r, 6 - r : 12 + r]
    else:
        padded = torch.nn.functional.pad(library, (r, r, r, r))
    expected = torch.stack(
        [
            torch.stack([padded[:, :, y : y + 5, x : x + 5].square().sum((1, 2, 3)) for x in range(6)], 1)
            for y in range(7)
        ],
        1,
    )
    torch.testing.assert_close(patch_norms(library, kind, 5), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_the_shared_block_matches_brute_force_on_long_rows_and_many_images(channels, softmax_path):
    """bbels's interior pairs go through ``mosaic_shared`` with the kernel: column sums moved down by
    outer products and summed afresh every 16 rows, diagonal sums moved along and summed afresh every
    16 pixels, library images folded 4 at a time; interiors of more than 16 pixels each way, 6 images
    (groups of 4 and 2, or of 3 per thread), on 1, 2 and 3 threads (the library split between them)."""
    if softmax_path != "native":
        pytest.skip("the shared block is the kernel's")
    library, x = _data((1, channels, 20, 19, 6), seed=7)
    before = torch.get_num_threads()
    try:
        for threads, patch, ab in ((1, 3, 0.3), (2, 5, 0.9), (3, 3, 0.97)):
            torch.set_num_threads(threads)
            result = denoise(x, ab, library, "bbels", patch, path="offsets")
            x0, sources, entropy, _ = reference_denoise(x.numpy(), ab, library.numpy(), "bbels", patch)
            np.testing.assert_allclose(result.x0.numpy(), x0, atol=2e-4, rtol=1e-4)
            np.testing.assert_array_equal(result.sources.numpy(), sources)
            np.testing.assert_allclose(result.entropy.numpy(), entropy, atol=2e-4, rtol=1e-3)
    finally:
        torch.set_num_threads(before)


def test_the_shared_block_keeps_the_first_of_tied_sources_across_groups(softmax_path):
    """Copies of one library image twice in the first group of 4 and once in the second: every
    interior pixel's source is the first copy, as in the brute force (library order)."""
    if softmax_path != "native":
        pytest.skip("the shared block is the kernel's")
    library, _ = _data((1, 1, 18, 18, 4), seed=8)
    library = torch.cat([library[:3], library[1:2], library[3:], library[1:2]])
    gen = torch.Generator().manual_seed(9)
    x = library[1:2] + 0.02 * torch.randn(1, 1, 18, 18, generator=gen)
    before = torch.get_num_threads()
    try:
        for threads, ab in ((1, 0.5), (1, 0.99), (2, 0.99)):  # one thread: all groups in one state
            torch.set_num_threads(threads)
            result = denoise(x, ab, library, "bbels", 3, path="offsets")
            x0, sources, _, _ = reference_denoise(x.numpy(), ab, library.numpy(), "bbels", 3)
            np.testing.assert_allclose(result.x0.numpy(), x0, atol=2e-4, rtol=1e-4)
            np.testing.assert_array_equal(result.sources.numpy(), sources)
            assert int((result.sources[..., 0] == 1).sum()) > 200
    finally:
        torch.set_num_threads(before)


def test_the_shared_kernel_equals_the_offsets_kernel_on_the_same_pairs(softmax_path):
    """The same pairs folded by ``mosaic_shared`` (interior) plus ``mosaic_offsets`` (border) and by
    ``mosaic_offsets`` alone: the same softmax state within float32 (RGB, 70 × 37, P = 7 and 19: column
    sums summed afresh every 16 and every 32 rows)."""
    if softmax_path != "native":
        pytest.skip("compares the two native kernels")
    from core.score import native
    from core.score.offsets import (
        PixelSoftmax,
        border_descriptors,
        library_windows,
        patch_norms,
        query_windows,
    )

    library, _ = _data((1, 3, 70, 37, 6), seed=10)
    gen = torch.Generator().manual_seed(11)
    x = library[2:3].flip(-1) + 0.3 * torch.randn(1, 3, 70, 37, generator=gen)
    threads = torch.get_num_threads()
    for patch in (7, 19):
        assert native.shared_applies("bbels", 3, 70, 37, patch)
        plan = offset_plan("bbels", 70, 37, patch)
        x_win, lib_win = query_windows(x, "bbels", patch), library_windows(library, "bbels", patch)
        norms = torch.nn.functional.pad(patch_norms(library, "bbels", patch), (0, 8)).contiguous()
        centres = torch.nn.functional.pad(library, (0, 8)).contiguous()
        alone, split = PixelSoftmax(1, 3, 70, 37, x), PixelSoftmax(1, 3, 70, 37, x)
        scratch = x.new_empty(threads * native.offsets_scratch(70, 37, patch))
        native.offsets(x_win, lib_win, norms, centres, plan.descriptors, patch, 0.8, 0.4, 0, alone, scratch)
        shared_scratch = x.new_empty(threads * native.shared_scratch(70, 37, patch))
        native.shared(x_win, lib_win, norms, centres, patch, 0.8, 0.4, 0, split, shared_scratch)
        border = border_descriptors(plan)
        assert 0 < border.shape[0] < plan.descriptors.shape[0]
        native.offsets(x_win, lib_win, norms, centres, border, patch, 0.8, 0.4, 0, split, scratch)
        for name in ("m", "s", "t", "v"):
            torch.testing.assert_close(getattr(split, name), getattr(alone, name), atol=1e-3, rtol=1e-4)
        assert torch.equal(split.best, alone.best)


@pytest.mark.parametrize("kind", ["ls", "els", "bbels"])
@pytest.mark.parametrize(
    ("shape", "patch"), [((3, 2, 7, 6), 5), ((2, 3, 13, 17), 7), ((2, 1, 6, 7), 13), ((4, 1, 8, 8), 1)]
)
def test_the_kernel_prepares_library_chunks_as_the_pytorch_version(kind, shape, patch, softmax_path):
    """Windows, norms (here against the brute force of patch_norms's test) and centres in one native pass."""
    from core.score import native
    from core.score.offsets import SLACK, STATE_PAD, library_windows

    if softmax_path != "native":
        pytest.skip("the kernel is off")
    if kind != "els" and patch > min(shape[2:]):
        pytest.skip("zero padding wider than the image: only els takes such patches")
    gen = torch.Generator().manual_seed(5)
    library = torch.rand(*shape, generator=gen) * 2 - 1
    windows, norms, centres = native.library_chunk(library, patch, kind == "els", SLACK)
    assert torch.equal(windows, library_windows(library, kind, patch))
    assert torch.equal(centres, torch.nn.functional.pad(library, (0, STATE_PAD)))
    r, (height, width) = patch // 2, shape[2:]
    if kind == "els":  # the image tiled around itself, as far as the window reaches
        reps = 2 * (patch // min(height, width)) + 3
        tiled = library.double().repeat(1, 1, reps, reps)
        oy, ox = (reps // 2) * height - r, (reps // 2) * width - r
        padded = tiled[..., oy : oy + height + 2 * r, ox : ox + width + 2 * r]
    else:
        padded = torch.nn.functional.pad(library.double(), (r, r, r, r))
    expected = torch.stack(
        [
            torch.stack([padded[:, :, y : y + patch, x : x + patch].square().sum((1, 2, 3)) for x in range(width)], 1)
            for y in range(height)
        ],
        1,
    )
    torch.testing.assert_close(norms[..., :width].double(), expected, rtol=1e-6, atol=1e-5)
    assert not norms[..., width:].any()
