"""``LibraryManager``: list, create, import into, load and delete reference libraries.

On disk, under ``config.libraries_dir()``, a library ``<name>/`` holds ``library.json`` (the
manifest, always replaced atomically), ``images/<id>.png``, ``thumbs/<id>.png`` and
``cache/<size>px-<channels>ch-<revision>.npy`` (uint8 arrays for :meth:`LibraryManager.load`).

Safety rules:

* image files are written before the manifest that lists them, and removed only after the manifest
  that stops listing them is written, so a crash never leaves the manifest pointing at nothing;
* an import that yields no usable image raises ``BadInputError`` and changes nothing;
* a new library (built-in or imported) is made in a hidden folder (``.building-<name>-…``,
  ``.creating-<name>-…``), then renamed into place, so a failed or killed import leaves no library;
* an import into (or a removal from) an existing library marks the folder (``.changing``) while its
  files and manifest disagree; if it is killed, the next operation on the library (or the next
  :meth:`LibraryManager.list`) removes the files its manifest does not list;
* operations on one library are serialised by a per-library lock that holds across threads and
  processes (:mod:`core.libraries.locks`); leftovers of killed processes are cleaned under that lock,
  so work in progress elsewhere is never touched.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import config
from core.errors import BadInputError, MosaicError, ResourceError
from core.images import DEFAULT_MAX_SIDE
from core.libraries import datasource, sources
from core.libraries.builtins import BUILTIN_LIBRARIES, BuiltinLibrary
from core.libraries.datasource import DatasetOptions
from core.libraries.decoding import PictureTask, PreparedPicture, prepare_picture
from core.libraries.journal import FOLDER_PATTERN as JOURNAL_FOLDER
from core.libraries.journal import JOURNAL_NAME, ImportJournal, Record, StoppedImport, fingerprint, read_stopped
from core.libraries.journal import PREFIX as JOURNAL_PREFIX
from core.libraries.locks import LibraryLock, library_lock
from core.libraries.manifest import MANIFEST_NAME, Manifest, ManifestItem, derived
from core.libraries.names import NAME_PATTERN, source_names, validate_name
from core.libraries.records import ImportReport, LibraryInfo, LibraryPixels, LibraryTensor
from core.libraries.storage import LibraryStorage
from core.libraries.tensors import TensorCache, square_array
from core.runners import THREADS_FROM, LocalRunner, ThreadRunner, picture_runner
from core.words import plural

logger = logging.getLogger(__name__)

MAX_LOAD_SIZE = 1024
MAX_TENSOR_BYTES = 4 * 1024**3
_TITLE_MAX = 120
_DESCRIPTION_MAX = 2000

#: ``progress(done, expected)``: pictures (or files) done so far, and about how many there are in all.
Progress = Callable[[int, int], None]
#: While reading a library's pictures into memory, ``progress`` is called after every this many.
PROGRESS_EVERY = 32
#: About how many pictures each built-in library holds (for the progress of its first preparation only).
_BUILTIN_SIZES = {"photos": 400, "faces": 200, "digits": 1797}

#: Marks a library folder while its files and its manifest may disagree (see :meth:`LibraryManager._clean`).
CHANGE_MARKER = ".changing"
#: Hidden work folders of one library: ``.building-<name>-<8 hex>``, ``.creating-…``, ``.trash-…``.
_WORK_FOLDER = re.compile(r"^\.(?:building|creating|trash)-(?P<name>.+)-[0-9a-f]{8}$")
#: What a library folder may hold; a folder without manifest holding only these is a killed import's.
_LIBRARY_PARTS = {"images", "thumbs", "cache", CHANGE_MARKER}


class _SourceChanged(Exception):
    """An interrupted import's journal no longer fits its source: start it again."""


#: An import from paths checks the free disk space every this many files, and stops (resumable) below
#: MIN_FREE_BYTES.
DISK_CHECK_EVERY = 64
MIN_FREE_BYTES = 200 * 1024**2


def _check_disk(folder: Path) -> None:
    try:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise ResourceError(
            f"The disk of the studio's data folder is nearly full ({free / 1024**2:.0f} MB left). Free some space, "
            "then start the same import again: it goes on where it stopped."
        )


def _expected(expected: int, done: int) -> int:
    """What a progress report says is expected: 0 while not known, never less than what is done."""
    return max(expected, done) if expected else 0


