"""Engine, sessions and migrations: SQLite (aiosqlite, WAL, foreign keys) or PostgreSQL
(asyncpg)."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import signal
import threading
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, event, insert, inspect, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from store.sqlite_driver import BUSY_TIMEOUT_MS, INLINE, Durability, OneTripConnector
from store.timings import STATS

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
SQL_STATS_VARIABLE = "CCN_SQL_STATS"  # benchmarks only: count SQL statements and commits


class _SqlStats:
    """Opt-in counts of the SQL statements and commits of every engine of this process, for
    benchmarks/deadline_rush.py: with CCN_SQL_STATS=<file>, the totals are written to that file
    (JSON) at exit and whenever the process receives SIGUSR1. Unset, nothing is attached."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.statements = 0
        self.commits = 0
        self.rollbacks = 0
        self.connects = 0

    def statement(self, *_args: Any) -> None:
        self.statements += 1

    def commit(self, *_args: Any) -> None:
        self.commits += 1

    def rollback(self, *_args: Any) -> None:
        self.rollbacks += 1

    def connect(self, *_args: Any) -> None:
        self.connects += 1

    def write(self, *_args: Any) -> None:
        totals = {
            "pid": os.getpid(),
            "statements": self.statements,
            "commits": self.commits,
            "rollbacks": self.rollbacks,
            "connects": self.connects,
        }
        partial = self.path.with_name(self.path.name + ".partial")
        with suppress(OSError):
            partial.write_text(json.dumps(totals))
            partial.replace(self.path)


_sql_stats: _SqlStats | None = None


def _count_sql(engine: AsyncEngine) -> None:
    global _sql_stats
    path = os.environ.get(SQL_STATS_VARIABLE)
    if not path:
        return
    if _sql_stats is None:
        _sql_stats = _SqlStats(Path(path))
        atexit.register(_sql_stats.write)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGUSR1, _sql_stats.write)
        _sql_stats.write()
    event.listen(engine.sync_engine, "before_cursor_execute", _sql_stats.statement)
    event.listen(engine.sync_engine, "commit", _sql_stats.commit)
    event.listen(engine.sync_engine, "rollback", _sql_stats.rollback)
    event.listen(engine.sync_engine, "connect", _sql_stats.connect)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA wal_autocheckpoint=0")  # store.sqlite_driver.Checkpoints does it
    # a commit syncs nothing: unit_of_work waits for the log's sync after the writer turn
    # (store.sqlite_driver.Durability), other commits sync in their trip
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connector = OneTripConnector(parsed)
        engine = create_async_engine(url, async_creator=connector)
        if connector.durability is not None:
            _durability[engine.sync_engine] = connector.durability
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        # bot.lanes handles up to 16 updates at once, each with one connection at a time; the
        # scheduler and the web server take a few more. A connection beyond pool_size is closed
        # when it comes back: with 10 kept, a rush opened 71-307 connections in 2 minutes (each
        # a login, its statements prepared again; the first 10 s's p95 90-594 ms), with 20 kept
        # 13-14 (88-183 ms).
        engine = create_async_engine(url, pool_size=20, max_overflow=10)
        _ping_if_idle(engine)
    _count_sql(engine)
    return engine


# A pooled PostgreSQL connection is checked before use only if it lay idle this long (the
# server or a firewall may have closed it meanwhile). pool_pre_ping checked it at every
# checkout: three round trips (asyncpg's BEGIN, a query, ROLLBACK), a tenth of the bot's time
# in a rush (py-spy). One used moments ago is alive; if the server went away since, the
# statement fails, the person is asked to send that again, and the pool starts afresh.
PING_IDLE_SECONDS = 10.0
_RETURNED_AT = "ccn_returned_at"


def _ping_if_idle(engine: AsyncEngine) -> None:
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        at = record.info.get(_RETURNED_AT)
        if at is None or time.monotonic() - at < PING_IDLE_SECONDS:
            return  # new (just connected) or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool replaces it (and tries up to three)
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc

    event.listen(engine.sync_engine, "checkin", returned)
    event.listen(engine.sync_engine, "checkout", checkout)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


