"""aiosqlite with one trip to the connection's thread per SQL statement.

SQLAlchemy's aiosqlite adapter asks aiosqlite for a cursor, executes, fetches the rows and
closes the cursor: four trips to the connection's thread for one statement, each a future, a
queue hand-off, a wake-up of the event loop through its self-pipe and a turn of the loop. Under a
rush the update's transaction waited for those turns while holding SQLite's one writer lock
(py-spy, 500 people: a third of the bot's time in the hand-offs). Here a statement is executed,
its rows fetched and its sqlite3 cursor closed in one trip; the cursor SQLAlchemy sees holds
the results. Every call to SQLite still runs in the connection's own thread, as with aiosqlite.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL


class OneTripCursor:
    """The results of one statement, run in one trip to the thread (see the module)."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1
        self._rows: list[Any] = []

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None

    def _run(self, method: str, sql: str, parameters: Any) -> None:
        """In the connection's thread: the statement, all its rows, the cursor closed."""
        cursor = self._connection._conn.cursor()
        try:
            getattr(cursor, method)(sql, parameters)
            self.description = cursor.description
            self._rows = cursor.fetchall() if cursor.description else []
            self.rowcount = cursor.rowcount
            self.lastrowid = cursor.lastrowid
        finally:
            cursor.close()

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneTripCursor:
        await self._trip("execute", sql, parameters or ())
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneTripCursor:
        await self._trip("executemany", sql, parameters)
        return self

    async def _trip(self, method: str, sql: str, parameters: Any) -> None:
        await self._connection._execute(self._run, method, sql, parameters)  # type: ignore[no-untyped-call]

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        size = self.arraysize if size is None else size
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    async def fetchall(self) -> Sequence[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._each()

    async def _each(self) -> AsyncIterator[Any]:
        while self._rows:
            yield self._rows.pop(0)


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors take one trip per statement."""

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def rollback(self) -> None:
        """No trip when there is nothing to roll back: the pool rolls back every connection
        it takes back, after a commit too (sqlite3 would do nothing then either)."""
        if self._connection is not None and not self._connection.in_transaction:
            return
        await super().rollback()


def one_trip_connect(url: URL) -> Callable[[], Awaitable[OneTripConnection]]:
    """create_async_engine's `async_creator` for a SQLite URL: the connection SQLAlchemy's
    aiosqlite dialect would open (its arguments), as a OneTripConnection."""
    args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(partial(sqlite3.connect, *args, **kwargs), 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own
        await connection
        return connection

    return connect
