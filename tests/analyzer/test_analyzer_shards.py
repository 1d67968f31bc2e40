"""Issue 18, item 2: the index is written in shards of pictures, read through memory maps, grows by
shards, and a build that was stopped goes on from the shards it had finished."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from analyzer_synth import collage, library_crops, make_library, near_copy, png_bytes

from core.analyzer import Analyzer
from core.analyzer import index as index_module
from core.analyzer.index import clear_cache
from core.analyzer.search import ShardedFaissSearch, _encoded, for_faiss, merge_lists, trained_ivf
from core.analyzer.settings import AnalyzerSettings
from core.analyzer.sharded import ShardedArray
from core.libraries import LibraryManager
from core.score import native

REPO = Path(__file__).resolve().parents[2]
SMALL = AnalyzerSettings(work_size=64, scales=(8, 16))


# -- the pieces -----------------------------------------------------------------------------------


def test_a_sharded_array_reads_like_the_array_it_splits() -> None:
    rng = np.random.default_rng(0)
    whole = rng.integers(0, 100, (11, 3, 2)).astype(np.int32)
    sharded = ShardedArray([whole[:4], whole[4:4], whole[4:9], whole[9:]])  # an empty part too
    assert sharded.shape == whole.shape and len(sharded) == 11 and sharded.dtype == whole.dtype and sharded.ndim == 3
    for key in (0, 3, 4, 8, 9, 10, -1, -11):
        assert np.array_equal(sharded[key], whole[key])
    for key in (slice(None), slice(2, 7), slice(4, 9), slice(8, 30), slice(5, 5), slice(1, 10, 3)):
        assert np.array_equal(sharded[key], whole[key]), key
    picked = [10, 0, 4, 4, 9, -2]
    assert np.array_equal(sharded[picked], whole[picked])
    assert np.array_equal(sharded[np.array([[1, 9], [5, 3]])], whole[np.array([[1, 9], [5, 3]])])
    mask = rng.random(11) > 0.5
    assert np.array_equal(sharded[mask], whole[mask])
    assert np.array_equal(np.asarray(sharded), whole)
    assert np.array_equal(sharded[[8, 5, 6]], whole[[8, 5, 6]])  # all from one part
    assert sharded[np.array([], dtype=np.int64)].shape == (0, 3, 2)
    one = ShardedArray([whole])
    assert np.array_equal(one[[3, 1, -1]], whole[[3, 1, -1]])
    for bad in (11, -12, [0, 11]):
        with pytest.raises(IndexError):
            sharded[bad]
    with pytest.raises(ValueError):
        ShardedArray([whole[:2], whole[2:].astype(np.float32)])


def _lists_per_shard(folder: Path, trained, vectors: np.ndarray, shard: int) -> list[Path]:  # noqa: ANN001
    """``trained`` written as ``folder/trained.faiss`` and filled with ``vectors`` ``shard`` at a time, one list
    file per shard (ids: the vectors' rows), as the index build writes them."""
    import faiss

    faiss.write_index(trained, str(folder / "trained.faiss"))
    lists = []
    for i, start in enumerate(range(0, vectors.shape[0], shard)):
        part = faiss.read_index(str(folder / "trained.faiss"))
        chunk = for_faiss(vectors[start : start + shard], part.d)
        part.add_with_ids(chunk, np.arange(start, start + chunk.shape[0], dtype=np.int64))
        faiss.write_index(part, str(folder / f"{i}.faiss"))
        lists.append(folder / f"{i}.faiss")
    return lists


@pytest.mark.parametrize("path", ["native", "faiss"])
def test_search_lists_kept_per_shard_find_what_one_index_finds(tmp_path, monkeypatch, path) -> None:
    """Also when the native kernel chooses the lists to probe (FAISS's quantizer otherwise): same results."""
    import faiss

    monkeypatch.setenv(native.NATIVE_ENV, "1" if path == "native" else "0")
    native.reset()

    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((6000, 19)).astype(np.float32)
    trained = trained_ivf(vectors[::3], vectors.shape[0])
    lists = _lists_per_shard(tmp_path, trained, vectors, 2500)
    whole = faiss.read_index(str(tmp_path / "trained.faiss"))
    whole.add(for_faiss(vectors, whole.d))
    whole.nprobe = 12
    sharded = ShardedFaissSearch(tmp_path / "trained.faiss", lists, nprobe=12)
    assert sharded.count == 6000
    queries = vectors[:50] + 0.01 * rng.standard_normal((50, 19)).astype(np.float32)
    chosen = sharded._choose_lists(for_faiss(queries, whole.d), 12)
    assert (chosen is not None) == (path == "native")
    if chosen is not None:
        want_centres, want_lists = whole.quantizer.search(for_faiss(queries, whole.d), 12)
        assert np.array_equal(chosen[1], want_lists) and np.allclose(chosen[0], want_centres, atol=1e-4)
    dist, rows = sharded.search(queries, 5)
    want_dist, want_rows = whole.search(for_faiss(queries, whole.d), 5)
    assert np.array_equal(rows, want_rows) and np.allclose(dist, want_dist)
    assert (rows[:, 0] == np.arange(50)).all()
    # fewer lists probed for one search only: still finds the near duplicates, the index keeps its setting
    _, few = sharded.search(queries, 5, nprobe=2)
    assert (few[:, 0] == np.arange(50)).mean() > 0.8 and sharded.nprobe == 12
    native.reset()


@pytest.mark.parametrize("dim", [19, 36])
def test_merged_8bit_lists_scanned_by_the_kernel_find_what_faiss_finds(tmp_path, dim) -> None:
    """The native kernel scans a searcher's merged 8-bit lists in FAISS's own file (dimension 24 after
    padding: the transposed blocks; 40: the plain decoding): the same neighbours and distances as FAISS's
    scan of the same lists, and a searcher whose lists are not merged is left to FAISS."""
    if not native.available(torch.device("cpu")):
        pytest.skip("no native kernel here")
    rng = np.random.default_rng(dim)
    vectors = (rng.standard_normal((7000, dim)) * rng.random(dim) * 3).astype(np.float32)
    flat = trained_ivf(vectors[::3], vectors.shape[0])
    trained = _encoded(flat, "SQ8")
    trained.train(for_faiss(vectors[::3], flat.d))
    parts = _lists_per_shard(tmp_path, trained, vectors, 3000)
    merge_lists(tmp_path / "trained.faiss", parts, tmp_path / "merged.faiss")
    merged = ShardedFaissSearch(tmp_path / "trained.faiss", [tmp_path / "merged.faiss"], nprobe=6)
    merged.prepare()  # what a worker reads when it starts
    assert merged._sq8 and merged._centres is not None
    release = tuple(int(part) for part in platform.release().split("-")[0].split(".")[:2])
    assert merged._sq8.populate() == (sys.platform.startswith("linux") and release >= (5, 14))  # pages mapped ahead
    assert ShardedFaissSearch(tmp_path / "trained.faiss", parts, nprobe=6)._sq8_lists() is None  # stacked: FAISS
    queries = for_faiss(vectors[::50] + 0.05 * rng.standard_normal((140, dim)).astype(np.float32), flat.d)
    dist, found = merged._search(queries, 10, 6)
    merged._sq8 = False  # FAISS scans the same lists
    want_dist, want_found = merged._search(queries, 10, 6)
    assert np.allclose(dist, want_dist, rtol=1e-5, atol=1e-5)
    gaps = np.diff(want_dist, axis=1)
    clear = np.ones(want_dist.shape, dtype=bool)  # ranks float32 rounding cannot swap
    clear[:, :-1] &= gaps > 1e-4
    clear[:, 1:] &= gaps > 1e-4
    assert np.array_equal(found[clear], want_found[clear]) and clear.mean() > 0.9
    assert (found[:, 0] == np.arange(0, 7000, 50)).mean() > 0.9


def _memory_maps() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


def test_mapped_search_lists_start_no_prefetch_threads(tmp_path) -> None:
    """FAISS reads mapped lists as ``OnDiskInvertedLists``, which by default start 32 prefetch threads per part
    on every search and keep their stacks until the next: at 49 shards and 40 searchers one analysis ran out of
    memory maps. The studio's mapped lists have no prefetch threads."""
    import faiss

    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((4000, 19)).astype(np.float32)
    faiss.write_index(trained_ivf(vectors[::2], vectors.shape[0]), str(tmp_path / "trained.faiss"))
    lists = []
    for i in range(8):
        part = faiss.read_index(str(tmp_path / "trained.faiss"))
        chunk = for_faiss(vectors[i * 500 : (i + 1) * 500], part.d)
        part.add_with_ids(chunk, np.arange(i * 500, (i + 1) * 500, dtype=np.int64))
        faiss.write_index(part, str(tmp_path / f"{i}.faiss"))
        lists.append(tmp_path / f"{i}.faiss")
    sharded = ShardedFaissSearch(tmp_path / "trained.faiss", lists, nprobe=12)
    for part in sharded._parts:
        assert faiss.downcast_InvertedLists(faiss.extract_index_ivf(part).invlists).prefetch_nthread == 0
    before = _memory_maps()
    sharded.search(vectors[:200], 3)
    sharded.search(vectors[200:400], 3)
    assert _memory_maps() - before < 16  # 8 parts × 32 threads' stacks would be 512 more


# -- the index on disk ----------------------------------------------------------------------------


def _sharded(monkeypatch, per_shard: int, tail: int | None = None) -> None:
    """Shards of ``per_shard`` pictures; a last shard under ``tail`` pictures is made again on an append."""
    monkeypatch.setattr(index_module, "SHARD_IMAGES", per_shard)
    monkeypatch.setattr(index_module, "TAIL_REWRITE", tail if tail is not None else max(1, per_shard // 2))


def _child_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    env.pop("MOSAIC_DATABASE_URL", None)
    return env


def _shard_of(task) -> str:
    """The shard a describing task is for (its staging folder is ``.tmp-<shard>-<random>``)."""
    return Path(task.staging).name.split("-")[1]


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("backend", [None, "faiss"])
def test_an_index_in_shards_finds_what_an_index_in_one_shard_finds(isolated_data_dir, monkeypatch, backend) -> None:
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=9)
    one = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "one", force_backend=backend)
    whole, _ = one.index("mini")
    _sharded(monkeypatch, 4)
    many = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "many", force_backend=backend)
    split, _ = many.index("mini")
    assert sorted(p.name for p in (split.directory / "shards").iterdir()) == ["00000", "00001", "00002"]
    assert len(split.pixels.parts) == 3 and split.item_ids == whole.item_ids
    assert np.array_equal(np.asarray(split.pixels), np.asarray(whole.pixels))
    for (stem, a), (_, b) in zip(whole.all_scales(), split.all_scales(), strict=True):
        assert a.searcher.count == b.searcher.count and np.array_equal(np.asarray(a.rows), np.asarray(b.rows)), stem
        if backend == "faiss" and a.searcher.count >= 64:
            assert isinstance(b.searcher, ShardedFaissSearch)
    planted = collage(arrays, seed=2)
    want = one.analyze(planted.image, "mini")
    got = many.analyze(planted.image, "mini")
    assert np.array_equal(got.source_map, want.source_map)
    copy = many.analyze(near_copy(arrays[6], seed=1), "mini")
    assert copy.near_copy.is_copy and copy.near_copy.index == 6


