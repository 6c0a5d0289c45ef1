from __future__ import annotations

import asyncio
import os
import shutil
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
from testing.pg import PostgresUnavailable, new_database, postgres_server
from tests.dialog import Clock

T = TypeVar("T")
_pg_problem: list[str] = []


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """The base URL of a PostgreSQL server: CCN_TEST_PG_URL, or one started for this run."""
    given = os.environ.get("CCN_TEST_PG_URL")
    if given:
        yield given.rstrip("/")
        return
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as exc:
        _pg_problem.append(str(exc))
        if os.environ.get("CCN_SKIP_POSTGRES") == "1":
            pytest.skip(f"POSTGRESQL NOT TESTED: {exc}")
        pytest.fail(f"PostgreSQL could not start, so the store is untested on it: {exc}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
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
    base: str = request.getfixturevalue("pg_base_url")
    async with new_database(base, template=request.getfixturevalue("pg_template")) as url:
        yield url


@pytest.fixture
async def app(prepared_url: str, tmp_path: Path) -> AsyncIterator[App]:
    """The bot's store, migrated and loaded with the plan's registry."""
    settings = load_settings(
        DATA_DIR=tmp_path / "data", DATABASE_URL=prepared_url, TELEGRAM_BOT_USERNAME="ccn_test_bot"
    )
    async with open_app(settings) as opened:
        await prepare(opened)  # already done in the template: a quick check
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
