"""Alembic environment: migrations run on the connection handed over by :func:`core.store.schema.upgrade`."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the studio always hands a connection over
    raise RuntimeError("Run migrations through core.store.schema.upgrade().")

context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