@pytest.mark.parametrize("backend", [None, "faiss"])
def test_added_pictures_make_a_new_shard_and_old_files_stay_as_they_were(
    isolated_data_dir, monkeypatch, backend
) -> None:
    _sharded(monkeypatch, 4)
    manager = LibraryManager()
    make_library(manager, "mini", count=8)
    analyzer = Analyzer(manager, settings=SMALL, force_backend=backend)
    index, _ = analyzer.index("mini")
    folder = index.directory
    before = _files(folder)
    name, extra = library_crops()[20]
    manager.add_files("mini", [(name, png_bytes(extra))])
    clear_cache()
    index, notices = analyzer.index("mini")
    assert any("1 new picture" in n for n in notices) and index.count == 9
    after = _files(folder)
    for path, stamp in before.items():
        if path.startswith("shards/") or path.startswith("lists/") or path.startswith("trained/"):
            assert after.get(path) == stamp, f"{path} was rewritten"
    added = sorted(set(after) - set(before))
    assert "shards/00002/pixels.npy" in added and all(
        p.startswith("shards/00002/") or p.startswith("lists/") for p in added
    ), added
    if backend == "faiss":
        assert any(p.startswith("lists/") and p.endswith("/00002.faiss") for p in added)
    result = analyzer.analyze(near_copy(extra, seed=3), "mini")
    assert result.near_copy.is_copy and result.near_copy.name == name
    # the appended patches are found by the patch search too: the picture itself is its own source
    whole = analyzer.analyze(png_bytes(extra), "mini")
    assert whole.sources and whole.sources[0].name == name


