"""The store: every generation persisted, atomically.

A write goes in three moves: (1) the PNG (and the ``.npz`` of side arrays) are written to
``images/.staging``; (2) the record is committed to the database; (3) the files are renamed into
place. :meth:`Store.recover`, run when a store opens, finishes interrupted writes: staged files
whose record exists are moved into place, and stale staged files without a record are deleted.
So a crash never leaves a staged image half done.

Recovery never deletes a committed record. A record whose image file is not in this data folder
(the file was deleted by hand, or this process uses another ``MOSAIC_DATA_DIR`` with the same
database) is reported (:meth:`Store.missing`, a warning in the log), never erased: the files may
well be in the other data folder.
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
from sqlalchemy import create_engine, delete, event, func, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from core import config
from core.engines.base import GeneratedImage
from core.errors import BadInputError, MosaicError
from core.images import save_png
from core.metadata import png_text
from core.store import schema
from core.store.models import GenerationRecord

logger = logging.getLogger(__name__)

STAGING = ".staging"
#: staged files younger than this may belong to a write in progress in another process
STALE_SECONDS = 600.0
#: the most records one listing returns
MAX_LIST = 100_000

_engines: dict[str, SAEngine] = {}
_engines_lock = threading.Lock()


def _sql_engine(url: str) -> SAEngine:
    """One SQLAlchemy engine per URL and process; its tables created (and old ones upgraded).

    Raises :class:`MosaicError` with what to do when the URL is malformed, names a database kind
    whose driver is not installed, or the database cannot be reached or read.
    """
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _open_engine(url)
            _engines[url] = engine
        return engine


def _shown_url(url: str) -> str:
    """The URL as it may be shown: without its password; not repeated at all when it cannot be parsed."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL that cannot be parsed is not echoed (it may hold a password)
        return "(the value set)"


def _open_engine(url: str) -> SAEngine:
    setting = f"The database address in {config.DATABASE_URL_ENV}"
    from_setting = bool(os.environ.get(config.DATABASE_URL_ENV))
    fix = (
        f"Correct {config.DATABASE_URL_ENV}, or remove it to use the built-in database in the data folder."
        if from_setting
        else ""
    )
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise MosaicError(
            f"{setting} is not a valid address (expected e.g. postgresql+psycopg://user:password@host/name "
            f"or sqlite:///path/to/file.db). {fix}"
        ) from err
    shown = _shown_url(url)
    is_sqlite = parsed.get_backend_name() == "sqlite"
    kwargs: dict[str, Any] = {}
    if is_sqlite:
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        kwargs["connect_args"] = {"connect_timeout": 15}  # an unreachable server: a message, not a long hang
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as err:
        raise MosaicError(
            f"{setting} ({shown}) names a kind of database the studio cannot use here "
            f"(supported: sqlite, postgresql with the psycopg driver). {fix}"
        ) from err
    except (ArgumentError, TypeError, ValueError) as err:
        raise MosaicError(
            f"{setting} ({shown}) has settings the database driver does not accept: {err}. {fix}"
        ) from err
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        schema.upgrade(engine)  # the tables, made or migrated (core/store/migrations)
    except DBAPIError as err:
        engine.dispose()
        raise MosaicError(f"{_connect_problem(shown, is_sqlite, err)} {fix}".strip()) from err
    except SQLAlchemyError as err:
        engine.dispose()
        raise MosaicError(f"The database {shown} could not be opened ({type(err).__name__}). {fix}".strip()) from err
    return engine


def _connect_problem(shown: str, is_sqlite: bool, err: DBAPIError) -> str:
    detail = str(getattr(err, "orig", err)).strip().splitlines()
    first = detail[0] if detail else type(err).__name__
    if is_sqlite and "not a database" in first.lower():
        return (
            f"The database file {shown.removeprefix('sqlite:///')} is damaged or is not a database file "
            "(move it away to start with an empty gallery, or restore it from a backup)."
        )
    if is_sqlite:
        return f"The database file {shown.removeprefix('sqlite:///')} could not be opened ({first})."
    return f"The database server at {shown} could not be reached or refused the connection ({first}). Is it running?"


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


class ImageFileError(BadInputError, OSError):
    """A record's image file is missing or unreadable (a :class:`MosaicError` and an ``OSError``)."""


