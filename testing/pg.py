"""A throw-away PostgreSQL server for tests and benchmarks, from the machine's initdb/pg_ctl."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg


class PostgresUnavailable(RuntimeError):
    pass


def _bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailable(f"{name} not found (install PostgreSQL: apt-get install postgresql)")


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Start PostgreSQL on a temporary directory and a free loopback port; yield its base URL
    (`postgresql+asyncpg://postgres@127.0.0.1:PORT`); stop it and delete everything after.
    Tests run it without syncing anything to disk; `durable` (benchmarks): as in production,
    every commit synced (fsync, full_page_writes and synchronous_commit at their defaults)."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="ccn-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as an ordinary user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            user = pwd.getpwnam("nobody")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", user.pw_name, "--"]
    data, log = root / "data", root / "server.log"
    try:
        subprocess.run(
            [
                *prefix,
                initdb,
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",  # a throw-away cluster: no fsync of the new files
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        for attempt in range(3):  # the free port may be taken before the server binds it
            port = free_port()
            options = (
                f"-p {port} -k {root} -h 127.0.0.1"
                + ("" if durable else " -c fsync=off -c full_page_writes=off")
                + " -c max_connections=300"  # pytest-xdist's workers share the server
            )
            started = subprocess.run(
                [
                    *prefix,
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=attempt == 2,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if started.returncode == 0:
                break
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if log.exists():
            detail += log.read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"PostgreSQL did not start: {exc}\n{detail}") from exc
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


async def _admin(base: str, sql: str) -> None:
    raw = base.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(f"{raw}/postgres")
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def new_database(
    base: str, *, prefix: str = "t", template: str | None = None, keep: bool = False
) -> AsyncIterator[str]:
    """A new database on the test server (a copy of `template`, or empty), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    await _admin(base, f'CREATE DATABASE "{name}"{copy}')
    try:
        yield f"{base}/{name}"
    finally:
        if not keep:
            await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Launch:
    """`postgres_server()` started on a thread, so that initdb (seconds of CPU) overlaps with
    collection and the first tests; `url()` waits for it."""

    def __init__(self, status: Path | None = None) -> None:
        self._status = status  # where other processes (xdist's workers) read the outcome
        self._stack = contextlib.ExitStack()
        self._done = threading.Event()
        self._url: str | None = None
        self._error: str | None = None
        threading.Thread(target=self._start, name="postgres-launch", daemon=True).start()

    def _start(self) -> None:
        try:
            self._url = self._stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            self._error = str(exc)
        finally:
            if self._status is not None:
                written = self._status.with_suffix(".tmp")
                written.write_text(f"url {self._url}" if self._url else f"error {self._error}")
                written.replace(self._status)
            self._done.set()

    @property
    def error(self) -> str | None:
        return self._error if self._done.is_set() else None

    def url(self, timeout: float = 300) -> str:
        """The base URL once the server is up; PostgresUnavailable if it did not start."""
        if not self._done.wait(timeout):
            raise PostgresUnavailable(f"PostgreSQL did not start within {timeout:.0f} s")
        if self._url is None:
            raise PostgresUnavailable(self._error or "PostgreSQL did not start")
        return self._url

    def close(self) -> None:
        self._done.wait()
        self._stack.close()


def launched_url(status: Path, timeout: float = 300) -> str:
    """The base URL of the server another process launched (see Launch), once it is up."""
    deadline = time.monotonic() + timeout
    while not status.exists():
        if time.monotonic() > deadline:
            raise PostgresUnavailable(f"PostgreSQL did not start within {timeout:.0f} s")
        time.sleep(0.05)
    kind, _sep, detail = status.read_text().partition(" ")
    if kind != "url":
        raise PostgresUnavailable(detail)
    return detail


