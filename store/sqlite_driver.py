"""aiosqlite with one trip to the connection's thread per SQL statement.

SQLAlchemy's aiosqlite adapter asks aiosqlite for a cursor, executes, fetches the rows and
closes the cursor: four trips to the connection's thread for one statement, each a future, a
queue hand-off, a wake-up of the event loop through its self-pipe and a turn of the loop. Under a
rush the update's transaction waited for those turns while holding SQLite's one writer lock
(py-spy, 500 people: a third of the bot's time in the hand-offs). Here a statement is executed,
its rows fetched and its sqlite3 cursor closed in one trip; the cursor SQLAlchemy sees holds
the results.

Inside store.db.unit_of_work (the process's writer turn held) even that trip is skipped for a
statement that cannot wait on another process: a read (WAL: readers wait for no writer) or any
statement after the transaction's first write (the write lock is then this connection's). Those
run on the event loop's thread, taking microseconds. The first write may have to wait up to
busy_timeout for another process (a CLI command, a restore): it is tried on the loop without
waiting, and only if that process holds the lock goes to the connection's thread to wait. The
commit waits for no other process in WAL mode and runs on the loop too
(`OneTripConnection.commit`). An update's transaction took about six trips and held the turn
through as many turns of a busy loop: 16 ms a transaction under the saturation load, about 60
transactions a second at most; with two trips left (the first write and the commit), a rush at
500 people still had p95 from 0.2 to 1.7 s, the turns queued behind each other; with none,
under 0.2 s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import URL

from store.timings import STATS

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock (store.db)
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}

# Set by store.db.unit_of_work while it holds the process's writer turn (see `_inline`).
INLINE: ContextVar[bool] = ContextVar("ccn_sqlite_inline", default=False)


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
        if self._inline(sql):
            self._run(method, sql, parameters)
            return
        if INLINE.get() and self._first_write_inline(method, sql, parameters):
            return
        await self._connection._execute(self._run, method, sql, parameters)  # type: ignore[no-untyped-call]

    def _first_write_inline(self, method: str, sql: str, parameters: Any) -> bool:
        """The transaction's first write on the event loop's thread if SQLite's write lock is
        free now: tried without waiting (busy_timeout 0). Another process holding it (a CLI
        command, a restore) leaves the statement undone and the transaction just begun, with
        nothing read in it: the caller then runs it in the connection's thread, where it waits
        up to busy_timeout as before. False: not run."""
        connection = self._connection._connection
        if connection is None or connection.in_transaction:
            return False
        connection.execute("PRAGMA busy_timeout=0")
        try:
            self._run(method, sql, parameters)
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _BUSY:  # extended codes too
                raise
            return False
        finally:
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return True

    def _inline(self, sql: str) -> bool:
        """Run on the event loop's thread, without the trip, a statement that cannot wait on
        another process's lock: inside a transaction that has written already (SQLite's write
        lock is this connection's), or a read (WAL: readers wait for no writer). The write
        that begins a transaction may wait for another process (`_first_write_inline`)."""
        if not INLINE.get():
            return False
        connection = self._connection._connection
        return connection is not None and (
            connection.in_transaction or sql.lstrip()[:6].upper() == "SELECT"
        )

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


# Commits between two checkpoints: SQLite's own default is one every 1,000 pages of log, and
# an update's transaction writes a few pages.
CHECKPOINT_EVERY = 200


def _checkpoint(connect: Callable[[], sqlite3.Connection]) -> None:
    """In a worker thread, on a connection of its own: copy the log into the database file as
    far as readers allow, waiting for nobody (PASSIVE)."""
    connection = connect()
    try:
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()


class Checkpoints:
    """The log's checkpoints of one database, off the event loop and off the writer turn.

    SQLite copies the write-ahead log back into the database file in the commit that takes the
    log past 1,000 pages (wal_autocheckpoint), and syncs the file: in a rush here such a
    commit took 50 to 930 ms every few seconds, a pause for every chat once commits ran on
    the loop, and for every transaction before (they wait for the writer turn). Here the
    connections have wal_autocheckpoint off (store.db), and every CHECKPOINT_EVERY commits of
    this process a PASSIVE checkpoint runs in a worker thread on a connection of its own,
    while transactions go on (WAL: a checkpoint and the writer do not wait for each other).
    One at a time; the last connection to close checkpoints what is left, as SQLite does."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self.connect = connect
        self.commits = 0
        self.running: asyncio.Task[None] | None = None

    def committed(self) -> None:
        self.commits += 1
        if self.commits < CHECKPOINT_EVERY or self.running is not None:
            return
        self.commits = 0
        self.running = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        began = time.perf_counter()
        try:
            await asyncio.to_thread(_checkpoint, self.connect)
        except sqlite3.Error as exc:  # the next one tries again
            log.warning("checkpoint of the SQLite log failed: %s", exc)
        finally:
            self.running = None
            if STATS is not None:
                STATS.add("sqlite/checkpoint", time.perf_counter() - began)


