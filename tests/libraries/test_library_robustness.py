"""Issue 13, items 7, 8 and 11: imports that fail or are killed leave nothing behind, built-in libraries
are made safely by concurrent processes, and devices, pipes and huge files are refused before reading.

The checks that involve memory, hangs, kills or several processes run the real CLI in subprocesses.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.cli import main
from core.errors import BadInputError
from core.libraries import LibraryManager

REPO = Path(__file__).resolve().parents[2]
GiB = 1024**3
#: Peak resident memory a CLI child may reach for inputs that must be refused without being read.
#: Importing the studio (torch, numpy, Pillow) costs about 250 MB; reading a 1 GiB file would cost 1 GiB more.
PEAK_RSS_LIMIT_KB = 700 * 1024

_CHILD = (
    "import resource, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))\n"
    "from core.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    # VmHWM: this program's own peak (ru_maxrss would also count the test process it was forked from)
    "peak = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
    "print(f'PEAK_RSS_KB={peak}', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def _env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    env.pop("MOSAIC_DATABASE_URL", None)
    return env


def run_cli(data_dir: Path, *args: str, timeout: float = 120) -> tuple[int, str, int]:
    """Run ``python -m core ARGS`` in a child limited to 2 GiB of address space: (exit code, stderr, peak RSS KB)."""
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        cwd=REPO,
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    peak = 0
    for line in result.stderr.splitlines():
        if line.startswith("PEAK_RSS_KB="):
            peak = int(line.split("=", 1)[1])
    return result.returncode, result.stderr, peak


def snapshot(root: Path) -> list[str]:
    """Every path under the libraries folder except the lock files (which stay, by design)."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.relative_to(root).parts[0] != ".locks")


def _png_bytes(color=(200, 30, 30), size=(12, 10)) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _picture_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"p{index:04d}.png").write_bytes(_png_bytes((index % 256, (index * 7) % 256, 90)))
    return folder


@pytest.fixture
def libraries_root(data_dir: Path) -> Path:
    return data_dir / "libraries"


# -- item 7: failed imports leave no empty library ---------------------------------------------------


def _bad_inputs(tmp_path: Path, make_zip) -> dict[str, list[str]]:
    bad_file = tmp_path / "bad.png"
    bad_file.write_bytes(b"not a picture")
    too_many = tmp_path / "many.zip"
    too_many.write_bytes(make_zip({f"f{i}.png": b"x" for i in range(5_001)}))
    not_zip = tmp_path / "broken.zip"
    not_zip.write_bytes(b"PK\x03\x04 not really")
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "a.png").write_bytes(b"nope")
    (only_bad / "b.jpg").write_bytes(b"")
    return {
        "bad file": [str(bad_file)],
        "missing path": [str(tmp_path / "nowhere.png")],
        "too many files": [str(too_many)],
        "not a zip": [str(not_zip)],
        "nothing usable": [str(only_bad)],
        "good then missing": [str(_picture_folder(tmp_path / "good", 2)), str(tmp_path / "nowhere")],
    }


def test_failed_cli_add_under_a_new_name_leaves_no_library(tmp_path, make_zip, libraries_root, capsys) -> None:
    cases = _bad_inputs(tmp_path, make_zip)
    before = snapshot(libraries_root)
    for case, paths in cases.items():
        assert main(["libraries", "add", "fresh", *paths]) == 2, case
        err = capsys.readouterr().err  # the error on a line of its own, after the import's progress line
        assert err.rstrip("\n").split("\n")[-1].startswith("error: ") and "Traceback" not in err, case
        assert "fresh" not in [info.name for info in LibraryManager().list()], case
        assert snapshot(libraries_root) == before, case


def test_failed_cli_add_keeps_an_existing_library_as_it_was(tmp_path, make_zip, libraries_root, capsys) -> None:
    assert main(["libraries", "add", "kept", str(_picture_folder(tmp_path / "first", 3))]) == 0
    items = LibraryManager().items("kept")
    before = snapshot(libraries_root)
    for case, paths in _bad_inputs(tmp_path, make_zip).items():
        assert main(["libraries", "add", "kept", *paths]) == 2, case
        assert LibraryManager().items("kept") == items, case
        assert snapshot(libraries_root) == before, case
    capsys.readouterr()


