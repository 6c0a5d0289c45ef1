"""Alembic environment: runs on the connection handed over by store.db.upgrade."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection

from store.models import Base, UTCDateTime

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through `ccn-bot db upgrade`")


def render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Migrations spell UTCDateTime as the plain column type it stores."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
