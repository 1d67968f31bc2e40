"""Turn uploads, zips and folders into import candidates, rejecting unsafe input early.

A candidate is one file to try: its display name, its label (from the sub-folder) and either its
bytes or the reason it is skipped. Nothing here writes to disk; the manager decodes and stores.

Rules:

* Labels come from the first sub-folder: ``shoes/a.png`` -> ``"shoes"``; root files have none.
  A zip whose every entry sits inside one wrapping folder (``export/shoes/a.png``) has it removed.
* Hidden and system files (``.DS_Store``, ``__MACOSX/``, ``Thumbs.db``, dot files) are ignored silently.
* Unsafe paths (absolute, drive letters, ``..``) are skipped with a reason.
* Archives inside a zip are not opened.
* Zips with too many entries or too large an uncompressed total are refused before extraction;
  entries compressed suspiciously well (zip bombs) are skipped unread, and every entry is unpacked in
  chunks, never past its declared size or ``MAX_FILE_BYTES``.
* Files are checked with ``stat`` before they are opened: devices, pipes and sockets are refused
  ("not a regular file"), files over ``MAX_FILE_BYTES`` are refused unread, and reads are bounded,
  so ``/dev/zero``, a FIFO or a sparse 1 GB file neither hangs nor fills the memory.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from core.errors import BadInputError
from core.images import (
    MAX_FILE_BYTES,
    NotUsableError,
    open_regular,
    read_bounded,
    read_regular,
    too_large_reason,
)
from core.libraries.names import clean_label

logger = logging.getLogger(__name__)

MAX_IMPORT_FILES = 5_000
MAX_IMPORT_BYTES = 1_000_000_000  # 1 GB uncompressed
#: A zip imported from its path on this computer may list this many entries (its list is read whole).
MAX_ARCHIVE_ENTRIES = 1_000_000
#: Zip entries larger than this that unpack to more than MAX_COMPRESSION_RATIO times their packed size
#: are skipped unread: pictures never compress that well, zip bombs do (plain deflate tops out near 1,030).
MAX_COMPRESSION_RATIO = 500
COMPRESSION_CHECK_BYTES = 10 * 1024 * 1024
#: Room per file in a zip's list of files (46 bytes of fixed fields, then the name and extras).
_DIRECTORY_BYTES_PER_FILE = 1024
_SYSTEM_NAMES = {"__macosx", "thumbs.db", "desktop.ini", "$recycle.bin", "system volume information"}
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class ImportCandidate:
    """One file of an import: bytes to decode, or the reason it is skipped."""

    name: str
    label: str | None = None
    data: bytes | None = None
    skip_reason: str | None = None


def _parts(raw_name: str) -> list[str]:
    return [part for part in raw_name.replace("\\", "/").split("/") if part not in ("", ".")]


def is_hidden(raw_name: str) -> bool:
    """True for dot files, macOS resource forks and Windows system files (ignored silently)."""
    return any(
        part.startswith(".") and part != ".." or part.lower() in _SYSTEM_NAMES for part in _parts(raw_name)
    )


def shown_name(raw_name: str) -> str:
    """The name of a file as a person reads it: folders kept, but no ``..``, drive letter or leading ``/``
    (``../../evil.png`` -> ``evil.png``), so an unsafe name is reported without its tricks."""
    parts = [part for part in _parts(raw_name) if part != ".." and not _DRIVE.fullmatch(part)]
    return "/".join(parts) or "(unnamed file)"


#: why a file whose path leads outside its upload or zip is skipped (its name is shown cleaned, see shown_name)
OUTSIDE_UPLOAD = "its name points outside the upload, so it was skipped for safety"
OUTSIDE_ZIP = "this file inside the zip points outside it and was skipped for safety"
OUTSIDE_ARCHIVE = "this file inside the archive points outside it and was skipped for safety"


def is_unsafe(raw_name: str) -> bool:
    """True for absolute paths, drive letters and ``..`` components (zip-slip)."""
    normalised = raw_name.replace("\\", "/")
    return normalised.startswith("/") or bool(_DRIVE.match(normalised)) or ".." in normalised.split("/")


def label_for(parts: list[str]) -> str | None:
    """The label of a file at ``parts`` (folders then file name): its first folder, if any."""
    if len(parts) < 2:
        return None
    return clean_label(parts[0]) or None


def check_path(path: Path) -> None:
    """Refuse, before anything is imported, a path that is missing or neither a folder nor a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file or folder.") from None
    except OSError as exc:
        raise BadInputError(f"{path}: it can't be opened ({exc.strerror or exc}).") from None
    if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
        raise BadInputError(
            f"{path} is not a regular file (it is a device, pipe or socket). "
            "Give picture files, a .zip or a folder."
        )