_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text,
       coalesce(string_agg(a.attname || ':' || a.atttypid || ':' || a.attnotnull, ','
                           ORDER BY a.attnum), '')
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
GROUP BY n.nspname, c.relname, c.relkind
UNION ALL
SELECT n.nspname, t.typname, 'type:' || t.typtype::text, ''
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
UNION ALL
SELECT n.nspname, p.proname, 'function', pg_get_function_identity_arguments(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT nspname, '', 'schema', '' FROM pg_namespace
ORDER BY 1, 2, 3, 4
"""
_TABLES = """
SELECT quote_ident(schemaname) || '.' || quote_ident(tablename)
FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""
_SEQUENCES = """
SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename), start_value, last_value
FROM pg_sequences ORDER BY 1
"""


@dataclasses.dataclass
class _Snapshot:
    """What a database made from the template holds: its relations (with their columns), the
    rows of each table (binary COPY) and where each sequence stands."""

    relations: list[tuple[Any, ...]]
    rows: dict[str, bytes]
    sequences: list[tuple[str, int, int | None]]

    @classmethod
    async def of(cls, admin: asyncpg.Connection) -> _Snapshot:
        relations = [tuple(r) for r in await admin.fetch(_RELATIONS)]
        rows = {}
        for (table,) in await admin.fetch(_TABLES):
            buffer = io.BytesIO()
            await admin.copy_from_query(f"SELECT * FROM {table}", output=buffer, format="binary")
            rows[table] = buffer.getvalue()
        sequences = [(r[0], r[1], r[2]) for r in await admin.fetch(_SEQUENCES)]
        return cls(relations, rows, sequences)


class DatabasePool:
    """Databases made from a template, each handed to one test at a time and put back as the
    template made it before the next test gets it: its tables emptied and loaded again with the
    template's rows, its sequences set back. CREATE DATABASE … TEMPLATE (and DROP DATABASE) cost
    PostgreSQL ~0.4 s of CPU per test; this ~20 ms. A database whose relations or columns a
    test changed is dropped instead and a new one made from the template."""

    def __init__(self, base: str, template: str) -> None:
        self.base = base
        self.template = template
        self._free: list[str] = []
        self._snapshot: _Snapshot | None = None

    def _raw(self, name: str) -> str:
        return f"{self.base.replace('postgresql+asyncpg://', 'postgresql://')}/{name}"

    async def _create(self) -> str:
        name = f"p_{uuid.uuid4().hex[:12]}"
        await _admin(self.base, f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        if self._snapshot is None:
            conn = await asyncpg.connect(self._raw(name))
            try:
                self._snapshot = await _Snapshot.of(conn)
            finally:
                await conn.close()
        return name

    async def _reset(self, name: str) -> bool:
        """Put the database back as the template made it; False if it cannot be."""
        assert self._snapshot is not None
        snapshot = self._snapshot
        await _admin(
            self.base,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )
        conn = await asyncpg.connect(self._raw(name))
        try:
            if [tuple(r) for r in await conn.fetch(_RELATIONS)] != snapshot.relations:
                return False
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")  # no FK checks
                await conn.execute(f"TRUNCATE {', '.join(snapshot.rows)} RESTART IDENTITY")
                for table, data in snapshot.rows.items():
                    if len(data) > 21:  # more than a binary COPY's header and trailer
                        schema, _dot, plain = table.partition(".")
                        await conn.copy_to_table(
                            plain.strip('"'),
                            schema_name=schema.strip('"'),
                            source=io.BytesIO(data),
                            format="binary",
                        )
                for sequence, start, last in snapshot.sequences:
                    value, called = (start, False) if last is None else (last, True)
                    setval = "SELECT setval($1::regclass, $2, $3)"
                    await conn.execute(setval, sequence, value, called)
            return True
        finally:
            await conn.close()

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        """The URL of a database as the template made it, for the block."""
        name = self._free.pop() if self._free else await self._create()
        try:
            yield f"{self.base}/{name}"
        finally:
            if await self._reset(name):
                self._free.append(name)
            else:
                await _admin(self.base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
