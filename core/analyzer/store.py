"""On-disk layout of a patch index, written atomically and checked on every load.

``<data>/indexes/<library>/<key>/`` holds ``manifest.json`` (version, settings, the item ids in
index order, per-file SHA-256 and size) and the arrays: ``pixels.npy``, ``features.npy`` (latent
space), ``global.npy``, ``scale-<p>-rows.npy`` and ``scale-<p>.npy`` (exact) or ``scale-<p>.faiss``.
Nothing is ever unpickled. A whole index is written into a staging folder and renamed into place;
files that did not change are hard-linked, so an incremental update is cheap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
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


def write_index(
    directory: Path,
    manifest: dict[str, Any],
    writers: dict[str, Callable[[Path], None]],
    keep: tuple[str, ...] = (),
) -> None:
    """Write ``writers`` (file name -> function writing that path) plus ``keep`` (files of the current
    index to carry over unchanged) and a manifest with checksums; then swap the folder into place."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".staging-{directory.name}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        files: dict[str, dict[str, Any]] = {}
        for name in keep:
            source = directory / name
            target = staging / name
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
            if name in manifest.get("files", {}) and "sha256" in manifest["files"][name]:
                info = target.stat()  # the same file (a link), or a copy of it: its checksum holds
                files[name] = dict(
                    manifest["files"][name], bytes=info.st_size, mtime_ns=info.st_mtime_ns, ino=info.st_ino
                )
            else:
                files[name] = file_meta(target)
        for name, write in writers.items():
            target = staging / name
            write(target)
            files[name] = file_meta(target)
        manifest = dict(manifest, files=files)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        trash = None
        if directory.exists():
            trash = directory.parent / f".trash-{directory.name}-{uuid.uuid4().hex[:8]}"
            os.rename(directory, trash)
        os.rename(staging, directory)
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
