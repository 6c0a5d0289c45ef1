"""Deadline rush: N people each open an invitation and file a whole monthly report with one photo
against the real `ccn-bot run` process, through a stand-in Telegram Bot API on loopback; on SQLite
and on PostgreSQL; and the same load against a python-telegram-bot + PicklePersistence baseline
(benchmarks/ptb_baseline.py) in the same run.

    .venv/bin/python -m benchmarks.deadline_rush [--people 50,200,500] \\
        [--mode saturation,rush] [--db sqlite,postgresql] [--bot shipped,uncapped] \\
        [--baseline | --no-baseline] [--kill | --no-kill] [--quick] [--workers 1,2]

*saturation*: every person answers the moment the previous answer arrives (the most updates a
second the bot can take). *rush*: every person waits a random 2-8 s before each message, as
people on phones do (N/5 updates a second offered). Latency is timed from the moment the stand-in
makes an update available to getUpdates to the bot's first message to that chat after it.

The bot runs *shipped* (its own rate limiter, bot/channels/pacing.py) and
*uncapped* (the same `ccn-bot run` with that limiter's overall cap lifted, as if Telegram allowed
more than 30 messages a second); the stand-in never enforces Telegram's flood limits here.

*--workers N* (N >= 2, PostgreSQL only): the same load against N `ccn-bot run` workers in webhook
mode on one database, fed by testing/webhook_relay.py (Telegram posting each update to one worker
behind a round-robin load balancer, and again after a failure); and, beside it, one worker behind
the same relay, so that the ratio compares like with like. `--workers 1` is the long-polling run
above. Each such run adds per-worker figures (posts, CPU, SQL, peak RSS) and `workers_ratio`.

Prints one JSON document to stdout; progress goes to stderr. Child processes are killed and
temporary directories removed on every way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import io
import json
import os
import random
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from PIL import Image, ImageDraw
from sqlalchemy import func, select

from benchmarks import document
from benchmarks import machine as shared_machine
from bot.app import open_app, prepare
from bot.settings import Settings, load_settings
from domain.roles import ClusterKind, Role
from store.access import create_invitation
from store.db import SQL_STATS_VARIABLE, unit_of_work
from store.models import ChannelIdentity, Cluster, Report, ReportPhoto
from testing import zygote
from testing.chat_user import ChatUser
from testing.pg import PostgresUnavailable, free_port, new_database, postgres_server
from testing.standin_telegram import StandinBotAPI
from testing.webhook_relay import WebhookRelay

PROJECT = Path(__file__).resolve().parents[1]
FORMS = PROJECT / "store" / "forms"
TOKEN = "242424:DEADLINE-RUSH"
# The reminders of the day are set for 20:00 so that none goes out during the measured hour
# (in production the eve's reminder went out at 08:00, its ledger rows written, before the rush).
QUIET_ENV = {"REMIND_DAYS": "1", "REMIND_AT": "20:00"}
FIRST_CHAT = 700_000_000
THINK_SECONDS = (2.0, 8.0)  # rush: a person's pause before each message
STEP_TIMEOUT = 300.0  # no answer this long after an update is an error
LOST_AFTER = 45.0  # kill variant: no answer this long after the update was confirmed: lost
SETTLE_SECONDS = 3.0  # an answer with nothing to act on is complete after this quiet
MAX_STEPS = 60  # a person who needs more messages than this is stuck
BOT_START_TIMEOUT = 120.0
# A run's time cap: nobody sends anything new after this long (twice as long in a rush, where
# a whole report takes ~80 s of pauses); then the answers in flight get DRAIN_SECONDS, and
# those still missing are cut. Not in the kill variant.
MAX_LOAD_SECONDS = 60.0
RUSH_LOAD_FACTOR = 2.0
DRAIN_SECONDS = 20.0
PHOTO_SIZE = (800, 600)
QUICK_PEOPLE = 20  # --quick: both modes, SQLite, the bot as shipped
QUICK_THINK_SECONDS = (0.5, 2.0)  # --quick's rush, a quarter as long: a smoke run, no figures
RECEIPT = re.compile(r"Số tham chiếu: ([A-Z]+-[0-9A-Za-z-]+)")
QUESTION = re.compile(r"^\((\d+)/(\d+)\) (.+)$", re.MULTILINE)

_live_groups: set[int] = set()  # process groups of children not yet reaped


def deadline_eve() -> str:
    """The bot's clock (CLOCK_START): 09:00 in Hanoi on the eve of this month's deadline (the
    24th; the 19th in December), so the month reported is this one."""
    today = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh"))
    day = 19 if today.month == 12 else 24
    return f"{today.year:04d}-{today.month:02d}-{day:02d}T09:00+07:00"


CLOCK_START = deadline_eve()


def progress(message: str) -> None:
    print(f"[rush {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- what a person answers -----------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    form: str
    id: str
    type: str
    # the value a later question's ask_if waits for: answered so that the longest form is asked
    unlocks: Any = None


def load_questions() -> dict[str, Question]:
    """Every question of the cluster forms by its Vietnamese label, as the bot shows it."""
    found: dict[str, Question] = {}
    for name in ("founded", "operating"):
        data = yaml.safe_load((FORMS / f"{name}.yaml").read_text(encoding="utf-8"))
        questions = data["questions"]
        wanted: dict[str, Any] = {}
        for q in questions:
            condition = q.get("ask_if") or {}
            if "equals" in condition:
                wanted[condition["question"]] = condition["equals"]
            elif "at_least" in condition:
                wanted[condition["question"]] = condition["at_least"]
        for q in questions:
            found[q["label"]["vi"]] = Question(name, q["id"], q["type"], wanted.get(q["id"]))
    return found


TEXTS = (
    "Đang hoàn thiện hồ sơ, dự kiến xong trong tháng sau.",
    "Không có",
    "Vướng mặt bằng một số hộ dân, đang vận động.",
    "Đề nghị Sở hỗ trợ thủ tục điều chỉnh quy hoạch.",
)


def typed_answer(question: Question, rng: random.Random) -> str:
    """What a person types to a question without buttons."""
    if question.unlocks is not None and question.type in ("percent", "number"):
        return str(question.unlocks)
    if question.type == "percent":
        value = rng.randint(5, 95)
        return f"{value},5" if rng.random() < 0.3 else str(value)
    if question.type == "number":
        return str(rng.randint(0, 40))
    if question.type == "date":
        return f"{rng.randint(1, 23):02d}/{CLOCK_START[5:7]}/{CLOCK_START[:4]}"
    if question.type == "month":
        return f"{CLOCK_START[5:7]}/{int(CLOCK_START[:4]) - 1}"
    return rng.choice(TEXTS)


def make_photo(index: int) -> bytes:
    """A small real JPEG, different for every person (the bot stores photos by SHA-256)."""
    rng = random.Random(index)
    image = Image.new("RGB", PHOTO_SIZE, (rng.randrange(256), 120, rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(PHOTO_SIZE[0]), rng.randrange(PHOTO_SIZE[1])
        colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.rectangle((x, y, x + rng.randint(20, 200), y + rng.randint(20, 150)), fill=colour)
    draw.text((20, 20), f"CCN site photo {index}", fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


# --- a person on the other side of the stand-in --------------------------------------------


@dataclass
class Step:
    """One update the person sent and what became of it."""

    what: str
    update_id: int
    queued: float
    answered: float | None = None  # the bot's first message to the chat after it
    lost: bool = False


@dataclass
class Inbox:
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)


class Load:
    """The people of one run and what they saw."""

    def __init__(
        self,
        api: StandinBotAPI,
        mode: str,
        seed: int,
        *,
        kill: bool = False,
        think: tuple[float, float] = THINK_SECONDS,
    ) -> None:
        self.api = api
        self.mode = mode
        self.think = think
        self.rng = random.Random(seed)
        self.kill = kill
        self.questions = load_questions()
        self.inboxes: dict[int, Inbox] = {}
        self.people: list[Person] = []
        self.answers = 0  # updates answered so far (the kill variant watches it)
        self.bot_up_since = 0.0  # monotonic time the (restarted) bot was polling; inf while down
        self.stop_at = float("inf")  # the load's time cap: nobody sends after this moment
        api.on_sent = self._sent

    def _sent(self, chat_id: int, message: dict[str, Any]) -> None:
        inbox = self.inboxes.get(chat_id)
        if inbox is not None:
            inbox.messages.append((time.monotonic(), message))
            inbox.event.set()

    def add(self, token: str, photo: bytes) -> Person:
        chat = FIRST_CHAT + len(self.people)
        self.inboxes[chat] = Inbox()
        person = Person(self, chat, token, photo, random.Random(self.rng.random()))
        self.people.append(person)
        return person


class Stopped(Exception):
    """The run's time cap came: the person sends nothing more."""


