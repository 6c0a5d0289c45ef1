"""One worker at a time for a job that must not run in two places (the reminder scheduler).

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own for as
long as it lives; when its process dies the connection closes, PostgreSQL releases the lock and
the next worker to try takes the lead. SQLite is one machine's file: every worker leads (and the
reminder ledger still sends each reminder once)."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

REMINDERS = 0x63636E01  # "ccn" 1: the advisory lock key of the reminder scheduler


class Leadership:
    def __init__(self, engine: AsyncEngine, key: int = REMINDERS) -> None:
        self.engine = engine
        self.key = key
        self._conn: AsyncConnection | None = None

    @property
    def shared(self) -> bool:
        """Whether several workers can share this database (PostgreSQL)."""
        return self.engine.dialect.name == "postgresql"

    async def held(self) -> bool:
        """True if this worker leads now, taking the lead if nobody holds it."""
        if not self.shared:
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
                return True
            except (DBAPIError, OperationalError):
                log.warning("lost the connection that held the lead; trying again")
                await self._drop()
        conn = await self.engine.connect()
        try:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
            ).scalar()
            await conn.commit()  # the lock belongs to the session, not the transaction
        except BaseException:
            await conn.close()
            raise
        if got:
            self._conn = conn
            log.info("this worker now runs the reminders")
            return True
        await conn.close()
        return False

    async def release(self) -> None:
        if self._conn is None:
            return
        try:
            await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            await self._conn.commit()
        except (DBAPIError, OperationalError):
            pass
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.invalidate()
            except Exception:  # the connection is gone already
                log.debug("closing a dead leader connection", exc_info=True)
