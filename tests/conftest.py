from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from bot.app import App, open_app, prepare
from bot.settings import load_settings
from handlers.context import Deps
from tests.dialog import Clock
from tests.pg import PostgresUnavailable, postgres_server

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
    base: str = request.getfixturevalue("pg_base_url")
    name = f"t_{uuid.uuid4().hex[:12]}"
    raw = base.replace("postgresql+asyncpg://", "postgresql://")
    admin = await asyncpg.connect(f"{raw}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{base}/{name}"
    admin = await asyncpg.connect(f"{raw}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def app(db_url: str, tmp_path: Path) -> AsyncIterator[App]:
    """The bot's store, migrated and loaded with the plan's registry."""
    settings = load_settings(DATA_DIR=tmp_path / "data", DATABASE_URL=db_url)
    async with open_app(settings) as opened:
        await prepare(opened)
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