def test_a_small_last_shard_is_made_again_with_the_added_pictures(isolated_data_dir, monkeypatch) -> None:
    _sharded(monkeypatch, 4, tail=2)
    manager = LibraryManager()
    make_library(manager, "mini", count=9)  # shards of 4, 4 and 1
    analyzer = Analyzer(manager, settings=SMALL, force_backend="faiss")
    index, _ = analyzer.index("mini")
    folder = index.directory
    before = _files(folder)
    name, extra = library_crops()[20]
    manager.add_files("mini", [(name, png_bytes(extra))])
    index, notices = analyzer.index("mini")
    assert any("1 new picture" in n for n in notices) and index.count == 10
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001", "00003"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [(s["name"], s["first_row"], s["count"]) for s in manifest["shards"]] == [
        ("00000", 0, 4),
        ("00001", 4, 4),
        ("00003", 8, 2),
    ]
    after = _files(folder)
    assert all(after[p] == before[p] for p in before if "/00000" in p or "/00001" in p)
    assert not any("00002" in p for p in after)  # the old last shard and its search lists are gone
    result = analyzer.analyze(near_copy(extra, seed=3), "mini")
    assert result.near_copy.is_copy and result.near_copy.name == name
    clear_cache()
    again, notices = analyzer.index("mini")
    assert notices == [] and again.item_ids == index.item_ids


