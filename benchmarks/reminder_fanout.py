"""Reminder fan-out: how long `ccn-bot reminders send` takes to remind N people through a
stand-in Telegram Bot API that enforces Telegram's flood limits (30 messages/s overall, 1/s per
chat, 429 `retry_after` beyond), against the floor N/30 s and a plain paced loop measured in the
same run; and what a crash (SIGKILL) halfway through costs under the at-most-once ledger.

    .venv/bin/python -m benchmarks.reminder_fanout [--people 5000]

Prints one JSON document to stdout; progress goes to stderr. Temporary directories are removed
and the `ccn-bot` child processes are killed on every way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import inspect
import json
import os
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from telegram import Bot
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest

from benchmarks import machine as shared_machine
from bot.app import open_app, prepare
from bot.settings import Settings, load_settings
from domain.roles import Role
from store.db import unit_of_work
from store.models import ChannelIdentity, Cluster, Person, PersonCluster, ReminderLedger
from testing.standin_telegram import StandinBotAPI

PROJECT = Path(__file__).resolve().parents[1]
AT = "2021-06-20T08:00+07:00"  # five days before the June deadline: one "due-5" per investor
TOKEN = "515151:FANOUT"
LIMIT_PER_SECOND = 30  # what the stand-in (and Telegram) allows overall
TARGET_RATIO = 1.04
SAMPLE_SECONDS = 0.1
STALL_SECONDS = 0.5  # a gap without any accepted message this long counts as a stall
CHATS = {"baseline": 300_000_000, "uninterrupted": 100_000_000, "killed": 200_000_000}
BASELINE_TEXT = (
    "Nhắc việc: báo cáo tháng 6/2021 cần gửi trước ngày 25/06/2021 (còn 5 ngày).\n"
    "Chưa nhận được:\n• Cụm công nghiệp làng nghề Đại Thắng"
)

_live_groups: set[int] = set()  # process groups of children not yet reaped


def progress(message: str) -> None:
    print(f"[fanout {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- what the stand-in received ------------------------------------------------------------


class Arrivals:
    """Reminders the stand-in accepted for one scenario's chats, counted incrementally: the
    sendMessage calls to those chats minus the 429s answered since (nothing else runs during a
    scenario, and the reminders of this benchmark meet no other error)."""

    def __init__(self, api: StandinBotAPI, chats: range) -> None:
        self.api = api
        self.chats = chats
        self._index = len(api.calls)
        self._attempts = 0
        self._rejected_at_start = api.too_many_requests

    @property
    def rejected(self) -> int:
        return self.api.too_many_requests - self._rejected_at_start

    def accepted(self) -> int:
        calls = self.api.calls
        while self._index < len(calls):
            method, params = calls[self._index]
            self._index += 1
            if method.lower() == "sendmessage" and params.get("chat_id") in self.chats:
                self._attempts += 1
        return self._attempts - self.rejected


@dataclass
class Timeline:
    """(seconds since start, accepted so far) every SAMPLE_SECONDS: when sending began and
    where it stalled."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        base = self.samples[0][1] if self.samples else 0  # accepted before this run
        moving = [(t, n) for t, n in self.samples if n > base]
        if not moving:
            return {"first_message_s": None}
        first_t = moving[0][0]
        final = self.samples[-1][1]
        last_t = next(t for t, n in self.samples if n == final)
        stalls: list[float] = []
        since, count = first_t, moving[0][1]
        for t, n in self.samples:
            if t < first_t or t > last_t:
                continue
            if n != count:
                if t - since >= STALL_SECONDS:
                    stalls.append(t - since)
                since, count = t, n
        sending = last_t - first_t
        return {
            "first_message_s": round(first_t, 2),
            "sending_s": round(sending, 2),
            "sending_rate_per_s": round((final - moving[0][1]) / sending, 2) if sending else None,
            "stalls": len(stalls),
            "stalled_s": round(sum(stalls), 2),
        }


