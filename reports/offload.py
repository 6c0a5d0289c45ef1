"""Slow pure work (the month's workbook and report, the chart) in a child process, off the bot's
GIL: in a worker thread, openpyxl, python-docx and matplotlib hold the GIL the event loop needs,
and every other update waits while the files are built (benchmarks/status_scale.py,
`tinhhinh_while_writing_ms`: a `/tinhhinh` took 3–5 times as long at p50).

One child, started at the first call ("spawn": a fresh interpreter, none of the bot's threads,
connections or locks copied into it) and kept for the next until it has been idle for
`IDLE_SECONDS` (under `ccn-bot run` it holds 120–160 MB); calls take turns in it, so one
month's files at most are in memory at once. Its priority is the bot's: a lower one (nice 10)
made a build on a busy machine four times as long for no clear gain. What it is given must
pickle, so plain data (`reports.month.Month`, never ORM objects); it writes its files itself
and returns their paths.
A child that dies fails the call it was running (`BrokenProcessPool`) and the next call starts
another; `close()` — the bot's shutdown, bot/app.py — lets a call under way finish and reaps the
child."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import multiprocessing
import os
import re
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, ParamSpec, TypeVar

from store.children import background

__all__ = ["BrokenProcessPool", "Done", "aclose", "close", "measured", "run"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

IDLE_SECONDS = 600.0  # a child unused this long exits (the next call starts one: about 1 s)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_busy = 0  # calls under way (on the event loop's thread)
_idle: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class Done(Generic[T]):
    """A call's value, and where and how it ran."""

    value: T
    pid: int  # the child's process id
    seconds: float  # in the child, unpickling the arguments excluded
    peak_rss_mb: float | None  # the child's peak resident set during the call (Linux)


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=background
            )
        return _pool


def _discard(pool: ProcessPoolExecutor) -> None:
    """Forget a broken pool (its child is gone, and reaped by the pool's own thread)."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.shutdown(wait=False, cancel_futures=True)


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _peak_rss_mb() -> float | None:
    """This process's peak resident set (`VmHWM`, which `_reset_peak` resets; `ru_maxrss`, which
    nothing resets, where there is no /proc)."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.M)
    except OSError:
        found = None
    if found:
        return round(int(found.group(1)) / 1024, 1)
    try:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except (OSError, ValueError):
        return None


def _reset_peak() -> None:
    """Start this call's peak from what the child holds now (Linux: "5" resets `VmHWM`)."""
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def _call(fn: Callable[[], T]) -> Done[T]:
    """In the child."""
    _reset_peak()
    started = time.perf_counter()
    value = fn()
    return Done(value, os.getpid(), round(time.perf_counter() - started, 3), _peak_rss_mb())


def _name(fn: Callable[..., object]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


async def measured(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Done[T]:
    """`fn(*args, **kwargs)` in the child; `fn` is a module's function (pickled by name) and the
    arguments plain data."""
    global _busy, _idle
    work = functools.partial(fn, *args, **kwargs)
    if _idle is not None:
        _idle.cancel()
        _idle = None
    _busy += 1
    try:
        pool = _executor()
        try:
            future = pool.submit(_call, work)
        except BrokenProcessPool:  # the child died while idle: this call gets a new one
            _discard(pool)
            pool = _executor()
            future = pool.submit(_call, work)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            _discard(pool)
            raise
    finally:
        _busy -= 1
        if not _busy:
            _idle = asyncio.get_running_loop().call_later(IDLE_SECONDS, _retire)


def _retire() -> None:
    """Idle for IDLE_SECONDS: the child exits, and the pool's own thread reaps it."""
    global _pool, _idle
    _idle = None
    if _busy:
        return
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False)


async def run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` in the child, logged with the child's process id, time and peak."""
    done = await measured(fn, *args, **kwargs)
    log.info(
        "%s: %.2f s in process %d, peak RSS %s MB",
        _name(fn),
        done.seconds,
        done.pid,
        done.peak_rss_mb,
        extra={"child_pid": done.pid, "seconds": done.seconds, "peak_rss_mb": done.peak_rss_mb},
    )
    return done.value


def close() -> None:
    """Let a call under way finish, cancel those waiting, and reap the child."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


async def aclose() -> None:
    """`close()`, from the event loop (its idle timer is cancelled there)."""
    global _idle
    if _idle is not None:
        _idle.cancel()
        _idle = None
    await asyncio.to_thread(close)