def from_path(path: Path) -> Iterator[ImportCandidate]:
    """Candidates from one path on this computer: a folder, a ``.zip`` or a single picture file."""
    path = Path(path).expanduser()
    check_path(path)
    if path.is_dir():
        yield from from_folder(path)
    elif path.suffix.lower() == ".zip":
        yield from from_zip(path)
    else:
        yield _file_candidate([path.name], path)


@dataclass
class Entry:
    """One file of an import from paths, named before it is read: ``load()`` reads and checks it (so a
    resumed import passes over the files it already has without reading them)."""

    name: str
    load: Callable[[], ImportCandidate]


def walk_folder(folder: Path) -> Iterator[tuple[list[str], Path]]:
    """The files of ``folder`` (relative parts, path) in a fixed order, sorted by name folder by folder,
    hidden ones left out; lazily and without a cap on their number. Links are not followed."""
    for current, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        for filename in sorted(filenames):
            path = Path(current) / filename
            parts = list(path.relative_to(folder).parts)
            if not is_hidden("/".join(parts)):
                yield parts, path


def path_entries(path: Path) -> Iterator[Entry]:
    """The entries of one path on this computer: every file of a folder (any number), the files of a
    ``.zip`` or a tar archive (:func:`from_tar`), or a single picture file."""
    path = Path(path).expanduser()
    check_path(path)
    if path.is_dir():
        for parts, file in walk_folder(path):

            def load(parts: list[str] = parts, file: Path = file) -> ImportCandidate:
                size = file.lstat().st_size if file.is_symlink() else _size(file)
                return _folder_candidate(parts, file, size)

            yield Entry(str(PurePosixPath(*parts)), load)
    elif path.suffix.lower() == ".zip":
        for candidate in from_zip(path, whole=True):
            yield Entry(candidate.name, lambda candidate=candidate: candidate)
    elif is_tar(path):
        for candidate in from_tar(path):
            yield Entry(candidate.name, lambda candidate=candidate: candidate)
    else:
        yield Entry(path.name, lambda: _file_candidate([path.name], path))


def is_tar(path: Path) -> bool:
    """True for the names of tar archives (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``, ``.tar.xz``)."""
    return Path(path).name.lower().endswith(_TAR_SUFFIXES)


def from_tar(path: Path) -> Iterator[ImportCandidate]:
    """Candidates from a tar archive on this computer (plain or compressed), read as a stream: one pass,
    one member in memory at a time, any number of members.

    Only regular files are read: links, devices and folders are not followed; unsafe names (absolute,
    ``..``) are skipped with the reason, hidden files silently. Labels come from the first folder, as in
    a zip; an archive of one folder (``tar czf pictures.tgz pictures/``) has that folder removed.
    """
    try:
        archive = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise BadInputError(f"{path.name} is not a readable tar archive (it may be damaged or incomplete).") from exc
    wrapper: str | None = None
    seen = 0
    with archive:
        try:
            for member in archive:
                raw = member.name
                parts = _parts(raw)
                if member.isdir():
                    if seen == 0 and len(parts) == 1 and not is_unsafe(raw):
                        wrapper = parts[0]  # the archive's first entry: a folder that may hold everything
                    seen += 1
                    continue
                seen += 1
                if is_hidden(raw):
                    continue
                if is_unsafe(raw):
                    yield ImportCandidate(shown_name(raw), skip_reason=OUTSIDE_ARCHIVE)
                    continue
                display = "/".join(parts) or "(unnamed file)"
                if not member.isfile():
                    yield ImportCandidate(display, skip_reason="links and special files inside an archive are not read")
                    continue
                if wrapper is not None and parts[0] != wrapper:
                    wrapper = None  # not one folder after all: labels from the first folder from here on
                label_parts = parts[1:] if wrapper is not None else parts
                reason = _precheck(display, member.size)
                if reason:
                    yield ImportCandidate(display, skip_reason=reason)
                    continue
                handle = archive.extractfile(member)
                data = read_bounded(handle, MAX_FILE_BYTES) if handle is not None else b""
                yield ImportCandidate(display, label=label_for(label_parts), data=data)
        except NotUsableError as exc:
            raise BadInputError(f"{path.name}: {exc.reason}.") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise BadInputError(
                f"{path.name} could not be read to its end (it may be damaged or incomplete): {exc}."
            ) from None