def test_a_removed_picture_rebuilds_from_the_first_shard_that_held_it(isolated_data_dir, monkeypatch) -> None:
    _sharded(monkeypatch, 3)
    manager = LibraryManager()
    make_library(manager, "mini", count=8)
    analyzer = Analyzer(manager, settings=SMALL)
    index, _ = analyzer.index("mini")
    folder = index.directory
    before = _files(folder)
    manager.remove_items("mini", [index.item_ids[4]])  # in the second shard
    index, notices = analyzer.index("mini")
    assert any("left the library" in n for n in notices) and index.count == 7
    after = _files(folder)
    assert after["shards/00000/pixels.npy"] == before["shards/00000/pixels.npy"]  # kept
    assert after["shards/00001/pixels.npy"] != before["shards/00001/pixels.npy"]  # made again
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001", "00002"]


def test_a_stopped_build_goes_on_from_its_finished_shards(isolated_data_dir, monkeypatch) -> None:
    _sharded(monkeypatch, 3)
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=8)
    analyzer = Analyzer(manager, settings=SMALL)
    described: list[str] = []
    real = index_module.ShardDescriber.__call__

    def counting(self, task, *args, **kwargs):
        described.append(_shard_of(task))
        if described[-1] == "00002" and len(described) == 3:
            raise KeyboardInterrupt  # stopped while describing the third shard
        return real(self, task, *args, **kwargs)

    monkeypatch.setattr(index_module.ShardDescriber, "__call__", counting)
    with pytest.raises(KeyboardInterrupt):
        analyzer.index("mini")
    folder = next((isolated_data_dir / "indexes" / "mini").glob("pixel-*"))
    assert not (folder / "manifest.json").exists()
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001"]  # no half shard
    clear_cache()
    described.clear()
    index, notices = analyzer.index("mini")
    assert described == ["00002"] and notices == [] and index.count == 8
    result = analyzer.analyze(near_copy(arrays[7], seed=2), "mini")
    assert result.near_copy.is_copy and result.near_copy.index == 7


#: a child process's start: the studio with small shards, ``real`` the shard describer it wraps
_CHILD_START = """
import time
from core.analyzer import Analyzer, index
from core.analyzer.settings import AnalyzerSettings
from core.libraries import LibraryManager
index.SHARD_IMAGES = {per_shard}
real = index.ShardDescriber.__call__
"""

_KILLED_BUILD = (
    _CHILD_START.format(per_shard=2)
    + """
def slow(self, task, *args, **kwargs):
    if task.first_row >= 4:
        print("SHARDS-DONE", flush=True)
        time.sleep(60)
    return real(self, task, *args, **kwargs)
index.ShardDescriber.__call__ = slow
Analyzer(LibraryManager(), settings=AnalyzerSettings(work_size=64, scales=(8, 16))).index("mini")
"""
)


def test_a_build_killed_part_way_goes_on_without_redoing_finished_shards(isolated_data_dir, monkeypatch) -> None:
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=7)
    env = _child_env(isolated_data_dir)
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_BUILD], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "SHARDS-DONE" not in line and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line and child.poll() is not None:
                break
        assert "SHARDS-DONE" in line, "the child never reached its third shard"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    folder = next((isolated_data_dir / "indexes" / "mini").glob("pixel-*"))
    finished = sorted(p.name for p in (folder / "shards").iterdir() if not p.name.startswith("."))
    assert finished == ["00000", "00001"]
    stamps = {name: (folder / "shards" / name / "pixels.npy").stat().st_ino for name in finished}
    _sharded(monkeypatch, 2)
    described: list[str] = []
    real = index_module.ShardDescriber.__call__

    def counting(self, task, *args, **kwargs):
        described.append(_shard_of(task))
        return real(self, task, *args, **kwargs)

    monkeypatch.setattr(index_module.ShardDescriber, "__call__", counting)
    analyzer = Analyzer(manager, settings=SMALL)
    index, notices = analyzer.index("mini")
    assert described == ["00002", "00003"] and notices == [] and index.count == 7
    assert {n: (folder / "shards" / n / "pixels.npy").stat().st_ino for n in finished} == stamps
    assert not [p for p in (folder / "shards").iterdir() if p.name.startswith(".")]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["count"] for s in manifest["shards"]] == [2, 2, 2, 1]
    result = analyzer.analyze(near_copy(arrays[1], seed=5), "mini")
    assert result.near_copy.is_copy and result.near_copy.index == 1


