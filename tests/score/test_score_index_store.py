"""Patch indexes kept on disk (core/score/index_store.py)."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from core.score import index_store, ivf, sample
from core.score.index_store import IndexStore


def _library(seed: int = 1, n: int = 6) -> torch.Tensor:
    return torch.rand(n, 1, 10, 9, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(autouse=True)
def small_lists(monkeypatch):
    monkeypatch.setattr(ivf, "LIST_SIZE", 8)
    ivf.INDEXES.clear()  # no index of these libraries in memory from another test
    yield
    ivf.INDEXES.clear()


def _same(a: ivf.PatchIndex, b: ivf.PatchIndex) -> None:
    for field in dataclasses.fields(ivf.PatchIndex):
        left, right = getattr(a, field.name), getattr(b, field.name)
        if field.name == "classes":
            assert len(left) == len(right)
            for (flat_a, cent_a), (flat_b, cent_b) in zip(left, right, strict=True):
                assert torch.equal(flat_a, flat_b) and torch.equal(cent_a, cent_b)
        elif isinstance(left, torch.Tensor):
            assert torch.equal(left, right), field.name
        else:
            assert left == right, field.name


@pytest.mark.parametrize("kind", ["els", "bbels"])
def test_stored_index_loads_back_equal(tmp_path, kind):
    library = _library()
    key = ivf.fingerprint(library)
    built = ivf.build_index(library, kind, 5)
    store = IndexStore(tmp_path)
    store.save(key, built)
    assert store.path(key, kind, 5).is_file()
    _same(store.load(library, key, kind, 5), built)
    assert store.load(library, key, kind, 3) is None  # another patch size: not stored


def test_cache_reads_the_store_instead_of_building(tmp_path, monkeypatch):
    library = _library(2)
    key = ivf.fingerprint(library)
    store = IndexStore(tmp_path)
    first = ivf.IndexCache().get(library, key, "bbels", 5, store)

    def fail(*args):
        raise AssertionError("built again")

    monkeypatch.setattr(ivf, "build_index", fail)
    _same(ivf.IndexCache().get(library, key, "bbels", 5, store), first)  # a new process: from disk


def test_sampler_with_index_dir_reuses_indexes_across_runs(tmp_path, monkeypatch, softmax_path):
    if softmax_path != "native":
        pytest.skip("the sampler uses the patch index only with the native kernel")
    library, noise = _library(3), torch.randn(2, 1, 10, 9, generator=torch.Generator().manual_seed(4))
    sizes = [5, 5, 5, 3, 3, 3, 3, 3, 3, 3]
    notes = []

    def note(*args):
        notes.append(args)

    first = sample(library, noise, "els", sizes, approximate=True, index_dir=tmp_path, on_index_build=note)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2  # one per patch size
    # announced before the first step of each patch size (step 0: the exact step, every list probed)
    assert notes == [(0, 10, 5), (3, 10, 3)]
    ivf.INDEXES.clear()
    monkeypatch.setattr(ivf, "build_index", lambda *a: (_ for _ in ()).throw(AssertionError("built again")))
    notes.clear()
    again = sample(library, noise, "els", sizes, approximate=True, index_dir=tmp_path, on_index_build=note)
    assert torch.equal(first.images, again.images) and notes == []


def test_damaged_files_are_deleted_and_rebuilt(tmp_path, caplog):
    library = _library(5)
    key = ivf.fingerprint(library)
    store = IndexStore(tmp_path)
    store.save(key, ivf.build_index(library, "bbels", 5))
    path = store.path(key, "bbels", 5)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the tensors
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="core.score.index_store"):
        assert store.load(library, key, "bbels", 5) is None
    assert "checksum" in caplog.text and not path.exists()
    path.write_bytes(b"not a safetensors file")
    assert store.load(library, key, "bbels", 5) is None and not path.exists()
    # rebuilt through the cache, and stored again
    ivf.IndexCache().get(library, key, "bbels", 5, store)
    assert store.load(library, key, "bbels", 5) is not None


def test_indexes_out_of_bounds_are_refused_even_with_a_valid_checksum(tmp_path, caplog):
    library = _library(6)
    key = ivf.fingerprint(library)
    store = IndexStore(tmp_path)
    index = ivf.build_index(library, "bbels", 5)
    store.save(key, dataclasses.replace(index, image=index.image + 100))  # images the library does not have
    with caplog.at_level(logging.WARNING, logger="core.score.index_store"):
        assert store.load(library, key, "bbels", 5) is None
    assert "library image out of range" in caplog.text
    window = index.list_window.clone()
    window[0, 1] = 9  # more rows than the patch has
    store.save(key, dataclasses.replace(index, list_window=window))
    assert store.load(library, key, "bbels", 5) is None
    assert "window outside the patch" in caplog.text


def test_other_settings_or_libraries_use_other_files(tmp_path, monkeypatch):
    library = _library(7)
    store = IndexStore(tmp_path)
    path = store.path(ivf.fingerprint(library), "bbels", 5)
    assert store.path(ivf.fingerprint(library * 0.5), "bbels", 5) != path
    monkeypatch.setattr(ivf, "MAX_LISTS", 7)
    assert store.path(ivf.fingerprint(library), "bbels", 5) != path
    monkeypatch.setattr(index_store, "FORMAT", "999")
    assert "f999" in index_store.settings()


def test_folder_is_trimmed_to_its_size_least_recently_used_first(tmp_path):
    library = _library(8)
    key = ivf.fingerprint(library)
    big = IndexStore(tmp_path)
    for size in (3, 5, 7):
        big.save(key, ivf.build_index(library, "els", size))
    sizes = {p.name: p.stat().st_size for p in tmp_path.glob("*.safetensors")}
    assert len(sizes) == 3
    newest = big.path(key, "els", 7)
    small = IndexStore(tmp_path, max_bytes=newest.stat().st_size + 1)
    small.save(key, ivf.build_index(library, "els", 7))
    assert [p.name for p in tmp_path.glob("*.safetensors")] == [newest.name]


def test_an_unwritable_folder_only_costs_a_rebuild(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    store = IndexStore(blocker / "indexes")
    library = _library(9)
    with caplog.at_level(logging.WARNING, logger="core.score.index_store"):
        index = ivf.IndexCache().get(library, ivf.fingerprint(library), "els", 3, store)
    assert index.patch_size == 3 and "could not store" in caplog.text
