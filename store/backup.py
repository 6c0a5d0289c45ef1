"""Backups of the store, and their restore.

A backup is a folder:

- `database.sqlite3` — SQLite, copied through its online backup API (a consistent snapshot,
  taken while the bot runs), or `database.pgdump` — PostgreSQL, `pg_dump --format=custom` in a
  repeatable-read snapshot that the manifest's counts are read in too;
- `photos/` — the photo files under DATA_DIR/photos (content-addressed: a file's name is the
  SHA-256 of its bytes), copied after the database, so every photo the dump knows is there;
- `manifest.json` — when, which database, the schema revision (alembic_version), the rows of
  every table, the photo files, and the SHA-256 of the dump.

`restore` refuses a damaged backup (the dump's SHA-256), a database of the other kind, and —
unless `force` — a database that has tables or a DATA_DIR/photos that has files; it then checks
the restored copy against the manifest: revision, every table's rows, every photo's file and
its hash.

The PostgreSQL tools are found on PATH or in /usr/lib/postgresql/<version>/bin (the newest);
the password goes to them in PGPASSWORD, never on their command line.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from store.db import current_revision, make_engine

FORMAT = 1
MANIFEST = "manifest.json"
DUMPS = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
PHOTOS = "photos"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go on. `code` says why (the CLI words it); `params`
    fill in the details."""

    def __init__(self, code: str, **params: str) -> None:
        super().__init__(f"{code}: {params}" if params else code)
        self.code = code
        self.params = params