# -- on Ray ---------------------------------------------------------------------------------------


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    return {p.relative_to(folder).as_posix(): np.load(p) for p in sorted((folder / "shards").rglob("*.npy"))}


def test_a_build_on_ray_makes_the_files_a_local_build_makes(isolated_data_dir, monkeypatch, ray_cluster) -> None:
    """Issue 18, item 3: with ``MOSAIC_RAY_ADDRESS`` set the shards are described and their search lists
    filled by Ray tasks; the index is the one a build in this process makes."""
    from core import runners

    _sharded(monkeypatch, 3)
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=8)
    local = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "local", force_backend="faiss")
    mine, _ = local.index("mini")
    used: list[str] = []
    real = runners.RayRunner.map

    def watched(self, fn, items):
        used.append(getattr(fn, "__name__", type(fn).__name__))
        return real(self, fn, items)

    monkeypatch.setattr(runners.RayRunner, "map", watched)
    monkeypatch.setenv("MOSAIC_RAY_ADDRESS", ray_cluster)
    remote = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "ray", force_backend="faiss")
    theirs, _ = remote.index("mini")
    assert used == ["ShardDescriber", "_fill_lists"]  # both kinds of shard work went to Ray
    ours, other = _arrays(mine.directory), _arrays(theirs.directory)
    assert sorted(ours) == sorted(other) and len(ours) > 20
    for name, array in ours.items():
        if name.endswith(".vec.npy") or name.endswith("global.npy"):  # one thread there, several here
            assert np.allclose(array.astype(np.float32), other[name].astype(np.float32), atol=2e-3), name
        else:
            assert np.array_equal(array, other[name]), name
    lists = sorted(p.relative_to(theirs.directory).as_posix() for p in (theirs.directory / "lists").rglob("*.faiss"))
    assert lists and lists == sorted(
        p.relative_to(mine.directory).as_posix() for p in (mine.directory / "lists").rglob("*.faiss")
    )
    manifest = json.loads((theirs.directory / "manifest.json").read_text())
    assert manifest["stems"] == json.loads((mine.directory / "manifest.json").read_text())["stems"]
    planted = collage(arrays, seed=4)
    assert np.array_equal(
        remote.analyze(planted.image, "mini").source_map, local.analyze(planted.image, "mini").source_map
    )


def test_a_full_disk_during_a_build_is_a_clear_message_and_the_finished_shards_are_kept(
    isolated_data_dir, monkeypatch
) -> None:
    import errno

    from core.analyzer import store
    from core.errors import BadInputError

    _sharded(monkeypatch, 3)
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=8)
    analyzer = Analyzer(manager, settings=SMALL)
    real = store.save_array
    written: list[str] = []

    def filling(path, array):
        written.append(path.name)
        if written.count("pixels.npy") == 3:  # the disk fills while the third shard is written
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(store, "save_array", filling)
    with pytest.raises(BadInputError, match="disk is full.*already prepared is kept"):
        analyzer.analyze(near_copy(arrays[7], seed=2), "mini")
    folder = next((isolated_data_dir / "indexes" / "mini").glob("pixel-*"))
    assert sorted(p.name for p in (folder / "shards").iterdir()) == ["00000", "00001"]
    monkeypatch.setattr(store, "save_array", real)
    result = analyzer.analyze(near_copy(arrays[7], seed=2), "mini")
    assert result.near_copy.is_copy and result.near_copy.index == 7


_OPEN_INDEX = (
    _CHILD_START.format(per_shard=3)
    + """
def counted(self, task, *args, **kwargs):
    print("DESCRIBED", task.first_row, flush=True)
    return real(self, task, *args, **kwargs)
index.ShardDescriber.__call__ = counted
built, notices = Analyzer(LibraryManager(), settings=AnalyzerSettings(work_size=64, scales=(8, 16))).index("mini")
print("COUNT", built.count, len(notices), flush=True)
"""
)


