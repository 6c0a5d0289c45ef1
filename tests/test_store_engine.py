"""The engine's trips: SQLite's statements one hand-off each to the connection's thread (in
an update's transaction none, but a first write another process makes wait), and
PostgreSQL's pooled connections pinged only after lying idle."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from store import db, sqlite_driver
from store.db import make_engine, make_sessionmaker, unit_of_work
from store.sqlite_driver import BUSY_TIMEOUT_MS
from testing.pg import new_database


class _Counted:
    """A connection thread's queue that counts what is handed to the thread."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.handed = 0

    def put_nowait(self, item: Any) -> None:
        self.handed += 1
        self.queue.put_nowait(item)


@pytest.fixture
async def sqlite_engine(tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'trips.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def test_sqlite_statement_is_one_trip_to_its_thread(sqlite_engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(sqlite_engine)
    async with sessions() as session, session.begin():
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        assert raw is not None
        counted = _Counted(raw._tx)
        raw._tx = counted
        inserted = await session.execute(
            text("INSERT INTO t (v) VALUES ('a'), ('b'), ('c') RETURNING id")
        )
        assert sorted(inserted.scalars()) == [1, 2, 3]
        updated = await session.execute(text("UPDATE t SET v = v || '!' WHERE id > 1"))
        assert getattr(updated, "rowcount", None) == 2
        rows = (await session.execute(text("SELECT id, v FROM t ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [(1, "a"), (2, "b!"), (3, "c!")]
        streamed = await session.stream(text("SELECT v FROM t ORDER BY id"))
        assert [v async for v in streamed.scalars()] == ["a", "b!", "c!"]
    # four statements and the commit, and no rollback when the pool takes the connection
    # back after it; aiosqlite itself took 3-4 trips a statement and one for that rollback
    assert counted.handed == 5


def _count_trips(raw: Any) -> _Counted:
    counted = _Counted(raw._tx)
    raw._tx = counted
    return counted


async def test_a_unit_of_work_takes_no_trip_to_the_thread(
    sqlite_engine: AsyncEngine,
) -> None:
    """Its reads, writes and commit run on the loop's thread while no other process holds
    SQLite's write lock: the process's writer turn is not held through a trip and a turn of
    the loop each."""
    sessions = make_sessionmaker(sqlite_engine)
    async with unit_of_work(sessions) as session:
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        counted = _count_trips(raw)
        assert list(await session.scalars(text("SELECT v FROM t"))) == []
        inserted = await session.execute(text("INSERT INTO t (v) VALUES ('a'), ('b') RETURNING id"))
        assert sorted(inserted.scalars()) == [1, 2]
        await session.execute(text("UPDATE t SET v = v || '!' WHERE id = 2"))
        assert list(await session.scalars(text("SELECT v FROM t ORDER BY id"))) == ["a", "b!"]
    assert counted.handed == 0
    async with sessions() as session:  # committed, as another connection sees it
        assert list(await session.scalars(text("SELECT v FROM t ORDER BY id"))) == ["a", "b!"]


async def test_a_write_waiting_for_another_process_leaves_the_event_loop_free(
    sqlite_engine: AsyncEngine, tmp_path: Path
) -> None:
    """Another process (here another connection) holds SQLite's write lock: the transaction's
    first write, tried on the loop without waiting, waits for it in the connection's thread
    (busy_timeout), not on the loop; and the next transaction's first write waits as long."""
    sessions = make_sessionmaker(sqlite_engine)
    other = sqlite3.connect(tmp_path / "trips.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t (v) VALUES ('theirs')")

    async def write() -> None:
        async with unit_of_work(sessions) as session:
            assert list(await session.scalars(text("SELECT v FROM t"))) == []
            await session.execute(text("INSERT INTO t (v) VALUES ('ours')"))

    writing = asyncio.create_task(write())
    ticks = 0
    while ticks < 20:  # the loop keeps turning while the write waits
        await asyncio.sleep(0.01)
        ticks += 1
    assert not writing.done()
    other.execute("COMMIT")
    other.close()
    await writing
    async with sessions() as session:
        assert sorted(await session.scalars(text("SELECT v FROM t"))) == ["ours", "theirs"]
        assert await session.scalar(text("PRAGMA busy_timeout")) == BUSY_TIMEOUT_MS


async def test_sqlite_refusals_and_rollbacks_still_reach_the_caller(
    sqlite_engine: AsyncEngine,
) -> None:
    sessions = make_sessionmaker(sqlite_engine)
    async with unit_of_work(sessions) as session:
        await session.execute(text("INSERT INTO t (v) VALUES ('once')"))
    with pytest.raises(IntegrityError):  # what the "processed" mark relies on
        async with unit_of_work(sessions) as session:
            await session.execute(text("INSERT INTO t (v) VALUES ('other')"))
            await session.execute(text("INSERT INTO t (v) VALUES ('once')"))
    async with sessions() as session:
        assert list(await session.scalars(text("SELECT v FROM t"))) == ["once"]


async def test_postgresql_connection_pinged_only_after_lying_idle(
    pg_base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with new_database(pg_base_url) as url:
        engine = make_engine(url)
        pings: list[object] = []
        ping = engine.dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            pings.append(dbapi_connection)
            return ping(dbapi_connection)

        monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
        sessions = make_sessionmaker(engine)
        try:
            for _ in range(5):  # one update after another: no round trip before each
                async with sessions() as session:
                    pid = await session.scalar(text("SELECT pg_backend_pid()"))
            assert pings == []

            # the server closes the idle connection; used again after PING_IDLE_SECONDS, it
            # is pinged, found dead and replaced: the statement itself never sees it
            killer = make_engine(url)
            async with killer.connect() as other:
                await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await killer.dispose()
            monkeypatch.setattr(db, "PING_IDLE_SECONDS", 0.0)
            async with sessions() as session:
                assert await session.scalar(text("SELECT pg_backend_pid()")) != pid
            assert len(pings) == 1
        finally:
            await engine.dispose()


async def test_the_log_is_copied_into_the_database_in_a_thread_not_by_a_commit(
    sqlite_engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoint ran in the commit that took the log past 1,000 pages, on the
    event loop once commits ran there (50 to 930 ms, every few seconds of a rush). Here no
    commit copies the log; every CHECKPOINT_EVERY commits a worker thread does."""
    monkeypatch.setattr(sqlite_driver, "CHECKPOINT_EVERY", 3)
    threads: list[int] = []
    real = sqlite_driver._checkpoint

    def spied(connect: Any) -> None:
        threads.append(threading.get_ident())
        real(connect)

    monkeypatch.setattr(sqlite_driver, "_checkpoint", spied)
    database = tmp_path / "trips.db"
    sessions = make_sessionmaker(sqlite_engine)
    size = database.stat().st_size
    big = "x" * 2_500_000  # about 610 pages of log a commit

    async def commit_one() -> Any:
        async with unit_of_work(sessions) as session:
            count = await session.scalar(text("SELECT count(*) FROM t"))
            await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{count}{big}"})
            raw = await (await session.connection()).get_raw_connection()
            driver = raw.driver_connection
        return driver

    connection = await commit_one()
    connection.checkpoints.commits = 1  # the table's creation counted too
    await commit_one()  # past 1,000 pages of log: SQLite would have checkpointed in there
    assert database.stat().st_size == size and not threads
    connection = await commit_one()  # the third: a checkpoint begins, in a thread
    assert connection.checkpoints.running is not None
    await connection.checkpoints.running
    assert threads and threads[0] != threading.get_ident()
    assert database.stat().st_size > size + 3 * len(big)
    async with sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM t")) == 3
        assert await session.scalar(text("PRAGMA wal_autocheckpoint")) == 0


@pytest.fixture
def slow_log_sync(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float, bool]]:
    """The log's sync takes 0.3 s (a busy disk); each one: the file, when it ended, and
    whether it ran on the event loop's thread."""
    synced: list[tuple[str, float, bool]] = []
    real = sqlite_driver._fsync
    main = threading.main_thread()

    def slow(path: str) -> None:
        time.sleep(0.3)
        real(path)
        synced.append((path, time.monotonic(), threading.current_thread() is main))

    monkeypatch.setattr(sqlite_driver, "_fsync", slow)
    return synced


async def _write(sessions: Any, value: str) -> float:
    async with unit_of_work(sessions) as session:
        await session.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
    return time.monotonic()


async def test_a_slow_disk_holds_neither_the_event_loop_nor_the_next_writer(
    sqlite_engine: AsyncEngine, slow_log_sync: list[tuple[str, float, bool]]
) -> None:
    """A commit's sync of the log (synchronous=FULL's, inside the commit) held the event loop
    and the writer turn: on a busy disk every chat waited. The sync now comes after the turn,
    in a thread: the loop turns and the next transaction commits while it runs, and a unit of
    work ends only once a sync that began after its commit has ended (its answer is sent only
    then)."""
    sessions = make_sessionmaker(sqlite_engine)
    async with sessions() as session:  # SQLite's commit itself syncs nothing (NORMAL)
        assert await session.scalar(text("PRAGMA synchronous")) == 1
    first = asyncio.create_task(_write(sessions, "a"))
    ticks = 0
    while ticks < 10:  # 0.1 s of a 0.3 s sync: the loop is free
        await asyncio.sleep(0.01)
        ticks += 1
    second = asyncio.create_task(_write(sessions, "b"))
    seen: list[str] = []
    while "b" not in seen:  # the next writer committed, without waiting for the disk
        await asyncio.sleep(0.01)
        async with sessions() as session:
            seen = list(await session.scalars(text("SELECT v FROM t")))
    assert not first.done()
    first_ended, second_ended = await first, await second
    wal, synced_at, on_loop = slow_log_sync[0]
    assert wal.endswith("trips.db-wal") and not on_loop
    assert synced_at <= first_ended
    assert len(slow_log_sync) == 2 and slow_log_sync[1][1] <= second_ended


async def test_writers_waiting_for_the_disk_share_one_sync(
    sqlite_engine: AsyncEngine, slow_log_sync: list[tuple[str, float, bool]]
) -> None:
    """Eight chats' transactions committed while the log syncs: one more sync covers them all
    (a group commit), not one each; and a commit outside a unit of work syncs in its own trip,
    as synchronous=FULL would."""
    sessions = make_sessionmaker(sqlite_engine)
    await asyncio.gather(*(_write(sessions, f"v{i}") for i in range(8)))
    grouped = len(slow_log_sync)
    assert 1 <= grouped <= 2
    async with sessions() as session, session.begin():
        await session.execute(text("INSERT INTO t (v) VALUES ('outside')"))
    assert len(slow_log_sync) == grouped + 1 and slow_log_sync[-1][0].endswith("-wal")
    async with sessions() as session:
        assert len(list(await session.scalars(text("SELECT v FROM t")))) == 9