def _check_size(size: object, channels: object) -> None:
    """The picture size and channels asked of :meth:`LibraryManager.load` / :meth:`~LibraryManager.pixels`."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_LOAD_SIZE:
        raise BadInputError(f"The working size must be a whole number from 1 to {MAX_LOAD_SIZE} pixels (got {size!r}).")
    if channels not in (None, 1, 3):
        raise BadInputError(f"Channels must be 1 (grayscale) or 3 (colour), not {channels!r}.")


def _absolute(path: Path | str) -> str:
    return str(Path(path).expanduser().resolve())


class NothingAddedError(BadInputError):
    """An import in which no file could be used; ``report`` says which files were skipped and why."""

    def __init__(self, message: str, report: ImportReport) -> None:
        super().__init__(message)
        self.report = report


class LibraryManager:
    """A workspace's reference libraries, stored under ``root`` (default ``config.libraries_dir(workspace)``).

    The built-in libraries are shared by every workspace (readable, never changed): they are made
    once, in the default workspace's folder (``builtin_root``). A user library belongs to one
    workspace; another workspace's library is reported exactly like a missing one.
    """

    def __init__(
        self, root: Path | None = None, workspace: str = config.DEFAULT_WORKSPACE, builtin_root: Path | None = None
    ) -> None:
        self.workspace = config.check_workspace_name(workspace)
        if root is not None:
            self.root = Path(root).expanduser().resolve()
            self.builtin_root = Path(builtin_root).expanduser().resolve() if builtin_root is not None else self.root
        else:
            self.root = config.libraries_dir(workspace)
            self.builtin_root = (
                Path(builtin_root).expanduser().resolve() if builtin_root is not None else config.libraries_dir()
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.builtin_root.mkdir(parents=True, exist_ok=True)

    def owner(self, name: str) -> str | None:
        """The workspace library ``name`` belongs to: None for a built-in one (shared by all)."""
        return None if name in BUILTIN_LIBRARIES else self.workspace

    # -- listing --------------------------------------------------------------------------------

    def list(self) -> list[LibraryInfo]:
        """Built-in libraries first (built or not), then user libraries by name. Damaged ones are skipped.

        Leftovers of killed imports are cleaned on the way, for libraries no one is working on.
        """
        self._sweep()
        infos = [self._builtin_info(spec) for spec in BUILTIN_LIBRARIES.values()]
        for folder in sorted(self.root.iterdir()):
            name = folder.name
            if name in BUILTIN_LIBRARIES or not NAME_PATTERN.fullmatch(name):
                continue
            if not (folder / MANIFEST_NAME).is_file():
                continue
            try:
                header, count = Manifest.read_header(folder)
            except (MosaicError, FileNotFoundError):
                continue  # damaged ones are logged by read_header; a deleted one is gone
            infos.append(self._info(header, built=True, count=count))
        return infos

    def get(self, name: str) -> LibraryInfo:
        """Information about library ``name``; unknown names list the available ones."""
        validate_name(name)
        if name in BUILTIN_LIBRARIES:
            return self._builtin_info(BUILTIN_LIBRARIES[name])
        try:
            header, count = Manifest.read_header(self._folder(name))
        except FileNotFoundError:
            raise BadInputError(f"There is no library called '{name}'. Available: {self._available()}.") from None
        return self._info(header, built=True, count=count)

    def ensure(self, name: str, progress: Progress | None = None) -> LibraryInfo:
        """Like :meth:`get`, but makes a built-in library first if it has not been made yet.

        ``progress(done, expected)`` is called as its pictures are made (``expected``: about how many).
        """
        return self._info(self._manifest(name, progress), built=True)

    def items(self, name: str) -> list[dict[str, Any]]:
        """The items in :meth:`load` order.

        Each is a dict with ``index``, ``id``, ``file`` (relative), ``path`` (absolute), ``label``
        (label name or None) and ``source`` (original file name or data set entry).
        """
        validate_name(name)
        folder = self._folder(name)
        listed = derived(folder, "items", lambda: self._manifest(name), lambda m: _item_dicts(folder, m))
        return [dict(item) for item in listed]

    def item_ids(self, name: str) -> tuple[str, ...]:
        """The ids of the items in :meth:`load` order (kept per change of the library: no copy per call)."""
        validate_name(name)
        folder = self._folder(name)
        return derived(folder, "ids", lambda: self._manifest(name), lambda m: tuple(item.id for item in m.items))

    def source_names(self, name: str) -> dict[int, str]:
        """Library position -> the name people see for each picture (:func:`core.libraries.names.source_names`)."""
        validate_name(name)
        folder = self._folder(name)
        names = derived(folder, "names", lambda: self._manifest(name),
                        lambda manifest: source_names(_item_dicts(folder, manifest), name))
        return dict(names)

    # -- creating and changing user libraries ---------------------------------------------------

    def create(self, name: str, title: str = "", description: str = "") -> LibraryInfo:
        """An empty user library. Taken names (including built-ins) are a ``BadInputError``."""
        validate_name(name)
        if name in BUILTIN_LIBRARIES:
            raise BadInputError(f"“{name}” is the name of a built-in library; choose another name.")
        folder = self._folder(name)
        with self.locked(name):
            self._clean(name)
            if folder.exists():
                raise BadInputError(
                    f"A library called “{title.strip() or name}” already exists; choose another name, or add "
                    "pictures to it under “Your libraries”."
                )
            manifest = self._new_manifest(name, title, description)
            staging = self.root / f".creating-{name}-{uuid.uuid4().hex[:8]}"
            try:
                manifest.write(staging)
                os.rename(staging, folder)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        logger.info("created library %s", name)
        return self._info(manifest, built=True)

    def update(self, name: str, title: str | None = None, description: str | None = None) -> LibraryInfo:
        """Change the title and/or description of a user library."""
        folder = self._folder(validate_name(name))
        with self.locked(name):
            manifest = self._read_user(name, for_change=True)
            if title is not None:
                manifest.title = title.strip()[:_TITLE_MAX] or name
            if description is not None:
                manifest.description = description.strip()[:_DESCRIPTION_MAX]
            manifest.write(folder)
        return self._info(manifest, built=True)

    def add_files(
        self, name: str, files: Iterable[tuple[str, bytes]], max_side: int = DEFAULT_MAX_SIDE
    ) -> ImportReport:
        """Add uploaded ``(filename, bytes)`` files; ``shoes/a.png`` gets the label ``shoes``."""
        return self._import(name, lambda: sources.from_files(files), max_side)

    def add_zip(self, name: str, data: bytes | Path, max_side: int = DEFAULT_MAX_SIDE) -> ImportReport:
        """Add the images of a zip (its bytes or its path); sub-folders give labels.

        Oversized zips are refused before extraction.
        """
        return self._import(name, lambda: sources.from_zip(data), max_side)

    def add_folder(self, name: str, folder: Path, max_side: int = DEFAULT_MAX_SIDE) -> ImportReport:
        """Copy the images of a folder on disk into the library; sub-folders give labels."""
        return self._import(name, lambda: sources.from_folder(Path(folder)), max_side)

    def add_paths(
        self,
        name: str,
        paths: Sequence[Path | str],
        title: str = "",
        description: str = "",
        max_side: int = DEFAULT_MAX_SIDE,
        progress: Progress | None = None,
        dataset: DatasetOptions | None = None,
        restart: bool = False,
        resumable: bool = True,
    ) -> ImportReport:
        """Import picture files, zips, folders and datasets on this computer as one import (the CLI's
        ``libraries add``, the Libraries page's folder field).

        A path may also be a dataset (a ``.parquet`` file, a folder of them, or ``hf://datasets/OWNER/NAME``:
        :mod:`core.libraries.datasource`), read with the ``dataset`` options (split, picture and label
        columns). Folders and datasets have no limit on their number of pictures. Library ``name`` is made
        (with ``title``/``description``) when it does not exist yet. Every path is checked before anything
        is read; the library changes only when the import finishes, and when no image is usable nothing
        changes. An import that is killed, stopped or fails part way is kept aside: the same call again
        goes on where it stopped (:mod:`core.libraries.journal`); ``restart`` starts it afresh, and with
        ``resumable=False`` (paths that will not be there again, such as a job's uploads) nothing is kept.
        ``progress(done, expected)`` is called after each file or row tried (``expected``: about how many
        the paths hold; 0 when that is not known).
        """
        validate_name(name)
        if not paths:
            raise BadInputError("Give image files, a .zip, a folder or a dataset to add.")
        makers: list[Callable[[], Iterator[sources.Entry]]] = []
        counts: list[Callable[[], int]] = []
        shown_sources: list[str] = []
        any_dataset = False
        for raw in paths:
            if datasource.is_dataset_source(raw):
                any_dataset = True
                opened = datasource.DatasetSource(raw, dataset)
                makers.append(opened.entries)
                counts.append(opened.count)
                shown_sources.append(str(raw) if str(raw).startswith(datasource.HUB_PREFIX) else _absolute(raw))
                continue
            path = Path(raw).expanduser()
            sources.check_path(path)
            makers.append(lambda path=path: sources.path_entries(path))
            counts.append(lambda path=path: sources.count_files(path))
            shown_sources.append(_absolute(path))
        if dataset is not None and dataset.given and not any_dataset:
            raise BadInputError(
                "The split, picture column and label column only apply to datasets (a .parquet file, a folder of "
                ".parquet files or hf://datasets/OWNER/NAME)."
            )

        def entries() -> Iterator[sources.Entry]:
            for make in makers:
                yield from make()

        options = {"max_side": max_side, **dataclasses.asdict(dataset or DatasetOptions())}
        journal = ImportJournal.for_import(self._home(name), name, fingerprint(name, shown_sources, options))
        journal.meta = {"library": name, "title": title.strip() or name, "sources": shown_sources, "options": options}
        counted = [count() for count in counts] if progress else []
        expected = 0 if 0 in counted else sum(counted)  # 0: not known (a compressed tar, some datasets)
        with self.locked(name):
            self._clean(name)
            if restart:
                journal.discard()
            exists = name in BUILTIN_LIBRARIES or (self._folder(name) / MANIFEST_NAME).exists()
            new = None if exists else self._new_manifest(name, title, description)
            return self._import_entries(name, entries, max_side, journal, new, progress, expected, resumable)

    def _import_entries(
        self,
        name: str,
        entries: Callable[[], Iterable[sources.Entry]],
        max_side: int,
        journal: ImportJournal,
        new: Manifest | None,
        progress: Progress | None,
        expected: int,
        resumable: bool = True,
    ) -> ImportReport:
        """Every import (the caller holds the library's lock): pictures are written into the journal's
        folder, the library changes once, at the end; ``resumable``: kept when it stops (:meth:`add_paths`)."""
        folder = self._folder(name)
        manifest = copy.deepcopy(new) if new is not None else self._read_user(name, for_change=True)
        staging = LibraryStorage(journal.folder)
        if journal.folder.exists() and not journal.exists:
            journal.discard()  # killed while it was being committed or discarded: nothing to go on from
        # a copy: the journal's own list grows as this run notes entries
        done = list(journal.read(lambda item_id: (staging.images_dir / f"{item_id}.png").is_file()))
        report = ImportReport(library=name)
        written: list[ManifestItem] = []
        try:
            tried = 0
            numbered = enumerate(entries(), start=1)
            first_new: tuple[int, sources.Entry] | None = None
            for tried, entry in numbered:
                if tried > len(done):
                    first_new = (tried, entry)
                    break
                record = done[tried - 1]
                if record.name != entry.name:  # the source changed since: its journal no longer fits
                    logger.info("import of %s: %s changed since it stopped; starting again", name, entry.name)
                    raise _SourceChanged
                self._replay(record, manifest, written, report)
                if tried == len(done) and progress is not None:
                    progress(tried, _expected(expected, tried))
            if first_new is not None:
                if done:
                    report.notices.append(
                        f"Went on from an import that had stopped: {plural(len(done), 'file')} had already been read."
                    )

                def tasks() -> Iterator[PictureTask]:
                    for number, entry in itertools.chain([first_new], numbered):
                        yield PictureTask(number, entry.load(), max_side)

                runner = picture_runner(max(0, expected - len(done)) if expected else 0)
                with contextlib.closing(runner.map(prepare_picture, tasks())) as results:  # stops its workers
                    for prepared in results:
                        tried = prepared.number
                        if tried % DISK_CHECK_EVERY == 0:
                            _check_disk(journal.folder)
                        item = self._store_prepared(prepared, manifest, staging, report)
                        if item is None:
                            journal.append(Record(tried, prepared.name, skipped=report.skipped[-1][1]))
                        else:
                            written.append(item)
                            label = None if item.label is None else manifest.label_names[item.label]
                            made = {"id": item.id, "label": label, "source": item.source, "channels": item.channels}
                            journal.append(Record(tried, prepared.name, made=made))
                        if progress is not None:
                            progress(tried, _expected(expected, tried))
            if tried < len(done):
                raise _SourceChanged
            journal.close()
            if not written:
                journal.discard()
                raise NothingAddedError(self._nothing_added(manifest.title or name, report), report=report)
            self._commit(name, manifest, written, staging, new is not None)
            journal.discard()
        except _SourceChanged:
            journal.discard()
            return self._import_entries(name, entries, max_side, journal, new, progress, expected, resumable)
        except NothingAddedError:
            raise
        except BaseException:
            journal.close()
            if journal.records and resumable:
                logger.info("import into %s stopped after %d file(s), kept to go on later", name, len(journal.records))
            else:
                journal.discard()
            raise
        TensorCache(LibraryStorage(folder).cache_dir).clear(keep_revision=manifest.revision, keep_bases=True)
        report.added = len(written)
        logger.info("imported %d image(s) into %s, skipped %d", report.added, name, len(report.skipped))
        return report

    @staticmethod
    def _replay(record: Record, manifest: Manifest, written: list[ManifestItem], report: ImportReport) -> None:
        """An entry an earlier run finished, taken back from its journal."""
        if record.made is None:
            report.skipped.append((record.name, record.skipped or "no data"))
            return
        made = record.made
        label = made.get("label")
        written.append(
            ManifestItem(
                id=str(made["id"]),
                file=LibraryStorage.image_file(str(made["id"])),
                label=manifest.label_index(str(label)) if label else None,
                source=str(made.get("source", record.name)),
                channels=int(made.get("channels", 3)),
            )
        )

    def _commit(
        self, name: str, manifest: Manifest, written: list[ManifestItem], staging: LibraryStorage, new: bool
    ) -> None:
        """Put the pictures of a finished import into library ``name``, then its manifest (one change)."""
        folder = self._folder(name)
        (staging.folder / JOURNAL_NAME).unlink(missing_ok=True)
        if new:
            listed = {item.id for item in written}
            for part in (staging.images_dir, staging.thumbs_dir):  # pictures a killed run made but never noted
                for entry in os.scandir(part):
                    if entry.name.removesuffix(".png") not in listed:
                        os.unlink(entry.path)
            manifest.items = written
            manifest.touch()
            manifest.write(staging.folder)
            os.rename(staging.folder, folder)
            return
        target = LibraryStorage(folder)
        (folder / CHANGE_MARKER).touch()
        try:
            target.images_dir.mkdir(parents=True, exist_ok=True)
            target.thumbs_dir.mkdir(parents=True, exist_ok=True)
            for item in written:
                os.replace(staging.folder / item.file, folder / item.file)
                os.replace(staging.thumb_path(item), target.thumb_path(item))
            manifest.items.extend(written)
            manifest.touch()
            manifest.write(folder)
        finally:
            (folder / CHANGE_MARKER).unlink(missing_ok=True)

    def create_from_files(
        self, name: str, files: Iterable[tuple[str, bytes]], title: str = "", description: str = ""
    ) -> ImportReport:
        """:meth:`create` + :meth:`add_files` in one step; no library is left behind when no image is usable."""
        return self._create_and_import(name, title, description, lambda: sources.from_files(files))

    def create_from_zip(
        self, name: str, data: bytes | Path, title: str = "", description: str = ""
    ) -> ImportReport:
        """:meth:`create` + :meth:`add_zip` in one step; no library is left behind when no image is usable."""
        return self._create_and_import(name, title, description, lambda: sources.from_zip(data))

    def create_from_folder(
        self, name: str, folder: Path, title: str = "", description: str = ""
    ) -> ImportReport:
        """:meth:`create` + :meth:`add_folder` in one step; no library is left behind when no image is usable."""
        return self._create_and_import(
            name, title, description, lambda: sources.from_folder(Path(folder))
        )

    def remove_items(self, name: str, item_ids: Iterable[str]) -> LibraryInfo:
        """Remove items by id. Unknown ids are a ``BadInputError`` and nothing is removed."""
        folder = self._folder(validate_name(name))
        wanted = set(item_ids)
        with self.locked(name):
            self._clean(name)
            manifest = self._read_user(name, for_change=True)
            known = {item.id for item in manifest.items}
            unknown = sorted(wanted - known)
            if unknown:
                shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
                raise BadInputError(
                    f"“{manifest.title}” has no {'picture' if len(unknown) == 1 else 'pictures'} with the id "
                    f"{shown} (it may have been removed already); nothing was removed."
                )
            removed = [item for item in manifest.items if item.id in wanted]
            manifest.items = [item for item in manifest.items if item.id not in wanted]
            manifest.prune_labels()
            manifest.touch()
            marker = folder / CHANGE_MARKER
            marker.touch()
            manifest.write(folder)
            storage = LibraryStorage(folder)
            for item in removed:
                storage.delete_item_files(item)
            marker.unlink(missing_ok=True)
            TensorCache(storage.cache_dir).clear(keep_revision=manifest.revision, keep_bases=True)
        logger.info("removed %d item(s) from library %s", len(removed), name)
        return self._info(manifest, built=True)

    def delete(self, name: str) -> None:
        """Delete a user library and its files. Built-in libraries cannot be deleted (see :meth:`reset`)."""
        validate_name(name)
        if name in BUILTIN_LIBRARIES:
            raise BadInputError(
                f"“{BUILTIN_LIBRARIES[name].title}” is a built-in library and can't be deleted. "
                "You can reset it instead, which rebuilds it from the original data."
            )
        folder = self._folder(name)
        with self.locked(name):
            self._clean(name)
            for kept in self._home(name).glob(f"{JOURNAL_PREFIX}{name}-*"):  # stopped imports into it
                match = JOURNAL_FOLDER.fullmatch(kept.name)
                if match is not None and match["library"] == name:
                    shutil.rmtree(kept, ignore_errors=True)
            if not (folder / MANIFEST_NAME).is_file():  # a damaged manifest can still be deleted
                raise BadInputError(f"There is no library called '{name}'. Available: {self._available()}.")
            self._discard(folder)
        logger.info("deleted library %s", name)

    def stopped_imports(self) -> list[StoppedImport]:
        """Imports from paths that stopped part way (killed, cancelled, failed) and were kept to go on later,
        oldest first; imports running now are not listed. Going on: the same import again
        (:meth:`add_paths` with the same sources and options); dropping: :meth:`discard_stopped`."""
        found: list[StoppedImport] = []
        try:
            folders = sorted(p for p in self.root.glob(f"{JOURNAL_PREFIX}*") if p.is_dir())
        except OSError:
            return found
        for folder in folders:
            match = JOURNAL_FOLDER.fullmatch(folder.name)
            if match is None or not NAME_PATTERN.fullmatch(match["library"]):
                continue
            lock = self.locked(match["library"])
            if not lock.acquire(blocking=False):
                continue  # an import into this library is running (it holds the lock throughout)
            try:
                stopped = read_stopped(folder)
            finally:
                lock.release()
            if stopped is not None:
                if (self._folder(stopped.library) / MANIFEST_NAME).is_file():
                    with contextlib.suppress(MosaicError):
                        stopped.title = self.get(stopped.library).title
                found.append(stopped)
        return sorted(found, key=lambda stopped: stopped.stopped_at)

    def discard_stopped(self, name: str, key: str | None = None) -> int:
        """Drop the kept pictures of stopped imports into library ``name`` (all, or the one with ``key``);
        returns how many were dropped. The library itself does not change."""
        validate_name(name)
        dropped = 0
        with self.locked(name):
            for folder in self._home(name).glob(f"{JOURNAL_PREFIX}{name}-*"):
                match = JOURNAL_FOLDER.fullmatch(folder.name)
                if match is None or match["library"] != name or (key is not None and match["key"] != key):
                    continue
                shutil.rmtree(folder, ignore_errors=True)
                dropped += 1
        if key is not None and not dropped:
            raise BadInputError("That stopped import is no longer kept: it may have finished or been dropped.")
        return dropped

    def reset(self, name: str) -> LibraryInfo:
        """Throw away a built-in library's files; it is made again, from the original data, on next use."""
        validate_name(name)
        if name not in BUILTIN_LIBRARIES:
            raise BadInputError(
                f"Only built-in libraries can be reset; “{name}” is not one (delete it instead)."
            )
        folder = self._folder(name)
        with self.locked(name):
            self._clean(name)
            if folder.exists():
                self._discard(folder)
        return self._builtin_info(BUILTIN_LIBRARIES[name])

    # -- reading images -------------------------------------------------------------------------

    def load(
        self, name: str, size: int, channels: int | None = None, progress: Progress | None = None
    ) -> LibraryTensor:
        """All images centre-cropped to squares and resized to ``size``, as ``(N, C, size, size)`` in [-1, 1].

        ``channels`` (1 or 3) converts between grayscale and colour; None keeps the library's own.
        Results are cached on disk per (size, channels) until the library's items change.
        ``progress(done, expected)`` is called as pictures are read when they are not cached yet.
        """
        _check_size(size, channels)
        size = int(size)
        folder = self._folder(validate_name(name))
        with self.locked(name):
            manifest = self._manifest_with_pictures(name)
            channels = channels or manifest.channels
            needed = manifest.count * channels * size * size * 4
            if needed > MAX_TENSOR_BYTES:
                raise ResourceError(
                    f"Using “{manifest.title}” ({plural(manifest.count, 'picture')}) at {size}×{size} px here "
                    f"would need {needed / 1024**3:.1f} GB of memory; choose a smaller picture size or a smaller "
                    "library."
                )
            array = self._cached_pixels(folder, manifest, size, channels, progress)
        import torch  # here only: the other library commands do not load it (1-2 s)

        images = torch.from_numpy(np.array(array)).to(torch.float32).div_(127.5).sub_(1.0)
        labels = torch.tensor(
            [-1 if item.label is None else item.label for item in manifest.items], dtype=torch.int64
        )
        return LibraryTensor(
            images=images,
            labels=labels,
            label_names=list(manifest.label_names),
            item_ids=[item.id for item in manifest.items],
        )

    def pixels(
        self, name: str, size: int, channels: int | None = None, progress: Progress | None = None
    ) -> LibraryPixels:
        """All images as :meth:`load` makes them, but as ``(N, C, size, size)`` uint8 read through a memory
        map of the on-disk cache: any number of pictures, rows read when used (the analyzer's way in)."""
        _check_size(size, channels)
        folder = self._folder(validate_name(name))
        with self.locked(name):
            manifest = self._manifest_with_pictures(name)
            channels = channels or manifest.channels
            array = self._cached_pixels(folder, manifest, int(size), channels, progress)
        return LibraryPixels(pixels=array, item_ids=[item.id for item in manifest.items], channels=channels)

    def _manifest_with_pictures(self, name: str) -> Manifest:
        manifest = self._manifest(name)
        if not manifest.items:
            raise BadInputError(
                f"The library “{manifest.title}” has no pictures yet: add pictures to it on the Libraries page first."
            )
        return manifest

    def _cached_pixels(
        self, folder: Path, manifest: Manifest, size: int, channels: int, progress: Progress | None
    ) -> np.ndarray:
        """The library's pictures at ``size`` from the on-disk cache (a read-only memory map), read and
        written there first, picture by picture, when the library changed. Call with the library locked."""
        storage = LibraryStorage(folder)
        cache = TensorCache(storage.cache_dir)
        array = cache.get(size, channels, manifest.revision, manifest.count, mmap=True)
        if array is not None:
            return array
        cache.remove_partial()
        base = cache.base(size, channels, manifest.revision)  # pictures read for an earlier revision
        try:
            return cache.fill(
                self._squares(storage, manifest, size, channels, progress, base),
                manifest.count,
                size,
                channels,
                manifest.revision,
                ids=[item.id for item in manifest.items],
            )
        except OSError as exc:  # a read-only or full data folder: read into memory, as without a cache
            logger.warning("could not write the picture cache of %s: %s", folder.name, exc)
            return np.stack(list(self._squares(storage, manifest, size, channels, progress)))

    def item_image(self, name: str, index: int) -> Image.Image:
        """The stored image of the item at ``index`` in :meth:`load` order."""
        folder = self._folder(validate_name(name))
        with self.locked(name):
            item = self._item_at(name, index)
            return LibraryStorage(folder).read_image(item)

    def thumbnail(self, name: str, index: int) -> Image.Image:
        """A small preview (longest side 96 px) of the item at ``index`` in :meth:`load` order."""
        return self.thumbnails(name, [index])[0]

    def thumbnails(self, name: str, indexes: Sequence[int]) -> list[Image.Image]:
        """Small previews of the items at ``indexes``, reading the library's list of pictures once (at
        100,000 pictures it takes a fifth of a second or more to read)."""
        folder = self._folder(validate_name(name))
        with self.locked(name):
            manifest = self._manifest(name)
            storage = LibraryStorage(folder)
            return [storage.read_thumbnail(self._checked_item(manifest, index)) for index in indexes]

    def locked(self, name: str) -> LibraryLock:
        """The lock of library ``name`` (``with manager.locked(name): ...``), shared by threads and processes."""
        return library_lock(self._home(validate_name(name)), name)

    # -- internals ------------------------------------------------------------------------------

    def _home(self, name: str) -> Path:
        """The folder holding library ``name``: the shared one for built-ins, this workspace's otherwise."""
        return self.builtin_root if name in BUILTIN_LIBRARIES else self.root

    def _folder(self, name: str) -> Path:
        return self._home(name) / name

    @staticmethod
    def _new_manifest(name: str, title: str, description: str) -> Manifest:
        return Manifest(
            name=name,
            title=(title.strip() or name)[:_TITLE_MAX],
            description=description.strip()[:_DESCRIPTION_MAX],
            kind="user",
        )

    def _sweep(self) -> None:
        """Clean the leftovers of killed imports and builds, skipping libraries someone is working on."""
        names: set[str] = set()
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            logger.warning("could not look through %s: %s", self.root, exc)
            return
        for entry in entries:
            match = _WORK_FOLDER.match(entry.name)
            if match and NAME_PATTERN.fullmatch(match["name"]):
                names.add(match["name"])
            elif NAME_PATTERN.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                folder = Path(entry.path)
                if (folder / CHANGE_MARKER).exists() or not (folder / MANIFEST_NAME).exists():
                    names.add(entry.name)
        for name in sorted(names):
            lock = self.locked(name)
            if lock.held_here() or not lock.acquire(blocking=False):
                continue  # busy (here or elsewhere): its owner is alive; a later look cleans it if needed
            try:
                self._clean(name)
            except OSError as exc:
                logger.warning("could not clean up library %s: %s", name, exc)
            finally:
                lock.release()

    def _clean(self, name: str) -> None:
        """Remove what killed processes left of library ``name``. The caller holds its lock.

        * hidden work folders of ``name`` (a build, a new library or a deletion that never finished);
        * a library folder without manifest that holds nothing but library parts (a killed import);
        * after an import or removal was killed (``.changing`` is still there): image and
          thumbnail files its manifest does not list.
        """
        for entry in list(os.scandir(self._home(name))):
            match = _WORK_FOLDER.match(entry.name)
            if match and match["name"] == name:
                logger.info("removing %s, left by an interrupted import or build", entry.name)
                shutil.rmtree(entry.path, ignore_errors=True)
        folder = self._folder(name)
        if not folder.is_dir() or folder.is_symlink():
            return
        if not (folder / MANIFEST_NAME).exists():
            leftovers = {child.name for child in folder.iterdir() if not child.name.startswith(".")}
            if leftovers <= _LIBRARY_PARTS:
                logger.info("removing library folder %s without manifest, left by an interrupted import", name)
                self._discard(folder)
            else:
                logger.warning("library folder %s has no library.json; leaving it as it is", folder)
            return
        marker = folder / CHANGE_MARKER
        if not marker.exists():
            return
        try:
            manifest = Manifest.read(folder)
        except MosaicError:
            return  # damaged: shown as such; deleting it removes everything
        listed = {Path(item.file).name for item in manifest.items}
        removed = 0
        storage = LibraryStorage(folder)
        for directory in (storage.images_dir, storage.thumbs_dir):
            if not directory.is_dir():
                continue
            for path in directory.iterdir():
                if path.name not in listed and path.is_file():
                    path.unlink(missing_ok=True)
                    removed += 1
        marker.unlink(missing_ok=True)
        logger.info("removed %d file(s) an interrupted import left in library %s", removed, name)

    def _available(self) -> str:
        return ", ".join(info.name for info in self.list())

    def _read_user(self, name: str, for_change: bool = False) -> Manifest:
        if name in BUILTIN_LIBRARIES:
            if for_change:
                raise BadInputError(
                    f"“{BUILTIN_LIBRARIES[name].title}” is a built-in library and can't be changed. "
                    "Create your own library to add or remove pictures."
                )
            return self._manifest(name)
        folder = self._folder(name)
        try:
            return Manifest.read(folder)
        except FileNotFoundError:
            raise BadInputError(
                f"There is no library called '{name}'. Available: {self._available()}."
            ) from None

    @staticmethod
    def _squares(
        storage: LibraryStorage,
        manifest: Manifest,
        size: int,
        channels: int,
        progress: Progress | None,
        base: tuple[np.ndarray, dict[str, int]] | None = None,
    ) -> Iterator[np.ndarray]:
        """Every item as a ``size`` square of ``channels``, reporting ``progress`` every
        :data:`PROGRESS_EVERY` pictures and at the end; ``base``: rows already made (an earlier revision's
        cache and its ``{item id: row}``), copied instead of decoding those pictures again."""
        total = len(manifest.items)
        rows, where = base if base is not None else (None, {})

        def square(item: ManifestItem) -> np.ndarray:
            row = where.get(item.id)
            if rows is not None and row is not None:
                return np.array(rows[row])
            return square_array(storage.read_image(item), size, channels)

        # Pillow decodes and resizes without the interpreter lock: a few threads use the cores
        runner = ThreadRunner() if total - len(where) >= THREADS_FROM else LocalRunner()
        with contextlib.closing(runner.map(square, manifest.items)) as squares:
            for done, array in enumerate(squares, start=1):
                yield array
                if progress is not None and (done % PROGRESS_EVERY == 0 or done == total):
                    progress(done, total)

    def _manifest(self, name: str, progress: Progress | None = None) -> Manifest:
        """The manifest of any library, making a built-in one first if needed (``progress``: see :meth:`ensure`)."""
        validate_name(name)
        spec = BUILTIN_LIBRARIES.get(name)
        if spec is None:
            return self._read_user(name)
        folder = self._folder(name)
        with self.locked(name):
            try:
                return Manifest.read(folder)
            except FileNotFoundError:
                self._clean(name)
            except MosaicError:
                logger.warning("built-in library %s is damaged; rebuilding it", name)
                self._discard(folder)
            return self._materialise(spec, progress)

    def _materialise(self, spec: BuiltinLibrary, progress: Progress | None = None) -> Manifest:
        """Make a built-in library in a hidden folder, then rename it into place."""
        expected = _BUILTIN_SIZES.get(spec.name, 0)
        folder = self._folder(spec.name)
        logger.info("making built-in library %s", spec.name)
        staging = self.builtin_root / f".building-{spec.name}-{uuid.uuid4().hex[:8]}"
        mode = "L" if spec.channels == 1 else "RGB"
        try:
            storage = LibraryStorage(staging)
            manifest = Manifest(
                name=spec.name,
                title=spec.title,
                description=spec.description,
                kind="builtin",
                channels=spec.channels,
                label_names=list(spec.label_names or []),
            )
            for built in spec.build():
                file = storage.write_item(built.id, built.image.convert(mode))
                manifest.items.append(
                    ManifestItem(
                        id=built.id,
                        file=file,
                        label=manifest.label_index(built.label),
                        source=built.source,
                        channels=spec.channels,
                    )
                )
                if progress is not None:
                    progress(len(manifest.items), max(expected, len(manifest.items)))
            if not manifest.items:
                raise MosaicError(
                    f"The built-in library “{spec.title}” could not be prepared: its pictures are missing from "
                    "this installation. Ask whoever set up the studio to reinstall it.",
                    detail=f"Library {spec.name!r}: its builder yielded no item (check the scikit-image and "
                    "scikit-learn packages and their sample data).",
                )
            manifest.touch()
            manifest.write(staging)
            if folder.exists():
                self._discard(folder)
            os.rename(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        logger.info("built-in library %s ready (%d images)", spec.name, manifest.count)
        return manifest

    def _discard(self, folder: Path) -> None:
        """Remove a library folder: renamed away first so it disappears at once, then deleted."""
        trash = folder.parent / f".trash-{folder.name}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _item_at(self, name: str, index: int) -> ManifestItem:
        return self._checked_item(self._manifest(name), index)

    @staticmethod
    def _checked_item(manifest: Manifest, index: int) -> ManifestItem:
        if (
            isinstance(index, bool)
            or not isinstance(index, (int, np.integer))
            or not 0 <= index < manifest.count
        ):
            raise BadInputError(
                f"“{manifest.title}” has {plural(manifest.count, 'picture')}; there is no image number {index!r}."
            )
        return manifest.items[int(index)]

    def _create_and_import(
        self,
        name: str,
        title: str,
        description: str,
        candidates: Callable[[], Iterable[sources.ImportCandidate]],
    ) -> ImportReport:
        validate_name(name)
        if name in BUILTIN_LIBRARIES:
            raise BadInputError(f"“{name}” is the name of a built-in library; choose another name.")
        with self.locked(name):
            self._clean(name)
            if self._folder(name).exists():
                raise BadInputError(
                    f"A library called “{title.strip() or name}” already exists; choose another name, or add "
                    "pictures to it under “Your libraries”."
                )
            return self._import(name, candidates, DEFAULT_MAX_SIDE, new=self._new_manifest(name, title, description))

    def _import(
        self,
        name: str,
        candidates: Callable[[], Iterable[sources.ImportCandidate]],
        max_side: int,
        new: Manifest | None = None,
        progress: Progress | None = None,
        expected: int = 0,
    ) -> ImportReport:
        """Import ``candidates()`` into library ``name``, or into a new library ``new`` when given: the
        all-or-nothing import of uploads, the same mechanism as :meth:`add_paths` with nothing kept when
        it stops (its work folder is one :meth:`_clean` removes after a kill)."""
        journal = ImportJournal(self._home(validate_name(name)) / f".creating-{name}-{uuid.uuid4().hex[:8]}")

        def entries() -> Iterator[sources.Entry]:
            for candidate in candidates():
                yield sources.Entry(candidate.name, lambda candidate=candidate: candidate)

        with self.locked(name):
            self._clean(name)
            return self._import_entries(name, entries, max_side, journal, new, progress, expected, resumable=False)

    @staticmethod
    def _store_prepared(
        prepared: PreparedPicture, manifest: Manifest, storage: LibraryStorage, report: ImportReport
    ) -> ManifestItem | None:
        """Write one picture :func:`prepare_picture` made (or note why it was skipped)."""
        if prepared.skip_reason is not None or prepared.png is None or prepared.thumb is None:
            report.skipped.append((prepared.name, prepared.skip_reason or "no data"))
            return None
        item_id = uuid.uuid4().hex[:12]
        file = storage.write_encoded(item_id, prepared.png, prepared.thumb)  # a work folder nobody else reads
        report.notices.extend(prepared.notices)
        return ManifestItem(
            id=item_id,
            file=file,
            label=manifest.label_index(prepared.label) if prepared.label else None,
            source=prepared.name,
            channels=prepared.channels,
        )

    @staticmethod
    def _nothing_added(title: str, report: ImportReport) -> str:
        """Why an import added nothing, and what to do, in the user's words (the library by its title)."""
        if not report.skipped:
            return (
                f"No pictures were added to “{title}”: no picture files were found. Choose PNG, JPEG, GIF, BMP, "
                "TIFF or WebP pictures, or a .zip of them."
            )
        count = len(report.skipped)
        if count == 1:
            file, reason = report.skipped[0]
            return f"No pictures were added to “{title}”: {file} could not be used ({reason})."
        shown = "; ".join(f"{file}: {reason}" for file, reason in report.skipped[:3])
        more = f"; and {plural(count - 3, 'more file', 'more files')}" if count > 3 else ""
        return (
            f"No pictures were added to “{title}”: none of the {count:,} files could be used ({shown}{more}). "
            "Replace them with pictures and try again."
        )

    def _builtin_info(self, spec: BuiltinLibrary) -> LibraryInfo:
        folder = self._folder(spec.name)
        if (folder / MANIFEST_NAME).is_file():
            try:
                return self._info(Manifest.read(folder), built=True)
            except MosaicError:
                pass  # damaged: rebuilt on next use
        return LibraryInfo(
            name=spec.name,
            title=spec.title,
            description=spec.description,
            kind="builtin",
            count=0,
            channels=spec.channels,
            label_names=list(spec.label_names or []),
            created_at="",
            built=False,
        )

    @staticmethod
    def _info(manifest: Manifest, built: bool, count: int | None = None) -> LibraryInfo:
        """What the studio shows of ``manifest`` (``count``: its items, when read without them)."""
        return LibraryInfo(
            name=manifest.name,
            title=manifest.title,
            description=manifest.description,
            kind=manifest.kind,
            count=manifest.count if count is None else count,
            channels=manifest.channels,
            label_names=list(manifest.label_names),
            created_at=manifest.created_at,
            built=built,
        )


def _item_dicts(folder: Path, manifest: Manifest) -> list[dict[str, Any]]:
    """:meth:`LibraryManager.items` of ``manifest``, the library in ``folder``."""
    base = str(folder)
    labels = manifest.label_names
    return [
        {
            "index": index,
            "id": item.id,
            "file": item.file,
            "path": os.path.join(base, item.file),
            "label": labels[item.label] if item.label is not None else None,
            "source": item.source,
        }
        for index, item in enumerate(manifest.items)
    ]