class Person(ChatUser[dict[str, Any] | None]):
    """Opens the invitation, files the report (buttons tapped, figures typed, one photo), and
    submits it; after a lost answer (kill variant) sends /baocao to resume, as people do."""

    def __init__(self, load: Load, chat: int, token: str, photo: bytes, rng: random.Random) -> None:
        super().__init__(chat, photo, rng)
        self.load = load
        self.token = token
        self.steps: list[Step] = []
        self.receipts: list[str] = []
        self.welcomed = False
        self.refused = 0
        self.confused = 0  # answers with nothing to act on
        self.last_question = ""
        self.stopped = False  # by the time cap, before the receipt

    @property
    def api(self) -> StandinBotAPI:
        return self.load.api

    @property
    def inbox(self) -> Inbox:
        return self.load.inboxes[self.chat]

    def problem(self, text: str) -> None:
        self.problems.append(text)

    async def think(self) -> None:
        if self.load.mode == "rush":
            await asyncio.sleep(self.rng.uniform(*self.load.think))

    async def send(self, what: str, action: Callable[[], int]) -> dict[str, Any] | None:
        """Send one update; return the message to act on next (None: no answer)."""
        await self.think()
        if time.monotonic() >= self.load.stop_at:
            raise Stopped
        seen = len(self.inbox.messages)
        update_id = action()
        step = Step(what, update_id, self.api.queued_at[update_id])
        self.steps.append(step)
        loop = asyncio.get_running_loop()
        last_new = loop.time()
        while True:
            fresh = self.inbox.messages[seen:]
            if fresh and step.answered is None:
                step.answered = fresh[0][0]
                self.load.answers += 1
            acting = [message for _t, message in fresh if self.actionable(message)]
            if acting:
                return acting[-1]
            now = time.monotonic()
            confirmed = self.api.confirmed_at.get(update_id)
            if self.load.kill and confirmed is not None:
                # Telegram has forgotten it: an answer still to come is on its way, or never
                deadline = max(confirmed, self.load.bot_up_since) + LOST_AFTER
            else:  # still queued at Telegram: it will be delivered (again)
                deadline = max(step.queued, self.load.bot_up_since) + STEP_TIMEOUT
            if fresh and loop.time() - last_new >= SETTLE_SECONDS:
                return fresh[-1][1]  # an answer, but nothing to act on: the caller decides
            if now >= deadline:
                if fresh:
                    return fresh[-1][1]
                step.lost = True
                if not self.load.kill:
                    self.problem(f"no answer to {what} in {STEP_TIMEOUT:.0f} s")
                return None
            self.inbox.event.clear()
            wait = min(deadline - now, SETTLE_SECONDS if fresh else 5.0)  # 5 s: look again
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inbox.event.wait(), max(wait, 0.01))
            if len(self.inbox.messages) > seen + len(fresh):
                last_new = loop.time()

    def actionable(self, message: dict[str, Any]) -> bool:
        text = str(message.get("text") or message.get("caption") or "")
        if RECEIPT.search(text) or QUESTION.search(text):
            return True
        datas = self.buttons(message)
        if "submit" in datas or any(d.startswith("done:") for d in datas):
            return True
        return not self.welcomed and "/baocao" in text

    async def run(self) -> None:
        try:
            await self._run()
        except Stopped:
            self.stopped = True
        except asyncio.CancelledError:  # still waiting when the time cap's drain ended
            self.stopped = True
            raise
        except Exception as exc:  # a person's failure is counted, never the run's
            self.problem(f"{type(exc).__name__}: {exc}"[:300])

    async def _run(self) -> None:
        message = await self.send("start", self.say(f"/start {self.token}"))
        for _ in range(MAX_STEPS):
            if message is None:  # no answer (kill variant): open the report again
                message = await self.reopen()
                continue
            text = str(message.get("text") or message.get("caption") or "")
            found = RECEIPT.search(text)
            if found:
                self.receipts.append(found.group(1))
                return
            datas = self.buttons(message)
            asked = QUESTION.search(text)
            if "submit" in datas:
                self.welcomed = True
                message = await self.send("submit", self.tap(message, "submit"))
                continue
            done = [d for d in datas if d.startswith("done:")]
            if done and self.photo_sent:
                message = await self.send("photos-done", self.tap(message, done[0]))
                continue
            if asked is None:
                if "/baocao" in text and not self.welcomed:  # the welcome
                    self.welcomed = True
                    message = await self.send("baocao", self.say("/baocao"))
                    continue
                # An answer with nothing to act on: after a crash, a bot that forgot the
                # person ("not invited") or the report. People open the report again.
                self.confused += 1
                if not self.load.kill:
                    self.problem(f"nothing to answer in {text[:120]!r}")
                if self.confused > 6:
                    self.problem(f"gave up after {text[:120]!r}")
                    return
                message = await self.reopen()
                continue
            self.welcomed = True
            label = asked.group(3).strip()
            if label == self.last_question:
                self.refused += 1
                if self.refused > (6 if self.load.kill else 2):
                    self.problem(f"answer refused again and again: {text[:160]!r}")
                    return
            self.last_question = label
            question = self.load.questions.get(label)
            if question is None:
                self.problem(f"unknown question {label!r}")
                return
            message = await self.answer(message, question, datas)
        self.problem(f"no receipt after {MAX_STEPS} messages")

    async def reopen(self) -> dict[str, Any] | None:
        """/baocao to resume; if that was just tried, the invitation link again first."""
        last = self.steps[-1].what if self.steps else ""
        self.photo_sent = False  # asked for photos again, people send theirs again
        if last != "resume":
            return await self.send("resume", self.say("/baocao"))
        self.welcomed = False
        return await self.send("reopen-invitation", self.say(f"/start {self.token}"))

    async def answer(
        self, message: dict[str, Any], question: Question, datas: list[str]
    ) -> dict[str, Any] | None:
        if question.type == "photos":
            return await self.answer_photos(message, datas)
        prefix = f"a:{question.id}:"
        options = [d for d in datas if d.startswith(prefix)]
        if question.type == "yesno" and options:
            wanted = "no" if question.unlocks == "no" else "yes"
            data = f"{prefix}{wanted}" if f"{prefix}{wanted}" in options else options[0]
            return await self.send(f"tap:{question.id}", self.tap(message, data))
        if options:
            return await self.send(
                f"tap:{question.id}", self.tap(message, self.rng.choice(options))
            )
        return await self.send(f"type:{question.id}", self.say(typed_answer(question, self.rng)))


