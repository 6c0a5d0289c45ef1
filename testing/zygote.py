"""`python -m bot ARGS` for tests that start the bot again and again (killed with SIGKILL and
started again): each process forked from a copy of the interpreter that has imported the bot
once (multiprocessing's forkserver, one per test process), instead of a new interpreter that
imports it every time (~2 s of CPU a start, most of a start's cost; the crash-safety tests start
the bot ten times).

What the test gets is what `python -m bot` would be: a process of its own, in a session and
process group of its own (kill -9 of the group kills it and nothing else), with exactly the
environment and working directory given, stdin /dev/null and its output appended to a log, the
same command line run by the same `bot.cli.main`; its exit code (or -signal) as Popen gives it.
Two differences, neither of them used by the tests that fork: the modules in PRELOAD were
imported before the environment was set (the settings are read by the command; of them only
store.timings reads a variable at import, the benchmarks' CCN_TIMINGS), and the benchmarks
measure a start of the bot as it is, a new interpreter (benchmarks/deadline_rush.py's Child
forks only when told to)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import sys
from multiprocessing.context import ForkServerContext
from pathlib import Path

import bot

# what `ccn-bot run` imports before it polls (python -X importtime -m bot run)
PRELOAD = [
    "bot.cli",
    "bot.app",
    "bot.logs",
    "bot.channels.telegram",
    "bot.channels.zalo",
    "bot.web",
    "reminders.scheduler",
    "alembic.command",
    "tenacity",
]

_context: list[ForkServerContext] = []


def _forkserver() -> ForkServerContext:
    if not _context:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context.append(context)
        atexit.register(_stop)
    return _context[0]


def _stop() -> None:
    """Stop the forkserver and reap it (else it ends on its own when this process has, its
    CPU and that of the processes it forked counted nowhere)."""
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    with contextlib.suppress(Exception):
        server._stop()  # type: ignore[union-attr]


def _main(args: list[str], env: dict[str, str], cwd: str, log: str) -> None:
    """In the forked process: become `python -m bot ARGS` as a process of its own."""
    os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    nothing = os.open(os.devnull, os.O_RDONLY)
    os.dup2(nothing, 0)
    os.close(nothing)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.argv = [str(Path(bot.__file__).with_name("__main__.py")), *args]  # as `python -m bot`
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the forkserver put back SIGINT's
    from bot.cli import main

    try:
        main(args=args)
    finally:  # as the interpreter does at its end (multiprocessing's child ends with _exit)
        atexit._run_exitfuncs()


class Forked:
    """The process, as much of asyncio.subprocess.Process as the tests use."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    async def wait(self) -> int:
        if self._process.exitcode is None:
            loop = asyncio.get_running_loop()
            exited = asyncio.Event()
            loop.add_reader(self._process.sentinel, exited.set)  # the forkserver's word
            try:
                await exited.wait()
            finally:
                loop.remove_reader(self._process.sentinel)
            self._process.join()
        code = self._process.exitcode
        assert code is not None
        return code


async def start(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Forked:
    """`python -m bot ARGS` with exactly `env`, in `cwd`, its output appended to `log`. On a
    thread: the first call waits for the forkserver to import the bot (~2 s)."""
    process = _forkserver().Process(
        target=_main, args=(args, env, str(cwd), str(log)), daemon=False
    )
    await asyncio.to_thread(process.start)
    return Forked(process)
