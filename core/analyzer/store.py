"""Files of a patch index: arrays, the manifest, and the checks made when an index is loaded.

The layout (shards, searchers) is described in :mod:`core.analyzer.index`. ``manifest.json`` lists
every file with its size, modification time, inode and SHA-256 (taken once, when the file is written);
a load compares sizes and times only and hashes just the files whose times changed. Nothing is ever
unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from core import config

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class IndexMissing(Exception):
    """No index has been built yet."""


class IndexDamaged(Exception):
    """The index on disk cannot be trusted; ``str(exc)`` says why (for the notice)."""


def indexes_root() -> Path:
    path = config.data_dir() / "indexes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array), allow_pickle=False)


def load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """An array saved by :func:`save_array`; ``mmap``: read-only memory map (pages are read when used)."""
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise IndexDamaged(f"{path.name} could not be read ({exc})") from exc


def release_pages(array: Any) -> None:
    """Tell the kernel this process is done, for now, with the pages of a read-only memory-mapped array: they
    leave its resident memory (they stay in the page cache; a later read maps them again). Does nothing for an
    array in memory."""
    import mmap

    mapped = getattr(array, "_mmap", None)
    if isinstance(mapped, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError) as exc:  # a closed map: nothing to release
            logger.debug("could not release mapped pages: %s", exc)


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        if directory.exists():
            raise IndexDamaged("its manifest is missing")
        raise IndexMissing(str(directory))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexDamaged(f"its manifest is unreadable ({exc.__class__.__name__})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise IndexDamaged("its manifest is incomplete")
    return manifest


def file_meta(path: Path) -> dict[str, Any]:
    """What the manifest keeps of a file it lists: its checksum, computed once, when it is written, and the
    size, modification time and inode :func:`verify_files` compares on every load."""
    info = path.stat()
    return {"sha256": sha256_of(path), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns, "ino": info.st_ino}


def verify_files(directory: Path, manifest: dict[str, Any], full: bool = False) -> bool:
    """Raise :class:`IndexDamaged` if a listed file is missing, resized or changed.

    A file whose size, modification time and inode are those the manifest noted is taken as written
    (``os.stat`` only: loading a large index does not read it whole); any other is hashed, and its new
    time and inode are noted in ``manifest`` when its checksum still matches (returns True: write the
    manifest again, see :func:`note_files`). ``full`` hashes every file (``libraries verify``).
    """
    learned = False
    for name, meta in manifest["files"].items():
        path = directory / name
        try:
            info = path.stat()
        except OSError:
            raise IndexDamaged(f"{name} is missing") from None
        if not path.is_file():
            raise IndexDamaged(f"{name} is missing")
        if info.st_size != int(meta.get("bytes", -1)):
            raise IndexDamaged(f"{name} has the wrong size")
        if not full and meta.get("mtime_ns") == info.st_mtime_ns and meta.get("ino") == info.st_ino:
            continue
        if sha256_of(path) != meta.get("sha256"):
            raise IndexDamaged(f"{name} does not match its checksum")
        if (meta.get("mtime_ns"), meta.get("ino")) != (info.st_mtime_ns, info.st_ino):
            meta["mtime_ns"], meta["ino"] = info.st_mtime_ns, info.st_ino
            learned = True
    return learned


def note_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` again (atomically) after :func:`verify_files` learned its files' times."""
    tmp = directory / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.replace(tmp, directory / MANIFEST)
    except OSError as exc:  # read-only data folder: the files are hashed again next time, nothing worse
        logger.info("could not note the checked files of %s: %s", directory, exc)
        tmp.unlink(missing_ok=True)