def test_zip_bomb_refused_under_a_new_name_leaves_no_library(
    tmp_path, make_zip, libraries_root, monkeypatch, capsys
) -> None:
    from core.libraries import sources

    # an uploaded zip is refused whole above MAX_IMPORT_BYTES unpacked
    monkeypatch.setattr(sources, "MAX_IMPORT_BYTES", 1_000)
    small_bomb = make_zip({"a.png": b"\0" * 600, "b.png": b"\0" * 600})
    with pytest.raises(BadInputError, match="unpacks to"):
        LibraryManager().create_from_zip("bomb", small_bomb)
    # a zip on this computer has no limit on its total size, but its bombs are still skipped unread
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.png", b"\0" * (sources.COMPRESSION_CHECK_BYTES + 1))
        archive.writestr("b.png", b"\0" * (sources.COMPRESSION_CHECK_BYTES + 1))
    assert main(["libraries", "add", "bomb", str(bomb)]) == 2
    assert "like a zip bomb; it was not unpacked" in capsys.readouterr().err
    assert snapshot(libraries_root) == []


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def _kept(root: Path) -> list[Path]:
    """The folders of stopped imports, kept to go on later (``core.libraries.journal``)."""
    return sorted(root.glob(".resumable-*")) if root.exists() else []


def _visible(root: Path) -> list[str]:
    return [path for path in snapshot(root) if not path.startswith(".resumable-")]


def _made_aside(root: Path) -> int:
    """Pictures a running import has written aside and recorded in its journal."""
    try:
        return max((len(_journal_ids(kept)) for kept in _kept(root)), default=0)
    except (OSError, ValueError):
        return 0


