from __future__ import annotations

import asyncio
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App, open_app, prepare
from bot.settings import load_settings
from handlers.context import Deps
from store.db import make_engine, make_sessionmaker
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


# The slowest tests (seconds, `--durations` on 3 workers, the machine lightly loaded, 26/11/2026):
# run first, spread over the workers, so that none of them is left with a long one at the end
# while the others are idle. A test missing here is merely not moved; a name that no longer
# matches moves nothing.
SLOW = {
    "tests/test_fuzz.py::test_conversation_fuzz[postgresql]": 46,
    "tests/test_crash_safety.py::test_kill_9_while_twenty_people_report[sqlite]": 42,
    "tests/test_crash_safety.py::test_kill_9_while_twenty_people_report[postgresql]": 40,
    "tests/test_two_workers_rush.py::"
    "test_two_workers_take_the_rush_while_the_reminder_leader_is_killed": 30,
    "tests/test_fuzz.py::test_conversation_fuzz[sqlite]": 19,
    "tests/test_two_workers_telegram.py::test_a_report_and_its_albums_move_between_two_workers": 18,
    "tests/test_cli.py::test_terminal_demo_driven_through_a_pipe[command1]": 15,
    "tests/test_upward_report.py::test_libreoffice_prints_both_as_intended[sqlite]": 14,
    "tests/test_cli.py::test_terminal_demo_driven_through_a_pipe[command0]": 13,
    "tests/test_workers.py::test_a_conversation_moves_between_two_workers": 12,
    "tests/test_trust_transactions.py::"
    "test_a_slow_photo_download_on_zalo_does_not_fail_anyone_else": 11,
    "tests/test_zalo_e2e.py::test_every_form_over_zalo_end_to_end": 11,
    "tests/test_orgs.py::test_the_2021_workbook_of_a_past_month_is_unchanged[postgresql]": 10,
    "tests/test_operations.py::test_run_waits_for_telegram_to_come_up": 10,
    "tests/test_deadline_rush_smoke.py::"
    "test_three_people_file_their_reports_through_the_real_bot": 9,
    "tests/test_telegram_e2e.py::test_webhook_refuses_a_large_body_without_reading_it": 9,
    "tests/test_operations.py::test_run_gives_up_on_an_unreachable_telegram_with_one_line": 9,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The SLOW tests first, dealt to the workers: pytest-xdist's worksteal hands each of N
    workers a contiguous share of the list at the start (the first len//N, then a half of the
    rest, ...), so each share begins with its slow tests, the longest first, their sum about
    even; every worker computes the same order from the same collection."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    slow = sorted((i for i in items if i.nodeid in SLOW), key=lambda i: -SLOW[i.nodeid])
    if not slow:
        return
    rest = [i for i in items if i.nodeid not in SLOW]
    sizes, left = [], len(items)
    for n in range(workers, 0, -1):
        sizes.append(left // n)
        left -= sizes[-1]
    heads: list[list[pytest.Item]] = [[] for _ in sizes]
    for item in slow:  # each to the share with the least slow time so far that has room
        room = [k for k in range(len(sizes)) if len(heads[k]) < sizes[k]]
        k = min(room, key=lambda k: sum(SLOW[i.nodeid] for i in heads[k]))
        heads[k].append(item)
    ordered: list[pytest.Item] = []
    for head, size in zip(heads, sizes, strict=True):
        ordered += head + rest[: size - len(head)]
        del rest[: size - len(head)]
    items[:] = ordered + rest


def pytest_configure(config: pytest.Config) -> None:
    # Bytecode caches (as scripts/test.sh has them): with PYTHONDONTWRITEBYTECODE set, each
    # xdist worker compiled the sources again to collect (~6 s of CPU each) and each process a
    # test starts compiled the bot (~0.5 s). Set here, before the workers start, it holds
    # for them and for every process the tests start, however pytest was called.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    # The cyclic garbage collector of the test processes (not of the processes the tests
    # start): at its defaults (700, 10, 10) it went through everything pytest and the tests
    # hold every few tests, 14 % of the CPU of seven in-process test files (144 s of user CPU,
    # 21 s of it collecting; 123 s at these thresholds, peak RSS 316 → 324 MB). The same
    # garbage is collected, less often.
    gc.set_threshold(5000, 10, 10)
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


@pytest.fixture(scope="session")
def sqlite_place(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each test's copy of the SQLite template goes: the same file test after test in
    this process, so that the `app` fixture's engine for it is the same one (see `app`)."""
    return tmp_path_factory.mktemp("prepared") / "ccn.db"


@pytest.fixture(params=["sqlite", "postgresql"])
async def prepared_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A database of each kind, migrated and loaded with the registry (a copy of a template:
    migrating and loading for every test took most of the suite's time)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        copy: Path = request.getfixturevalue("sqlite_place")
        for previous in copy.parent.glob(f"{copy.name}*"):  # the last test's, with its WAL
            previous.unlink()
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


# The `app` fixture's engines, by database URL, the newest last: a test gets the engine of
# the test before it when its database has the same URL (the same SQLite file and, most of
# the time, the same PostgreSQL database from the pool), its connections closed in between.
_ENGINES: dict[str, AsyncEngine] = {}
KEPT_ENGINES = 4


def _engine_for(url: str) -> AsyncEngine:
    engine = _ENGINES.pop(url, None) or make_engine(url)
    _ENGINES[url] = engine
    while len(_ENGINES) > KEPT_ENGINES:
        del _ENGINES[next(iter(_ENGINES))]  # disposed at the end of its test
    return engine


@pytest.fixture
async def app(prepared_url: str, tmp_path: Path) -> AsyncIterator[App]:
    """The bot's store, migrated and loaded with the plan's registry: what `open_app` opens,
    on an engine kept from test to test. A new engine compiled every SQL statement anew, as
    the bot's one engine does once after its start: ~20 % of the CPU of the store tests
    (eight files, 83 s → 64–68 s of user CPU). Each test still gets its database afresh and the
    engine's connections are closed at its end; other engines a test opens are its own."""
    settings = load_settings(
        DATA_DIR=tmp_path / "data", DATABASE_URL=prepared_url, TELEGRAM_BOT_USERNAME="ccn_test_bot"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = _engine_for(prepared_url)
    try:
        # no prepare(): the database is a copy of a template that prepare() made (checking it
        # again ran Alembic, ~30 ms of CPU, in each of ~330 tests)
        yield App(settings, engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()


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
