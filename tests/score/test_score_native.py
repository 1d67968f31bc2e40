"""The native softmax kernels against the PyTorch streaming softmax, on awkward shapes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from core.score import native
from core.score.streaming import LOGIT_FLOOR, NativeSoftmax, StreamingSoftmax
from core.score.tiles import values_with_ones


@pytest.fixture(autouse=True)
def need_kernel(softmax_path):
    if softmax_path != "native":
        pytest.skip("kernel-level test: runs once, in the native pass")
    if native.kernel() is None:
        pytest.fail("the native kernel did not build although this machine has a C compiler")


def test_a_compiler_is_present_here():
    # CI and the development machines have one; without it the studio still works (PyTorch path).
    assert shutil.which("cc") or shutil.which("gcc")


def _reference(chunks, values):
    """PyTorch streaming softmax over column chunks: mean, best column, entropy."""
    state = StreamingSoftmax()
    start = 0
    for logits in chunks:
        k = logits.shape[-1]
        vals = values_with_ones(values[:, start : start + k])
        state.update(logits.clone(), torch.empty_like(logits), vals, lambda arg, s=start: arg + s)
        start += k
    return state.mean()[..., : values.shape[-1]], state.best, state.entropy()


def _native(chunks, values, fused_queries=None, fused_library=None):
    groups, rows = chunks[0].shape[:2]
    state = NativeSoftmax(groups, rows, values.shape[-1], chunks[0])
    start = 0
    for i, logits in enumerate(chunks):
        k = logits.shape[-1]
        values_t = values[:, start : start + k].transpose(1, 2).contiguous()
        if fused_queries is None:
            state.update(logits.contiguous(), values_t, lambda arg, s=start: arg + s)
        else:
            panel = native.panel(fused_library[i])
            state.update_fused(fused_queries, panel, k, values_t, lambda arg, s=start: arg + s)
        start += k
    return state.mean(), state.best, state.entropy()


def _compare(ours, ref):
    mean, best, entropy = ours
    ref_mean, ref_best, ref_entropy = ref
    torch.testing.assert_close(mean, ref_mean, atol=1e-5, rtol=1e-5)
    assert torch.equal(best, ref_best)
    torch.testing.assert_close(entropy, ref_entropy, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("value_dim", [1, 3, 7])
@pytest.mark.parametrize("widths", [[5], [13, 1, 700], [1030, 9], [8, 16, 24]])
@pytest.mark.parametrize("spread", [0.3, 30.0, 3000.0])
def test_fold_matches_streaming_softmax(value_dim, widths, spread):
    gen = torch.Generator().manual_seed(sum(widths) + value_dim)
    groups, rows = 3, 5
    chunks = [torch.randn(groups, rows, k, generator=gen) * spread for k in widths]
    # A later chunk raises the maximum of some rows (the rescale path), by more than the floor on one.
    chunks[-1][0, 0, -1] = chunks[0].max() + 1.0
    chunks[-1][1, 2, 0] = chunks[0].max() - LOGIT_FLOOR + 5.0
    values = torch.randn(groups, sum(widths), value_dim, generator=gen)
    _compare(_native(chunks, values), _reference(chunks, values))


def test_fold_keeps_the_first_of_tied_maxima():
    logits = torch.zeros(1, 2, 40)
    logits[0, 0, [3, 17, 39]] = 2.0
    values = torch.arange(40.0).view(1, 40, 1)
    mean, best, _ = _native([logits[..., :20], logits[..., 20:]], values)
    assert best.tolist() == [[3, 0]]
    assert mean[0, 1, 0] == pytest.approx(19.5)


@pytest.mark.parametrize("dim", [3, 11, 27, 32, 64, 128])
@pytest.mark.parametrize("widths", [[7], [16, 600], [1100]])
def test_fused_logits_match_fold_of_the_same_product(dim, widths):
    # widths: odd and even numbers of 16-column blocks per chunk (the wide tile pairs them)
    gen = torch.Generator().manual_seed(dim)
    groups, rows = 2, 19  # full row tiles (4 or 8 rows) and a partial one
    queries = torch.randn(groups, rows, dim, generator=gen)
    libraries = [torch.randn(groups, k, dim, generator=gen) * 0.7 for k in widths]
    chunks = [torch.bmm(queries, lib.transpose(1, 2)) for lib in libraries]
    values = torch.randn(groups, sum(widths), 3, generator=gen)
    fused = _native(chunks, values, fused_queries=queries, fused_library=libraries)
    _compare(fused, _reference(chunks, values))


def test_rows_far_below_the_floor_are_exact_zeros_not_nans():
    logits = torch.full((1, 1, 64), -1e6)
    logits[0, 0, 10] = 0.0
    values = torch.arange(64.0).view(1, 64, 1)
    mean, best, entropy = _native([logits], values)
    assert best.item() == 10 and mean.item() == 10.0 and entropy.item() == 0.0


@pytest.mark.parametrize(("rows", "cols", "k"), [(1, 1, 1), (7, 40, 16), (300, 810, 16), (5, 17, 17), (4, 200, 100)])
def test_nearest_is_topk_of_the_smallest(rows, cols, k):
    distance = torch.randn(rows, cols, generator=torch.Generator().manual_seed(cols))
    expected = distance.topk(k, 1, largest=False).indices
    assert torch.equal(native.nearest(distance, k), expected)


def test_nearest_keeps_the_lower_column_among_equal_distances():
    distance = torch.randint(0, 4, (30, 25), generator=torch.Generator().manual_seed(1)).float()
    got = native.nearest(distance, 6)
    for row, picked in zip(distance.tolist(), got.tolist(), strict=True):
        assert picked == sorted(range(25), key=lambda j: (row[j], j))[:6]
    with pytest.raises(ValueError, match="k must be"):
        native.nearest(distance, 26)


def test_ivf_refuses_a_library_without_read_slack():
    padded = torch.zeros(1, 1, 5, 5)
    slack = native.with_read_slack(padded)
    assert torch.equal(slack, padded)
    assert slack.untyped_storage().nbytes() // 4 - slack.numel() >= native.READ_SLACK
    queries = torch.zeros(1, 10)
    columns = tuple(torch.zeros(16, dtype=torch.long) for _ in range(3))
    lists = (torch.zeros(1, dtype=torch.long), torch.ones(1, dtype=torch.long), torch.tensor([[0, 3, 0, 3]]))
    pairs = (torch.tensor([0, 1]), torch.tensor([0]))
    m, s, t, v = torch.full((1,), -float("inf")), torch.zeros(1), torch.zeros(1), torch.zeros(1, 1)
    arg = torch.full((1,), -1, dtype=torch.long)
    state = (m, s, t, v, arg, -80.0)
    with pytest.raises(ValueError, match="with_read_slack"):
        native.ivf(queries, native.IvfLayout(padded.contiguous(), 3, columns, lists, pairs, torch.zeros(1, 16)), *state)
    native.ivf(queries, native.IvfLayout(slack, 3, columns, lists, pairs, torch.zeros(1, 16)), *state)
    assert float(s) == 1.0 and int(arg) == 0  # one column, zero logit


@pytest.mark.parametrize(
    "rows, cols, dim, k",
    [(1, 1, 1, 1), (7, 17, 3, 5), (9, 33, 19, 33), (130, 1100, 24, 3), (20, 600, 128, 64), (16, 513, 19, 12)],
)
def test_knn_equals_float64_brute_force(rows, cols, dim, k):
    gen = torch.Generator().manual_seed(rows * 1000 + cols)
    library = torch.randn(cols, dim, generator=gen)
    queries = torch.randn(rows, dim, generator=gen)
    dist, index = native.knn(queries, native.panel(library[None])[0], (library * library).sum(1), cols, k)
    full = torch.cdist(queries.double(), library.double()) ** 2
    ref_dist, ref_index = full.topk(k, dim=1, largest=False)
    assert torch.allclose(dist.double(), ref_dist, rtol=1e-5, atol=1e-4)
    gap = (ref_dist[:, 1:] - ref_dist[:, :-1]).abs()
    clear = torch.cat([gap, gap.new_full((rows, 1), 1.0)], 1).min(
        torch.cat([gap.new_full((rows, 1), 1.0), gap], 1)
    ) > 1e-3  # neighbours whose rank float32 rounding cannot swap
    assert torch.equal(index[clear], ref_index[clear])


def test_knn_keeps_the_lower_column_of_equal_distances_and_the_nearest_of_a_long_library():
    base = torch.randn(5, 19, generator=torch.Generator().manual_seed(1))
    library = torch.cat([torch.randn(2000, 19) * 3 + 10, base, base, base])  # the same 5 vectors, 3 times
    dist, index = native.knn(base, native.panel(library[None])[0], (library * library).sum(1), library.shape[0], 3)
    assert torch.equal(index, torch.tensor([[2000 + i, 2005 + i, 2010 + i] for i in range(5)]))
    assert (dist >= 0).all() and torch.allclose(dist, torch.zeros_like(dist), atol=1e-4)  # clamped at 0


def _sq8_lists(rng: np.random.Generator, sizes: list[int], dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lists laid out as FAISS's OnDiskInvertedLists lays them: codes (capacity x dim bytes), then ids."""
    chunks, layout, codes_of = [], [], []
    at = 0
    for i, size in enumerate(sizes):
        capacity = size + int(rng.integers(0, 5))
        codes = rng.integers(0, 256, (capacity, dim), dtype=np.uint8)
        ids = np.arange(capacity, dtype=np.int64) + 1000 * i
        chunk = np.concatenate([codes.ravel(), ids.view(np.uint8)])
        layout.append((at, size, capacity))
        chunks.append(chunk)
        codes_of.append(codes[:size])
        at += chunk.shape[0]
    return np.concatenate(chunks), np.array(layout, dtype=np.int64), codes_of