def _kill_import_midway(data_dir: Path, libraries_root: Path, name: str, folder: Path, started: int = 40) -> None:
    """Start ``libraries add`` in a child process and kill it once ``started`` pictures are in its journal."""
    child = subprocess.Popen(
        [sys.executable, "-m", "core", "libraries", "add", name, str(folder)],
        cwd=REPO, env=_env(data_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for(lambda: _made_aside(libraries_root) >= started, timeout=120), "the import never started"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


def _journal_ids(kept: Path) -> list[str]:
    lines = (kept / "journal.jsonl").read_text().splitlines()
    return [json.loads(line)["made"]["id"] for line in lines if line.strip().endswith("}") and '"made"' in line]


@pytest.mark.timeout(300)
def test_killed_import_into_an_existing_library_leaves_it_as_it_was_and_goes_on(
    tmp_path, data_dir, libraries_root
) -> None:
    manager = LibraryManager()
    manager.create_from_files("brand", [("a.png", _png_bytes()), ("b.png", _png_bytes((0, 0, 0)))])
    items = manager.items("brand")
    before = snapshot(libraries_root)
    folder = _picture_folder(tmp_path / "many", 400)
    _kill_import_midway(data_dir, libraries_root, "brand", folder)

    infos = {info.name: info for info in LibraryManager().list()}  # the library never saw the stopped import
    assert infos["brand"].count == 2
    assert LibraryManager().items("brand") == items
    assert _visible(libraries_root) == before
    [kept] = _kept(libraries_root)
    finished = _journal_ids(kept)
    assert len(finished) >= 20  # pictures it had made, kept aside

    seen: list[tuple[int, int]] = []
    report = LibraryManager().add_paths("brand", [folder], progress=lambda d, e: seen.append((d, e)))
    assert report.added == 400 and report.skipped == []
    assert any("Went on from an import that had stopped" in notice for notice in report.notices)
    ids = [item["id"] for item in LibraryManager().items("brand")]
    assert ids[:2] == [item["id"] for item in items] and len(ids) == 402
    assert ids[2 : 2 + len(finished)] == finished  # taken over, not read again
    assert seen[0][0] >= len(finished) and seen[-1] == (400, 400)
    assert _kept(libraries_root) == []
    assert LibraryManager().load("brand", 8).images.shape[0] == 402

    report = LibraryManager().add_folder("brand", _picture_folder(tmp_path / "few", 3))
    assert report.added == 3
    assert LibraryManager().load("brand", 8).images.shape[0] == 405


@pytest.mark.timeout(300)
def test_killed_import_under_a_new_name_makes_no_library_until_it_is_run_again(
    tmp_path, data_dir, libraries_root
) -> None:
    folder = _picture_folder(tmp_path / "many", 400)
    _kill_import_midway(data_dir, libraries_root, "brand-new", folder)

    assert "brand-new" not in [info.name for info in LibraryManager().list()]
    assert _visible(libraries_root) == []
    [kept] = _kept(libraries_root)
    finished = _journal_ids(kept)
    # the source changed before the point reached: the journal no longer fits, the import starts again
    (folder / "p0000.png").rename(folder / "p9999.png")
    report = LibraryManager().add_paths("brand-new", [folder])
    assert report.added == 400 and not any("Went on" in notice for notice in report.notices)
    ids = {item["id"] for item in LibraryManager().items("brand-new")}
    assert not ids & set(finished)
    assert _kept(libraries_root) == []
    # a stopped import can also be dropped: delete removes what was kept for it
    _kill_import_midway(data_dir, libraries_root, "brand-new", _picture_folder(tmp_path / "more", 400))
    assert len(_kept(libraries_root)) == 1
    LibraryManager().delete("brand-new")
    assert _kept(libraries_root) == [] and _visible(libraries_root) == []


def test_a_library_folder_without_manifest_is_removed(libraries_root) -> None:
    orphan = libraries_root / "half-made"
    (orphan / "images").mkdir(parents=True)
    (orphan / "images" / "abc.png").write_bytes(_png_bytes())
    (orphan / "thumbs").mkdir()
    assert "half-made" not in [info.name for info in LibraryManager().list()]
    assert not orphan.exists()
    report = LibraryManager().create_from_files("half-made", [("a.png", _png_bytes())])
    assert report.added == 1


# -- item 8: built-in libraries and imports across processes ------------------------------------------

_LOAD_DIGITS = """
import hashlib, json, sys, time
from pathlib import Path
from core.libraries import BUILTIN_LIBRARIES, LibraryManager

spec = BUILTIN_LIBRARIES["digits"]
real_build = spec.build

def slow_build():
    time.sleep(0.5)  # make sure every process is building at the same time
    yield from real_build()

spec.build = slow_build
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
batch = LibraryManager().load("digits", 16)
print(json.dumps({
    "ids": hashlib.sha256("".join(batch.item_ids).encode()).hexdigest(),
    "pixels": hashlib.sha256(batch.images.numpy().tobytes()).hexdigest(),
    "count": len(batch.item_ids),
}))
"""


@pytest.mark.timeout(600)
def test_four_processes_make_a_builtin_library_once(tmp_path, data_dir, libraries_root) -> None:
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _LOAD_DIGITS, str(go)],
            cwd=REPO, env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    time.sleep(3)  # let them import the studio
    go.touch()
    results = []
    for child in children:
        out, err = child.communicate(timeout=500)
        assert child.returncode == 0, err
        results.append(json.loads(out))
    assert results[0]["count"] > 1000
    assert all(result == results[0] for result in results)
    hidden = [p.name for p in libraries_root.iterdir() if p.name.startswith(".") and p.name != ".locks"]
    assert hidden == []
    assert len(list((libraries_root / "digits" / "cache").glob("*.npy"))) == 1


def test_an_import_in_another_process_waits_for_the_library_lock(tmp_path, data_dir) -> None:
    manager = LibraryManager()
    manager.create_from_files("shared", [("a.png", _png_bytes())])
    picture = tmp_path / "b.png"
    picture.write_bytes(_png_bytes((0, 90, 0)))
    with manager.locked("shared"):
        child = subprocess.Popen(
            [sys.executable, "-m", "core", "libraries", "add", "shared", str(picture)],
            cwd=REPO, env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=8)  # enough to import the studio and reach the lock
        assert manager.get("shared").count == 1
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert manager.get("shared").count == 2


def test_a_killed_cache_write_is_cleaned_on_the_next_load(manager, libraries_root) -> None:
    manager.create_from_files("cached", [("a.png", _png_bytes())])
    cache = libraries_root / "cached" / "cache"
    cache.mkdir()
    (cache / ".cache.k1ll3d.npy.tmp").write_bytes(b"\x93NUMPY half of a big array")
    (cache / ".cache.k1ll3d.ids.tmp").write_text("abc\n")
    assert manager.load("cached", 8).images.shape == (1, 3, 8, 8)
    made = next(cache.glob("8px-3ch-*.npy"))
    assert sorted(p.name for p in cache.iterdir()) == sorted([made.name, made.with_suffix(".ids").name])


def test_tensor_cache_is_written_atomically(tmp_path) -> None:
    import numpy as np

    from core.libraries.tensors import TensorCache

    cache = TensorCache(tmp_path / "cache")
    first = np.zeros((2, 1, 4, 4), dtype=np.uint8)
    written = cache.fill(iter(first), 2, 4, 1, "rev")
    assert isinstance(written, np.memmap) and np.array_equal(written, first)

    def disk_fills_up():
        yield np.ones((1, 4, 4), dtype=np.uint8)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.fill(disk_fills_up(), 2, 4, 1, "rev")
    with pytest.raises(ValueError, match="expected 2 pictures"):  # a library that changed under the reader
        cache.fill(iter(first[:1]), 2, 4, 1, "rev")
    assert np.array_equal(cache.get(4, 1, "rev", 2), first)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["4px-1ch-rev.npy"]


# -- item 11: devices, pipes and huge files ----------------------------------------------------------


@pytest.mark.timeout(300)
def test_dev_zero_is_refused_without_reading(data_dir, libraries_root) -> None:
    code, err, peak = run_cli(data_dir, "libraries", "add", "zero", "/dev/zero", timeout=120)
    assert code == 2, err
    assert "not a regular file" in err and "Traceback" not in err
    assert 0 < peak < PEAK_RSS_LIMIT_KB
    assert snapshot(libraries_root) == []


@pytest.mark.timeout(300)
def test_link_to_a_device_and_a_zip_named_device_are_refused(tmp_path, data_dir, libraries_root) -> None:
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "zero.zip").symlink_to("/dev/zero")
    for name in ("zero.png", "zero.zip"):
        code, err, peak = run_cli(data_dir, "libraries", "add", "zero", str(tmp_path / name), timeout=120)
        assert code == 2, err
        assert "not a regular file" in err and "Traceback" not in err
        assert 0 < peak < PEAK_RSS_LIMIT_KB
    assert snapshot(libraries_root) == []