def test_two_processes_asking_for_the_same_index_at_once_build_it_once(isolated_data_dir) -> None:
    """Several people on one server: the second process waits for the first one's build and uses it."""
    manager = LibraryManager()
    make_library(manager, "mini", count=7)
    env = _child_env(isolated_data_dir)
    children = [
        subprocess.Popen([sys.executable, "-c", _OPEN_INDEX], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=300)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    described = [line for out in outputs for line in out.splitlines() if line.startswith("DESCRIBED")]
    assert sorted(described) == ["DESCRIBED 0", "DESCRIBED 3", "DESCRIBED 6"]  # each shard once, in all
    assert all("COUNT 7 0" in out for out in outputs)


# -- compressed search lists ------------------------------------------------------------------------


def _clustered(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, 19)).astype(np.float32) * 3
    return (centres[rng.integers(0, 200, count)] + rng.standard_normal((count, 19))).astype(np.float32)


def test_the_list_encoding_is_chosen_by_measured_recall_and_hits_are_reranked_exactly(tmp_path) -> None:
    import faiss

    from core.analyzer.search import ENCODINGS, ExactSearch, choose_recipe

    vectors = _clustered(60_000)
    queries = vectors[:300] + 0.05 * np.random.default_rng(1).standard_normal((300, 19)).astype(np.float32)
    small, recipe = choose_recipe(vectors[:2000], queries, 2000, k=3, nprobe=12)
    assert recipe.encoding == "Flat" and recipe.recall == {}  # small searchers keep plain lists
    trained, recipe = choose_recipe(vectors[::4], vectors[1::40][:500], 60_000, k=3, nprobe=12)
    assert set(recipe.recall) == set(ENCODINGS) and recipe.encoding in ENCODINGS
    assert recipe.recall[recipe.encoding] >= recipe.recall["Flat"] - 0.01
    assert recipe.encoding != "Flat"  # 8-bit codes lose almost nothing once re-ranked exactly
    faiss.write_index(trained, str(tmp_path / "trained.faiss"))
    lists = []
    for i, start in enumerate(range(0, 60_000, 25_000)):
        part = faiss.read_index(str(tmp_path / "trained.faiss"))
        chunk = for_faiss(vectors[start : start + 25_000], part.d)
        part.add_with_ids(chunk, np.arange(start, start + chunk.shape[0], dtype=np.int64))
        faiss.write_index(part, str(tmp_path / f"{i}.faiss"))
        lists.append(tmp_path / f"{i}.faiss")
    stored = ShardedArray([vectors[:25_000].astype(np.float16), vectors[25_000:].astype(np.float16)])
    searcher = ShardedFaissSearch(tmp_path / "trained.faiss", lists, nprobe=12, vectors=stored)
    dist, rows = searcher.search(queries, 3)
    assert (rows[:, 0] == np.arange(300)).mean() > 0.97  # each query's own vector first
    exact = ((stored[rows[:, 0]].astype(np.float32) - queries) ** 2).sum(axis=1)
    assert np.allclose(dist[:, 0], exact, rtol=1e-4)  # distances are exact, not the codes' approximations
    want, _ = ExactSearch(vectors).search(queries, 3)
    assert np.allclose(dist[:, 0], want[:, 0], rtol=2e-2, atol=1e-2)  # float16 storage


def test_an_index_with_compressed_lists_finds_copies_and_keeps_its_encoding_on_append(
    isolated_data_dir, monkeypatch
) -> None:
    from core.analyzer import search

    _sharded(monkeypatch, 4)
    monkeypatch.setattr(search, "COMPRESS_FROM", 0)
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=9)
    analyzer = Analyzer(manager, settings=SMALL, force_backend="faiss")
    index, _ = analyzer.index("mini")
    manifest = json.loads((index.directory / "manifest.json").read_text())
    encoded = {stem: meta["encoding"] for stem, meta in manifest["stems"].items() if meta["kind"] == "faiss"}
    assert encoded and all(meta["recall"] for stem, meta in manifest["stems"].items() if stem in encoded)
    compressed = [stem for stem, encoding in encoded.items() if encoding != "Flat"]
    assert compressed, encoded
    scales = dict(index.all_scales())
    assert all(scales[stem].searcher.vectors is not None for stem in compressed)
    result = analyzer.analyze(near_copy(arrays[5], seed=1), "mini")
    assert result.near_copy.is_copy and result.near_copy.index == 5
    planted = collage(arrays, seed=2)
    found = analyzer.analyze(planted.image, "mini")
    planted_from = {int(i) for i in np.unique(planted.truth) if i >= 0}
    assert {s.index for s in found.sources} & planted_from
    name, extra = library_crops()[20]
    manager.add_files("mini", [(name, png_bytes(extra))])
    index, _ = analyzer.index("mini")
    after = json.loads((index.directory / "manifest.json").read_text())["stems"]
    assert {stem: after[stem]["encoding"] for stem in encoded} == encoded  # trained once, kept
    assert analyzer.analyze(png_bytes(extra), "mini").sources[0].name == name


