"""The `ccn-bot` command run in the test's own process: the same click commands and the same
`run` start-up as `python -m bot`, without a new interpreter importing everything again (about
2 s of CPU each). For the tests whose subject is what a command does; those about the process
itself (signals, stdin, start-up, memory) start a real one."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from click.testing import CliRunner

from bot import cli, logs
from bot.app import Startup, open_app, prepare, serve
from bot.settings import Settings, load_settings
from testing.unpaced import chat_pace_lifted


@dataclass
class Done:
    """What a command left, as `subprocess.run` tells it."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _fresh_logging() -> Iterator[None]:
    """The root logger as a new process has it (no handlers: WARNING and above to stderr), and
    put back after: a command may replace the root logger's handlers (logs.setup)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level for name in logs.QUIET_LIBRARIES}
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def ccn(cwd: Path, env: Mapping[str, str | None], *args: str, stdin: str = "") -> Done:
    """`ccn-bot ARGS` with `env` over this process's environment (None: unset), in `cwd`.

    Blocking (the commands run their own event loop): from async code, call it through
    asyncio.to_thread. An exception other than an exit is raised, as a process would have
    died with a traceback."""
    runner = CliRunner()
    with contextlib.chdir(cwd), _fresh_logging():
        result = runner.invoke(
            cli.main, list(args), input=stdin, env=dict(env), catch_exceptions=False
        )
    return Done(result.exit_code, result.stdout, result.stderr)


def ccn_at(tmp_path: Path, url: str, *args: str, data_dir: Path | None = None) -> Done:
    """`ccn-bot ARGS` on the database at `url`, no Telegram, data in `data_dir` (default
    tmp_path/data): a command run beside a test's own database."""
    env: dict[str, str | None] = {
        "DATABASE_URL": url,
        "TELEGRAM_BOT_TOKEN": None,
        "DATA_DIR": str(data_dir or tmp_path / "data"),
    }
    return ccn(tmp_path, env, *args)


async def ccn_exits(tmp_path: Path, url: str, *args: str, code: int = 0) -> Done:
    """ccn_at off the event loop; the command must exit with `code` (else its stderr is shown)."""
    done = await asyncio.to_thread(ccn_at, tmp_path, url, *args)
    assert done.returncode == code, done.stderr
    return done


async def exported_rows(tmp_path: Path, url: str, table: str) -> list[dict[str, str]]:
    """The rows `ccn-bot TABLE export` writes to a CSV file."""
    path = tmp_path / f"{table}-exported.csv"
    await ccn_exits(tmp_path, url, table, "export", str(path))
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class Bot:
    """`ccn-bot run` with exactly the environment `env`, on this event loop: the settings, the
    wait for the database, migrations and `serve`, as the command does (less its log set-up,
    which would take the test's logging over). `stop` stops it as SIGTERM stops the process;
    an error of the bot is raised there, where the process would have exited non-zero.
    `chat_pace=False`: a chat's messages are not held to Telegram's pace (testing/unpaced.py),
    for a test whose people answer at once and whose subject is not that pace."""

    def __init__(self, env: Mapping[str, str], *, chat_pace: bool = True) -> None:
        with mock.patch.dict(os.environ, env, clear=True):
            self.settings = load_settings()
        self._pace: contextlib.AbstractContextManager[None] = (
            contextlib.nullcontext() if chat_pace else chat_pace_lifted()
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._main())
        self.returncode: int | None = None

    async def _main(self) -> None:
        settings = self.settings
        with self._pace:
            await self._serve(settings)

    async def _serve(self, settings: Settings) -> None:
        async with open_app(settings) as app:
            await cli._wait_for_database(app, Startup(settings.startup_timeout))
            await prepare(app)
            try:
                await serve(app, self._stop)
            finally:
                gc.unfreeze()  # serve() freezes what start-up loaded: the test's objects too

    async def stop(self) -> str:
        self._stop.set()
        await asyncio.wait_for(self._task, timeout=30)
        self.returncode = 0
        return ""


ZALO_EVENT_TASKS = {"ZaloChannel.handle", "ZaloChannel._handle_kept"}


def zalo_events_of(user: str) -> int:
    """How many webhook events from the Zalo user the bot in this process is handling now (its
    channel handles each in a task of its own, after answering the webhook)."""
    count = 0
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        if task.done() or getattr(coro, "__qualname__", "") not in ZALO_EVENT_TASKS:
            continue
        frame = getattr(coro, "cr_frame", None)
        event = frame.f_locals.get("event") if frame is not None else None
        sender = event.get("sender") if isinstance(event, dict) else None
        if isinstance(sender, dict) and sender.get("id") == user:
            count += 1
    return count


async def zalo_settled(user: str) -> None:
    """Until the bot in this process has handled every event the user sent (and so sent every
    answer to them): what waiting for the bot to fall quiet guessed."""
    while zalo_events_of(user):
        await asyncio.sleep(0.005)