def count_files(path: Path) -> int:
    """About how many files an import of ``path`` tries (for its progress bar): 1 for a picture, the files
    of a zip or a folder (hidden ones left out). Never raises: an unreadable path counts as 1."""
    path = Path(path).expanduser()
    try:
        if path.is_dir():
            found = 0
            for _current, dirnames, filenames in os.walk(path, followlinks=False):
                dirnames[:] = [d for d in dirnames if not is_hidden(d)]
                found += sum(1 for f in filenames if not is_hidden(f))
            return max(1, found)
        if is_tar(path) and path.is_file():
            if not path.name.lower().endswith(".tar"):
                return 0  # a compressed tar says how many files it holds only once it is unpacked
            with tarfile.open(path, mode="r:") as archive:  # headers only: the contents are skipped
                return sum(1 for member in archive if not member.isdir() and not is_hidden(member.name))
        if path.suffix.lower() == ".zip" and path.is_file():
            with open(path, "rb") as handle:
                _check_zip_directory(handle, MAX_ARCHIVE_ENTRIES)  # a list of millions is refused unread
                with zipfile.ZipFile(handle) as archive:
                    entries = archive.infolist()
                    return max(1, sum(1 for i in entries if not i.is_dir() and not is_hidden(i.filename)))
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, BadInputError, ValueError, EOFError):
        pass
    return 1


def _wrapper_folder(names: list[list[str]]) -> str | None:
    """The single folder that wraps every entry and holds only sub-folders, if there is one."""
    if not names or any(len(parts) < 3 for parts in names):
        return None
    first = {parts[0] for parts in names}
    return first.pop() if len(first) == 1 else None


def _precheck(name: str, size: int) -> str | None:
    """Reason to skip a file before reading it, or None."""
    if size == 0:
        return "the file is empty (0 bytes)"
    if size > MAX_FILE_BYTES:
        return too_large_reason(size)
    if name.lower().endswith(_ARCHIVE_SUFFIXES):
        return "archives inside an import are not opened; extract it and import the images"
    return None


def from_files(files: Iterable[tuple[str, bytes]]) -> Iterator[ImportCandidate]:
    """Candidates from uploaded ``(filename, bytes)`` pairs. Filenames may hold sub-folders for labels."""
    files = list(files)
    if len(files) > MAX_IMPORT_FILES:
        raise BadInputError(
            f"{len(files):,} files were given; at most {MAX_IMPORT_FILES:,} can be imported at once. "
            "Import them in smaller batches."
        )
    for raw_name, data in files:
        raw_name = str(raw_name or "")
        if is_hidden(raw_name):
            continue
        parts = _parts(raw_name)
        display = "/".join(parts) or "(unnamed file)"
        if is_unsafe(raw_name):
            yield ImportCandidate(shown_name(raw_name), skip_reason=OUTSIDE_UPLOAD)
            continue
        reason = _precheck(display, len(data or b""))
        if reason:
            yield ImportCandidate(display, skip_reason=reason)
            continue
        yield ImportCandidate(display, label=label_for(parts), data=bytes(data))


