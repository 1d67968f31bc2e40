"""The migrations make exactly the tables the models describe, and upgrade an older studio's database."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import core.accounts.models  # noqa: F401 - registers the account and workspace tables on Base
import core.campaigns.models  # noqa: F401 - registers the campaign tables on Base
import core.jobs.models  # noqa: F401 - registers the job tables on Base
from core.store import Store, schema
from core.store.models import Base


def _engine(url: str):
    from core.store.store import _sqlite_pragmas

    engine = create_engine(url)
    if url.startswith("sqlite"):
        from sqlalchemy import event

        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def test_the_migrated_schema_is_the_models_schema(database_url):
    engine = _engine(database_url)
    try:
        schema.upgrade(engine)
        with engine.connect() as connection:
            assert schema.current(connection) == schema.head()
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = [d for d in compare_metadata(context, Base.metadata) if not _harmless(d)]
        assert diff == []
    finally:
        engine.dispose()


def _harmless(difference) -> bool:
    """SQLite reports BIGINT columns as INTEGER: the same 64-bit storage."""
    if isinstance(difference, list) and difference and difference[0][0] == "modify_type":
        _op, _schema, _table, _column, _info, old, new = difference[0]
        return {type(old).__name__, type(new).__name__} <= {"INTEGER", "Integer", "BIGINT", "BigInteger"}
    return False


def test_an_older_database_keeps_its_gallery_and_gains_the_new_tables(database_url):
    engine = _engine(database_url)
    try:
        schema.upgrade(engine, "0001")  # the schema of the studio before this release, with one image
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM alembic_version"))  # made before migrations existed
            connection.execute(
                text(
                    "INSERT INTO generations (id, created_at, batch_id, engine, seed, width, height, title, params, "
                    "image_file) VALUES ('old1', '2026-01-01 10:00:00', 'b', 'local-score', 7, 8, 8, 'kept', '{}', "
                    "'old1.png')"
                )
            )
        from core.store.store import dispose_engine

        dispose_engine(database_url)
        store = Store(recover=False)
        assert store.get("old1").title == "kept"
        with engine.connect() as connection:
            assert schema.current(connection) == schema.head()
            assert {"jobs", "workers", "campaigns"} <= set(inspect(connection).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.timeout(120)
def test_four_processes_opening_a_fresh_database_at_once_all_succeed(database_url, isolated_data_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "core", "gallery", "--json"],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=100) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [r[1][-500:] for r in results]


def test_the_newest_revision_is_known_without_reading_the_migrations():
    """``schema.HEAD`` lets a process recognise an up-to-date database without loading Alembic; it must name
    the newest migration (add a migration: move HEAD to it)."""
    assert schema.HEAD == schema.head()


def test_a_database_at_the_newest_revision_opens_without_loading_alembic(database_url, isolated_data_dir):
    """Loading Alembic and reading the migrations took a third of a second at the start of every command; an
    up-to-date database is recognised with one query. One a revision behind is still migrated."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    engine = _engine(database_url)
    try:
        schema.upgrade(engine, "0003")  # a studio one release behind
    finally:
        engine.dispose()
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root))
    code = "import sys; from core.store import Store; Store(recover=False); print('alembic' in sys.modules)"
    loaded = []
    for _ in range(2):
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, run.stderr[-2000:]
        loaded.append(run.stdout.strip())
    assert loaded == ["True", "False"]  # migrated by the first process; the second only checks the revision
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            assert schema.current(connection) == schema.HEAD
            assert "workspaces" in inspect(connection).get_table_names()
    finally:
        engine.dispose()