class Store:
    """Generations in a database plus PNG files under the data directory, seen from one workspace.

    Every query of the store (and of the campaign store and job queue built on it) is scoped to
    ``workspace``: an image of another workspace is reported exactly like a missing one. This is
    the one place that rule lives; pages and commands only choose the workspace.
    """

    def __init__(
        self,
        url: str | None = None,
        images_dir: Path | None = None,
        recover: bool = True,
        workspace: str = config.DEFAULT_WORKSPACE,
    ) -> None:
        self.workspace = config.check_workspace_name(workspace)
        self.url = url or config.database_url()
        self.images_dir = Path(images_dir) if images_dir else config.images_dir()
        self.staging_dir = self.images_dir / STAGING
        try:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise MosaicError(
                f"The image folder {self.images_dir} could not be prepared ({err.strerror or err}). "
                "Check that the data folder (MOSAIC_DATA_DIR) is a folder you can write to."
            ) from err
        self._sessions = sessionmaker(bind=_sql_engine(self.url), expire_on_commit=False)
        if recover:
            self.recover()

    # ----------------------------------------------------------------- writing
    def save(
        self, images: Sequence[GeneratedImage], title: str = "", batch_id: str | None = None
    ) -> list[GenerationRecord]:
        """Persist generated images (one batch). Returns their records.

        Each image is committed on its own, so images saved before a crash stay saved. To save the
        images of one batch as they finish, call :meth:`save_one` (or this) with the same ``batch_id``.
        """
        batch_id = batch_id or new_batch_id()
        return [self.save_one(item, title=title, batch_id=batch_id) for item in images]

    def save_one(self, item: GeneratedImage, title: str = "", batch_id: str | None = None) -> GenerationRecord:
        """Persist one image (staged, committed, moved into place) and return its record."""
        return self._save_one(item, title=title, batch_id=batch_id or new_batch_id())

    def in_workspace(self, workspace: str) -> Store:
        """The same database and image folder, seen from another workspace (no recovery run again)."""
        return Store(url=self.url, images_dir=self.images_dir, recover=False, workspace=workspace)

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
            workspace=self.workspace,
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
        except BaseException:
            for temp, _final, _data in staged:
                temp.unlink(missing_ok=True)
            raise
        for temp, final, _data in staged:
            try:
                os.replace(temp, final)
            except FileNotFoundError:  # another process's recover() moved it already
                if not final.exists():
                    raise
        logger.info("saved generation %s (%s)", record_id, item.engine)
        return record

    # ----------------------------------------------------------------- reading
    def list(self, limit: int | None = None, engine: str | None = None) -> list[GenerationRecord]:
        """Records, newest first; at most ``limit`` (a positive whole number) when given."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise BadInputError(f"The number of images to list must be a whole number from 1 (got {limit!r}).")
        with self._sessions() as session:
            query = self._scoped(select(GenerationRecord)).order_by(
                GenerationRecord.created_at.desc(), GenerationRecord.id
            )
            if engine:
                query = query.where(GenerationRecord.engine == engine)
            if limit is not None:
                query = query.limit(min(limit, MAX_LIST))
            return list(session.scalars(query))

    def get(self, record_id: str) -> GenerationRecord:
        """The record of a saved image of this workspace; another workspace's is "no saved image" too."""
        with self._sessions() as session:
            record = session.get(GenerationRecord, str(record_id))
        if record is None or record.workspace != self.workspace:
            raise BadInputError(f"No saved image with id {record_id!r}. It may have been deleted.")
        return record

    def count(self) -> int:
        with self._sessions() as session:
            query = self._scoped(select(func.count()).select_from(GenerationRecord))
            return int(session.scalar(query) or 0)

    def _scoped(self, query: Any) -> Any:
        """``query`` limited to this workspace's images."""
        return query.where(GenerationRecord.workspace == self.workspace)

    def owns(self, record_ids: Sequence[str]) -> set[str]:
        """Those of ``record_ids`` that are images of this workspace."""
        if not record_ids:
            return set()
        with self._sessions() as session:
            query = self._scoped(select(GenerationRecord.id).where(GenerationRecord.id.in_(list(record_ids))))
            return set(session.scalars(query))

    def image_path(self, record: GenerationRecord) -> Path:
        return self.images_dir / record.image_file

    def has_file(self, record: GenerationRecord) -> bool:
        """Whether the record's image file is in this data folder."""
        return self.image_path(record).is_file()

    def _missing_error(self, record: GenerationRecord) -> ImageFileError:
        return ImageFileError(
            f"The image file of saved image {record.id} is missing from {self.images_dir}. The record is kept: "
            "if the studio used another data folder (MOSAIC_DATA_DIR) with this database, use that folder again; "
            "otherwise delete this entry from the Gallery."
        )

    def image_bytes(self, record: GenerationRecord) -> bytes:
        """The PNG file's bytes; :class:`ImageFileError` if the file is missing."""
        try:
            return self.image_path(record).read_bytes()
        except FileNotFoundError as err:
            raise self._missing_error(record) from err

    def image(self, record: GenerationRecord) -> Image.Image:
        """The image; :class:`ImageFileError` if the file is missing or cannot be read."""
        try:
            with Image.open(self.image_path(record)) as img:
                img.load()
                return img.copy()
        except FileNotFoundError as err:
            raise self._missing_error(record) from err
        except (OSError, ValueError) as err:
            raise ImageFileError(
                f"The image file of saved image {record.id} is damaged and cannot be shown ({err})."
            ) from err

    def arrays(self, record: GenerationRecord) -> dict[str, np.ndarray]:
        """Side arrays saved with the image (empty dict if none)."""
        if not record.arrays_file:
            return {}
        path = self.images_dir / record.arrays_file
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}

    def missing(self) -> list[GenerationRecord]:
        """Records whose image file is not in this data folder (kept, never deleted by the store)."""
        with self._sessions() as session:
            records = list(session.scalars(self._scoped(select(GenerationRecord))))
        return [r for r in records if not self.has_file(r)]

    # ----------------------------------------------------------------- deleting
    def delete(self, record_id: str) -> None:
        record = self.get(record_id)
        with self._sessions.begin() as session:
            session.execute(self._scoped(delete(GenerationRecord).where(GenerationRecord.id == record.id)))
        for name in (record.image_file, record.arrays_file):
            if name:
                (self.images_dir / name).unlink(missing_ok=True)

    # ----------------------------------------------------------------- recovery
    def recover(self, stale_seconds: float = STALE_SECONDS) -> dict[str, int]:
        """Finish or undo interrupted writes of this data folder (see module docstring). Returns counts.

        ``completed``: staged writes whose record was committed, moved into place; ``discarded``: stale
        staged files without a record, deleted; ``missing``: records whose image file is not in this data
        folder, reported only (a record is never deleted here).
        """
        counts = {"completed": 0, "discarded": 0, "missing": 0}
        files_by_record: dict[str, list[Path]] = {}
        for temp in self.staging_dir.iterdir():
            files_by_record.setdefault(temp.stem, []).append(temp)
        known: set[str] = set()
        if files_by_record:
            with self._sessions() as session:
                query = select(GenerationRecord.id).where(GenerationRecord.id.in_(list(files_by_record)))
                known = set(session.scalars(query))
        now = time.time()
        for record_id, temps in files_by_record.items():
            if record_id in known:
                for temp in temps:
                    try:
                        os.replace(temp, self.images_dir / temp.name)
                    except FileNotFoundError:  # the writing process finished the move itself
                        pass
                counts["completed"] += 1
            elif all(_age(t, now) > stale_seconds for t in temps):
                for temp in temps:
                    temp.unlink(missing_ok=True)
                counts["discarded"] += 1
        missing = self.missing()
        counts["missing"] = len(missing)
        if counts["completed"] or counts["discarded"]:
            logger.warning("store recovery: %s", counts)
        if missing:
            logger.warning(
                "%d saved image(s) have no image file in %s (kept; e.g. %s). Was another data folder used "
                "with this database?",
                len(missing),
                self.images_dir,
                ", ".join(r.id for r in missing[:3]),
            )
        return counts

    def session(self) -> Session:
        """A raw SQLAlchemy session, for other modules' tables."""
        return self._sessions()


def new_batch_id() -> str:
    """A fresh id for the images of one generation command."""
    return uuid.uuid4().hex[:12]


def _age(path: Path, now: float) -> float:
    """Seconds since ``path`` was written; 0 when it is gone (another process moved it just now)."""
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