def test_the_whole_image_index_is_filled_by_shard_and_grows_by_shard(isolated_data_dir, monkeypatch) -> None:
    from core.analyzer.globalindex import CompressedGlobal

    _sharded(monkeypatch, 10, tail=2)
    manager = LibraryManager()
    arrays = make_library(manager, "big", count=24)  # 24 × 49 boxes: enough for the compressed index
    analyzer = Analyzer(manager, settings=SMALL, force_backend="faiss")
    index, _ = analyzer.index("big")
    assert isinstance(index.global_index, CompressedGlobal) and index.global_index.owner is not None
    folder = index.directory
    assert sorted(p.name for p in (folder / "lists" / "global").iterdir()) == [
        "00000.faiss",
        "00001.faiss",
        "00002.faiss",
    ]
    before = _files(folder)
    name, extra = library_crops()[30]
    manager.add_files("big", [(name, png_bytes(extra))])
    index, _ = analyzer.index("big")
    after = _files(folder)
    assert "lists/global/00003.faiss" in after and after["trained/global.faiss"] == before["trained/global.faiss"]
    assert all(after[p] == before[p] for p in before if p.startswith("lists/global/"))
    assert analyzer.analyze(near_copy(extra, seed=5), "big").near_copy.name == name
    copy = analyzer.analyze(near_copy(arrays[13], seed=6), "big").near_copy
    assert copy.is_copy and copy.index == 13


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_released_pages_of_a_mapped_array_leave_resident_memory(tmp_path) -> None:
    """The build reads the picture cache through a memory map once; ``store.release_pages`` lets its pages go
    after each shard, so a large library's cache does not pile up in the build's resident memory."""
    from core.analyzer import store

    path = tmp_path / "big.npy"
    store.save_array(path, np.arange(64 * 2**20 // 8, dtype=np.int64))  # 64 MiB
    mapped = store.load_array(path, mmap=True)
    before = _rss_file_kb()
    assert int(np.asarray(mapped[::512]).sum()) > 0  # touches every page
    touched = _rss_file_kb()
    assert touched - before > 48 * 1024
    store.release_pages(mapped)
    assert _rss_file_kb() - before < 8 * 1024
    assert int(mapped[-1]) == 64 * 2**20 // 8 - 1  # still readable
    store.release_pages(np.zeros(3))  # an array in memory: nothing to do


def test_search_indexes_hold_descriptors_padded_for_simd() -> None:
    """FAISS scans compressed lists with SIMD only when the dimension is a multiple of 8 (19-dimensional SQ8
    lists scanned 4-5 times slower than 24-dimensional ones): searchers pad descriptors with zeros, which
    changes no distance and no neighbour."""
    from core.analyzer.search import FaissSearch, padded_dim

    assert [padded_dim(d) for d in (1, 8, 19, 24, 51)] == [8, 8, 24, 24, 56]
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((3000, 19)).astype(np.float32)
    padded = for_faiss(vectors, 24)
    assert padded.shape == (3000, 24) and padded.flags.c_contiguous and not padded[:, 19:].any()
    assert np.array_equal(padded[:, :19], vectors)
    assert for_faiss(vectors, 19).shape == (3000, 19)  # an index built before padding: nothing added
    with pytest.raises(ValueError):
        for_faiss(vectors, 16)
    searcher = FaissSearch.build(vectors, nprobe=64)
    assert searcher.index.d == 24
    queries = vectors[:40] + 0.01 * rng.standard_normal((40, 19)).astype(np.float32)
    dist, rows = searcher.search(queries, 3)
    want = ((vectors[rows[:, 0]] - queries) ** 2).sum(axis=1)
    assert (rows[:, 0] == np.arange(40)).all() and np.allclose(dist[:, 0], want, rtol=1e-4, atol=1e-5)


def _merged(index) -> dict[str, dict]:
    manifest = json.loads((index.directory / "manifest.json").read_text())
    return {stem: meta.get("merged") for stem, meta in manifest["stems"].items() if meta["kind"] == "faiss"}


def test_search_lists_are_merged_and_added_shards_stack_on_the_merge(isolated_data_dir, monkeypatch, capfd) -> None:
    """A searcher's lists in 49 stacked shard files searched 2x slower than the same lists in one file: past
    ``MERGE_AFTER`` shards they are merged into one mapped file. Added pictures stack their shard on the merge
    until too many are left out of it; then every shard is merged anew. Analyses are those of lists kept per
    shard, a damaged merged file is found, and FAISS's report of where it found the file is not printed."""
    _sharded(monkeypatch, 2, tail=1)
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=9)
    monkeypatch.setattr(index_module, "MERGE_AFTER", 100)
    plain = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "plain", force_backend="faiss")
    kept_apart, _ = plain.index("mini")
    assert _merged(kept_apart) and not any(_merged(kept_apart).values())  # 5 shards, kept apart
    monkeypatch.setattr(index_module, "MERGE_AFTER", 1)
    analyzer = Analyzer(manager, settings=SMALL, index_root=isolated_data_dir / "merged", force_backend="faiss")
    index, _ = analyzer.index("mini")
    merged = _merged(index)
    assert merged and all(m["shards"] == 5 for m in merged.values())
    for stem, meta in merged.items():
        assert (index.directory / meta["file"]).is_file()
        assert (index.directory / meta["file"].replace(".faiss", ".ivfdata")).is_file()
        searcher = dict(index.all_scales())[stem].searcher
        assert len(searcher._parts) == 1 and searcher.count == dict(kept_apart.all_scales())[stem].searcher.count
    planted = collage(arrays, seed=2)
    assert np.array_equal(analyzer.analyze(planted.image, "mini").source_map,
                          plain.analyze(planted.image, "mini").source_map)
    clear_cache()
    capfd.readouterr()
    index, _ = analyzer.index("mini")  # read again from disk
    said = capfd.readouterr()
    assert "IO_FLAG" not in said.out and "IO_FLAG" not in said.err  # not in a command's JSON, nor its progress
    first = {stem: (index.directory / m["file"]).stat().st_ino for stem, m in merged.items()}
    # one picture added: its shard is stacked on the merge, which stays as it was
    name, extra = library_crops()[20]
    manager.add_files("mini", [(name, png_bytes(extra))])
    clear_cache()
    index, _ = analyzer.index("mini")
    assert _merged(index) == merged
    assert {stem: (index.directory / m["file"]).stat().st_ino for stem, m in merged.items()} == first
    assert all(len(s.searcher._parts) == 2 for stem, s in index.all_scales() if stem in merged)
    whole = analyzer.analyze(png_bytes(extra), "mini")
    assert whole.sources and whole.sources[0].name == name  # the stacked shard is searched
    # another one: two shards left out of the merge are too many, every shard is merged again
    name2, extra2 = library_crops()[21]
    manager.add_files("mini", [(name2, png_bytes(extra2))])
    clear_cache()
    index, _ = analyzer.index("mini")
    again = _merged(index)
    assert all(m["shards"] == 7 for m in again.values()) and all(again[s]["file"] != merged[s]["file"] for s in merged)
    assert not any((index.directory / m["file"]).exists() for m in merged.values())  # the old merges are gone
    assert analyzer.analyze(near_copy(extra2, seed=3), "mini").near_copy.name == name2
    # a damaged merged file: the index is prepared again
    stem, meta = next(iter(again.items()))
    data = index.directory / meta["file"].replace(".faiss", ".ivfdata")
    data.write_bytes(data.read_bytes()[:-64])
    clear_cache()
    index, notices = analyzer.index("mini")
    assert any("prepared again" in n for n in notices) and index.count == 11


