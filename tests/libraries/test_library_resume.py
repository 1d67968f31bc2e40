"""Imports from paths of any size that go on where they stopped (``core.libraries.journal``): no cap on the
number of files of a folder, a stopped import kept aside (the library unchanged until it finishes), the same
import again goes on without reading the finished files, ``--restart`` starts afresh, a nearly full disk stops it
with a message. (A killed process: ``test_library_robustness.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.errors import BadInputError, ResourceError
from core.libraries import LibraryManager, sources
from core.libraries import manager as manager_module


def _folder(root, count: int, first: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        Image.fromarray(np.full((12, 12, 3), (i * 9) % 256, dtype=np.uint8)).save(root / f"p{i:03d}.png")
    return root


def _kept(manager: LibraryManager):
    return sorted(manager.root.glob(".resumable-*"))


class Stop(Exception):
    pass


def _stop_after(count: int):
    def progress(done: int, expected: int) -> None:
        if done >= count:
            raise Stop(f"stopped after {done}")

    return progress


def test_folders_have_no_cap_on_their_number_of_files_but_uploads_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_IMPORT_FILES", 5)
    manager = LibraryManager()
    report = manager.add_paths("big", [_folder(tmp_path / "big", 12)])
    assert report.added == 12 and sources.count_files(tmp_path / "big") == 12
    files = [(f"p{i}.png", (tmp_path / "big" / f"p{i:03d}.png").read_bytes()) for i in range(6)]
    with pytest.raises(BadInputError, match="at most 5 can be imported at once"):
        manager.create_from_files("uploaded", files)


def test_a_stopped_import_changes_nothing_and_the_same_import_goes_on(tmp_path):
    manager = LibraryManager()
    manager.add_paths("shop", [_folder(tmp_path / "first", 3)])
    before = manager.items("shop")
    folder = _folder(tmp_path / "pictures", 30)
    with pytest.raises(Stop):
        manager.add_paths("shop", [folder], progress=_stop_after(11))
    assert manager.items("shop") == before  # nothing of the stopped import is in the library yet
    assert len(_kept(manager)) == 1
    with pytest.raises(Stop):  # stopped again, further on: still one kept import
        manager.add_paths("shop", [folder], progress=_stop_after(20))
    assert len(_kept(manager)) == 1 and manager.items("shop") == before
    read: list[str] = []
    original = sources._folder_candidate

    def counting(parts, path, size):
        read.append(path.name)
        return original(parts, path, size)

    sources._folder_candidate = counting
    try:
        report = manager.add_paths("shop", [folder])
    finally:
        sources._folder_candidate = original
    assert report.added == 30
    assert read == [f"p{i:03d}.png" for i in range(20, 30)]  # the first 20 were not read again
    assert [n for n in report.notices if n.startswith("Went on")] == [
        "Went on from an import that had stopped: 20 files had already been read."
    ]
    items = manager.items("shop")
    assert len(items) == 33 and items[:3] == before
    assert [item["source"] for item in items[3:]] == [f"p{i:03d}.png" for i in range(30)]
    assert _kept(manager) == []


def test_restart_starts_afresh_and_other_sources_are_other_imports(tmp_path, capsys):
    manager = LibraryManager()
    folder = _folder(tmp_path / "pictures", 10)
    with pytest.raises(Stop):
        manager.add_paths("fresh", [folder], progress=_stop_after(4))
    other = _folder(tmp_path / "other", 5, first=50)
    with pytest.raises(Stop):
        manager.add_paths("fresh", [other], progress=_stop_after(2))
    assert len(_kept(manager)) == 2  # one per source: neither takes the other's pictures
    assert "fresh" not in [info.name for info in manager.list()]
    assert main(["libraries", "add", "fresh", str(folder), "--restart", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"added": 10' in out and "Went on" not in out
    assert len(_kept(manager)) == 1
    report = manager.add_paths("fresh", [other])
    assert report.added == 5 and any("2 files had already been read" in n for n in report.notices)
    assert _kept(manager) == [] and manager.get("fresh").count == 15


def test_a_nearly_full_disk_stops_the_import_with_a_message_and_it_goes_on_later(tmp_path, monkeypatch):
    manager = LibraryManager()
    folder = _folder(tmp_path / "pictures", 150)
    monkeypatch.setattr(manager_module, "MIN_FREE_BYTES", 2**62)
    with pytest.raises(ResourceError, match="nearly full .* it goes on where it stopped"):
        manager.add_paths("disk", [folder])
    assert "disk" not in [info.name for info in manager.list()] and len(_kept(manager)) == 1
    monkeypatch.setattr(manager_module, "MIN_FREE_BYTES", 0)
    report = manager.add_paths("disk", [folder])
    assert report.added == 150 and any(f"{manager_module.DISK_CHECK_EVERY - 1} files" in n for n in report.notices)


def test_a_cancelled_folder_import_job_goes_on_when_the_folder_is_imported_again(isolated_data_dir):
    from core.engines.base import GenerationCancelled
    from core.jobs import JobQueue
    from core.jobs.context import JobContext
    from core.jobs.worker import _cancel_message
    from core.libraries.jobs import import_params, run_import_job

    class CancelAt(JobContext):
        def __init__(self, *args, at: int, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.at = at

        def progress(self, fraction: float, message: str = "", preview=None) -> None:
            super().progress(fraction, message, preview)
            if message.startswith(f"Reading: {self.at} of"):
                self.cancel.cancel()  # as the page's Cancel button does, through the queue

    folder = _folder(isolated_data_dir / "pictures", 16)  # inside the data folder: the page may read it
    queue = JobQueue()
    params = import_params("spring", "Spring", None, str(folder))
    first = queue.submit("library-import", params, owner="ann")
    cancelled = CancelAt(queue, queue.get(first.id), at=6)
    with pytest.raises(GenerationCancelled):
        run_import_job(cancelled)
    assert _cancel_message(cancelled).startswith("Cancelled. The pictures read so far are kept: import the same")
    manager = LibraryManager()
    assert "spring" not in [info.name for info in manager.list()] and len(_kept(manager)) == 1
    second = queue.submit("library-import", params, owner="ann")
    context = JobContext(queue, queue.get(second.id))
    assert run_import_job(context) == "Added 16 pictures to “Spring”."
    assert any("6 files had already been read" in notice for notice in context.result["notices"])
    assert _kept(manager) == []


# -- stopped imports are listed, can go on from the page or the command line, or be dropped -------------


def test_a_stopped_import_is_listed_with_what_it_read_and_goes_on_or_is_dropped(tmp_path):
    import threading

    from core.libraries.jobs import resume_command, resume_params

    manager = LibraryManager()
    folder = _folder(tmp_path / "spring shoot", 20)
    with pytest.raises(Stop):
        manager.add_paths("spring", [folder], title="Spring shoot", progress=_stop_after(7))
    [stopped] = manager.stopped_imports()
    assert stopped.library == "spring" and stopped.title == "Spring shoot"
    assert stopped.pictures == stopped.tried and 7 <= stopped.pictures < 20
    assert stopped.sources == [str(folder.resolve())]
    # the page goes on with the same import (a folder job), the command line with the same command
    assert resume_params(stopped) == {
        "library": "spring", "title": "Spring shoot", "uploads": None, "folder": str(folder.resolve())
    }
    command = resume_command(stopped, workspace="agency")
    assert command == f"python -m core libraries add spring '{folder.resolve()}' --workspace agency"
    assert resume_command(stopped, workspace="default") == f"python -m core libraries add spring '{folder.resolve()}'"

    # an import running now holds the library's lock: it is not listed as stopped
    held, release = threading.Event(), threading.Event()

    def run() -> None:
        with LibraryManager().locked("spring"):
            held.set()
            release.wait(10)

    worker = threading.Thread(target=run)
    worker.start()
    held.wait(10)
    try:
        assert LibraryManager().stopped_imports() == []
    finally:
        release.set()
        worker.join()

    params = resume_params(stopped)  # what the import job does with them
    report = manager.add_paths(params["library"], [params["folder"]], title=params["title"])
    assert report.added == 20 and any("Went on" in notice for notice in report.notices)
    assert manager.stopped_imports() == []

    with pytest.raises(Stop):
        manager.add_paths("spring", [_folder(tmp_path / "summer", 10)], progress=_stop_after(3))
    [again] = manager.stopped_imports()
    assert again.title == "Spring shoot"  # an existing library is shown by its own title
    with pytest.raises(BadInputError, match="no longer kept"):
        manager.discard_stopped("spring", "0" * 16)
    assert manager.discard_stopped("spring", again.key) == 1
    assert manager.stopped_imports() == [] and _kept(manager) == [] and manager.get("spring").count == 20


def test_a_stopped_dataset_import_can_go_on_only_from_the_command_line(tmp_path, capsys):
    import json

    from datasets import Dataset, Features
    from datasets import Image as ImageFeature

    from core.libraries.datasource import DatasetOptions
    from core.libraries.jobs import resume_command, resume_params

    rows = []
    for i in range(12):
        buffer = tmp_path / f"r{i}.png"
        Image.fromarray(np.full((10, 10, 3), i * 20, dtype=np.uint8)).save(buffer)
        rows.append({"bytes": buffer.read_bytes(), "path": None})
    path = tmp_path / "rows.parquet"
    features = Features({"picture": ImageFeature(), "other": ImageFeature()})
    Dataset.from_dict({"picture": rows, "other": rows}, features=features).to_parquet(str(path))
    manager = LibraryManager()
    with pytest.raises(Stop):
        manager.add_paths(
            "rows", [path], dataset=DatasetOptions(image_column="picture"), progress=_stop_after(4)
        )
    [stopped] = manager.stopped_imports()
    assert resume_params(stopped) is None  # the page's folder field has no column choice
    assert resume_command(stopped) == f"python -m core libraries add rows {path.resolve()} --image-column picture"

    assert main(["libraries", "list"]) == 0
    assert "1 import stopped part way" in capsys.readouterr().out
    assert main(["libraries", "stopped", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["library"] == "rows" and listed["pictures"] >= 4 and "--image-column picture" in listed["go_on"]
    assert main(["libraries", "discard", "rows", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"library": "rows", "discarded": 1}
    assert main(["libraries", "stopped"]) == 0
    assert "No import stopped part way." in capsys.readouterr().out
    assert main(["libraries", "list"]) == 0
    assert "stopped part way" not in capsys.readouterr().out
