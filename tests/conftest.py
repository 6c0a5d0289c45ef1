from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from bot.app import App, open_app, prepare
from bot.settings import load_settings
from handlers.context import Deps
from testing.pg import DatabasePool, Launch, PostgresUnavailable, launched_url, new_database
from tests.dialog import Clock

T = TypeVar("T")
_pg_problem: list[str] = []
_STATUS_KEY = pytest.StashKey[Path]()


# PostgreSQL for the run: one server, started on a thread as soon as the run is known to need
# it, so that initdb overlaps with collection and the SQLite tests. Under pytest-xdist the
# controller starts it and its workers share it (each creates its own databases in it).
_launch: Launch | None = None
STATUS = "ccn_pg_status"  # the file where xdist's workers read the server's URL


def _needs_postgres(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return "pg_base_url" in getattr(item, "fixturenames", ()) or "postgresql" in params


def _launch_once(status: Path | None = None) -> Launch:
    global _launch
    if _launch is None:
        _launch = Launch(status)
    return _launch


def _distributing(config: pytest.Config) -> bool:
    """This is pytest-xdist's controller, about to start workers."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_configure(config: pytest.Config) -> None:
    if config.option.collectonly:
        return
    if _distributing(config) and not os.environ.get("CCN_TEST_PG_URL"):
        status = Path(tempfile.mkdtemp(prefix="ccn-pg-status-")) / "url"
        config.stash[_STATUS_KEY] = status
        _launch_once(status)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:  # pytest-xdist: a worker is being started
    status = node.config.stash.get(_STATUS_KEY, None)
    if status is not None:
        node.workerinput[STATUS] = str(status)


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if hasattr(config, "workerinput") or config.option.collectonly:
        return
    if os.environ.get("CCN_TEST_PG_URL"):
        return
    if any(_needs_postgres(item) for item in session.items):
        _launch_once()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _launch
    if _launch is not None:
        _launch.close()
        _launch = None
    status = config.stash.get(_STATUS_KEY, None)
    if status is not None:
        shutil.rmtree(status.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a PostgreSQL server: CCN_TEST_PG_URL, or one started for this run."""
    given = os.environ.get("CCN_TEST_PG_URL")
    if given:
        yield given.rstrip("/")
        return
    workerinput = getattr(request.config, "workerinput", {})
    try:
        if STATUS in workerinput:
            url = launched_url(Path(workerinput[STATUS]))
        else:
            url = _launch_once().url()
    except PostgresUnavailable as exc:
        _pg_problem.append(str(exc))
        if os.environ.get("CCN_SKIP_POSTGRES") == "1":
            pytest.skip(f"POSTGRESQL NOT TESTED: {exc}")
        pytest.fail(f"PostgreSQL could not start, so the store is untested on it: {exc}")
    yield url


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _launch is not None and _launch.error and not _pg_problem:
        _pg_problem.append(_launch.error)
    for problem in _pg_problem:
        terminalreporter.write_line(f"!!! POSTGRESQL NOT TESTED: {problem}", red=True, bold=True)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'ccn.db'}"
        return
    async with new_database(request.getfixturevalue("pg_base_url")) as url:
        yield url


async def _prepare(url: str, data_dir: Path) -> None:
    async with open_app(load_settings(DATA_DIR=data_dir, DATABASE_URL=url)) as opened:
        await prepare(opened)


def _run_aside(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a loop of its own (a session fixture may be set up from
    inside a test's running loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated and loaded with the registry once; each test gets a copy."""
    folder = tmp_path_factory.mktemp("template")
    path = folder / "ccn.db"
    _run_aside(_prepare(f"sqlite+aiosqlite:///{path}", folder))
    return path


@pytest.fixture(scope="session")
def pg_template(pg_base_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PostgreSQL database migrated and loaded once; each test's is created from it."""

    async def make() -> str:
        async with new_database(pg_base_url, prefix="tmpl", keep=True) as url:
            await _prepare(url, tmp_path_factory.mktemp("pg-template"))
        return url.rsplit("/", 1)[1]

    return _run_aside(make())


@pytest.fixture(params=["sqlite", "postgresql"])
async def prepared_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of each kind, migrated and loaded with the registry (a copy of a template:
    migrating and loading for every test took most of the suite's time)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        copy = tmp_path / "ccn.db"
        shutil.copyfile(template, copy)
        yield f"sqlite+aiosqlite:///{copy}"
        return
    if os.environ.get("CCN_TEST_PG_URL"):  # a server of one's own: a new database each time
        base: str = request.getfixturevalue("pg_base_url")
        async with new_database(base, template=request.getfixturevalue("pg_template")) as url:
            yield url
        return
    pool: DatabasePool = request.getfixturevalue("pg_databases")
    async with pool.database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_databases(pg_base_url: str, pg_template: str) -> DatabasePool:
    """Databases made from the template, reused test after test (put back as the template made
    them in between), on the server started for this run."""
    return DatabasePool(pg_base_url, pg_template)


@pytest.fixture
async def app(prepared_url: str, tmp_path: Path) -> AsyncIterator[App]:
    """The bot's store, migrated and loaded with the plan's registry."""
    settings = load_settings(
        DATA_DIR=tmp_path / "data", DATABASE_URL=prepared_url, TELEGRAM_BOT_USERNAME="ccn_test_bot"
    )
    async with open_app(settings) as opened:
        # no prepare(): the database is a copy of a template that prepare() made (checking it
        # again ran Alembic, ~30 ms of CPU, in each of ~330 tests)
        yield opened


JUNE_10 = datetime(2021, 6, 10, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


@pytest.fixture
def clock() -> Clock:
    """A fixed clock (10 June 2021, 09:00 in Hanoi) that a test moves by hand."""
    return Clock(JUNE_10)


@pytest.fixture
def deps(app: App, clock: Clock) -> Deps:
    """The handlers' dependencies on the test's store, with the fixed clock."""
    base = app.deps()
    return Deps(base.sessions, base.config, clock)