class Watch:
    """While a run goes on: its timeline, and how promptly this process's event loop (which
    serves the stand-in) kept up. A stalled stand-in stamps the requests queued meanwhile
    together, which squeezes them into one second and answers 429: the harness's fault, not the
    bot's, so it is reported (lag, full garbage collections, the machine's load). A full
    collection over everything the stand-in keeps (every call, every message) takes ~90 ms, so
    what survives is frozen out of the collector's reach every second (leaking what little cyclic
    garbage survives that long, which a benchmark process can afford)."""

    def __init__(self, arrivals: Arrivals, label: str) -> None:
        self.arrivals = arrivals
        self.label = label
        self.timeline = Timeline()
        self.max_lag = 0.0
        self.lags_over_50ms = 0
        self.full_collections = 0
        self.max_collection = 0.0
        self._collecting = 0.0
        self._task: asyncio.Task[None] | None = None
        self.started = 0.0  # after the collection below: a run is timed from its spawn
        self.collect_s = 0.0
        self._load = os.getloadavg()[0]

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._collecting = time.perf_counter()
        else:
            self.full_collections += 1
            self.max_collection = max(self.max_collection, time.perf_counter() - self._collecting)

    async def _sample(self, started: float) -> None:
        loop = asyncio.get_running_loop()
        said = expected = frozen = loop.time()
        while True:
            now = loop.time()
            lag = now - expected
            self.max_lag = max(self.max_lag, lag)
            self.lags_over_50ms += lag > 0.05
            if now - frozen >= 1:
                frozen = now
                gc.freeze()
            count = self.arrivals.accepted()
            self.timeline.samples.append((now - started, count))
            if now - said >= 10:
                said = now
                progress(f"{self.label}: {count} accepted, {self.arrivals.rejected} answered 429")
            expected = loop.time() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)

    async def __aenter__(self) -> Watch:
        collecting = asyncio.get_running_loop().time()
        gc.collect()  # before the clock starts
        gc.freeze()
        self.started = asyncio.get_running_loop().time()
        self.collect_s = self.started - collecting
        gc.callbacks.append(self._gc)
        self._task = asyncio.create_task(self._sample(self.started))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        now = asyncio.get_running_loop().time()
        self.timeline.samples.append((now - self.started, self.arrivals.accepted()))

    def summary(self) -> dict[str, Any]:
        return {
            **self.timeline.summary(),
            "harness": {
                "max_loop_lag_ms": round(self.max_lag * 1000, 1),
                "loop_lags_over_50ms": self.lags_over_50ms,
                "full_gc": self.full_collections,
                "full_gc_max_ms": round(self.max_collection * 1000, 1),
                "collect_before_ms": round(self.collect_s * 1000, 1),
                "loadavg_1m": [round(self._load, 2), round(os.getloadavg()[0], 2)],
            },
        }


def per_chat(api: StandinBotAPI, chats: range) -> dict[str, int]:
    counts = [len(api.sent(chat)) for chat in chats]
    return {
        "delivered": sum(1 for n in counts if n >= 1),
        "duplicates": sum(n - 1 for n in counts if n > 1),
        "losses": sum(1 for n in counts if n == 0),
    }


# --- the database --------------------------------------------------------------------------


def settings_for(data_dir: Path) -> Settings:
    url = f"sqlite+aiosqlite:///{(data_dir / 'ccn.db').resolve()}"
    return load_settings(DATA_DIR=data_dir, DATABASE_URL=url)


async def populate(settings: Settings, people: int, first_chat: int) -> dict[int, int]:
    """The registry plus `people` active investors, each with a Telegram chat and one cluster
    (round-robin), inserted in bulk. Returns person id → chat id."""
    async with open_app(settings) as app:
        await prepare(app)
        async with unit_of_work(app.sessions) as session:
            clusters = list((await session.scalars(select(Cluster.id).order_by(Cluster.id))).all())
            first_id = (await session.scalar(select(func.max(Person.id)))) or 0
            chats = {first_id + 1 + i: first_chat + i for i in range(people)}
            await session.execute(
                insert(Person),
                [
                    {
                        "id": person,
                        "full_name": f"CĐT {chat - first_chat}",
                        "role": Role.INVESTOR.value,
                        "locale": "vi",
                        "active": True,
                    }
                    for person, chat in chats.items()
                ],
            )
            await session.execute(
                insert(ChannelIdentity),
                [
                    {
                        "person_id": person,
                        "channel": "telegram",
                        "external_id": str(chat),
                        "reachable": True,
                    }
                    for person, chat in chats.items()
                ],
            )
            await session.execute(
                insert(PersonCluster),
                [
                    {"person_id": person, "cluster_id": clusters[i % len(clusters)]}
                    for i, person in enumerate(chats)
                ],
            )
    return chats


