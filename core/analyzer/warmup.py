"""A worker's warm-up: the libraries' prepared indexes made ready before the first originality check.

A check reads from all over its library's index (for 100,000 pictures, about 9 GB of its 18 GB),
and the worker keeps the opened index for the checks after it. Straight after the machine starts,
or once other work has pushed those files out of the operating system's file cache, the first
check waits for those reads: 26 s against 100,000 pictures, where later checks take 5 s
(BENCHMARKS.md). So a worker, when it starts, reads those files of the prepared indexes into the
file cache (the newest first, as many as fit in :data:`MEMORY_SHARE` of the free memory) and opens
them, in a background thread that gives way as soon as the worker stops. Nothing is built
or changed: an index that is missing, outdated or damaged is left to the check that needs it. The
native kernel (:mod:`core.score.native`) is loaded first: on a fresh install that compiles it (2–3 s),
which the first check or image would otherwise wait for.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.analyzer import store
from core.analyzer.features import PixelSpace
from core.analyzer.index import IndexManager, indexed_libraries
from core.analyzer.settings import INDEX_VERSION, AnalyzerSettings
from core.errors import MosaicError
from core.libraries import LibraryManager
from core.libraries.builtins import BUILTIN_LIBRARIES
from core.score import native

logger = logging.getLogger(__name__)

#: Share of the free memory (``MemAvailable``, which counts the file cache as free) the warm-up may fill
#: with index files.
MEMORY_SHARE = 0.75
#: Bytes read at a time (the stop flag is looked at between reads).
READ_CHUNK = 8 * 1024 * 1024
#: Index files a check reads from all over (measured at 100,000 pictures: a cold check read 3.4 of
#: the 6.8 GB of search lists, every exact descriptor and row list, 3.5 and 1.1 GB, and a few rows
#: of the pictures and whole-picture descriptors): the search lists, the trained search structures,
#: and every patch size's descriptors and their pictures' rows.
READ_FOLDERS = ("trained/", "lists/")
READ_SUFFIXES = (".vec.npy", ".rows.npy")


@dataclass
class PreparedIndex:
    """One library's prepared index for the default check settings."""

    workspace: str
    library: str
    directory: Path
    bytes_to_read: int
    files: list[Path] = field(default_factory=list)


@dataclass
class WarmUpReport:
    """What a warm-up did (for the log and the tests)."""

    read: list[str] = field(default_factory=list)  # "workspace/library" whose files were read
    opened: list[str] = field(default_factory=list)
    kernel: bool = False  # the native kernel is loaded (compiled first if need be)
    skipped: list[str] = field(default_factory=list)  # too large for the memory there was
    bytes_read: int = 0
    seconds: float = 0.0


def available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where there is no such file)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _manager(workspace: str) -> IndexManager:
    """The index manager of a check with the default settings (pixels) in ``workspace``."""
    return IndexManager(AnalyzerSettings(), PixelSpace(), LibraryManager(workspace=workspace))


def prepared_indexes(workspace: str | None = None) -> list[PreparedIndex]:
    """The prepared indexes of every workspace's libraries (or only ``workspace``'s and the built-in
    ones) for the default check settings (pixels), the most recently prepared first."""
    managers: dict[str, IndexManager] = {}
    found: list[tuple[float, PreparedIndex]] = []
    for owner, library, folder in indexed_libraries():
        if workspace is not None and owner != workspace and library not in BUILTIN_LIBRARIES:
            continue
        if owner not in managers:
            managers[owner] = _manager(owner)
        directory = folder / managers[owner].key
        try:
            manifest = store.read_manifest(directory)
            written = (directory / store.MANIFEST).stat().st_mtime
        except (store.IndexMissing, store.IndexDamaged, OSError):
            continue
        if manifest.get("version") != INDEX_VERSION:
            continue
        files, total = [], 0
        for name, meta in manifest["files"].items():
            if name.startswith(READ_FOLDERS) or name.endswith(READ_SUFFIXES):
                files.append(directory / name)
                total += int(meta.get("bytes", 0)) if isinstance(meta, dict) else 0
        found.append((written, PreparedIndex(owner, library, directory, total, files)))
    return [index for _, index in sorted(found, key=lambda pair: -pair[0])]


def read_into_cache(paths: list[Path], stop: threading.Event | None = None) -> int:
    """Read ``paths`` whole (into the operating system's file cache); returns the bytes read."""
    buffer = bytearray(READ_CHUNK)
    total = 0
    for path in paths:
        try:
            with open(path, "rb", buffering=0) as handle:
                while not (stop is not None and stop.is_set()):
                    count = handle.readinto(buffer)
                    if not count:
                        break
                    total += count
        except OSError as exc:  # deleted or replaced meanwhile: the check will see to it
            logger.debug("warm-up could not read %s: %s", path, exc)
        if stop is not None and stop.is_set():
            break
    return total


def warm_up(
    stop: threading.Event | None = None,
    workspace: str | None = None,
    memory: int | None = None,
) -> WarmUpReport:
    """Read and open the prepared indexes (of ``workspace`` and the built-in libraries, or all), the
    newest first, while their files fit in :data:`MEMORY_SHARE` of ``memory`` (default: the free
    memory now)."""
    started = time.monotonic()
    report = WarmUpReport(kernel=native.kernel() is not None)
    free = available_memory() if memory is None else memory
    budget = int(MEMORY_SHARE * free) if free is not None else 0
    for index in prepared_indexes(workspace):
        if stop is not None and stop.is_set():
            break
        name = f"{index.workspace}/{index.library}"
        if index.bytes_to_read > budget:
            report.skipped.append(name)
            logger.info(
                "warm-up: not reading the index of %s (%.1f GB; %.1f GB of memory left for it)",
                name, index.bytes_to_read / 1e9, budget / 1e9,
            )
            continue
        budget -= index.bytes_to_read
        report.bytes_read += read_into_cache(index.files, stop)
        report.read.append(name)
        if stop is not None and stop.is_set():
            break
        try:
            if _manager(index.workspace).preload(index.library):
                report.opened.append(name)
        except (MosaicError, OSError) as exc:
            logger.info("warm-up: could not open the index of %s: %s", name, exc)
    report.seconds = time.monotonic() - started
    logger.info(
        "warm-up: read %.1f GB of %s in %.1f s; opened %s",
        report.bytes_read / 1e9, _names(report.read), report.seconds, _names(report.opened),
    )
    return report


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


def start_warm_up(stop: threading.Event, workspace: str | None = None) -> threading.Thread:
    """Run :func:`warm_up` in a daemon thread (a worker's, when it starts)."""

    def run() -> None:
        try:
            warm_up(stop, workspace)
        except Exception:  # never let the warm-up take the worker down
            logger.exception("warm-up of the library indexes failed")

    thread = threading.Thread(target=run, name="index-warm-up", daemon=True)
    thread.start()
    return thread