# SQLite has one writer at a time. The transactions of one process take turns here rather
# than in SQLite: a deferred transaction that reads, then writes while another one writes, is
# refused at once (SQLITE_BUSY, no busy_timeout wait), and waiting here costs no thread.
_writers: weakref.WeakKeyDictionary[Engine, weakref.WeakKeyDictionary[Any, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


# a SQLite file's group commit (store.sqlite_driver.Durability), by engine
_durability: weakref.WeakKeyDictionary[Engine, Durability] = weakref.WeakKeyDictionary()


def _writer(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[asyncio.Lock, Durability | None] | None:
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return None
    per_loop = _writers.setdefault(bind.sync_engine, weakref.WeakKeyDictionary())
    lock = per_loop.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    return lock, _durability.get(bind.sync_engine)


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back on any exception. Not to be
    nested (on SQLite the inner one would wait for the outer one forever). On SQLite it holds
    the process's writer turn, and its statements and commit run on the event loop's thread
    (store.sqlite_driver): the turn is held for no trip to the connection's thread, unless
    another process holds SQLite's write lock when the transaction first writes. The block's
    writes are on the disk when it ends: after the turn, it waits for the log's sync
    (store.sqlite_driver.Durability), shared with the commits made meanwhile."""
    turn = _writer(sessions)
    if turn is None:
        async with sessions() as session, session.begin():
            yield session
        return
    writer, durability = turn
    waited = time.perf_counter()
    async with writer:
        began = time.perf_counter()
        inline = INLINE.set(True)
        before = durability.committed if durability is not None else 0
        try:
            async with sessions() as session, session.begin():
                yield session
        finally:
            INLINE.reset(inline)
            if STATS is not None:
                STATS.add("sqlite/writer_wait", began - waited)
                STATS.add("sqlite/writer_held", time.perf_counter() - began)
        committed = durability.committed if durability is not None else 0
    if durability is not None and committed != before:
        await durability.wait(committed)


async def write_now(session: AsyncSession, row: Any, statement: Executable, **values: Any) -> None:
    """Write `values` (column attributes) to `row` at once: a stored row by `statement`, an
    UPDATE bound by `row_id` and the values' names, on the session's connection, with the
    ORM's copy of the row kept in step so that its flush writes nothing more (the ORM's flush
    of a row took about three times the CPU of the statement); a row not flushed yet takes
    them with its INSERT."""
    if row.id is None:
        for name, value in values.items():
            setattr(row, name, value)
        return
    connection = await session.connection()
    await connection.execute(statement, {"row_id": row.id, **values})
    for name, value in values.items():
        set_committed_value(row, name, value)


_Row = TypeVar("_Row")
# by mapper and conflict columns: its INSERT … RETURNING every column (insert_now)
_INSERTS: dict[tuple[Any, tuple[str, ...]], Any] = {}


async def insert_now(session: AsyncSession, row: _Row) -> _Row:
    """INSERT a new `row` at once: its column attributes as set (the columns' defaults for the
    others), by one Core statement on the session's connection that returns every column; the
    row is then in the session as stored, as if read, and its flush writes nothing. The ORM's
    flush of a new row (its unit of work, a flush per row) took about three times the CPU of
    the statement: an invitation's /start flushed three times. Relationships are neither
    written nor loaded: the caller sets what it knows of them (set_committed_value)."""
    stored = await _insert(session, row, ())
    assert stored is not None
    return stored


async def insert_unless_stored(session: AsyncSession, row: _Row, *unique: str) -> _Row | None:
    """As insert_now, unless a row with the same values of the `unique` columns (a unique
    constraint's) is stored already (ON CONFLICT DO NOTHING): then None, and nothing written.
    A transaction inserting the same values meanwhile is waited for: its commit makes this
    None, its rollback lets this in."""
    return await _insert(session, row, unique)


async def stored_like(session: AsyncSession, row: _Row, *unique: str) -> _Row:
    """The stored row with `row`'s values of the `unique` columns: after insert_unless_stored
    gave way to it. Raises if it is gone since (deleted meanwhile: the sender tries again)."""
    kind = type(row)
    stored = await session.scalar(
        select(kind).where(*(getattr(kind, name) == getattr(row, name) for name in unique))
    )
    if stored is None:
        values = ", ".join(f"{name}={getattr(row, name)!r}" for name in unique)
        raise RuntimeError(f"{kind.__name__} {values} is neither new nor stored")
    return stored


async def _insert(session: AsyncSession, row: _Row, unique: tuple[str, ...]) -> _Row | None:
    mapper = inspect(row).mapper
    attrs = mapper.column_attrs
    given = {a.columns[0].key: row.__dict__[a.key] for a in attrs if a.key in row.__dict__}
    dialect = session.get_bind().dialect.name
    key = (mapper, unique and (dialect, *unique))
    statement = _INSERTS.get(key)
    if statement is None:  # the columns come from the parameters' names
        if not unique:
            base: Any = insert(mapper.local_table)
        else:
            dialect_insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            base = dialect_insert(mapper.local_table).on_conflict_do_nothing(
                index_elements=list(unique)
            )
        statement = _INSERTS[key] = base.returning(*(a.columns[0] for a in attrs))
    connection = await session.connection()
    stored = (await connection.execute(statement, given)).first()
    if stored is None:
        return None
    for attr, value in zip(attrs, stored, strict=True):
        setattr(row, attr.key, value)
    make_transient_to_detached(row)  # its values as read: no change left to flush
    session.add(row)
    return row


def url_of(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    """The database the sessions open, as a URL another process can open too (its password
    included); None for an in-memory SQLite database, which only this process sees."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine):
        return None
    if bind.dialect.name == "sqlite" and bind.url.database in (None, "", ":memory:"):
        return None
    return bind.url.render_as_string(hide_password=False)


@asynccontextmanager
async def snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """One transaction that only reads and sees the database as it was at its first read, so
    that figures read by several statements agree (PostgreSQL: REPEATABLE READ; SQLite: an
    explicit BEGIN, which a WAL database's writers do not wait for)."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("BEGIN")
        else:
            await conn.execution_options(isolation_level="REPEATABLE READ")
            await conn.begin()
        async with AsyncSession(bind=conn) as session:
            yield session
        await conn.rollback()


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on the engine's database."""

    def run(conn: Connection) -> None:
        from alembic import command  # with Mako and Pygments: only to migrate

        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
