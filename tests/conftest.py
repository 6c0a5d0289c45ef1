from __future__ import annotations

import asyncio
import gc
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Coroutine, Generator, Iterator
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


# The fast tier (`pytest --fast`, `scripts/test.sh --fast`): what a developer runs while
# working. Every test but those on PostgreSQL (a `postgresql` parameter or the `pg_base_url`
# fixture), those that start a process or open LibreOffice, and the slowest few (listed here: a
# file, or a test with all its parameters); so the SQLite half of the store tests, the dialog
# tables and most tests of a bot run in the test's own process. The child that builds the
# month's files (reports/offload.py) is allowed: one per test process, kept from test to test.
# A test of the tier that starts a process all the same is named at the end of the run.
STARTS_PROCESSES = {
    "tests/test_cli.py::test_terminal_demo_driven_through_a_pipe",
    "tests/test_crash_safety.py",
    "tests/test_deadline_rush_smoke.py",
    "tests/test_i18n.py::test_python_m_bot_help",
    "tests/test_leader.py::test_one_worker_leads_and_another_takes_over",
    "tests/test_photo_processes.py",
    "tests/test_operations.py::test_run_gives_up_on_an_unreachable_telegram_with_one_line",
    "tests/test_operations.py::test_run_stops_at_once_when_telegram_refuses_the_token",
    "tests/test_operations.py::test_run_waits_for_telegram_to_come_up",
    "tests/test_operations.py::test_run_stops_while_waiting_when_told_to",
    "tests/test_operations.py::test_run_without_channel_or_terminal_exits_with_one_line",
    "tests/test_operations.py::test_run_reads_a_script_from_a_file_as_from_a_pipe",
    "tests/test_operations.py::test_compose_file_with_docker",
    "tests/test_operations.py::test_ccn_health_asks_the_web_server",
    "tests/test_operations.py::test_the_health_check_starts_light",
    "tests/test_operations.py::test_the_running_bot_loads_no_file_library",
    "tests/test_operations.py::test_systemd_unit_verifies",
    "tests/test_security_photos.py::test_a_tiny_png_of_59_megapixels_is_refused_before_it_is_decoded",
    "tests/test_security_photos.py::test_a_59_megapixel_jpeg_is_thumbnailed_in_little_memory",
    "tests/test_telegram_e2e.py::test_webhook_refuses_a_large_body_without_reading_it",
}
OPENS_LIBREOFFICE = {
    "tests/test_status.py::test_workbook_opens_in_libreoffice",
    "tests/test_upward_report.py::test_libreoffice_prints_both_as_intended",
}
# The slowest of the rest, left to the full run: half of the tier's time in 24 of its 600 tests
# (6-35 s each, `--durations` on 3 workers, load average 5-8): the fuzzing and a property test
# of hundreds of examples, a bot driven end to end in the test's process, the month's files.
SLOW_IN_PROCESS = {
    "tests/test_fuzz.py::test_conversation_fuzz",
    "tests/test_conversation_state.py::test_any_stored_json_reads_without_raising",
    "tests/test_photo_integrity.py::test_false_positive_rate_over_240_distinct_photos",
    "tests/test_zalo_e2e.py::test_every_form_over_zalo_end_to_end",
    "tests/test_trust_transactions.py::"
    "test_a_slow_photo_download_on_zalo_does_not_fail_anyone_else",
    "tests/test_telegram_e2e.py::test_new_investor_reports_with_an_album",
    "tests/test_reminders_telegram.py::test_send_is_rate_limited_retried_and_once_only",
    "tests/test_rush.py::test_a_slow_download_holds_up_no_one_else",
    "tests/test_zalo.py::test_images_are_fitted_to_zalos_cap",
    "tests/test_plans.py::test_a_2026_plan_from_csv_sets_the_targets_of_11_2026",
    "tests/test_plans.py::test_a_year_without_a_plan_shows_its_actual_figures",
    "tests/test_status.py::test_tonghop_message_workbook_and_chart",
    "tests/test_upward_report.py::test_month_with_nothing_reported",
    "tests/test_upward_report.py::test_tonghop_sends_both_files_built_in_another_process",
    "tests/test_upward_report.py::test_tonghop_on_a_database_only_this_process_sees",
    "tests/test_upward_report.py::test_tonghop_answered_again_after_a_crash_builds_the_files_again",
    "tests/test_upward_report.py::test_the_child_builds_the_same_files_as_this_process",
    "tests/test_task_duties.py::test_sở_công_thương_sees_the_citys_late_tasks_in_the_summary",
    "tests/test_task_duties.py::test_the_summary_reads_the_citys_tasks_and_duties_once",
    "tests/test_task_duties.py::test_a_tasks_form_with_other_ids_counts_and_flags_the_same",
    "tests/test_orgs.py::test_from_july_2025_the_clusters_sheets_say_the_commune",
    "tests/test_orgs.py::test_the_2021_workbook_of_a_past_month_is_unchanged",
    "tests/test_forms_plan_coverage.py::"
    "test_answers_are_stored_and_in_the_months_workbook_in_words",
    "tests/test_commune_scope.py::"
    "test_a_merged_department_hands_its_slot_and_clusters_to_its_successor",
}
_SPAWNING = ("subprocess.Popen", "os.system", "os.posix_spawn", "os.fork", "os.exec", "os.spawn")
_running: list[str] = []  # the node id of the test running in this process, if any
_spawners: dict[str, str] = {}  # fast tier: tests that started a process all the same


