"""Alembic environment: runs on the connection handed over by store.db.upgrade."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through `ccn-bot db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