def from_zip(source: bytes | Path, whole: bool = False) -> Iterator[ImportCandidate]:
    """Candidates from a zip archive (its bytes, or its path: read as needed, never whole), checked as a
    whole before anything is extracted.

    Raises ``BadInputError`` (before yielding anything) for a file that is not a zip (or not a regular
    file), a zip with more than ``MAX_IMPORT_FILES`` entries or more than ``MAX_IMPORT_BYTES`` uncompressed.
    ``whole`` (a zip on this computer imported from its path, see :func:`path_entries`): up to
    ``MAX_ARCHIVE_ENTRIES`` entries and no limit on the total size (every entry stays bounded, and zip
    bombs are still skipped unread).
    """
    max_files = MAX_ARCHIVE_ENTRIES if whole else MAX_IMPORT_FILES
    max_bytes = None if whole else MAX_IMPORT_BYTES
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield from _zip_candidates(_open_zip(bytes(source), max_files), max_files, max_bytes)
        return
    path = Path(source)
    try:
        size = os.stat(path).st_size
        if max_bytes is not None and size > max_bytes:
            raise BadInputError(
                f"The zip {path.name} is {size / 1e9:.1f} GB; at most {max_bytes / 1e9:.0f} GB can be "
                "imported at once. Split it into smaller zips."
            )
        handle = open_regular(path, size if max_bytes is None else max_bytes)
    except NotUsableError as exc:
        raise BadInputError(f"{path.name}: {exc.reason}.") from None
    except OSError as exc:
        raise BadInputError(f"{path.name}: the zip could not be read ({exc.strerror or exc}).") from None
    with handle:
        yield from _zip_candidates(_open_zip(handle, max_files), max_files, max_bytes)


def _zip_candidates(archive: zipfile.ZipFile, max_files: int, max_bytes: int | None) -> Iterator[ImportCandidate]:
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) > max_files:
            raise BadInputError(
                f"The zip holds {len(entries):,} files; at most {max_files:,} can be imported "
                "at once. Split it into smaller zips."
            )
        total = sum(info.file_size for info in entries)
        if max_bytes is not None and total > max_bytes:
            raise BadInputError(
                f"The zip unpacks to {total / 1e9:.1f} GB; at most {max_bytes / 1e9:.0f} GB can be "
                "imported at once. Split it into smaller zips."
            )
        visible = [info for info in entries if not is_hidden(info.filename)]
        safe_parts = [_parts(info.filename) for info in visible if not is_unsafe(info.filename)]
        wrapper = _wrapper_folder(safe_parts)
        for info in visible:
            yield _zip_candidate(archive, info, wrapper)


def _open_zip(data: bytes | BinaryIO, max_files: int | None = None) -> zipfile.ZipFile:
    if isinstance(data, bytes):
        if not data:
            raise BadInputError("The zip file is empty (0 bytes).")
        data = io.BytesIO(data)
    elif os.fstat(data.fileno()).st_size == 0:
        raise BadInputError("The zip file is empty (0 bytes).")
    try:
        _check_zip_directory(data, MAX_IMPORT_FILES if max_files is None else max_files)
        return zipfile.ZipFile(data)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise BadInputError("This is not a readable zip file (it may be damaged or incomplete).") from exc


def _check_zip_directory(handle: BinaryIO, max_files: int | None = None) -> None:
    """Refuse a zip whose list of files is far too long before ``zipfile`` reads it all into memory.

    ``zipfile`` makes one object per listed entry (about 0.5 KB each, whatever the count field says),
    so a small zip listing millions of entries would take gigabytes before the file count is checked.
    """
    end = zipfile._EndRecData(handle)  # the end-of-directory record: where the list is and how long
    if end is None:
        raise zipfile.BadZipFile("no end of central directory")
    directory_bytes = int(end[zipfile._ECD_SIZE])
    max_files = MAX_IMPORT_FILES if max_files is None else max_files
    if directory_bytes > max_files * _DIRECTORY_BYTES_PER_FILE:
        raise BadInputError(
            f"The zip lists far more than {max_files:,} files; at most {max_files:,} can be "
            "imported at once. Split it into smaller zips."
        )
    handle.seek(0)


