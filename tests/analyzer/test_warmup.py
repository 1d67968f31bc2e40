"""A worker's warm-up: prepared indexes read into the file cache and opened before the first check,
nothing built, within the memory there is, only the worker's own workspace."""

from __future__ import annotations

import threading
import time

from analyzer_synth import make_library

from core.analyzer import Analyzer, store
from core.analyzer import index as index_module
from core.analyzer.index import clear_cache
from core.analyzer.warmup import prepared_indexes, warm_up
from core.jobs.worker import Worker
from core.libraries import LibraryManager
from core.score import native

PLENTY = 64 * 1024**3


def _prepared(name: str = "shots", workspace: str = "default", count: int = 6) -> LibraryManager:
    manager = LibraryManager(workspace=workspace)
    make_library(manager, name, count)
    Analyzer(manager).index(name)  # the default settings, as the checks use them
    return manager


def _counting_loads(monkeypatch) -> list[str]:
    """The patch sizes' searchers loaded from disk (not from the process's cache)."""
    loads: list[str] = []
    real = index_module.IndexManager._load_scale

    def load_scale(self, directory, stem, *args):
        loads.append(stem)
        return real(self, directory, stem, *args)

    monkeypatch.setattr(index_module.IndexManager, "_load_scale", load_scale)
    return loads


def test_a_warm_up_reads_the_search_files_and_opens_the_index_so_the_check_finds_it_open(monkeypatch) -> None:
    manager = _prepared()
    clear_cache()  # as in a worker that has just started
    (prepared,) = prepared_indexes()
    assert (prepared.workspace, prepared.library) == ("default", "shots")
    names = {path.relative_to(prepared.directory).as_posix() for path in prepared.files}
    assert names and all(n.startswith(("trained/", "lists/")) or n.endswith((".vec.npy", ".rows.npy")) for n in names)
    assert any(n.endswith(".vec.npy") for n in names)
    assert prepared.bytes_to_read == sum(path.stat().st_size for path in prepared.files)

    loads = _counting_loads(monkeypatch)
    report = warm_up(memory=PLENTY)
    assert report.read == ["default/shots"] and report.opened == ["default/shots"] and report.skipped == []
    assert report.bytes_read == prepared.bytes_to_read
    opened = len(loads)
    assert opened > 0
    index, _ = Analyzer(manager).index("shots")  # what a check does first: the index is already open
    assert len(loads) == opened and index.library == "shots"


def test_a_warm_up_skips_what_does_not_fit_in_memory_and_stops_when_asked(monkeypatch) -> None:
    _prepared()
    clear_cache()
    loads = _counting_loads(monkeypatch)
    (prepared,) = prepared_indexes()
    small = warm_up(memory=prepared.bytes_to_read)  # three quarters of it may be filled: not enough
    assert small.skipped == ["default/shots"] and small.read == [] and small.bytes_read == 0 and loads == []
    stopped = threading.Event()
    stopped.set()
    assert warm_up(stopped, memory=PLENTY).bytes_read == 0 and loads == []


def test_a_warm_up_builds_nothing_and_leaves_a_damaged_index_to_the_check(monkeypatch) -> None:
    manager = LibraryManager()
    make_library(manager, "fresh", 4)  # never prepared
    assert prepared_indexes() == [] and warm_up(memory=PLENTY).read == []
    _prepared("shots")
    clear_cache()
    (prepared,) = prepared_indexes()
    rows = next(path for path in prepared.files if path.name.endswith(".rows.npy"))
    rows.write_bytes(rows.read_bytes()[:-8])  # damaged: shorter than the manifest says
    before = sorted(p.relative_to(prepared.directory) for p in prepared.directory.rglob("*"))
    report = warm_up(memory=PLENTY)
    assert report.read == ["default/shots"] and report.opened == []  # read, but not opened
    assert sorted(p.relative_to(prepared.directory) for p in prepared.directory.rglob("*")) == before
    assert list(store.indexes_root().glob("fresh/*")) == []  # nothing was built for the unprepared library


def test_a_workspace_worker_warms_its_own_libraries_only() -> None:
    _prepared("ours", workspace="team-a", count=4)
    _prepared("theirs", workspace="team-b", count=4)
    everything = {(p.workspace, p.library) for p in prepared_indexes()}
    assert everything == {("team-a", "ours"), ("team-b", "theirs")}
    assert [(p.workspace, p.library) for p in prepared_indexes("team-a")] == [("team-a", "ours")]
    clear_cache()
    report = warm_up(workspace="team-b", memory=PLENTY)
    assert report.read == ["team-b/theirs"] and report.opened == ["team-b/theirs"]


def test_the_newest_prepared_index_comes_first() -> None:
    _prepared("alpha", count=4)
    time.sleep(0.05)
    _prepared("zulu", count=4)
    assert [p.library for p in prepared_indexes()] == ["zulu", "alpha"]


def test_a_worker_started_with_warm_up_opens_the_indexes_while_it_waits_for_jobs(monkeypatch) -> None:
    _prepared()
    clear_cache()
    loads = _counting_loads(monkeypatch)
    worker = Worker(idle_exit_s=0.2, poll_s=0.05, warm_up=True)
    worker.run()
    assert worker.warm_up_thread is not None
    worker.warm_up_thread.join(timeout=60)
    assert not worker.warm_up_thread.is_alive() and loads
    plain = Worker(idle_exit_s=0.1, poll_s=0.05)
    plain.run()
    assert plain.warm_up_thread is None


def test_a_warm_up_compiles_the_native_kernel_first(tmp_path, monkeypatch) -> None:
    """On a fresh install the kernel (2-3 s to compile) is made while the worker waits, not by the first check."""
    monkeypatch.setenv(native.NATIVE_ENV, "1")
    monkeypatch.setenv(native.CACHE_ENV, str(tmp_path / "kernels"))
    native.reset()
    try:
        report = warm_up(memory=PLENTY)  # no library prepared: only the kernel
        assert report.kernel and report.read == []
        assert list((tmp_path / "kernels").glob("fold-*.so"))
    finally:
        native.reset()
