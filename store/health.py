"""A liveness probe of the database, for the bot's /healthz."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def ping(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Run `SELECT 1` on a fresh connection; raises if the database cannot answer."""
    async with sessions() as session:
        value = (await session.execute(text("SELECT 1"))).scalar_one()
    if value != 1:
        raise RuntimeError(f"SELECT 1 returned {value!r}")