def test_the_library_reduced_sizes_are_searched_with_their_own_number_of_lists(isolated_data_dir, monkeypatch):
    manager = LibraryManager()
    arrays = make_library(manager, "mini", count=9)
    settings = AnalyzerSettings(work_size=64, scales=(8, 16), nprobe=12, level_nprobe=5)
    analyzer = Analyzer(manager, settings=settings, force_backend="faiss")
    index, _ = analyzer.index("mini")
    level_searchers = {id(s.searcher) for scales in index.levels.values() for s in scales.values()}
    whole_searchers = {id(s.searcher) for s in index.scales.values()}
    assert level_searchers and whole_searchers and not level_searchers & whole_searchers
    probed: dict[int, set] = {}
    search = ShardedFaissSearch.search

    def recording(self, queries, k, nprobe=None):
        probed.setdefault(id(self), set()).add(nprobe)
        return search(self, queries, k, nprobe)

    monkeypatch.setattr(ShardedFaissSearch, "search", recording)
    analyzer.analyze(collage(arrays, seed=2).image, "mini")
    assert {n for key in level_searchers & probed.keys() for n in probed[key]} == {5}
    assert {n for key in whole_searchers & probed.keys() for n in probed[key]} == {None}  # the index's 12
    assert level_searchers & probed.keys() and whole_searchers & probed.keys()
