"""The store: every generation persisted, atomically.

A write goes in three moves: (1) the PNG (and the ``.npz`` of side arrays) are written to
``images/.staging``; (2) the record is committed to the database; (3) the files are renamed into
place. :meth:`Store.recover`, run when a store opens, finishes interrupted writes: staged files
whose record exists are moved into place, staged files without a record are deleted, and a
record whose image is gone is removed. So a crash never leaves a record without its image, or
an image without its record.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import create_engine, delete, event, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session, sessionmaker

from core import config
from core.engines.base import GeneratedImage
from core.errors import BadInputError
from core.images import save_png
from core.metadata import png_text
from core.store import schema
from core.store.models import GenerationRecord

logger = logging.getLogger(__name__)

STAGING = ".staging"
#: staged files younger than this may belong to a write in progress in another process
STALE_SECONDS = 600.0

_engines: dict[str, SAEngine] = {}
_engines_lock = threading.Lock()


def _sql_engine(url: str) -> SAEngine:
    """One SQLAlchemy engine per URL and process."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            kwargs: dict[str, Any] = {}
            if url.startswith("sqlite"):
                kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            engine = create_engine(url, **kwargs)
            if url.startswith("sqlite"):
                event.listen(engine, "connect", _sqlite_pragmas)
            schema.upgrade(engine)
            _engines[url] = engine
        return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # enforce foreign keys as PostgreSQL does, so that an ordering mistake fails on SQLite too
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def dispose_engine(url: str) -> None:
    """Close the pooled connections of ``url``'s engine and forget it (tests, shutdown)."""
    with _engines_lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


def _fsync_write(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Store:
    """Generations in a database plus PNG files under the data directory."""

    def __init__(self, url: str | None = None, images_dir: Path | None = None, recover: bool = True) -> None:
        self.url = url or config.database_url()
        self.images_dir = Path(images_dir) if images_dir else config.images_dir()
        self.staging_dir = self.images_dir / STAGING
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self._sessions = sessionmaker(bind=_sql_engine(self.url), expire_on_commit=False)
        if recover:
            self.recover()

    # ----------------------------------------------------------------- writing
    def save(
        self, images: Sequence[GeneratedImage], title: str = "", batch_id: str | None = None
    ) -> list[GenerationRecord]:
        """Persist generated images (one batch). Returns their records."""
        batch_id = batch_id or uuid.uuid4().hex[:12]
        records = []
        for item in images:
            records.append(self._save_one(item, title=title, batch_id=batch_id))
        return records

    def _save_one(self, item: GeneratedImage, title: str, batch_id: str) -> GenerationRecord:
        record_id = uuid.uuid4().hex[:16]
        params = dict(item.params)
        params.setdefault("engine", item.engine)
        params.setdefault("seed", item.seed)
        params["id"] = record_id
        png = io.BytesIO()
        save_png(item.image, png, png_text(params))
        image_file = f"{record_id}.png"
        arrays_file = f"{record_id}.npz" if item.arrays else None

        staged = [(self.staging_dir / image_file, self.images_dir / image_file, png.getvalue())]
        if arrays_file:
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **item.arrays)
            staged.append((self.staging_dir / arrays_file, self.images_dir / arrays_file, buffer.getvalue()))
        for temp, _final, data in staged:
            _fsync_write(temp, data)

        record = GenerationRecord(
            id=record_id,
            batch_id=batch_id,
            engine=item.engine,
            seed=int(item.seed),
            width=item.image.width,
            height=item.image.height,
            library=params.get("library"),
            title=title,
            params=params,
            image_file=image_file,
            arrays_file=arrays_file,
        )
        try:
            with self._sessions.begin() as session:
                session.add(record)
        except Exception:
            for temp, _final, _data in staged:
                temp.unlink(missing_ok=True)
            raise
        for temp, final, _data in staged:
            if temp.exists():  # another process's recover() may have moved it already
                os.replace(temp, final)
        logger.info("saved generation %s (%s)", record_id, item.engine)
        return record

    # ----------------------------------------------------------------- reading
    def list(self, limit: int | None = None, engine: str | None = None) -> list[GenerationRecord]:
        """Records, newest first."""
        with self._sessions() as session:
            query = select(GenerationRecord).order_by(GenerationRecord.created_at.desc(), GenerationRecord.id)
            if engine:
                query = query.where(GenerationRecord.engine == engine)
            if limit:
                query = query.limit(limit)
            return list(session.scalars(query))

    def get(self, record_id: str) -> GenerationRecord:
        with self._sessions() as session:
            record = session.get(GenerationRecord, record_id)
        if record is None:
            raise BadInputError(f"No saved image with id {record_id!r}. It may have been deleted.")
        return record

    def count(self) -> int:
        with self._sessions() as session:
            return len(session.scalars(select(GenerationRecord.id)).all())

    def image_path(self, record: GenerationRecord) -> Path:
        return self.images_dir / record.image_file

    def image_bytes(self, record: GenerationRecord) -> bytes:
        return self.image_path(record).read_bytes()

    def image(self, record: GenerationRecord) -> Image.Image:
        with Image.open(self.image_path(record)) as img:
            img.load()
            return img.copy()

    def arrays(self, record: GenerationRecord) -> dict[str, np.ndarray]:
        """Side arrays saved with the image (empty dict if none)."""
        if not record.arrays_file:
            return {}
        path = self.images_dir / record.arrays_file
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    # ----------------------------------------------------------------- deleting
    def delete(self, record_id: str) -> None:
        record = self.get(record_id)
        with self._sessions.begin() as session:
            session.execute(delete(GenerationRecord).where(GenerationRecord.id == record_id))
        for name in (record.image_file, record.arrays_file):
            if name:
                (self.images_dir / name).unlink(missing_ok=True)

    # ----------------------------------------------------------------- recovery
    def recover(self, stale_seconds: float = STALE_SECONDS) -> dict[str, int]:
        """Finish or undo interrupted writes (see module docstring). Returns counts."""
        counts = {"completed": 0, "discarded": 0, "orphan_records": 0}
        with self._sessions() as session:
            known = {r.id: r for r in session.scalars(select(GenerationRecord))}
        files_by_record: dict[str, list[Path]] = {}
        for temp in self.staging_dir.iterdir():
            files_by_record.setdefault(temp.stem, []).append(temp)
        now = time.time()
        for record_id, temps in files_by_record.items():
            if record_id in known:
                for temp in temps:
                    os.replace(temp, self.images_dir / temp.name)
                counts["completed"] += 1
            elif all(now - t.stat().st_mtime > stale_seconds for t in temps):
                for temp in temps:
                    temp.unlink(missing_ok=True)
                counts["discarded"] += 1
        missing = [rid for rid, r in known.items() if not (self.images_dir / r.image_file).exists()]
        if missing:
            with self._sessions.begin() as session:
                session.execute(delete(GenerationRecord).where(GenerationRecord.id.in_(missing)))
            counts["orphan_records"] = len(missing)
        if any(counts.values()):
            logger.warning("store recovery: %s", counts)
        return counts

    def session(self) -> Session:
        """A raw SQLAlchemy session, for other modules' tables."""
        return self._sessions()