@pytest.mark.timeout(300)
def test_sparse_gigabyte_files_are_refused_without_reading(tmp_path, data_dir, libraries_root) -> None:
    for name in ("huge.png", "huge.zip"):
        with open(tmp_path / name, "wb") as handle:
            handle.truncate(GiB)
    code, err, peak = run_cli(data_dir, "libraries", "add", "huge", str(tmp_path / "huge.png"), timeout=120)
    assert code == 2, err
    assert "too large" in err and "Traceback" not in err
    assert 0 < peak < PEAK_RSS_LIMIT_KB
    code, err, peak = run_cli(data_dir, "libraries", "add", "huge", str(tmp_path / "huge.zip"), timeout=120)
    assert code == 2, err
    assert "Traceback" not in err
    assert 0 < peak < PEAK_RSS_LIMIT_KB
    assert snapshot(libraries_root) == []


@pytest.mark.timeout(300)
def test_a_fifo_is_refused_without_hanging(tmp_path, data_dir, libraries_root) -> None:
    for name in ("pipe.png", "pipe.zip"):
        os.mkfifo(tmp_path / name)
        code, err, _ = run_cli(data_dir, "libraries", "add", "pipe", str(tmp_path / name), timeout=60)
        assert code == 2, err
        assert "not a regular file" in err and "Traceback" not in err
    assert snapshot(libraries_root) == []


