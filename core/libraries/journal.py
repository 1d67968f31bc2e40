"""The journal of an import from paths (folders, files, datasets), so that an interrupted one resumes.

An import of ``SOURCE`` into library ``NAME`` writes its pictures into a hidden folder of the libraries
folder, ``.resumable-NAME-<fingerprint>``, and appends one line per file or row tried to its
``journal.jsonl``: the entry's name and either the picture it made (id, label name, channels) or why it
was skipped. The library itself changes only when the import finishes (see
``LibraryManager.add_paths``). When the process is killed, stopped or fails, the folder stays; the
same command again (same library, same sources and options: the fingerprint) reads the journal back
and goes on after the last entry whose picture is on disk, without reading the finished files again.

Entries are compared by name on resume: if the source changed in between (files added or removed
before the point reached), the journal no longer matches, and the import starts again from the first
file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
#: what the import is (library, title, sources, options, when it started), written with its first entry
META_NAME = "import.json"
PREFIX = ".resumable-"
#: a kept import's folder: ``.resumable-<library>-<fingerprint>``
FOLDER_PATTERN = re.compile(re.escape(PREFIX) + r"(?P<library>.+)-(?P<key>[0-9a-f]{16})")
#: Every entry is handed to the system at once (a killed process loses none); it is forced onto the disk
#: (fsync) after this many, so a power cut loses at most these.
SYNC_EVERY = 64


def fingerprint(name: str, sources: list[str], options: dict[str, Any]) -> str:
    """What makes two imports the same one: the library, its sources (as given, made absolute) and options."""
    text = json.dumps({"library": name, "sources": sources, "options": options}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Record:
    """One entry tried: ``made`` (id, label name, channels, source) or ``skipped`` (the reason)."""

    ordinal: int
    name: str
    made: dict[str, Any] | None = None
    skipped: str | None = None

    def to_json(self) -> str:
        raw: dict[str, Any] = {"n": self.ordinal, "name": self.name}
        if self.made is not None:
            raw["made"] = self.made
        else:
            raw["skipped"] = self.skipped
        return json.dumps(raw, ensure_ascii=False)


@dataclass
class StoppedImport:
    """An import that stopped part way and was kept to go on later (see :func:`read_stopped`)."""

    library: str
    key: str
    title: str
    sources: list[str]  # as given, made absolute ("" entries when not known: kept by an older version)
    options: dict[str, Any]
    pictures: int  # pictures made so far
    tried: int  # files or rows tried so far (pictures and skipped ones)
    stopped_at: float  # when it last wrote an entry (seconds since the epoch)
    started_at: float | None = None


def read_stopped(folder: Path) -> StoppedImport | None:
    """What a kept import's folder holds, or None when it is not one (or holds no entry yet)."""
    match = FOLDER_PATTERN.fullmatch(folder.name)
    journal = folder / JOURNAL_NAME
    if match is None or not journal.is_file():
        return None
    try:
        meta = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            meta = {}
    except (OSError, ValueError):
        meta = {}  # kept by a version that did not note it: it can still be dropped
    pictures = tried = 0
    try:
        with open(journal, "rb") as handle:
            for line in handle:
                if line.endswith(b"\n"):  # a line cut short by a kill does not count
                    tried += 1
                    pictures += b'"made"' in line
        stopped_at = journal.stat().st_mtime
    except OSError:
        return None
    if not tried:
        return None
    sources = meta.get("sources")
    options = meta.get("options")
    return StoppedImport(
        library=match["library"],
        key=match["key"],
        title=str(meta.get("title") or match["library"]),
        sources=[str(s) for s in sources] if isinstance(sources, list) else [],
        options=dict(options) if isinstance(options, dict) else {},
        pictures=pictures,
        tried=tried,
        stopped_at=stopped_at,
        started_at=float(meta["started_at"]) if isinstance(meta.get("started_at"), (int, float)) else None,
    )


@dataclass
class ImportJournal:
    """The hidden folder of one resumable import and its journal (see the module docstring)."""

    folder: Path
    records: list[Record] = field(default_factory=list)
    #: written as :data:`META_NAME` with the first entry (see :class:`StoppedImport`)
    meta: dict[str, Any] | None = None
    _handle: TextIO | None = None
    _unsynced: int = 0

    @classmethod
    def for_import(cls, root: Path, name: str, key: str) -> ImportJournal:
        return cls(root / f"{PREFIX}{name}-{key}")

    @property
    def exists(self) -> bool:
        return (self.folder / JOURNAL_NAME).is_file()

    def read(self, picture_exists) -> list[Record]:
        """The records of an earlier run, up to the first that is damaged or whose picture is missing
        (``picture_exists(item_id)``); later lines are dropped from the file too."""
        records: list[Record] = []
        path = self.folder / JOURNAL_NAME
        if not path.is_file():
            return records
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    raw = json.loads(line)
                    record = Record(int(raw["n"]), str(raw["name"]), raw.get("made"), raw.get("skipped"))
                except (ValueError, KeyError, TypeError):
                    break  # a line cut short by a kill
                if record.ordinal != len(records) + 1:
                    break
                if record.made is not None and not picture_exists(str(record.made.get("id", ""))):
                    break
                records.append(record)
        self.records = records
        self._rewrite()
        return records

    def _rewrite(self) -> None:
        """The journal file holding exactly :attr:`records` (after a cut-short line was dropped)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / (JOURNAL_NAME + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            for record in self.records:
                handle.write(record.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.folder / JOURNAL_NAME)

    def append(self, record: Record) -> None:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._note_meta()
            self._handle = open(self.folder / JOURNAL_NAME, "a", encoding="utf-8")
        self._handle.write(record.to_json() + "\n")
        self._handle.flush()  # in the system's hands: a killed process loses nothing
        self.records.append(record)
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            self.sync()

    def _note_meta(self) -> None:
        path = self.folder / META_NAME
        if self.meta is None or path.is_file():
            return
        tmp = self.folder / (META_NAME + ".tmp")
        tmp.write_text(json.dumps({**self.meta, "started_at": time.time()}, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def sync(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self._unsynced = 0

    def close(self) -> None:
        if self._handle is not None:
            self.sync()
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Forget the import: its folder and every picture in it."""
        self.close()
        self.records = []
        shutil.rmtree(self.folder, ignore_errors=True)