@dataclass
class Manifest:
    created_at: str
    database: str  # "sqlite" or "postgresql"
    dump: str  # the dump's file name in the backup folder
    dump_sha256: str
    dump_bytes: int
    schema_revision: str | None
    tables: dict[str, int]  # rows per table (alembic_version left out)
    photo_files: int  # files under photos/, thumbnails included
    photo_bytes: int
    tool: str = ""  # pg_dump --version, for PostgreSQL
    format: int = FORMAT
    reports: int = field(init=False)
    photos: int = field(init=False)

    def __post_init__(self) -> None:
        self.reports = self.tables.get("reports", 0)
        self.photos = self.tables.get("photos", 0)

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(
            json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BackupError("no_manifest", folder=str(folder)) from exc
        except (OSError, ValueError) as exc:
            raise BackupError("damaged", detail=f"{MANIFEST}: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise BackupError("damaged", detail=f"{MANIFEST}: unknown format")
        try:
            return cls(
                created_at=str(raw["created_at"]),
                database=str(raw["database"]),
                dump=str(raw["dump"]),
                dump_sha256=str(raw["dump_sha256"]),
                dump_bytes=int(raw["dump_bytes"]),
                schema_revision=raw["schema_revision"],
                tables={str(k): int(v) for k, v in dict(raw["tables"]).items()},
                photo_files=int(raw["photo_files"]),
                photo_bytes=int(raw["photo_bytes"]),
                tool=str(raw.get("tool", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupError("damaged", detail=f"{MANIFEST}: {exc!r}") from exc


# --- helpers --------------------------------------------------------------------------------


def database_kind(url: str) -> str:
    backend = make_url(url).get_backend_name()
    return "postgresql" if backend == "postgresql" else "sqlite"


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("no_database_file", url=url)
    return Path(database)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def pg_tool(name: str) -> str:
    """`pg_dump` or `pg_restore`: on PATH, else the newest /usr/lib/postgresql/*/bin one."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")],
        reverse=True,
    )
    if candidates:
        return candidates[0]
    raise BackupError("tool_missing", tool=name)


_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}


def pg_invocation(url: str, tool: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment to run a PostgreSQL tool on DATABASE_URL's database:
    host, port, user and database as options; the password only in PGPASSWORD."""
    parsed: URL = make_url(url)
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    query = {k: v if isinstance(v, str) else v[-1] for k, v in parsed.query.items()}
    ssl = query.get("sslmode") or query.get("ssl")
    if ssl in _SSL_MODES:
        env["PGSSLMODE"] = ssl
    elif ssl in ("true", "1"):
        env["PGSSLMODE"] = "require"
    argv = [tool, "--no-password"]
    host = parsed.host or query.get("host")
    if host:
        argv += ["--host", host]
    if parsed.port:
        argv += ["--port", str(parsed.port)]
    if parsed.username:
        argv += ["--username", parsed.username]
    argv += ["--dbname", parsed.database or "postgres", *args]
    return argv, env


async def _run(argv: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise BackupError(
            "tool_failed", tool=Path(argv[0]).name, detail=" / ".join(lines[-3:]) or "?"
        )
    return out.decode(errors="replace").strip()


async def census(conn: AsyncConnection) -> dict[str, int]:
    """Rows per table (alembic_version left out), in the connection's transaction."""
    names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    counts: dict[str, int] = {}
    for name in sorted(names):
        if name == "alembic_version":
            continue
        counts[name] = int(
            (await conn.execute(text(f'SELECT count(*) FROM "{name}"'))).scalar_one()
        )
    return counts


async def _revision(conn: AsyncConnection) -> str | None:
    names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    if "alembic_version" not in names:
        return None
    value = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    return str(value) if value is not None else None


def _copy_tree(source: Path, target: Path) -> tuple[int, int]:
    """Copy the files under `source` to `target` (half-written `.part` files left out);
    returns (files, bytes)."""
    files = size = 0
    if not source.is_dir():
        return 0, 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.endswith(".part"):
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        files += 1
        size += path.stat().st_size
    return files, size


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


# --- backup ---------------------------------------------------------------------------------


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup API: a consistent copy of a database in use, as one file."""
    if not source.exists():
        raise BackupError("no_database_file", url=str(source))
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone: no -wal beside it
    finally:
        dst.close()
        src.close()


async def backup(database_url: str, data_dir: Path, folder: Path) -> Manifest:
    """Write a backup of the database and the photos into `folder` (new or empty)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BackupError("backup_folder_not_empty", folder=str(folder))
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = database_kind(database_url)
    dump = folder / DUMPS[kind]
    tool = ""
    if kind == "sqlite":
        await asyncio.to_thread(_sqlite_copy, sqlite_path(database_url), dump)
        engine = make_engine(f"sqlite+aiosqlite:///{dump.resolve()}")
        try:
            async with engine.connect() as conn:
                revision, tables = await _revision(conn), await census(conn)
        finally:
            await engine.dispose()
    else:
        pg_dump = pg_tool("pg_dump")
        tool = await _run([pg_dump, "--version"], dict(os.environ))
        engine = make_engine(database_url)
        try:
            async with engine.connect() as conn:
                conn = await conn.execution_options(
                    isolation_level="REPEATABLE READ", postgresql_readonly=True
                )
                async with conn.begin():
                    # pg_dump reads the very snapshot the counts are read in
                    snapshot = (await conn.execute(text("SELECT pg_export_snapshot()"))).scalar()
                    revision, tables = await _revision(conn), await census(conn)
                    argv, env = pg_invocation(
                        database_url,
                        pg_dump,
                        ["--format=custom", f"--snapshot={snapshot}", "--file", str(dump)],
                    )
                    await _run(argv, env)
        finally:
            await engine.dispose()
    files, size = await asyncio.to_thread(_copy_tree, data_dir / PHOTOS, folder / PHOTOS)
    manifest = Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        database=kind,
        dump=dump.name,
        dump_sha256=await asyncio.to_thread(sha256_of, dump),
        dump_bytes=dump.stat().st_size,
        schema_revision=revision,
        tables=tables,
        photo_files=files,
        photo_bytes=size,
        tool=tool,
    )
    manifest.write(folder)
    return manifest


# --- restore --------------------------------------------------------------------------------


async def database_is_empty(database_url: str) -> bool:
    """No tables (SQLite: no file, or a file without tables; PostgreSQL: no relations outside
    the system schemas)."""
    if database_kind(database_url) == "sqlite":
        path = sqlite_path(database_url)
        if not path.exists() or path.stat().st_size == 0:
            return True

        def tables() -> int:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                row = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')"
                ).fetchone()
                return int(row[0])
            finally:
                conn.close()

        return await asyncio.to_thread(tables) == 0
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')"
                    " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
                    " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'"
                )
            )
            return int(found.scalar_one()) == 0
    finally:
        await engine.dispose()


def _sqlite_restore(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


async def restore(
    folder: Path, database_url: str, data_dir: Path, *, force: bool = False
) -> Manifest:
    """Restore the backup in `folder` into the database and DATA_DIR, then check the result
    against the manifest (BackupError `verify_failed` if it differs)."""
    manifest = Manifest.read(folder)
    dump = folder / manifest.dump
    if manifest.dump not in DUMPS.values() or not dump.is_file():
        raise BackupError("damaged", detail=f"{manifest.dump} is missing")
    if await asyncio.to_thread(sha256_of, dump) != manifest.dump_sha256:
        raise BackupError("damaged", detail=f"{manifest.dump} does not match its SHA-256")
    kind = database_kind(database_url)
    if kind != manifest.database:
        raise BackupError("kind_mismatch", backup=manifest.database, target=kind)
    if not force:
        if not await database_is_empty(database_url):
            raise BackupError("database_not_empty")
        if _has_files(data_dir / PHOTOS):
            raise BackupError("photos_not_empty", folder=str(data_dir / PHOTOS))
    if kind == "sqlite":
        await asyncio.to_thread(_sqlite_restore, dump, sqlite_path(database_url))
    else:
        options = ["--no-owner", "--no-acl", "--exit-on-error", "--single-transaction"]
        if force:
            options += ["--clean", "--if-exists"]
        argv, env = pg_invocation(database_url, pg_tool("pg_restore"), [*options, str(dump)])
        await _run(argv, env)
    data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(_copy_tree, folder / PHOTOS, data_dir / PHOTOS)
    problems = await verify(manifest, database_url, data_dir)
    if problems:
        raise BackupError("verify_failed", detail="; ".join(problems[:5]))
    return manifest


async def verify(manifest: Manifest, database_url: str, data_dir: Path) -> list[str]:
    """What differs between the manifest and the database and photos now in place."""
    problems: list[str] = []
    engine = make_engine(database_url)
    try:
        revision = await current_revision(engine)
        async with engine.connect() as conn:
            tables = await census(conn)
            rows = (await conn.execute(text("SELECT sha256, path, thumb_path FROM photos"))).all()
    finally:
        await engine.dispose()
    if revision != manifest.schema_revision:
        problems.append(f"schema revision {revision}, expected {manifest.schema_revision}")
    for name in sorted(set(tables) | set(manifest.tables)):
        if tables.get(name) != manifest.tables.get(name):
            problems.append(
                f"table {name}: {tables.get(name)} rows, expected {manifest.tables.get(name)}"
            )

    def check_files() -> list[str]:
        found: list[str] = []
        for sha, path, thumb in rows:
            original = data_dir / str(path)
            if not original.is_file():
                found.append(f"photo {path} is missing")
            elif sha256_of(original) != sha:
                found.append(f"photo {path} does not match its SHA-256")
            if not (data_dir / str(thumb)).is_file():
                found.append(f"thumbnail {thumb} is missing")
        return found

    problems.extend(await asyncio.to_thread(check_files))
    return problems
