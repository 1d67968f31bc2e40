"""The machines against a brute-force float64 reference, and their limits and symmetries."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from score_reference import reference_denoise

from core.score import MACHINE_KINDS, denoise

H, W = 6, 7


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    library = torch.rand(3, 2, H, W, generator=gen) * 2 - 1
    x = torch.randn(2, 2, H, W, generator=gen)
    labels = torch.tensor([4, 7, 4])
    return library, x, labels


def _check(result, ref, atol=2e-4):
    x0, sources, entropy, _ = ref
    np.testing.assert_allclose(result.x0.numpy(), x0, atol=atol, rtol=1e-4)
    np.testing.assert_array_equal(result.sources.numpy(), sources)
    np.testing.assert_allclose(result.entropy.numpy(), entropy, atol=atol, rtol=1e-3)
    assert result.sources.dtype == torch.int64 and result.entropy.dtype == torch.float32


@pytest.mark.parametrize("kind", MACHINE_KINDS)
@pytest.mark.parametrize("patch", [1, 3, 5])
@pytest.mark.parametrize("ab", [0.3, 0.8])
def test_matches_brute_force(data, kind, patch, ab):
    library, x, _ = data
    result = denoise(x, ab, library, kind, patch)
    _check(result, reference_denoise(x.numpy(), ab, library.numpy(), kind, patch))


@pytest.mark.parametrize("kind", MACHINE_KINDS)
def test_class_conditional_matches_brute_force(data, kind):
    library, x, labels = data
    class_labels = torch.tensor([7, 4])
    result = denoise(x, 0.5, library, kind, 3, labels=labels, class_labels=class_labels)
    ref = reference_denoise(x.numpy(), 0.5, library.numpy(), kind, 3, labels.numpy(), class_labels.numpy())
    _check(result, ref)
    assert set(result.sources[0, ..., 0].flatten().tolist()) == {1}
    assert set(result.sources[1, ..., 0].flatten().tolist()) <= {0, 2}


@pytest.mark.parametrize("kind", MACHINE_KINDS)
def test_streaming_chunks_equal_one_chunk(data, kind):
    library, x, _ = data
    whole = denoise(x, 0.6, library, kind, 3)
    tiny = denoise(x, 0.6, library, kind, 3, memory_budget_bytes=64)
    torch.testing.assert_close(tiny.x0, whole.x0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tiny.entropy, whole.entropy, atol=1e-4, rtol=1e-4)
    assert torch.equal(tiny.sources, whole.sources)


@pytest.mark.parametrize("kind", MACHINE_KINDS)
@pytest.mark.parametrize("patch", [3, 5])
def test_low_noise_limit_copies_nearest_patch_centre(data, kind, patch):
    library, _, _ = data
    gen = torch.Generator().manual_seed(1)
    # Near clean images: nearest patches are well separated.
    x = library[[0, 2]] + 0.05 * torch.randn(2, 2, H, W, generator=gen)
    x = x[:, :, :, torch.randperm(W, generator=gen)]  # mix columns so the answer is a mosaic
    ab = 1.0 - 1e-5
    result = denoise(x, ab, library, kind, patch)
    _, sources, _, nearest = reference_denoise(x.numpy(), ab, library.numpy(), kind, patch)
    np.testing.assert_allclose(result.x0.numpy(), nearest, atol=1e-4)
    np.testing.assert_array_equal(result.sources.numpy(), sources)
    assert float(result.entropy.max()) < 1e-2


def test_full_patch_local_score_equals_ideal_score(data):
    library, x, _ = data
    ideal = denoise(x, 0.4, library, "is", 1)
    local = denoise(x, 0.4, library, "ls", 2 * W - 1)
    torch.testing.assert_close(local.x0, ideal.x0, atol=1e-5, rtol=1e-5)
    assert torch.equal(local.sources, ideal.sources)


def test_els_commutes_with_circular_shifts():
    gen = torch.Generator().manual_seed(3)
    library = torch.rand(4, 1, 8, 8, generator=gen) * 2 - 1
    x = torch.randn(2, 1, 8, 8, generator=gen)
    base = denoise(x, 0.5, library, "els", 3)
    shifted = denoise(torch.roll(x, shifts=(2, -3), dims=(2, 3)), 0.5, library, "els", 3)
    torch.testing.assert_close(shifted.x0, torch.roll(base.x0, shifts=(2, -3), dims=(2, 3)), atol=1e-5, rtol=0)
    rolled_entropy = torch.roll(base.entropy, shifts=(2, -3), dims=(1, 2))
    torch.testing.assert_close(shifted.entropy, rolled_entropy, atol=1e-4, rtol=0)


@pytest.mark.parametrize("patch", [3, 5])
def test_bbels_edges_on_larger_images_match_brute_force(patch):
    # 12×12 makes the edge buckets long enough for the strip-product path (core.score.local).
    gen = torch.Generator().manual_seed(5)
    library = torch.rand(2, 1, 12, 12, generator=gen) * 2 - 1
    x = torch.randn(2, 1, 12, 12, generator=gen)
    result = denoise(x, 0.7, library, "bbels", patch)
    _check(result, reference_denoise(x.numpy(), 0.7, library.numpy(), "bbels", patch))
    tiny = denoise(x, 0.7, library, "bbels", patch, memory_budget_bytes=64)
    torch.testing.assert_close(tiny.x0, result.x0, atol=1e-5, rtol=1e-5)
    assert torch.equal(tiny.sources, result.sources)


@pytest.mark.parametrize("kind", ["ls", "els", "bbels"])
@pytest.mark.parametrize("ab", [0.99, 0.9999])
def test_wide_logit_ranges_match_brute_force_in_any_tiling(data, kind, ab):
    # Low noise: logits span thousands of nats, so most are clamped at the exp floor (LOGIT_FLOOR)
    # and later tiles keep raising some rows' maxima (the in-GEMM shift, lazy argmax path).
    library, x, _ = data
    ref = reference_denoise(x.numpy(), ab, library.numpy(), kind, 3)
    for budget in (None, 64, 4096):
        result = denoise(x, ab, library, kind, 3, memory_budget_bytes=budget)
        np.testing.assert_allclose(result.x0.numpy(), ref[0], atol=2e-4, rtol=1e-4)
        np.testing.assert_array_equal(result.sources.numpy(), ref[1])
        np.testing.assert_allclose(result.entropy.numpy(), ref[2], atol=1e-3, rtol=1e-3)


def test_streaming_softmax_raises_maxima_row_by_row():
    from core.score.streaming import StreamingSoftmax

    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(2, 5, 12, generator=gen, dtype=torch.float64) * 300
    logits[0, 1, 9] = 900.0  # one row's maximum arrives in the last chunk
    values = torch.randn(2, 12, 1, generator=gen, dtype=torch.float64)
    ones = torch.cat([values, torch.ones(2, 12, 1, dtype=torch.float64)], dim=-1)
    state = StreamingSoftmax()
    for k0 in range(0, 12, 4):
        chunk = logits[..., k0 : k0 + 4].clone()
        shifted = state.m is not None
        if shifted:
            chunk -= state.m.unsqueeze(-1)
        state.update(chunk, torch.empty_like(chunk), ones[:, k0 : k0 + 4], lambda a, k0=k0: a + k0, shifted=shifted)
    weights = torch.softmax(logits, dim=-1)
    torch.testing.assert_close(state.mean()[..., 0], (weights @ values)[..., 0])
    assert torch.equal(state.best, logits.argmax(dim=-1))
    entropy = -(weights * torch.log(weights.clamp_min(1e-300))).sum(-1)
    torch.testing.assert_close(state.entropy(), entropy, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("conditional", [False, True])
def test_parallel_workers_give_the_sequential_result(data, conditional):
    library, x, labels = data
    kwargs = {"labels": labels, "class_labels": torch.tensor([7, 4])} if conditional else {}
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sequential = denoise(x, 0.7, library, "bbels", 3, **kwargs)
        torch.set_num_threads(2)
        parallel = denoise(x, 0.7, library, "bbels", 3, **kwargs)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(parallel.x0, sequential.x0, atol=1e-6, rtol=1e-6)
    assert torch.equal(parallel.sources, sequential.sources)