async def ledger(settings: Settings) -> tuple[dict[str, int], list[int]]:
    """Status counts of the ledger, and the people whose rows are still `sending`."""
    async with open_app(settings) as app, app.sessions() as session:
        rows = await session.execute(
            select(ReminderLedger.status, func.count()).group_by(ReminderLedger.status)
        )
        counts = {status: count for status, count in rows.all()}
        sending = await session.scalars(
            select(ReminderLedger.person_id).where(ReminderLedger.status == "sending")
        )
        return dict(sorted(counts.items())), list(sending.all())


# --- the ccn-bot process -------------------------------------------------------------------


def child_environment(settings: Settings, api: StandinBotAPI) -> dict[str, str]:
    """This environment without any of the bot's own settings, plus the scenario's."""
    ours = {f.alias for f in Settings.model_fields.values() if f.alias}
    env = {k: v for k, v in os.environ.items() if k not in ours}
    env.update(
        DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.root,
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
    )
    return env


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


@contextlib.asynccontextmanager
async def reminders_send(
    env: dict[str, str], cwd: Path, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`python -m bot reminders send --at AT` in its own process group; SIGKILLed on the way
    out if still running (an exception, a cancellation, a timeout)."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "reminders",
            "send",
            "--at",
            AT,
            env=env,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    _live_groups.add(process.pid)
    try:
        yield process
    finally:
        if process.returncode is None:
            kill_group(process.pid)
            await process.wait()
        _live_groups.discard(process.pid)


def tail(log: Path, lines: int = 5) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.strip().splitlines()[-lines:]


def timeout_for(people: int) -> float:
    return max(120.0, 6 * people / LIMIT_PER_SECOND)


# --- the scenarios -------------------------------------------------------------------------


@dataclass
class Scenario:
    name: str
    people: int
    workdir: Path
    api: StandinBotAPI
    problems: list[str]

    def problem(self, text: str) -> None:
        progress(f"{self.name}: PROBLEM: {text}")
        self.problems.append(f"{self.name}: {text}")

    @property
    def chats(self) -> range:
        first = CHATS[self.name]
        return range(first, first + self.people)

    @property
    def settings(self) -> Settings:
        return settings_for(self.workdir / "data")

    def env(self) -> dict[str, str]:
        return child_environment(self.settings, self.api)

    def report(self, elapsed: float, rejected: int) -> dict[str, Any]:
        floor = self.people / LIMIT_PER_SECOND
        return {
            "people": self.people,
            "elapsed_s": round(elapsed, 2),
            "floor_s": round(floor, 2),
            "ratio": round(elapsed / floor, 3),
            "too_many_requests": rejected,
            **per_chat(self.api, self.chats),
        }


async def uninterrupted(scenario: Scenario) -> dict[str, Any]:
    chats = await populate(scenario.settings, scenario.people, scenario.chats.start)
    assert len(chats) == scenario.people
    progress(f"uninterrupted: {scenario.people} people ready; sending")
    arrivals = Arrivals(scenario.api, scenario.chats)
    log = scenario.workdir / "send.log"
    loop = asyncio.get_running_loop()
    async with (
        Watch(arrivals, "uninterrupted") as watch,
        reminders_send(scenario.env(), scenario.workdir, log) as process,
    ):
        code = await asyncio.wait_for(process.wait(), timeout_for(scenario.people))
    elapsed = loop.time() - watch.started
    statuses, _sending = await ledger(scenario.settings)
    result = scenario.report(elapsed, arrivals.rejected)
    result.update(
        ledger=statuses,
        exit_code=code,
        output=tail(log, 1),
        timeline=watch.summary(),
    )
    progress(f"uninterrupted: {result['elapsed_s']} s, ratio {result['ratio']}")
    if code != 0:
        scenario.problem(f"ccn-bot exited {code}: " + " | ".join(tail(log)))
    return result


async def killed_and_resumed(scenario: Scenario) -> dict[str, Any]:
    chats = await populate(scenario.settings, scenario.people, scenario.chats.start)
    target = scenario.people // 2
    progress(f"killed: {scenario.people} people ready; sending, SIGKILL at {target} received")
    arrivals = Arrivals(scenario.api, scenario.chats)
    log = scenario.workdir / "send.log"
    loop = asyncio.get_running_loop()
    killed_after: int | None = None
    async with (
        Watch(arrivals, "killed") as first,
        reminders_send(scenario.env(), scenario.workdir, log) as process,
    ):
        started = first.started
        deadline = started + timeout_for(scenario.people)
        while process.returncode is None and loop.time() < deadline:
            count = arrivals.accepted()
            if count >= target:
                killed_after = count
                kill_group(process.pid)  # a crash: no clean-up, no last commit
                break
            # close to the target, look often; far from it, rarely (the stand-in shares the loop)
            await asyncio.sleep(0.002 if target - count <= LIMIT_PER_SECOND else 0.1)
        first_code = await process.wait()
    killed_at = loop.time()
    if killed_after is None:
        raise RuntimeError(
            f"ccn-bot ended (exit {first_code}) before {target} reminders arrived: "
            + " | ".join(tail(log))
        )
    await asyncio.sleep(0.5)  # requests already on the wire when it died may still land
    received_by_restart = per_chat(scenario.api, scenario.chats)["delivered"]
    statuses_after_kill, sending = await ledger(scenario.settings)
    reached = sum(1 for person in sending if scenario.api.sent(chats[person]))
    progress(
        f"killed: after {killed_after} received; {len(sending)} rows left sending "
        f"({reached} of them delivered); resuming"
    )
    async with (
        Watch(arrivals, "resumed") as second,
        reminders_send(scenario.env(), scenario.workdir, log) as process,
    ):
        second_code = await asyncio.wait_for(process.wait(), timeout_for(scenario.people))
    ended = loop.time()
    resumed_at = second.started
    gap = resumed_at - second.collect_s - killed_at  # the harness's collection left out
    statuses, _sending = await ledger(scenario.settings)
    result = scenario.report(ended - started - second.collect_s, arrivals.rejected)
    result.update(
        ledger=statuses,
        killed_after=killed_after,
        received_by_restart=received_by_restart,
        left_sending=len(sending),
        sending_but_delivered=reached,
        sending_and_lost=len(sending) - reached,
        ledger_after_kill=statuses_after_kill,
        first_run_s=round(killed_at - started, 2),
        gap_s=round(gap, 2),
        second_run_s=round(ended - resumed_at, 2),
        exit_codes=[first_code, second_code],
        output=tail(log, 1),
        timeline={"killed_run": first.summary(), "resumed_run": second.summary()},
    )
    result["losses_explained_by_crash_window"] = result["losses"] == result["sending_and_lost"]
    progress(f"killed: {result['elapsed_s']} s in all, ratio {result['ratio']}")
    if second_code != 0:
        scenario.problem(f"the resumed ccn-bot exited {second_code}: " + " | ".join(tail(log)))
    return result


async def baseline(api: StandinBotAPI, people: int) -> dict[str, Any]:
    """N messages from one PTB Bot (no rate limiter) started at exactly 30/s, each on its own
    schedule slot without waiting for earlier answers; a 429 puts the chat back in the queue."""
    chats = range(CHATS["baseline"], CHATS["baseline"] + people)
    rejected_at_start = api.too_many_requests
    request = HTTPXRequest(connection_pool_size=128, pool_timeout=30.0)
    bot = Bot(api.token, base_url=f"{api.root}/bot", request=request)
    pending: deque[int] = deque(chats)
    in_flight: set[asyncio.Task[None]] = set()
    retried = 0

    async def one(chat: int) -> None:
        nonlocal retried
        try:
            await bot.send_message(chat, BASELINE_TEXT)
        except RetryAfter:
            retried += 1
            pending.append(chat)

    loop = asyncio.get_running_loop()
    async with bot, Watch(Arrivals(api, chats), "baseline") as watch:
        started = loop.time()
        slot = 0
        try:
            while pending or in_flight:
                if not pending:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    slot = max(slot, int((loop.time() - started) * LIMIT_PER_SECOND) + 1)
                    continue
                delay = started + slot / LIMIT_PER_SECOND - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                slot += 1
                task = asyncio.create_task(one(pending.popleft()))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        finally:
            for task in in_flight:
                task.cancel()
        elapsed = loop.time() - started
    floor = people / LIMIT_PER_SECOND
    result = {
        "people": people,
        "elapsed_s": round(elapsed, 2),
        "floor_s": round(floor, 2),
        "ratio": round(elapsed / floor, 3),
        "too_many_requests": api.too_many_requests - rejected_at_start,
        "resent_after_429": retried,
        **per_chat(api, chats),
        "timeline": watch.summary(),
    }
    progress(f"baseline: {result['elapsed_s']} s, ratio {result['ratio']}")
    return result


# --- the run -------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        **shared_machine(),
        "cpu_count": os.cpu_count(),
        "python_telegram_bot": importlib.metadata.version("python-telegram-bot"),
        "aiolimiter": importlib.metadata.version("aiolimiter"),
    }