@pytest.mark.parametrize("dim,k", [(24, 12), (8, 5), (40, 3), (19, 64)])
def test_sq8_scan_equals_a_float64_search_of_the_decoded_lists(dim, k):
    """Lists of 0, 1, 15, 16, 17 and hundreds of codes; queries probing some lists twice as -1 (none); 24
    dimensions (the transposed blocks with AVX-512) and others (the plain decoding)."""
    rng = np.random.default_rng(dim)
    sizes = [0, 1, 15, 16, 17, 300, 1000, 33]
    data, layout, codes_of = _sq8_lists(rng, sizes, dim)
    centres = rng.standard_normal((len(sizes), dim)).astype(np.float32)
    vmin = (rng.random(dim) - 1.0).astype(np.float32)
    vdiff = (rng.random(dim) + 0.5).astype(np.float32)
    queries = (centres[rng.integers(0, len(sizes), 40)] + rng.standard_normal((40, dim))).astype(np.float32)
    lists = np.stack([rng.permutation(len(sizes))[:4] for _ in range(40)]).astype(np.int64)
    lists[::7, 3] = -1
    dist, ids = native.sq8_scan(queries, lists, centres, data, layout, vmin, vdiff, k)
    for q in range(40):
        vectors, names = [], []
        for lst in lists[q]:
            if lst < 0:
                continue
            codes = codes_of[lst].astype(np.float64)
            vectors.append(centres[lst] + vmin + (codes + 0.5) / 255.0 * vdiff.astype(np.float64))
            names.append(np.arange(codes.shape[0]) + 1000 * lst)
        vectors, names = np.concatenate(vectors), np.concatenate(names)
        want = ((vectors - queries[q].astype(np.float64)) ** 2).sum(axis=1)
        order = np.argsort(want, kind="stable")[:k]
        found = min(k, want.shape[0])
        assert np.allclose(dist[q, :found], want[order], rtol=1e-5, atol=1e-4)
        clear = np.ones(found, dtype=bool)  # ranks float32 rounding cannot swap
        gaps = np.diff(np.sort(want)[: found + 1])
        clear[:-1] &= gaps[: found - 1] > 1e-3
        clear[1:] &= gaps[: found - 1] > 1e-3
        if found < want.shape[0]:
            clear[-1] &= gaps[found - 1] > 1e-3
        assert np.array_equal(ids[q, :found][clear], names[order][clear])
        assert (ids[q, found:] == -1).all() and np.isinf(dist[q, found:]).all()


