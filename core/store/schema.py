"""The database schema, brought up to date with Alembic migrations (SQLite and PostgreSQL alike).

:func:`upgrade` runs when a process first opens a database: it applies the migrations in
``core/store/migrations/versions`` that the database has not seen, so upgrading a studio keeps its
gallery, campaigns and jobs. A database made before migrations existed (its tables made directly)
is adopted: the first revision only creates the tables it lacks, the later ones change what needs it.

Two processes opening a fresh database at once must not both create its tables: the upgrade holds a
lock (a PostgreSQL advisory lock; on SQLite, an exclusive transaction of its own).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_KEY = 73_105_157  # any constant: one lock for "migrating the Mosaic schema"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` (default: the newest)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _ADVISORY_KEY})
            connection.commit()
        elif connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # one migrating process at a time
        try:
            if current(connection) is None and "generations" in inspect(connection).get_table_names():
                logger.warning("database made before migrations: adopting its tables")
            if current(connection) != head() or revision != "head":
                command.upgrade(alembic_config(connection), revision)
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _ADVISORY_KEY})
                connection.commit()
