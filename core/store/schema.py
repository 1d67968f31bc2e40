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
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_ADVISORY_KEY = 73_105_157  # any constant: one lock for "migrating the Mosaic schema"
#: the newest migration's revision (a test compares it with the migrations folder): a database already at it
#: is recognised with one query, without loading Alembic (a third of a second at the start of every command)
HEAD = "0004"


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision, read from the migrations folder."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _at_head(engine: Engine) -> bool:
    """Whether the database is at :data:`HEAD` already (a database being migrated is not, until it is)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    except SQLAlchemyError:  # no version table yet: a new database
        return False


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database at ``engine`` to ``revision`` (default: the newest)."""
    if revision == "head" and _at_head(engine):
        return
    from alembic import command

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