def test_sq8_scan_skips_zero_padding_only_where_it_is_zero():
    rng = np.random.default_rng(5)
    data, layout, _ = _sq8_lists(rng, [40, 300, 17], 24)
    centres = np.zeros((3, 24), dtype=np.float32)
    centres[:, :19] = rng.standard_normal((3, 19))
    vmin, vdiff = np.zeros(24, dtype=np.float32), np.zeros(24, dtype=np.float32)
    vmin[:19], vdiff[:19] = rng.random(19) - 1.0, rng.random(19) + 0.5
    assert native.sq8_active_dims(centres, vmin, vdiff) == 19
    queries = np.zeros((30, 24), dtype=np.float32)
    queries[:, :19] = centres[rng.integers(0, 3, 30), :19] + rng.standard_normal((30, 19))
    lists = np.stack([rng.permutation(3) for _ in range(30)]).astype(np.int64)
    full = native.sq8_scan(queries, lists, centres, data, layout, vmin, vdiff, 8)
    skipped = native.sq8_scan(queries, lists, centres, data, layout, vmin, vdiff, 8, active=19)
    assert np.allclose(full[0], skipped[0], rtol=1e-5, atol=1e-5) and (full[1] == skipped[1]).mean() > 0.98
    with pytest.raises(ValueError):
        native.sq8_scan(queries, lists + 1, centres, data, layout, vmin, vdiff, 8)  # list 3 of 3 lists
    queries[:, 22] = 1.0  # the queries are not zero there: every dimension counts
    moved = native.sq8_scan(queries, lists, centres, data, layout, vmin, vdiff, 8, active=19)
    assert np.allclose(moved[0], full[0] + 1.0, rtol=1e-5, atol=1e-4)