# --- the child processes ---------------------------------------------------------------------


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def cpu_seconds(pid: int) -> float:
    """User and system CPU of the process and its reaped children, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def postgres_pids(port: int) -> list[int]:
    """The throw-away PostgreSQL server's processes: its postmaster (started with `-p PORT`)
    and the postmaster's children (backends, writer, WAL)."""
    processes: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            processes[int(entry.name)] = (parent, cmdline)
    masters = [
        pid
        for pid, (_parent, cmdline) in processes.items()
        if "postgres" in cmdline and f"-p {port}" in cmdline
    ]
    return masters + [pid for pid, (parent, _c) in processes.items() if parent in masters]


@dataclass
class Child:
    """`ccn-bot run` (shipped or uncapped) or the PTB baseline, in its own process group."""

    kind: str  # shipped | uncapped | baseline-default | baseline-flush
    env: dict[str, str]
    workdir: Path
    log: Path
    stats: Path | None = None
    process: asyncio.subprocess.Process | zygote.Forked | None = None
    starts: int = 0
    # the shipped bot forked from an interpreter that imported it once (testing/zygote.py):
    # for the tests that start it again and again, not for figures of its start
    forked: bool = False

    def argv(self) -> list[str]:
        if self.kind == "shipped":
            return [sys.executable, "-m", "bot", "run"]
        if self.kind == "uncapped":
            return [sys.executable, "-m", "benchmarks.deadline_rush", "--uncapped-bot"]
        flush = ["--flush-every-update"] if self.kind == "baseline-flush" else []
        return [sys.executable, "-m", "benchmarks.ptb_baseline", *flush]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def spawn(self) -> None:
        """The process, in a group of its own, its output to the log."""
        if self.forked and self.kind == "shipped":
            self.process = await zygote.start(["run"], self.env, self.workdir, self.log)
            _live_groups.add(self.process.pid)
            self.starts += 1
            return
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv(),
                env=self.env,
                cwd=self.workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        _live_groups.add(self.process.pid)
        self.starts += 1

    async def start(self, api: StandinBotAPI) -> float:
        """Start the process; return once it polls the stand-in (monotonic time)."""
        polls = len(api.called("getUpdates"))
        await self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + BOT_START_TIMEOUT
        while len(api.called("getUpdates")) <= polls:
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start: " + " | ".join(tail(self.log)))
            await asyncio.sleep(0.05)
        return time.monotonic()

    async def sql_stats(self) -> dict[str, int] | None:
        """The bot's SQL counts now (store/db.py writes them on SIGUSR1)."""
        if self.stats is None or self.process is None:
            return None
        before = self.stats.read_text() if self.stats.exists() else ""
        self.stats.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        for _ in range(200):
            if self.stats.exists():
                with contextlib.suppress(ValueError):
                    data: dict[str, int] = json.loads(self.stats.read_text())
                    return data
            await asyncio.sleep(0.01)
        progress(f"{self.kind}: no SQL counts ({before!r})")
        return None

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            kill_group(self.process.pid)
            await self.process.wait()
        if self.process is not None:
            _live_groups.discard(self.process.pid)

    async def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s); the exit code."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                await self.kill()
        _live_groups.discard(self.process.pid)
        return self.process.returncode


WEBHOOK_PUBLIC_URL = "https://ccn-bot.lb.example/hook"  # every worker's WEBHOOK_URL: the balancer


def webhook_environment(api: StandinBotAPI, port: int) -> dict[str, str]:
    """What a webhook worker adds to the environment: the balancer's address as WEBHOOK_URL (the
    path and secret derive from the token, the same in every worker) and a port of its own."""
    return {
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.root,
        "WEBHOOK_URL": WEBHOOK_PUBLIC_URL,
        "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port),
    }


async def port_open(port: int) -> bool:
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@dataclass
class WebhookChild(Child):
    """`ccn-bot run` as one of several webhook workers (its env from webhook_environment):
    started once it has registered the webhook and its port takes connections."""

    port: int = 0

    async def start(self, api: StandinBotAPI) -> float:
        registered = len(api.called("setWebhook"))
        await self.spawn()
        assert self.process is not None
        deadline = time.monotonic() + BOT_START_TIMEOUT
        while len(api.called("setWebhook")) <= registered or not await port_open(self.port):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} did not start: " + " | ".join(tail(self.log)))
            await asyncio.sleep(0.05)
        return time.monotonic()


def tail(log: Path, lines: int = 6) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.strip().splitlines()[-lines:]