def _zip_candidate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, wrapper: str | None) -> ImportCandidate:
    raw_name = info.filename
    parts = _parts(raw_name)
    display = "/".join(parts) or "(unnamed file)"
    if is_unsafe(raw_name):
        return ImportCandidate(shown_name(raw_name), skip_reason=OUTSIDE_ZIP)
    if info.flag_bits & 0x1:
        return ImportCandidate(display, skip_reason="the file is password-protected")
    reason = _precheck(display, info.file_size)
    if reason:
        return ImportCandidate(display, skip_reason=reason)
    if info.file_size > COMPRESSION_CHECK_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(
        info.compress_size, 1
    ):
        return ImportCandidate(
            display,
            skip_reason=f"the file is packed more than {MAX_COMPRESSION_RATIO} to 1, like a zip bomb; "
            "it was not unpacked",
        )
    label_parts = parts[1:] if wrapper is not None else parts
    try:
        with archive.open(info) as handle:  # zipfile never unpacks past the declared size
            content = read_bounded(handle, min(info.file_size, MAX_FILE_BYTES))
    except NotUsableError as exc:
        return ImportCandidate(display, skip_reason=exc.reason)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as exc:
        logger.info("could not extract %s: %s", raw_name, exc)
        return ImportCandidate(
            display, skip_reason="the file could not be extracted (the zip entry is damaged)"
        )
    return ImportCandidate(display, label=label_for(label_parts), data=content)


def from_folder(folder: Path) -> Iterator[ImportCandidate]:
    """Candidates from a folder on disk (sub-folders give labels). Links are not followed.

    Raises ``BadInputError`` (before yielding anything) for a missing folder, or one with too many
    files or too many bytes.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BadInputError(f"The folder '{folder}' does not exist or is not a folder.")
    found: list[tuple[list[str], Path, int]] = []
    total = 0
    for current, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not is_hidden(d))
        for filename in sorted(filenames):
            path = Path(current) / filename
            parts = list(path.relative_to(folder).parts)
            if is_hidden("/".join(parts)):
                continue
            size = path.lstat().st_size if path.is_symlink() else _size(path)
            found.append((parts, path, size))
            total += size
            if len(found) > MAX_IMPORT_FILES:
                raise BadInputError(
                    f"The folder holds more than {MAX_IMPORT_FILES:,} files; import it in smaller parts."
                )
    if total > MAX_IMPORT_BYTES:
        raise BadInputError(
            f"The folder holds {total / 1e9:.1f} GB of files; at most {MAX_IMPORT_BYTES / 1e9:.0f} GB can be "
            "imported at once."
        )
    for parts, path, size in found:
        yield _folder_candidate(parts, path, size)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _folder_candidate(parts: list[str], path: Path, size: int) -> ImportCandidate:
    display = str(PurePosixPath(*parts))
    if path.is_symlink():
        return ImportCandidate(
            display, skip_reason="links are not followed; copy the file itself into the folder"
        )
    reason = _precheck(display, size)
    if reason and size != 0:  # an empty size may be a device or a pipe: say so below
        return ImportCandidate(display, skip_reason=reason)
    return _file_candidate(parts, path)


def _file_candidate(parts: list[str], path: Path) -> ImportCandidate:
    """One file on disk, checked with ``stat`` before it is opened and read with a bound."""
    display = str(PurePosixPath(*parts))
    try:
        info = os.stat(path)
        if stat.S_ISREG(info.st_mode):
            reason = _precheck(display, info.st_size)
            if reason:
                return ImportCandidate(display, skip_reason=reason)
        content = read_regular(path)
    except NotUsableError as exc:
        return ImportCandidate(display, skip_reason=exc.reason)
    except OSError as exc:
        return ImportCandidate(display, skip_reason=f"the file could not be read ({exc.strerror or exc})")
    if not content:
        return ImportCandidate(display, skip_reason="the file is empty (0 bytes)")
    return ImportCandidate(display, label=label_for(parts), data=content)