def tuning() -> dict[str, Any]:
    """The sender's tuning as the child processes run it (read from the source)."""
    from bot.channels import pacing
    from reminders.sender import tick

    return {
        "bulk_per_second": round(pacing.BULK_PER_SECOND, 2),
        "bulk_limit": pacing.BULK_LIMIT,
        "bulk_window_s": pacing.BULK_WINDOW,
        "tick_concurrency": inspect.signature(tick).parameters["concurrency"].default,
    }


@contextlib.contextmanager
def workdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(
        prefix=f"ccn-fanout-{name}-", ignore_cleanup_errors=True
    ) as path:
        yield Path(path)


async def run(people: int) -> dict[str, Any]:
    problems: list[str] = []
    api = StandinBotAPI(token=TOKEN, enforce_limits=True)
    root = await api.start()
    progress(f"stand-in Bot API at {root}, enforcing 30 messages/s and 1/s per chat")
    try:
        result: dict[str, Any] = {
            "benchmark": "reminder_fanout",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "config": {"people": people, "at": AT, **tuning()},
        }
        progress(f"baseline: {people} messages paced at {LIMIT_PER_SECOND}/s")
        result["baseline"] = await baseline(api, people)
        await asyncio.sleep(1.1)  # let the stand-in's 1-second window empty
        with workdir("uninterrupted") as path:
            result["uninterrupted"] = await uninterrupted(
                Scenario("uninterrupted", people, path, api, problems)
            )
        await asyncio.sleep(1.1)
        with workdir("killed") as path:
            result["killed_and_resumed"] = await killed_and_resumed(
                Scenario("killed", people, path, api, problems)
            )
    finally:
        for pid in list(_live_groups):
            kill_group(pid)
        await api.stop()
    plain = result["uninterrupted"]
    crash = result["killed_and_resumed"]
    result["target"] = {
        "ratio_max": TARGET_RATIO,
        "ratio_met": plain["ratio"] <= TARGET_RATIO,
        "no_duplicates": plain["duplicates"] == 0 and crash["duplicates"] == 0,
        "no_losses": plain["losses"] == 0,
        "crash_losses_all_uncertain": crash["losses_explained_by_crash_window"],
    }
    result["problems"] = problems  # a child that failed makes its numbers meaningless
    return result


async def main_async(people: int) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await run(people)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=int, default=5000, help="investors to remind")
    args = parser.parse_args(argv)
    if args.people < 2:
        parser.error("--people must be at least 2")
    try:
        result = asyncio.run(main_async(args.people))
    finally:
        for pid in list(_live_groups):  # the last resort, should the loop have died
            kill_group(pid)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