_LEFT_OUT_OF_FAST = STARTS_PROCESSES | OPENS_LIBREOFFICE | SLOW_IN_PROCESS


def _left_out_of_fast(item: pytest.Item) -> bool:
    path, _, name = item.nodeid.partition("::")
    test = f"{path}::{name.split('[', 1)[0]}"
    return _needs_postgres(item) or path in _LEFT_OUT_OF_FAST or test in _LEFT_OUT_OF_FAST


def _fast(config: pytest.Config) -> bool:
    return bool(config.getoption("fast", False))


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _running and event in _SPAWNING:
        _spawners.setdefault(_running[0], f"{event} {args[:2]!r}"[:160])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the fast tier: SQLite only, without the tests that start a process or open "
        "LibreOffice nor the slowest few (tests/conftest.py)",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _running.append(item.nodeid)
    try:
        return (yield)
    finally:
        _running.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "teardown" and item.nodeid in _spawners:
        report.user_properties.append(("ccn_started_process", _spawners[item.nodeid]))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if key == "ccn_started_process":
            _spawners.setdefault(report.nodeid, str(value))


def _launch_once(status: Path | None = None) -> Launch:
    global _launch
    if _launch is None:
        _launch = Launch(status)
    return _launch


def _distributing(config: pytest.Config) -> bool:
    """This is pytest-xdist's controller, about to start workers."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


# The slowest tests (seconds, `--durations` of the whole suite on 3 workers, the machine loaded
# by other work, load average 6-10, 26/11/2026 evening): run first, spread over the workers, so
# that none of them is left with a long one at the end while the others are idle. A test
# missing here is merely not moved; a name that no longer matches moves nothing.
SLOW = {
    "tests/test_crash_safety.py::test_kill_9_while_twenty_people_report[postgresql]": 108,
    "tests/test_crash_safety.py::test_kill_9_while_twenty_people_report[sqlite]": 74,
    "tests/test_cli.py::test_terminal_demo_driven_through_a_pipe[command0]": 61,
    "tests/test_zalo_e2e.py::test_every_form_over_zalo_end_to_end": 50,
    "tests/test_fuzz.py::test_conversation_fuzz[sqlite]": 50,
    "tests/test_two_workers_rush.py::"
    "test_two_workers_take_the_rush_while_the_reminder_leader_is_killed": 48,
    "tests/test_cli.py::test_terminal_demo_driven_through_a_pipe[command1]": 46,
    "tests/test_photo_integrity.py::test_false_positive_rate_over_240_distinct_photos": 40,
    "tests/test_fuzz.py::test_conversation_fuzz[postgresql]": 40,
    "tests/test_upward_report.py::test_libreoffice_prints_both_as_intended[sqlite]": 35,
    "tests/test_task_duties.py::test_the_summary_reads_the_citys_tasks_and_duties_once[sqlite]": 34,
    "tests/test_status.py::test_workbook_opens_in_libreoffice[sqlite]": 32,
    "tests/test_deadline_rush_smoke.py::"
    "test_three_people_file_their_reports_through_the_real_bot": 32,
    "tests/test_upward_report.py::test_month_with_nothing_reported[sqlite]": 30,
    "tests/test_workers.py::test_a_conversation_moves_between_two_workers": 29,
    "tests/test_conversation_state.py::test_any_stored_json_reads_without_raising": 28,
    "tests/test_upward_report.py::"
    "test_tonghop_answered_again_after_a_crash_builds_the_files_again[postgresql]": 26,
    "tests/test_status.py::test_workbook_opens_in_libreoffice[postgresql]": 25,
    "tests/test_task_duties.py::"
    "test_sở_công_thương_sees_the_citys_late_tasks_in_the_summary[sqlite]": 22,
    "tests/test_telegram_e2e.py::test_webhook_refuses_a_large_body_without_reading_it": 22,
    "tests/test_two_workers_telegram.py::test_a_report_and_its_albums_move_between_two_workers": 21,
    "tests/test_task_duties.py::"
    "test_a_tasks_form_with_other_ids_counts_and_flags_the_same[postgresql]": 20,
    "tests/test_upward_report.py::"
    "test_tonghop_answered_again_after_a_crash_builds_the_files_again[sqlite]": 20,
    "tests/test_operations.py::test_run_reads_a_script_from_a_file_as_from_a_pipe": 19,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The SLOW tests first, dealt to the workers: pytest-xdist's worksteal hands each of N
    workers a contiguous share of the list at the start (the first len//N, then a half of the
    rest, ...), so each share begins with its slow tests, the longest first, their sum about
    even; every worker computes the same order from the same collection."""
    if _fast(config):
        kept: list[pytest.Item] = []
        left_out: list[pytest.Item] = []
        for item in items:
            (left_out if _left_out_of_fast(item) else kept).append(item)
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = kept
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
    if _fast(config):
        sys.addaudithook(_audit)  # cannot be removed: only in the fast tier's processes
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
    if os.environ.get("CCN_TEST_PG_URL") or _fast(config):
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
    for nodeid, how in sorted(_spawners.items()):
        terminalreporter.write_line(
            f"!!! FAST TIER: {nodeid} started a process ({how}); "
            "list it in tests/conftest.py STARTS_PROCESSES",
            yellow=True,
            bold=True,
        )


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