def _fsync(path: str) -> None:
    """The file's written pages to the disk; a missing file has none (SQLite removes the log
    when its last connection closes, after copying it into the database file)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# The logs' syncs have a thread of their own: in the default executor they queued behind the
# photos' writes and syncs (handlers.conversation), in the seconds when everyone sends one.
_SYNCS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccn-log-sync")


class Durability:
    """Group commit for one database: a commit made durable after the writer turn, in a
    thread, one sync of the log for every commit made before it began.

    The connections commit with synchronous=NORMAL (store.db): the commit appends its pages
    to the write-ahead log and returns, syncing nothing; the transaction is safe from a crash
    of this process (the pages are the kernel's), not yet from one of the machine. Then, the
    writer turn released, `wait` returns once a sync of the log that began after the commit
    has ended, which is what synchronous=FULL's commit does itself, holding the turn and the
    event loop. In a rush the sync took 0.6 ms at the median, but up to 220 ms when the disk
    was busy (the photos' files, a checkpoint): every chat then waited. In one such run the
    commit was a fifth of the bot's samples in its first 16 s (py-spy), and those first 10 s
    had p95 1.4 s; with another program writing to the disk, the bot handled 48 of the 87
    updates a second offered (p95 7.5 s) where with the group commit it kept up (p95 0.35 s).
    The checkpoints keep their own syncs (the connection of `Checkpoints` is FULL; SQLite
    syncs the log before a checkpoint and the database file after it)."""

    def __init__(self, wal: str) -> None:
        self.wal = wal
        self.committed = 0  # commits of a write, counted in the writer turn
        self.synced = 0  # of those, the ones a finished sync covers
        self._syncing: asyncio.Task[None] | None = None

    async def wait(self, commit: int) -> None:
        """Until commit number `commit` is on the disk."""
        while self.synced < commit:
            running = self._syncing
            if running is None or running.get_loop() is not asyncio.get_running_loop():
                running = self._syncing = asyncio.create_task(self._sync())
            await asyncio.shield(running)

    async def _sync(self) -> None:
        covers = self.committed
        began = time.perf_counter()
        try:
            await asyncio.get_running_loop().run_in_executor(_SYNCS, _fsync, self.wal)
            self.synced = max(self.synced, covers)
        finally:
            self._syncing = None
            if STATS is not None:
                STATS.add("sqlite/log_sync", time.perf_counter() - began)


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors take one trip per statement."""

    checkpoints: Checkpoints | None = None
    durability: Durability | None = None

    def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def commit(self) -> None:
        """Inside store.db.unit_of_work, on the event loop's thread: held through a trip, the
        process's writer turn waited for a turn of a busy loop after every commit, and in a
        rush the turns queued behind each other. In WAL mode with synchronous=NORMAL a commit
        appends to the log (0.4 ms at the median of a rush here) and syncs nothing:
        unit_of_work waits for `Durability` after the turn; copying the log back into the
        database file is not a commit's work either (`Checkpoints`). Elsewhere it takes one
        trip, in which a commit that wrote is synced too, as synchronous=FULL would."""
        connection = self._connection
        if INLINE.get() and connection is not None:
            began = time.perf_counter()
            if self.durability is not None and connection.in_transaction:
                self.durability.committed += 1
            connection.commit()
            if STATS is not None:
                STATS.add("sqlite/commit_inline", time.perf_counter() - began)
        else:
            await self._execute(self._commit_durably)  # type: ignore[no-untyped-call]
        if self.checkpoints is not None:
            self.checkpoints.committed()

    def _commit_durably(self) -> None:
        """In the connection's thread: the commit, and the log's sync if it wrote."""
        connection = self._conn
        wrote = connection.in_transaction
        connection.commit()
        if wrote and self.durability is not None:
            _fsync(self.durability.wal)

    async def rollback(self) -> None:
        """No trip when there is nothing to roll back: the pool rolls back every connection
        it takes back, after a commit too (sqlite3 would do nothing then either); none inside
        unit_of_work either, as for a commit."""
        if self._connection is not None and not self._connection.in_transaction:
            return
        if INLINE.get() and self._connection is not None:
            self._connection.rollback()
            return
        await super().rollback()


class OneTripConnector:
    """create_async_engine's `async_creator` for a SQLite URL: the connection SQLAlchemy's
    aiosqlite dialect would open (its arguments), as a OneTripConnection; the database's
    `durability` (None in memory) is the one its connections count their commits in."""

    def __init__(self, url: URL) -> None:
        args, kwargs = SQLiteDialect_aiosqlite().create_connect_args(url)
        kwargs["check_same_thread"] = False  # statements run inline as well (OneTripCursor._inline)
        self.opener = partial(sqlite3.connect, *args, **kwargs)
        name = args[0] if args else ""
        memory = name in ("", ":memory:")
        if kwargs.get("uri"):  # file:path?mode=…
            parts = urlsplit(name)
            name = unquote(parts.path)
            memory = name in ("", ":memory:") or "mode=memory" in parts.query
        self.checkpoints = None if memory else Checkpoints(self.opener)
        self.durability = None if memory else Durability(f"{name}-wal")

    async def __call__(self) -> OneTripConnection:
        connection = OneTripConnection(self.opener, 64)
        connection._thread.daemon = True  # as SQLAlchemy does for aiosqlite's own
        connection.checkpoints = self.checkpoints
        connection.durability = self.durability
        await connection
        return connection
