"""``library.json``: the manifest that lists a library's items, read and written atomically."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from core.errors import MosaicError

logger = logging.getLogger(__name__)

MANIFEST_NAME = "library.json"
FORMAT_VERSION = 1
_FILE_PATTERN = re.compile(r"^images/[A-Za-z0-9_-]{1,80}\.png$")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def new_revision() -> str:
    return uuid.uuid4().hex[:12]


_PARSED: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_PARSED_LOCK = threading.Lock()
#: manifests whose parsed JSON is kept (the most recently read)
_PARSED_KEPT = 16
_DERIVED: dict[tuple[str, str], tuple[tuple[int, int, int], Any]] = {}

T = TypeVar("T")


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns, info.st_ino)


def derived(folder: Path, what: str, read: Callable[[], Manifest], compute: Callable[[Manifest], T]) -> T:
    """``compute(read())``, kept while ``folder``'s ``library.json`` stays the same file (it is replaced,
    never edited in place, see :meth:`Manifest.write`): a library of 100,000 pictures lists its items and
    their names once per change, not once per query. ``what`` names the value; callers must not change
    what they get (copy it first)."""
    path = folder / MANIFEST_NAME
    key = (str(path), what)
    before = _stamp(path)
    with _PARSED_LOCK:
        cached = _DERIVED.get(key)
    if before is not None and cached is not None and cached[0] == before:
        return cached[1]
    value = compute(read())
    after = _stamp(path)
    if before is not None and after == before:  # not replaced while it was read
        with _PARSED_LOCK:
            _DERIVED.pop(key, None)
            _DERIVED[key] = (before, value)
            while len(_DERIVED) > 2 * _PARSED_KEPT:
                _DERIVED.pop(next(iter(_DERIVED)))
    return value


def _parsed(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, parsed again only when the file changed."""
    info = path.stat()
    stamp = (info.st_size, info.st_mtime_ns, info.st_ino)
    key = str(path)
    with _PARSED_LOCK:
        cached = _PARSED.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    with _PARSED_LOCK:
        _PARSED.pop(key, None)
        _PARSED[key] = (stamp, raw)
        while len(_PARSED) > _PARSED_KEPT:
            _PARSED.pop(next(iter(_PARSED)))
    return raw


@dataclass
class ManifestItem:
    """One image of a library. ``file`` is relative to the library folder; ``label`` indexes label_names."""

    id: str
    file: str
    label: int | None = None
    source: str = ""
    channels: int = 3

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "file": self.file,
            "label": self.label,
            "source": self.source,
            "channels": self.channels,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any], label_count: int) -> ManifestItem:
        item_id, file = str(raw["id"]), str(raw["file"])
        if not _ID_PATTERN.fullmatch(item_id) or not _FILE_PATTERN.fullmatch(file):
            raise ValueError(f"unsafe item entry {item_id!r} -> {file!r}")
        label = raw.get("label")
        if label is not None:
            label = int(label)
            if not 0 <= label < label_count:
                raise ValueError(f"label index {label} out of range")
        channels = int(raw.get("channels", 3))
        if channels not in (1, 3):
            raise ValueError(f"bad channel count {channels}")
        return cls(id=item_id, file=file, label=label, source=str(raw.get("source", "")), channels=channels)


@dataclass
class Manifest:
    """The content of ``library.json``."""

    name: str
    title: str = ""
    description: str = ""
    kind: str = "user"
    created_at: str = field(default_factory=now_iso)
    channels: int = 3
    label_names: list[str] = field(default_factory=list)
    items: list[ManifestItem] = field(default_factory=list)
    revision: str = field(default_factory=new_revision)

    @property
    def count(self) -> int:
        return len(self.items)

    def label_index(self, label: str) -> int:
        """Index of ``label`` in ``label_names``, appending it when new."""
        if label not in self.label_names:
            self.label_names.append(label)
        return self.label_names.index(label)

    def touch(self) -> None:
        """Record that the items changed: new revision (invalidates tensor caches), channels recomputed."""
        self.revision = new_revision()
        if self.items:
            self.channels = 3 if any(item.channels == 3 for item in self.items) else 1

    def prune_labels(self) -> None:
        """Drop label names no item uses any more, remapping item label indices."""
        used = sorted({item.label for item in self.items if item.label is not None})
        remap = {old: new for new, old in enumerate(used)}
        self.label_names = [self.label_names[old] for old in used]
        for item in self.items:
            if item.label is not None:
                item.label = remap[item.label]

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "kind": self.kind,
            "created_at": self.created_at,
            "count": self.count,
            "channels": self.channels,
            "label_names": list(self.label_names),
            "revision": self.revision,
            "items": [item.to_json() for item in self.items],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Manifest:
        label_names = [str(label) for label in raw.get("label_names", [])]
        items = [ManifestItem.from_json(entry, len(label_names)) for entry in raw.get("items", [])]
        kind = str(raw.get("kind", "user"))
        channels = int(raw.get("channels", 3))
        if kind not in ("builtin", "user") or channels not in (1, 3):
            raise ValueError(f"bad kind/channels {kind!r}/{channels!r}")
        return cls(
            name=str(raw["name"]),
            title=str(raw.get("title", "")),
            description=str(raw.get("description", "")),
            kind=kind,
            created_at=str(raw.get("created_at", "")),
            channels=channels,
            label_names=label_names,
            items=items,
            revision=str(raw.get("revision", "")) or new_revision(),
        )

    # -- disk ---------------------------------------------------------------------------------

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """Read ``folder/library.json``; a damaged file is a ``MosaicError`` saying so.

        The parsed JSON is kept while the file's size, time and inode stay the same (it is replaced, never
        edited in place, see :meth:`write`), so a query that asks for a library several times parses its
        manifest once; every call gets its own :class:`Manifest`."""
        return _checked(folder, lambda raw: cls.from_json(raw))

    @classmethod
    def read_header(cls, folder: Path) -> tuple[Manifest, int]:
        """The manifest without its items, and how many items it lists: what listing libraries needs,
        without checking every item of a library of 100,000 pictures (0.4 s)."""

        def header(raw: dict[str, Any]) -> tuple[Manifest, int]:
            items = raw.get("items", [])
            if not isinstance(items, list):
                raise ValueError("items is not a list")
            return cls.from_json({**raw, "items": []}), len(items)

        return _checked(folder, header)

    def write(self, folder: Path) -> None:
        """Write ``folder/library.json`` atomically (temporary file + ``os.replace``)."""
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".library.", suffix=".json.tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self.to_json(), handle, ensure_ascii=False, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, folder / MANIFEST_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _checked(folder: Path, make: Callable[[dict[str, Any]], T]) -> T:
    """``make(parsed library.json)``; a damaged file is a ``MosaicError`` saying so."""
    path = folder / MANIFEST_NAME
    try:
        return make(_parsed(path))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("damaged library manifest %s: %s", path, exc)
        raise MosaicError(
            f"The library '{folder.name}' is damaged (its library.json could not be read). "
            "Delete it and import the images again."
        ) from exc