@pytest.mark.timeout(120)
def test_folder_with_fifo_socket_and_device_link_skips_them(tmp_path, manager) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.png").write_bytes(_png_bytes())
    os.mkfifo(folder / "pipe.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "sock.png"))
    try:
        report = manager.create_from_folder("mixed", folder)
    finally:
        server.close()
    assert report.added == 1
    reasons = dict(report.skipped)
    assert "not a regular file" in reasons["pipe.png"]
    assert "not a regular file" in reasons["sock.png"]
    assert "links are not followed" in reasons["zero.png"]


def test_sparse_file_inside_a_folder_is_skipped_unread(tmp_path, manager) -> None:
    folder = tmp_path / "sparse"
    folder.mkdir()
    (folder / "good.png").write_bytes(_png_bytes())
    with open(folder / "huge.png", "wb") as handle:
        handle.truncate(200 * 1024**2)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = manager.create_from_folder("sparse", folder)
    assert report.added == 1 and "too large" in dict(report.skipped)["huge.png"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 150 * 1024


def _lying_zip(path: Path, real_size: int, declared: int) -> None:
    """A zip whose single entry claims to unpack to ``declared`` bytes but really holds ``real_size`` zeros."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("big.png", "w") as entry:  # written in chunks: the test itself stays small
            for _ in range(real_size // 2**20):
                entry.write(bytes(2**20))
    data = bytearray(path.read_bytes())
    true_size = real_size.to_bytes(4, "little")
    fake_size = declared.to_bytes(4, "little")
    # local header: uncompressed size at offset 22; central directory entry: at offset 24
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    assert data[local + 22 : local + 26] == true_size and data[central + 24 : central + 28] == true_size
    data[local + 22 : local + 26] = fake_size
    data[central + 24 : central + 28] = fake_size
    path.write_bytes(bytes(data))


def test_zip_entry_that_lies_about_its_size_is_not_unpacked_past_the_claim(tmp_path, manager) -> None:
    bomb = tmp_path / "liar.zip"
    _lying_zip(bomb, 300 * 1024**2, declared=1_000)
    good = tmp_path / "good.png"
    good.write_bytes(_png_bytes())
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadInputError, match="big.png"):
        manager.create_from_zip("liar", bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 150 * 1024
    assert "liar" not in [info.name for info in manager.list()]


def test_zip_entry_compressed_like_a_bomb_is_skipped_unread(tmp_path, manager) -> None:
    bomb = tmp_path / "ratio.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.png", b"\0" * (20 * 1024**2))  # about 1,000 to 1
        archive.writestr("good.png", _png_bytes())
    report = manager.create_from_zip("ratio", bomb)
    assert report.added == 1
    assert "zip bomb" in dict(report.skipped)["zeros.png"]


_LOAD_IMAGE_FILES = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
from core.images import UnreadableImageError, load_image_file
for path in sys.argv[1:]:
    try:
        load_image_file(path)
        print("loaded", path)
    except UnreadableImageError as exc:
        print("refused", exc)
"""


@pytest.mark.timeout(120)
def test_image_files_for_analyze_and_generate_are_checked_before_reading(tmp_path, data_dir) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    with open(tmp_path / "huge.png", "wb") as handle:
        handle.truncate(GiB)
    paths = [str(tmp_path / "pipe.png"), "/dev/zero", str(tmp_path / "huge.png")]
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_IMAGE_FILES, *paths],
        cwd=REPO, env=_env(data_dir), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused pipe.png: not a regular file")
    assert lines[1].startswith("refused zero: not a regular file")
    assert lines[2].startswith("refused huge.png: the file is too large")


def test_cleanup_never_removes_the_work_of_the_thread_holding_the_lock(tmp_path, manager, libraries_root) -> None:
    staging = libraries_root / ".creating-mine-0123abcd"
    (staging / "images").mkdir(parents=True)
    with manager.locked("mine"):
        manager.list()  # e.g. an error message listing the libraries, in the middle of an import
        assert staging.exists()
    manager.list()
    assert not staging.exists()


def _zip_listing(path: Path, count: int) -> None:
    """A small zip whose list of files (central directory) names ``a.png`` ``count`` times."""
    import struct
    import zlib

    data = _png_bytes()
    name = b"a.png"
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0)
    central = struct.pack(
        "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data), len(name), 0, 0, 0, 0, 0, 0
    )
    head = local + name + data
    listing = (central + name) * count
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(listing), len(head), 0)
    path.write_bytes(head + listing + end)


def test_zip_listing_millions_of_files_is_refused_before_it_is_read(tmp_path, manager, libraries_root) -> None:
    small = tmp_path / "one.zip"
    _zip_listing(small, 1)
    assert manager.create_from_zip("listing", small).added == 1  # the hand-made zip is a valid one
    manager.delete("listing")
    bomb = tmp_path / "listing.zip"
    _zip_listing(bomb, 1_500_000)  # 75 MB listing 1.5 million entries
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(BadInputError, match="5,000"):
        manager.create_from_zip("listing", bomb)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024
    assert snapshot(libraries_root) == []


def test_removal_interrupted_before_its_files_are_gone_is_finished_later(manager, libraries_root, monkeypatch) -> None:
    from core.libraries.storage import LibraryStorage

    manager.create_from_files("trim", [("a.png", _png_bytes()), ("b.png", _png_bytes((0, 0, 0)))])
    first, second = manager.items("trim")

    def killed(self, item):
        raise KeyboardInterrupt  # stands for a kill between the manifest write and the file removal

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(LibraryStorage, "delete_item_files", killed)
        manager.remove_items("trim", [first["id"]])
    assert Path(first["path"]).exists()  # left behind by the interruption
    assert [info.count for info in LibraryManager().list() if info.name == "trim"] == [1]
    assert not Path(first["path"]).exists()
    assert sorted(p.name for p in (libraries_root / "trim" / "images").iterdir()) == [f"{second['id']}.png"]
    assert sorted(p.name for p in (libraries_root / "trim" / "thumbs").iterdir()) == [f"{second['id']}.png"]
