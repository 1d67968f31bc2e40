"""Near-copy retrieval through a compressed index (issue 18, item 4) finds what the full scan finds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from analyzer_synth import background, collage, library_crops, make_library, near_copy, photo, png_bytes
from PIL import Image

from core.analyzer import Analyzer
from core.analyzer.globalindex import (
    CompressedGlobal,
    ExactGlobal,
    grown_global_index,
    load_global_index,
    make_global_index,
)
from core.analyzer.index import clear_cache
from core.analyzer.nearcopy import NearCopyChecker, library_descriptors
from core.analyzer.settings import AnalyzerSettings
from core.images import to_tensor
from core.libraries import LibraryManager

SIDE = 128
#: photos the test library's crops do not come from (``analyzer_synth.PHOTOS``): copies of a library crop have
#: one true source among many look-alikes
OTHERS = ("chelsea", "hubble_deep_field", "camera", "coins", "moon", "retina", "brick", "clock", "page")


def _distractors(count: int, seed: int = 0) -> list[np.ndarray]:
    """Random crops (a quarter to the whole of the shorter side) of other photos, at SIDE px: many images
    that look alike, as in a large library."""
    rng = np.random.default_rng(seed)
    sources = [photo(name) for name in OTHERS]
    out = []
    for i in range(count):
        image = sources[i % len(sources)]
        side = int(rng.integers(min(image.shape[:2]) // 4, min(image.shape[:2])))
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        crop = Image.fromarray(image[y : y + side, x : x + side]).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        out.append(np.asarray(crop))
    return out


@pytest.fixture(scope="module")
def library():
    arrays = [array for _, array in library_crops()] + _distractors(600)
    tensors = torch.stack([to_tensor(Image.fromarray(a)) for a in arrays])
    pixels = ((tensors + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    descriptors = library_descriptors(tensors)
    exact = make_global_index(descriptors, exact_max_vectors=10**9)
    compressed = make_global_index(descriptors, exact_max_vectors=10**9, force="faiss")
    return arrays, pixels, exact, compressed


def test_the_size_of_the_library_picks_the_index(library) -> None:
    _, _, exact, compressed = library
    assert isinstance(exact, ExactGlobal) and isinstance(compressed, CompressedGlobal)
    assert exact.descriptors.dtype == np.float16  # half the disk and memory of float32
    small = make_global_index(np.asarray(exact.descriptors[:10]), exact_max_vectors=10 * exact.boxes)
    assert isinstance(small, ExactGlobal)
    large = make_global_index(np.asarray(exact.descriptors[:40]), exact_max_vectors=10 * exact.boxes)
    assert isinstance(large, CompressedGlobal) and large.count == 40
    assert isinstance(make_global_index(np.asarray(exact.descriptors[:40]), 10, force="exact"), ExactGlobal)
    # growing past the limit turns a full scan into an index, and keeps every image
    grown = grown_global_index(small, np.asarray(exact.descriptors[10:40], np.float32), 10 * exact.boxes)
    assert isinstance(grown, CompressedGlobal) and grown.count == 40 and grown.index.ntotal == 40 * exact.boxes
    np.testing.assert_array_equal(grown.descriptors, exact.descriptors[:40])


def test_compressed_retrieval_finds_the_copied_image_like_the_full_scan(library) -> None:
    arrays, pixels, exact, compressed = library
    threshold = AnalyzerSettings().copy_threshold
    scan, index = NearCopyChecker(exact, pixels), NearCopyChecker(compressed, pixels)
    cases = 32  # each of the 32 crops (of photos no distractor comes from) once
    found = agreed = 0
    for case in range(cases):
        row = case
        query = to_tensor(near_copy(arrays[row], seed=case).convert("RGB"))
        by_scan, by_index = scan.check(query), index.check(query)
        assert by_scan is not None and by_index is not None
        found += by_index.row == row and by_index.score >= threshold
        agreed += by_index.row == by_scan.row and abs(by_index.score - by_scan.score) < 1e-3
    print(f"compressed index: {found} of {cases} copies flagged with their image, {agreed} as the full scan")
    assert found >= cases - 1  # the full scan's own rate on these near copies is ≥ 99 %
    assert agreed >= 0.95 * cases
    rng = np.random.default_rng(3)
    for case in range(8):  # not copies: neither flags them
        image = Image.fromarray(background(rng)) if case % 2 else collage(arrays[:32], seed=50 + case).image
        query = to_tensor(image.convert("RGB"))
        for checker in (scan, index):
            match = checker.check(query)
            assert match is None or match.score < threshold


def test_retrieval_never_returns_a_row_outside_the_library(library) -> None:
    arrays, _, exact, compressed = library
    query = to_tensor(near_copy(arrays[5], seed=1).convert("RGB"))
    thumbs = _thumbs(query)
    allowed = np.ones(exact.count, dtype=bool)
    assert compressed.retrieve(thumbs, allowed, 5)[0] == exact.retrieve(thumbs, allowed, 5)[0] == 5
    allowed[5] = False
    for global_index in (exact, compressed):
        rows = global_index.retrieve(thumbs, allowed, 5)
        assert 5 not in rows and len(rows) == 5
    assert exact.retrieve(thumbs, np.zeros(exact.count, dtype=bool), 5) == []
    assert compressed.retrieve(thumbs, np.zeros(exact.count, dtype=bool), 5) == []


def _thumbs(query: torch.Tensor) -> torch.Tensor:
    import torch.nn.functional as F

    from core.analyzer.nearcopy import THUMB, _normalise, _variants

    gray = torch.stack([v.mean(dim=0, keepdim=True) for _, v in _variants(query)])
    return _normalise(F.interpolate(gray, size=(THUMB, THUMB), mode="bilinear", antialias=True))


def test_a_saved_index_is_read_back_mapped_and_still_grows(library, tmp_path) -> None:
    arrays, _, exact, compressed = library
    compressed.write(tmp_path / "global.faiss")
    meta = compressed.meta()
    reread = load_global_index(tmp_path, json.loads(json.dumps(meta)), exact.descriptors)
    assert isinstance(reread, CompressedGlobal) and reread.mapped_from == tmp_path / "global.faiss"
    thumbs = _thumbs(to_tensor(near_copy(arrays[40], seed=2).convert("RGB")))
    assert reread.retrieve(thumbs, None, 3) == compressed.retrieve(thumbs, None, 3)
    # adding to a mapped (read-only) index reads it whole first instead of failing
    extra = library_descriptors(torch.stack([to_tensor(Image.fromarray(_distractors(1, seed=9)[0]))]))
    grown = grown_global_index(reread, extra, exact_max_vectors=10)
    assert isinstance(grown, CompressedGlobal) and grown.count == exact.count + 1 and grown.mapped_from is None
    extra_query = _thumbs(to_tensor(Image.fromarray(_distractors(1, seed=9)[0])))
    assert grown.retrieve(extra_query, None, 1) == [exact.count]
    with pytest.raises(ValueError, match="could not be read"):
        (tmp_path / "global.faiss").write_bytes(b"not an index")
        load_global_index(tmp_path, meta, exact.descriptors)


def test_the_analyzer_uses_a_compressed_index_saves_it_and_appends_to_it(isolated_data_dir) -> None:
    manager = LibraryManager()
    arrays = make_library(manager, "big", count=24)
    settings = AnalyzerSettings(work_size=64, scales=(8, 16))
    analyzer = Analyzer(manager, settings=settings, force_backend="faiss")
    index, _ = analyzer.index("big")
    assert isinstance(index.global_index, CompressedGlobal)
    manifest = json.loads((index.directory / "manifest.json").read_text())
    assert manifest["global"]["kind"] == "faiss" and "trained/global.faiss" in manifest["files"]
    assert "lists/global/00000.faiss" in manifest["files"]  # filled shard by shard
    assert np.load(index.directory / "shards" / "00000" / "global.npy").dtype == np.float16
    clear_cache()  # read back from disk: the lists are memory-mapped
    index, notices = analyzer.index("big")
    assert notices == [] and isinstance(index.global_index, CompressedGlobal) and index.global_index.owner
    result = analyzer.analyze(near_copy(arrays[7], seed=4), "big")
    assert result.near_copy.is_copy and result.near_copy.index == 7
    # a picture added later is found as the source of its copy (appended to the mapped index)
    name, extra = library_crops()[30]
    manager.add_files("big", [(name, png_bytes(extra))])
    result = analyzer.analyze(near_copy(extra, seed=5), "big")
    assert any("1 new picture" in notice for notice in result.notices)
    assert result.near_copy.is_copy and result.near_copy.name == name