def log_errors(log: Path) -> list[str]:
    """Lines of the child's log that report an error or a traceback."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return [
        line
        for line in text.splitlines()
        if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")
    ]


def base_environment() -> dict[str, str]:
    """This environment without any of the bot's own settings."""
    ours = {f.alias for f in Settings.model_fields.values() if f.alias}
    env = {k: v for k, v in os.environ.items() if k not in ours and k != SQL_STATS_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")]))
    return env


def bot_environment(api: StandinBotAPI, data_dir: Path, url: str, **more: str) -> dict[str, str]:
    """A child bot's environment: this one without the bot's own settings, then the stand-in
    Telegram's token and address, the data folder, the database, the clock's start and `more`."""
    return {
        **base_environment(),
        "TELEGRAM_BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": api.root,
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": url,
        "CLOCK_START": CLOCK_START,
        **more,
    }


def uncapped_bot() -> None:
    """`ccn-bot run` with its rate limiter's caps lifted (no bulk gate, no per-chat pace);
    everything else as shipped. A child process of the benchmark."""
    from bot import cli
    from bot.channels import pacing

    pacing.BULK_PER_SECOND = 1e9
    pacing.CHAT_BURST = 10**9
    pacing.CHAT_PER_SECOND = 1e9
    cli.main(args=["run"])


# --- the databases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Registry:
    """The plan's clusters, loaded once: (code, form) in the registry's order; and the SQLite
    file they were loaded into, which every SQLite run starts from."""

    clusters: list[tuple[str, str]]
    sqlite_file: Path

    def form_of(self, person: int) -> tuple[str, str]:
        return self.clusters[person % len(self.clusters)]


async def load_registry(workdir: Path) -> Registry:
    path = (workdir / "registry.db").resolve()
    async with open_app(settings_for(workdir, f"sqlite+aiosqlite:///{path}")) as app:
        await prepare(app)
        async with app.sessions() as session:
            rows = await session.execute(select(Cluster.code, Cluster.kind).order_by(Cluster.id))
            clusters = [(code, ClusterKind(kind).form) for code, kind in rows.all()]
    return Registry(clusters, path)


async def postgres_template(
    stack: contextlib.AsyncExitStack[bool | None], base: str, registry: Registry, people: int
) -> tuple[str, list[str]]:
    """A PostgreSQL database with the registry and the invitations, made once; every
    PostgreSQL run copies it. Its name, and the invitations' tokens."""
    url = await stack.enter_async_context(new_database(base, prefix="rush_template"))
    tokens = await invite(settings_for(Path(tempfile.gettempdir()), url), registry, people)
    return url.rsplit("/", 1)[1], tokens


def settings_for(data_dir: Path, url: str) -> Settings:
    return load_settings(DATA_DIR=data_dir, DATABASE_URL=url)


async def invite(settings: Settings, registry: Registry, people: int) -> list[str]:
    """The registry plus one investor invitation per person (clusters round-robin); their tokens.
    Made once per kind of database, in the file or database every run starts from."""
    async with open_app(settings) as app:
        await prepare(app)
        tokens: list[str] = []
        async with unit_of_work(app.sessions) as session:
            for person in range(people):
                code, _form = registry.form_of(person)
                invitation = await create_invitation(
                    session,
                    role=Role.INVESTOR,
                    now=datetime.fromisoformat(CLOCK_START).astimezone(UTC),
                    clusters=[code],
                    expires_days=30,
                    created_by="deadline_rush",
                )
                tokens.append(invitation.token)
        return tokens


Stored = dict[str, tuple[int, int]]  # a stored report's reference: (chat, photos)


async def stored_reports(settings: Settings) -> Stored:
    """The reports the bot's database holds, with the chat that sent each and its photos."""
    async with open_app(settings) as app, app.sessions() as session:
        photos = (
            select(ReportPhoto.report_id, func.count().label("n"))
            .group_by(ReportPhoto.report_id)
            .subquery()
        )
        rows = await session.execute(
            select(Report.reference, ChannelIdentity.external_id, photos.c.n)
            .join(
                ChannelIdentity,
                (ChannelIdentity.person_id == Report.submitted_by_person_id)
                & (ChannelIdentity.channel == "telegram"),
            )
            .outerjoin(photos, photos.c.report_id == Report.id)
        )
        return {reference: (int(chat), n or 0) for reference, chat, n in rows.all()}


def baseline_reports(data_dir: Path) -> Stored:
    """The reports the baseline's pickle holds (as of its last flush)."""
    import pickle

    path = data_dir / "baseline.pickle"
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        data = pickle.load(fh)  # our own file
    reports = data.get("bot_data", {}).get("reports", {})
    return {ref: (int(r["chat"]), len(r.get("photos", []))) for ref, r in reports.items()}


# --- one run ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


@dataclass(frozen=True)
class MachineSample:
    """The machine's counters at one moment (Linux): the microseconds in which every task
    waited on the disk at once (PSI's `full` line of /proc/pressure/io; None without PSI), and
    the jiffies the hypervisor took (`steal`) and all jiffies, from /proc/stat."""

    at: float
    disk_stall_us: int | None
    steal: int
    jiffies: int

    @classmethod
    def now(cls) -> MachineSample:
        stall: int | None = None
        steal = jiffies = 0
        with contextlib.suppress(OSError, ValueError, IndexError):
            cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
            jiffies, steal = sum(cpu[:8]), cpu[7]
        with contextlib.suppress(OSError, ValueError, IndexError):
            full = Path("/proc/pressure/io").read_text().split("full", 1)[1]
            stall = int(full.split("total=", 1)[1].split()[0])
        return cls(time.monotonic(), stall, steal, jiffies)


class LoopWatch:
    """The benchmark loop's own lag while a run goes on (it serves the stand-in and plays the
    people); surviving objects are frozen out of the collector every second, as in
    reminder_fanout (a full collection over the stand-in's records stalls the loop). Also
    samples the machine every second (MachineSample): a slow window of a run is told apart
    from a disk that stalled or a hypervisor that took the cores."""

    def __init__(self) -> None:
        self.max_lag = 0.0
        self.lags_over_50ms = 0
        self.machine: list[MachineSample] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        expected = frozen = loop.time()
        while True:
            now = loop.time()
            lag = max(0.0, now - expected)
            self.max_lag = max(self.max_lag, lag)
            self.lags_over_50ms += lag > 0.05
            if now - frozen >= 1:
                frozen = now
                gc.freeze()
                self.machine.append(MachineSample.now())
            expected = loop.time() + 0.1
            await asyncio.sleep(0.1)

    def __enter__(self) -> LoopWatch:
        gc.collect()
        gc.freeze()
        self.machine.append(MachineSample.now())
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
        self.machine.append(MachineSample.now())
        gc.unfreeze()

    def summary(self) -> dict[str, Any]:
        return {
            "max_loop_lag_ms": round(self.max_lag * 1000, 1),
            "loop_lags_over_50ms": self.lags_over_50ms,
        }


@dataclass
class Target:
    """What one run measures: which process, which database, which mode, how many people."""

    bot: str  # shipped | uncapped | baseline-default | baseline-flush
    db: str  # sqlite | postgresql | pickle
    mode: str  # saturation | rush
    people: int
    kill: bool = False
    workers: int = 1  # with webhook: that many `ccn-bot run` behind testing/webhook_relay.py
    webhook: bool = False

    @property
    def name(self) -> str:
        kill = "-kill" if self.kill else ""
        workers = f"/webhook-x{self.workers}" if self.webhook else ""
        return f"{self.bot}/{self.db}/{self.mode}/{self.people}{kill}{workers}"


@dataclass
class Context:
    registry: Registry
    photos: list[bytes]
    pg_base: str | None
    pg_template: str | None
    tokens: dict[str, list[str]]  # the invitations in each kind of database, person by person
    seed: int
    problems: list[str]
    keep_logs: Path | None = None
    max_load_seconds: float = float("inf")  # a saturation run's time cap (see MAX_LOAD_SECONDS)
    think: tuple[float, float] = THINK_SECONDS


@contextlib.asynccontextmanager
async def database(target: Target, context: Context, workdir: Path) -> AsyncIterator[str]:
    if target.db == "postgresql":
        assert context.pg_base is not None
        async with new_database(
            context.pg_base, prefix="rush", template=context.pg_template
        ) as url:
            yield url
    else:
        path = (workdir / "data" / "ccn.db").resolve()
        shutil.copyfile(context.registry.sqlite_file, path)
        yield f"sqlite+aiosqlite:///{path}"


SETTLE_S = 3.0


async def settle_disk() -> None:
    """Before a run: what the preparation or the run before wrote (the registry, the 500
    invitations, PostgreSQL's template and its copy, the last run's photos) written out, and a
    pause, so that a run's commits do not sync behind it. Without it, the SQLite run right
    after preparing both stores had its first 10 s at p95 1.0 and 1.2 s (27/11/2026, two
    invocations); with it, 0.33 s (one)."""
    await asyncio.to_thread(os.sync)
    await asyncio.sleep(SETTLE_S)


async def run_one(target: Target, context: Context) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ccn-rush-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        data_dir = workdir / "data"
        data_dir.mkdir()
        async with database(target, context, workdir) as url:
            await settle_disk()
            if target.webhook:
                return await measure_workers(target, context, workdir, data_dir, url)
            return await measure(target, context, workdir, data_dir, url)


async def measure(
    target: Target, context: Context, workdir: Path, data_dir: Path, url: str
) -> dict[str, Any]:
    progress(f"{target.name}: starting")
    baseline = target.bot.startswith("baseline")
    settings = settings_for(data_dir, url)
    if baseline:
        tokens = [f"inv{i:05d}{random.Random(i).getrandbits(40):x}" for i in range(target.people)]
        invitations = {
            token: dict(zip(("cluster", "form"), context.registry.form_of(i), strict=True))
            for i, token in enumerate(tokens)
        }
        (data_dir / "invitations.json").write_text(json.dumps(invitations))
    else:
        tokens = context.tokens[target.db][: target.people]
    api = StandinBotAPI(token=TOKEN, bot_username="ccn_rush_bot", enforce_limits=False)
    await api.start()
    env = bot_environment(api, data_dir, url, **QUIET_ENV)
    stats = None if baseline else workdir / "sql-stats.json"
    if stats is not None:
        env[SQL_STATS_VARIABLE] = str(stats)
    child = Child(target.bot, env, workdir, workdir / "bot.log", stats)
    problems: list[str] = []
    result: dict[str, Any] = {"bot": target.bot, "db": target.db, "mode": target.mode}
    result["people"] = target.people
    try:
        spawned = time.monotonic()
        started = await child.start(api)
        progress(f"{target.name}: {target.bot} polling after {started - spawned:.1f} s")
        load = Load(api, target.mode, context.seed, kill=target.kill, think=context.think)
        people = [load.add(token, context.photos[i]) for i, token in enumerate(tokens)]
        load.bot_up_since = started
        pg_port = int(url.rsplit(":", 1)[1].split("/")[0]) if target.db == "postgresql" else None
        pg_cpu_before = sum(cpu_seconds(p) for p in postgres_pids(pg_port)) if pg_port else 0.0
        sql_before = await child.sql_stats()
        load_before = round(os.getloadavg()[0], 2)
        cpu_before = cpu_seconds(child.pid)
        harness_before = time.process_time()
        with LoopWatch() as watch:
            began = time.monotonic()
            if not target.kill:
                factor = RUSH_LOAD_FACTOR if target.mode == "rush" else 1.0
                load.stop_at = began + factor * context.max_load_seconds
            tasks = [asyncio.create_task(person.run()) for person in people]
            killer = (
                asyncio.create_task(kill_and_restart(target, child, api, load, result))
                if target.kill
                else None
            )
            reporter = asyncio.create_task(report_progress(target, load, began))
            try:
                # after the time cap, answers in flight get DRAIN_SECONDS to arrive
                cap = load.stop_at - began + DRAIN_SECONDS
                drain = None if target.kill or cap == float("inf") else cap
                await finish(tasks, drain)
            finally:
                reporter.cancel()
                if killer is not None and not killer.done():
                    killer.cancel()
                    problems.append("the kill came after every person had finished")
            ended = time.monotonic()
        if killer is not None and killer.done() and not killer.cancelled():
            killer.result()
        cpu_after = cpu_seconds(child.pid)
        harness_cpu = time.process_time() - harness_before
        sql_after = await child.sql_stats()
        pg_cpu_after = sum(cpu_seconds(p) for p in postgres_pids(pg_port)) if pg_port else 0.0
        peak = peak_rss_mb(child.pid)
        await stop_child(child, target.bot, problems)
        result["harness"] = harness(watch, load_before)
    finally:
        await child.kill()
        await api.stop()
    stored = baseline_reports(data_dir) if baseline else await stored_reports(settings)
    result.update(
        summarise(people, began, ended, stored, target.kill, watch.machine),
        cpu_s_per_update=None,
        peak_rss_mb=peak,
    )
    updates = result["updates"]
    if updates:
        result["harness"]["cpu_s_per_update"] = round(harness_cpu / updates, 5)
        result["cpu_s_per_update"] = round((cpu_after - cpu_before) / updates, 5)
        if target.kill:
            result["cpu_s_per_update"] = None  # two processes; the first one's CPU is gone
        if pg_port is not None:
            result["db_server_cpu_s_per_update"] = round(
                (pg_cpu_after - pg_cpu_before) / updates, 5
            )
        if sql_before and sql_after and not target.kill:
            for key in ("statements", "commits", "rollbacks"):
                result[f"sql_{key}_per_update"] = round(
                    (sql_after[key] - sql_before[key]) / updates, 2
                )
            # connections the bot opened during the load (each: a login, statements prepared anew)
            result["sql_connections_opened"] = sql_after.get("connects", 0) - sql_before.get(
                "connects", 0
            )
    errors = log_errors(child.log)
    if errors:
        problems.append(f"{len(errors)} error lines in the log, first: {errors[0][:300]}")
    result["errors"]["log_errors"] = len(errors)
    return conclude(result, problems, target, context, {"": child.log})


async def measure_workers(
    target: Target, context: Context, workdir: Path, data_dir: Path, url: str
) -> dict[str, Any]:
    """`measure` for `--workers`: the same people and figures against `target.workers` webhook
    workers on one PostgreSQL database, fed through testing/webhook_relay.py (round-robin); plus
    what each worker was given and spent."""
    progress(f"{target.name}: starting")
    settings = settings_for(data_dir, url)
    tokens = context.tokens[target.db][: target.people]
    api = StandinBotAPI(token=TOKEN, bot_username="ccn_rush_bot", enforce_limits=False)
    await api.start()
    relay = WebhookRelay(api, public_url=WEBHOOK_PUBLIC_URL, seed=context.seed)
    children: list[WebhookChild] = []
    for index in range(target.workers):
        port = free_port()
        # one photo folder for all, as on shared storage
        env = bot_environment(api, data_dir, url, **QUIET_ENV, **webhook_environment(api, port))
        stats = workdir / f"sql-stats-{index}.json"
        env[SQL_STATS_VARIABLE] = str(stats)
        log = workdir / f"bot-{index}.log"
        children.append(WebhookChild(target.bot, env, workdir, log, stats, port=port))
    names = [f"worker-{chr(ord('a') + i)}" for i in range(target.workers)]
    problems: list[str] = []
    result: dict[str, Any] = {"bot": target.bot, "db": target.db, "mode": target.mode}
    result["people"] = target.people
    result["workers"] = target.workers
    per_worker: dict[str, dict[str, Any]] = {name: {} for name in names}
    try:
        spawned = time.monotonic()
        for name, child in zip(names, children, strict=True):  # one after the other: each
            started = await child.start(api)  # is known up by its own setWebhook
            relay.add(name, child.port)
        progress(f"{target.name}: {target.workers} workers up after {started - spawned:.1f} s")
        await relay.start()
        load = Load(api, target.mode, context.seed, think=context.think)
        people = [load.add(token, context.photos[i]) for i, token in enumerate(tokens)]
        load.bot_up_since = started
        pg_port = int(url.rsplit(":", 1)[1].split("/")[0])
        pg_cpu_before = sum(cpu_seconds(p) for p in postgres_pids(pg_port))
        sql_before = [await child.sql_stats() for child in children]
        load_before = round(os.getloadavg()[0], 2)
        cpu_before = [cpu_seconds(child.pid) for child in children]
        harness_before = time.process_time()
        with LoopWatch() as watch:
            began = time.monotonic()
            factor = RUSH_LOAD_FACTOR if target.mode == "rush" else 1.0
            load.stop_at = began + factor * context.max_load_seconds
            tasks = [asyncio.create_task(person.run()) for person in people]
            reporter = asyncio.create_task(report_progress(target, load, began))
            try:
                cap = load.stop_at - began + DRAIN_SECONDS
                drain = None if cap == float("inf") else cap
                await finish(tasks, drain)
            finally:
                reporter.cancel()
            ended = time.monotonic()
        cpu_after = [cpu_seconds(child.pid) for child in children]
        harness_cpu = time.process_time() - harness_before
        sql_after = [await child.sql_stats() for child in children]
        pg_cpu_after = sum(cpu_seconds(p) for p in postgres_pids(pg_port))
        peaks = [peak_rss_mb(child.pid) for child in children]
        await relay.stop()
        for name, child in zip(names, children, strict=True):
            await stop_child(child, name, problems)
        result["harness"] = harness(watch, load_before)
    finally:
        await relay.stop()
        for child in children:
            await child.kill()
        await api.stop()
    stored = await stored_reports(settings)
    result.update(
        summarise(people, began, ended, stored, False, watch.machine),
        cpu_s_per_update=None,
        peak_rss_mb=max((p for p in peaks if p is not None), default=None),
    )
    updates = result["updates"]
    relayed = relay.figures()
    for index, name in enumerate(names):
        given = relayed["workers"].get(name, {})
        worker: dict[str, Any] = per_worker[name]
        worker["updates_answered_2xx"] = given.get("answered_2xx", 0)
        worker["posts"] = given.get("posted", 0)
        worker["cpu_s"] = round(cpu_after[index] - cpu_before[index], 2)
        worker["peak_rss_mb"] = peaks[index]
        before, after = sql_before[index], sql_after[index]
        if before and after:
            worker["sql_statements"] = after["statements"] - before["statements"]
            worker["sql_commits"] = after["commits"] - before["commits"]
        worker["log_errors"] = len(log_errors(children[index].log))
    result["per_worker"] = per_worker
    result["relay"] = {k: v for k, v in relayed.items() if k != "workers"}
    if updates:
        result["harness"]["cpu_s_per_update"] = round(harness_cpu / updates, 5)
        result["cpu_s_per_update"] = round((sum(cpu_after) - sum(cpu_before)) / updates, 5)
        result["db_server_cpu_s_per_update"] = round((pg_cpu_after - pg_cpu_before) / updates, 5)
        counted = [(b, a) for b, a in zip(sql_before, sql_after, strict=True) if b and a]
        if len(counted) == len(children):
            for key in ("statements", "commits", "rollbacks"):
                total = sum(a[key] - b[key] for b, a in counted)
                result[f"sql_{key}_per_update"] = round(total / updates, 2)
    errors = [line for child in children for line in log_errors(child.log)]
    if errors:
        problems.append(f"{len(errors)} error lines in the logs, first: {errors[0][:300]}")
    result["errors"]["log_errors"] = len(errors)
    result["errors"]["updates_given_up_by_relay"] = relayed["updates_given_up"]
    logs = {f"-{name}": child.log for name, child in zip(names, children, strict=True)}
    shares = ", ".join(f"{n} {w['updates_answered_2xx']}" for n, w in per_worker.items())
    return conclude(result, problems, target, context, logs, f" ({shares})")


def workers_ratio(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput of N webhook workers against one: one worker behind the same relay (like with
    like) and the one long-polling worker, by bot, mode and people, on PostgreSQL."""

    def rate(like: dict[str, Any], workers: int | None) -> float | None:
        """updates/s of the run like `like` with that many webhook workers (None: polling)."""
        for other in runs:
            same = all(other.get(k) == like.get(k) for k in ("bot", "db", "mode", "people"))
            if same and other.get("workers") == workers and "lost" not in other:
                value = other.get("updates_per_s")
                return float(value) if value else None
        return None

    ratios: dict[str, Any] = {}
    for run in runs:
        many = run.get("workers") or 1
        if run.get("db") != "postgresql" or many < 2:
            continue
        entry = ratios.setdefault(f"{run['bot']}/{run['mode']}/{run['people']}", {})
        mine, webhook, polling = rate(run, many), rate(run, 1), rate(run, None)
        entry[f"x{many}_updates_per_s"] = mine
        entry["x1_webhook_updates_per_s"] = webhook
        entry["x1_polling_updates_per_s"] = polling
        if mine and webhook:
            entry[f"x{many}_vs_x1_webhook"] = round(mine / webhook, 2)
        if mine and polling:
            entry[f"x{many}_vs_x1_polling"] = round(mine / polling, 2)
    return ratios


async def stop_child(child: Child, name: str, problems: list[str]) -> None:
    """Stop the bot; an exit other than a clean one is a problem, told with its log's end."""
    code = await child.stop()
    if code not in (0, None):
        problems.append(f"{name} exited {code}: " + " | ".join(tail(child.log)))


def harness(watch: LoopWatch, load_before: float) -> dict[str, Any]:
    """How the harness itself fared: its event loop's lag, and the machine's load before and
    after."""
    return {**watch.summary(), "loadavg_1m": [load_before, round(os.getloadavg()[0], 2)]}


async def finish(tasks: list[asyncio.Task[None]], drain: float | None) -> None:
    """Wait for every person; who still waits after `drain` seconds (None: no limit) is
    cancelled."""
    _done, pending = await asyncio.wait(tasks, timeout=drain)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def conclude(
    result: dict[str, Any],
    problems: list[str],
    target: Target,
    context: Context,
    logs: dict[str, Path],
    note: str = "",
) -> dict[str, Any]:
    """The end of a run's result: the errors' total, the problems (the run's, then the
    people's; the first five also the benchmark's), the logs kept (`logs`: by the suffix of the
    kept file's name) and a line of progress ending in `note`."""
    result["errors"]["total"] = sum(
        v for k, v in result["errors"].items() if k != "total" and isinstance(v, int)
    )
    result["problems"] = problems + result.pop("person_problems")
    if context.keep_logs is not None:
        context.keep_logs.mkdir(parents=True, exist_ok=True)
        stem = target.name.replace("/", "-")
        for suffix, log in logs.items():
            (context.keep_logs / f"{stem}{suffix}.log").write_bytes(log.read_bytes())
    for line in result["problems"][:5]:
        context.problems.append(f"{target.name}: {line}")
    progress(
        f"{target.name}: {result['updates_per_s']} updates/s, p50/p95/p99 "
        f"{result['latency_ms']['p50']}/{result['latency_ms']['p95']}/"
        f"{result['latency_ms']['p99']} ms, errors {result['errors']['total']}{note}"
    )
    return result


async def report_progress(target: Target, load: Load, began: float) -> None:
    while True:
        await asyncio.sleep(10)
        done = sum(1 for p in load.people if p.receipts)
        progress(
            f"{target.name}: {time.monotonic() - began:.0f} s, {load.answers} answers, "
            f"{done}/{len(load.people)} receipts"
        )


async def kill_and_restart(
    target: Target, child: Child, api: StandinBotAPI, load: Load, result: dict[str, Any]
) -> None:
    """SIGKILL the bot at a random moment while reports are being submitted (once 20-80 % of the
    people have their receipt), then start it again at once."""
    at = max(1, round(target.people * random.Random(target.people).uniform(0.2, 0.8)))
    while sum(1 for person in load.people if person.receipts) < at:
        await asyncio.sleep(0.002)
    load.bot_up_since = float("inf")
    killed = time.monotonic()
    await child.kill()
    result["killed_after_answers"] = load.answers
    result["killed_after_receipts"] = sum(1 for p in load.people if p.receipts)
    progress(f"{target.name}: SIGKILL after {load.answers} answers; starting again")
    await asyncio.sleep(0.2)
    up = await child.start(api)
    result["down_s"] = round(up - killed, 2)
    load.bot_up_since = up


def latency_by_kind(steps: list[Step], ended: float) -> dict[str, dict[str, Any]]:
    """p50/p95 (ms) and count per kind of update: start, baocao, photo, photos-done, submit,
    tap (a button), type (a typed figure or word), resume/reopen (kill variant)."""
    kinds: dict[str, list[float]] = {}
    for step in steps:
        end = step.answered if step.answered is not None else None if step.lost else ended
        if end is not None:
            kinds.setdefault(step.what.split(":")[0], []).append(end - step.queued)
    return {
        kind: {
            "n": len(values),
            "p50": ms(percentile(values, 50)),
            "p95": ms(percentile(values, 95)),
        }
        for kind, values in sorted(kinds.items())
    }


WINDOW_S = 10.0


def latency_by_window(
    steps: list[Step], ended: float, machine: list[MachineSample]
) -> list[dict[str, Any]]:
    """p50/p95 (ms) and count of the updates sent in each WINDOW_S seconds from the first: a
    rush's first seconds (everyone's /start and /baocao) against the rest. With each, what the
    machine did meanwhile (machine_in_window)."""
    first = min((step.queued for step in steps), default=ended)
    windows: dict[int, list[float]] = {}
    for step in steps:
        end = step.answered if step.answered is not None else None if step.lost else ended
        if end is not None:
            windows.setdefault(int((step.queued - first) // WINDOW_S), []).append(end - step.queued)
    return [
        {
            "from_s": index * WINDOW_S,
            "n": len(values),
            "p50": ms(percentile(values, 50)),
            "p95": ms(percentile(values, 95)),
            **machine_in_window(machine, first + index * WINDOW_S, WINDOW_S),
        }
        for index, values in sorted(windows.items())
    ]


def machine_in_window(samples: list[MachineSample], start: float, length: float) -> dict[str, Any]:
    """From the samples taken between `start` and `start + length` (and the one before): the
    milliseconds in which every task of the machine waited on the disk at once, and the share of
    the cores' time the hypervisor took (%). Empty without two samples."""
    inside = [s for s in samples if start <= s.at <= start + length]
    before = [s for s in samples if s.at < start]
    if before:
        inside.insert(0, before[-1])
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    figures: dict[str, Any] = {}
    if first.disk_stall_us is not None and last.disk_stall_us is not None:
        figures["disk_stall_ms"] = round((last.disk_stall_us - first.disk_stall_us) / 1000)
    if last.jiffies > first.jiffies:
        share = (last.steal - first.steal) / (last.jiffies - first.jiffies)
        figures["steal_pct"] = round(100 * share, 1)
    return figures


def summarise(
    people: list[Person],
    began: float,
    ended: float,
    stored: Stored,
    kill: bool,
    machine: list[MachineSample],
) -> dict[str, Any]:
    steps = [step for person in people for step in person.steps]
    answered = [step for step in steps if step.answered is not None]
    latencies = [step.answered - step.queued for step in answered if step.answered is not None]
    # updates still unanswered when the time cap's drain ended: their wait so far, a lower bound
    cut = [step for step in steps if step.answered is None and not step.lost]
    latencies += [ended - step.queued for step in cut]
    last = max((step.answered for step in answered if step.answered is not None), default=ended)
    first = min((step.queued for step in steps), default=began)
    receipts = [(ref, p.chat) for p in people for ref in p.receipts]
    lost_reports = [ref for ref, chat in receipts if stored.get(ref, (None, 0))[0] != chat]
    lost_answers = sum(1 for step in steps if step.lost)
    finished = sum(1 for p in people if p.receipts)
    stopped = sum(1 for p in people if p.stopped)
    problems = [f"chat {p.chat}: {text}" for p in people for text in p.problems]
    by_chat: dict[int, int] = {}
    for chat, _photos in stored.values():
        by_chat[chat] = by_chat.get(chat, 0) + 1
    errors: dict[str, int] = {
        "people_without_receipt": len(people) - finished - stopped,
        "person_problems": len(problems),
        "reports_without_photo": sum(
            1 for ref, chat in receipts if stored.get(ref, (None, 0)) == (chat, 0)
        ),
    }
    if not kill:
        errors["updates_without_answer"] = lost_answers
        errors["reports_missing"] = len(lost_reports)
    result: dict[str, Any] = {
        "updates": len(answered),
        "elapsed_s": round(ended - began, 2),
        "updates_per_s": round(len(answered) / (last - first), 2) if last > first else None,
        "latency_ms": {
            "p50": ms(percentile(latencies, 50)),
            "p95": ms(percentile(latencies, 95)),
            "p99": ms(percentile(latencies, 99)),
            "max": ms(max(latencies, default=None)),
            "mean": ms(statistics.fmean(latencies)) if latencies else None,
        },
        "latency_by_kind": latency_by_kind(steps, ended),
        "latency_by_window": latency_by_window(steps, ended, machine),
        "updates_per_person": round(len(steps) / len(people), 1) if people else None,
        "updates_cut_at_time_cap": len(cut),
        "people_finished": finished,
        "people_stopped_by_time_cap": stopped,
        "reports_stored": len(stored),
        "photos_stored": sum(photos for _chat, photos in stored.values()),
        "errors": errors,
        "person_problems": problems[:20],
    }
    if kill:
        result["lost"] = {
            "answers": lost_answers,
            "reports": len(lost_reports),
            "answers_with_nothing_to_act_on": sum(p.confused for p in people),
            "people_who_reported_twice": sum(1 for n in by_chat.values() if n > 1),
        }
    return result


# --- the whole benchmark ---------------------------------------------------------------------


def machine() -> dict[str, Any]:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GB"
    return {
        **shared_machine(),
        "cpu_count": os.cpu_count(),
        "ram": memory,
        "python_telegram_bot": importlib.metadata.version("python-telegram-bot"),
        "sqlalchemy": importlib.metadata.version("sqlalchemy"),
    }


def tuning() -> dict[str, Any]:
    """The bot's rate limiter as the shipped child runs it."""
    from bot.channels import pacing

    return {
        "bulk_per_second": pacing.BULK_PER_SECOND,
        "chat_burst": pacing.CHAT_BURST,
        "chat_per_second": pacing.CHAT_PER_SECOND,
    }


def plan(
    people: list[int],
    modes: list[str],
    dbs: list[str],
    bots: list[str],
    *,
    baseline: bool,
    kill: bool,
    workers: list[int] | None = None,
) -> list[Target]:
    """The runs, in order. `workers`: 1 is the long-polling run; each N >= 2 adds, on
    PostgreSQL, N webhook workers and (once) one webhook worker beside them."""
    targets: list[Target] = []
    polling = workers is None or 1 in workers
    many = sorted({w for w in workers or () if w >= 2})
    for mode in modes:
        for n in people:
            for db in dbs:
                if polling:
                    targets.extend(Target(bot, db, mode, n) for bot in bots if bot != "none")
                if many and db == "postgresql":
                    for bot in (b for b in bots if b != "none"):
                        targets.extend(
                            Target(bot, db, mode, n, workers=w, webhook=True) for w in [1, *many]
                        )
            if baseline:
                for variant in ("baseline-default", "baseline-flush"):
                    targets.append(Target(variant, "pickle", mode, n))
    if kill:
        n = 200 if 200 in people else max(people)
        bot = "uncapped" if "uncapped" in bots else "shipped"
        if bots != ["none"]:
            targets.extend(Target(bot, db, "saturation", n, kill=True) for db in dbs)
        if baseline:
            targets.append(Target("baseline-default", "pickle", "saturation", n, kill=True))
    return targets


async def run(
    targets: list[Target],
    seed: int = 24,
    keep_logs: Path | None = None,
    max_load_seconds: float = float("inf"),
    think: tuple[float, float] = THINK_SECONDS,
) -> dict[str, Any]:
    started = time.monotonic()
    config = {
        "clock_start": CLOCK_START,
        "think_s": think,
        "photo": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG, one per person",
        "seed": seed,
        "max_load_s": None if max_load_seconds == float("inf") else max_load_seconds,
        "rush_load_factor": RUSH_LOAD_FACTOR,
        "drain_s": DRAIN_SECONDS,
        **tuning(),
        "runs": [t.name for t in targets],
    }
    result = {**document("deadline_rush", config, machine()), "runs": []}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ccn-rush-registry-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            registry = await load_registry(Path(tmp))
            count = max(t.people for t in targets)
            tokens: dict[str, list[str]] = {}
            if any(t.db == "sqlite" for t in targets):
                progress(f"{count} invitations in the SQLite database every run copies")
                path = registry.sqlite_file
                url = f"sqlite+aiosqlite:///{path}"
                tokens["sqlite"] = await invite(settings_for(path.parent, url), registry, count)
            photos = [make_photo(i) for i in range(count)]
            pg_base = pg_template = None
            if any(t.db == "postgresql" for t in targets):
                try:
                    pg_base = stack.enter_context(postgres_server(durable=True))  # as in production
                    progress(f"{count} invitations in the PostgreSQL database every run copies")
                    pg_template, tokens["postgresql"] = await postgres_template(
                        stack, pg_base, registry, count
                    )
                except PostgresUnavailable as exc:
                    problems.append(f"PostgreSQL runs skipped: {exc}"[:500])
                    targets = [t for t in targets if t.db != "postgresql"]
            context = Context(
                registry,
                photos,
                pg_base,
                pg_template,
                tokens,
                seed,
                problems,
                keep_logs,
                max_load_seconds,
                think,
            )
            result["config"]["clusters"] = len(registry.clusters)
            for target in targets:
                try:
                    result["runs"].append(await run_one(target, context))
                except asyncio.CancelledError:  # SIGTERM or Ctrl-C: what was measured so far
                    problems.append(f"interrupted during {target.name}")
                    progress(f"{target.name}: interrupted")
                    break
                except Exception as exc:
                    problems.append(f"{target.name}: {type(exc).__name__}: {exc}"[:600])
                    progress(f"{target.name}: FAILED {exc}")
                finally:
                    for pid in list(_live_groups):
                        kill_group(pid)
    if any(t.webhook for t in targets):
        result["workers_ratio"] = workers_ratio(result["runs"])
    result["errors_total"] = sum(r["errors"]["total"] for r in result["runs"])
    result["problems"] = problems
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


async def main_async(targets: list[Target], args: argparse.Namespace) -> dict[str, Any]:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        think = QUICK_THINK_SECONDS if args.quick else THINK_SECONDS
        return await run(targets, args.seed, args.keep_logs, args.max_load_seconds, think)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip() for v in text.split(",") if v.strip()]
        wrong = [v for v in values if v not in choices]
        if wrong or not values:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(choices)}")
        return values

    return parse


def _people(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError("numbers, like 50,200,500") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("at least one person")
    return values


def _workers(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError("numbers, like 1,2") from exc
    if not values or min(values) < 1 or max(values) > 8:
        raise argparse.ArgumentTypeError("1 to 8 workers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--people", type=_people, default=[50, 200, 500])
    parser.add_argument(
        "--mode", type=_list(("saturation", "rush")), default=["saturation", "rush"]
    )
    parser.add_argument(
        "--db", type=_list(("sqlite", "postgresql")), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--bot",
        type=_list(("shipped", "uncapped", "none")),
        default=["shipped"],
        help="shipped (default), uncapped (its limiter's cap lifted), none (baselines only)",
    )
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kill-only", action="store_true", help="only the kill -9 variant")
    parser.add_argument("--quick", action="store_true", help="a 2-minute smoke run (20 people)")
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument(
        "--max-load-seconds",
        type=float,
        default=MAX_LOAD_SECONDS,
        help="a saturation run's time cap (a rush gets twice as long; not the kill); 0: none",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy each run's bot log into this folder")
    parser.add_argument(
        "--workers",
        type=_workers,
        default=[1],
        help="1: one long-polling bot (default); N >= 2 (PostgreSQL): N webhook workers behind "
        "testing/webhook_relay.py, and one webhook worker beside them; e.g. 1,2",
    )
    return parser.parse_args(argv)


def targets_from(args: argparse.Namespace) -> list[Target]:
    if args.quick:
        modes = ["saturation", "rush"]
        return plan(
            [QUICK_PEOPLE], modes, ["sqlite"], ["shipped"], baseline=args.baseline, kill=False
        )
    modes = [] if args.kill_only else args.mode
    kill = args.kill or args.kill_only
    if args.workers != [1]:
        if "postgresql" not in args.db and max(args.workers) >= 2:
            raise SystemExit("--workers 2 or more needs --db postgresql (webhook workers)")
        return plan(
            args.people,
            modes,
            args.db,
            args.bot,
            baseline=args.baseline,
            kill=kill,
            workers=args.workers,
        )
    return plan(args.people, modes, args.db, args.bot, baseline=args.baseline, kill=kill)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--uncapped-bot"]:
        uncapped_bot()
        return 0
    args = parse_args(argv)
    if args.max_load_seconds <= 0:
        args.max_load_seconds = float("inf")
    try:
        result = asyncio.run(main_async(targets_from(args), args))
    finally:
        for pid in list(_live_groups):
            kill_group(pid)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
