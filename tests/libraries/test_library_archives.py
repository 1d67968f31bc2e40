"""Archives on this computer imported from their path (``sources.path_entries``): tar archives, plain or
compressed, read as one stream; zips with more files than an upload may hold. Unsafe members are skipped with
the reason, progress without a known total still moves."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from core.cli import main
from core.errors import BadInputError
from core.jobs import JobQueue
from core.libraries import LibraryManager, sources
from core.libraries.jobs import _progress
from core.libraries.progress import RateMeter
from tests.libraries.recording import RecordingContext


def _png(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((10, 10, 3), (i * 23) % 256, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tar.xz", "w:xz")])
def test_a_tar_of_one_folder_imports_with_its_subfolders_as_groups(tmp_path, suffix, mode):
    path = tmp_path / f"catalogue{suffix}"
    with tarfile.open(path, mode) as archive:
        folder = tarfile.TarInfo("catalogue")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for i in range(3):
            _add(archive, f"catalogue/shoes/s{i}.png", _png(i))
            _add(archive, f"catalogue/bags/b{i}.png", _png(10 + i))
        _add(archive, "catalogue/.DS_Store", b"x")
        _add(archive, "catalogue/notes.txt", b"not a picture")
    seen: list[tuple[int, int]] = []
    report = LibraryManager().add_paths("catalogue", [path], progress=lambda d, e: seen.append((d, e)))
    assert report.added == 6
    assert [name for name, _ in report.skipped] == ["catalogue/notes.txt"]
    info = LibraryManager().get("catalogue")
    assert sorted(info.label_names) == ["bags", "shoes"]
    if suffix == ".tar":
        assert seen[-1] == (7, 7)  # a plain tar is counted first (its headers only)
    else:
        assert seen[-1] == (7, 0)  # a compressed one says how many only once unpacked: no total


def test_unsafe_and_special_tar_members_are_skipped_with_the_reason(tmp_path, capsys):
    path = tmp_path / "tricky.tgz"
    with tarfile.open(path, "w:gz") as archive:
        _add(archive, "good.png", _png(1))
        _add(archive, "../evil.png", _png(2))
        _add(archive, "/etc/evil2.png", _png(3))
        link = tarfile.TarInfo("link.png")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        _add(archive, "inner.zip", b"PK")
    report = LibraryManager().add_paths("tricky", [path])
    assert report.added == 1
    reasons = dict(report.skipped)
    assert reasons["evil.png"] == sources.OUTSIDE_ARCHIVE and reasons["etc/evil2.png"] == sources.OUTSIDE_ARCHIVE
    assert "links and special files" in reasons["link.png"] and "archives inside" in reasons["inner.zip"]
    assert not list(tmp_path.parent.rglob("evil*.png"))
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(BadInputError, match="broken.tar.gz could not be read to its end"):
        LibraryManager().add_paths("broken", [broken])
    (tmp_path / "fake.tar").write_bytes(b"hello")
    assert main(["libraries", "add", "fake", str(tmp_path / "fake.tar")]) == 2
    assert "not a readable tar archive" in capsys.readouterr().err


def test_a_zip_on_this_computer_may_hold_more_files_than_an_upload(tmp_path, monkeypatch, make_zip):
    monkeypatch.setattr(sources, "MAX_IMPORT_FILES", 4)
    monkeypatch.setattr(sources, "MAX_IMPORT_BYTES", 100)
    data = make_zip({f"p{i}.png": _png(i) for i in range(9)})
    with pytest.raises(BadInputError, match="9 files; at most 4"):
        LibraryManager().create_from_zip("uploaded", data)
    path = tmp_path / "many.zip"
    path.write_bytes(data)
    assert LibraryManager().add_paths("many", [path]).added == 9


def test_progress_without_a_known_total_gives_the_count_and_still_moves_the_bar():
    clock = [0.0]
    meter = RateMeter("picture", clock=lambda: clock[0])
    assert meter.update(1, 0) == "1 picture so far"
    clock[0] = 10.0
    assert meter.update(500, 0) == "500 pictures so far · 50 a second"

    queue = JobQueue()
    job = queue.submit("library-import", {"library": "x", "folder": "/nowhere"}, owner="ann")
    context = RecordingContext(queue, queue.get(job.id))
    report = _progress(context, 0.05, "Reading", "picture")
    for done in (10, 1_000, 100_000):
        report(done, 0)
    fractions = [f for f, _ in context.reports]
    assert fractions == sorted(fractions) and 0.05 < fractions[0] < fractions[-1] < 0.95
    assert context.reports[-1][1] == "Reading: 100,000 pictures so far"


def test_tar_suffixes_are_recognised():
    assert all(sources.is_tar(name) for name in ("a.tar", "a.TGZ", "a.tar.gz", "a.tar.bz2", "a.tar.xz"))
    assert not sources.is_tar("a.zip") and not sources.is_tar(os.path.join("x", "a.gz"))
