"""The deadline rush through two workers (issue 11, item 4; issue 16's "two workers"): twenty
people file their monthly reports through two real `ccn-bot run` workers in Telegram webhook mode
on one PostgreSQL database, fed by testing/webhook_relay.py — Telegram posting each update to one
worker behind a round-robin load balancer, so that each person's updates alternate between the
workers, and posting it again (to any live worker) after a refused connection, a lost one or a
missing 200.

While they report, the reminders of the day fall due (CLOCK_START is 09:00 on the eve of the
deadline, REMIND_AT 09:00, a tick every 5 s): the worker that leads the reminders (the
PostgreSQL advisory lock of store/leader.py, named in its log) sends one to each person who has
joined and not yet reported. At a seeded n-th reminder of the run, the leader is killed with
SIGKILL as it sends it (the stand-in refuses that sendMessage: the process died before the bytes
left), with its share of the people's updates in flight, and started again; the other worker
takes over the lead at its next tick and the relay delivers the killed worker's updates again.

Then: no error or traceback in either worker's log; every person's report stored once (version
1) with every answer given and the photo, no draft left open; a receipt in each chat after its
"Gửi" with the stored reference; every update answered (a reminder is not an answer); no chat
reminded twice, every reminder in the chat matched by its ledger row, the reminder being sent at
the kill claimed and never sent (at most once), and the lead taken over. The figures are printed
and are part of any failure's message; among them `ledger_sending_never_requested`, the
reminders the killed leader had claimed but not yet asked of Telegram: 1–6 of 20 in 8 runs
while a reminder's claim came before the wait for its chat's pace; since, 0 on a quiet machine
and at most IN_FLIGHT on a busy one (past the limiter, on their way, when the kill lands)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.deadline_rush import (
    CLOCK_START,
    WEBHOOK_PUBLIC_URL,
    WebhookChild,
    base_environment,
    kill_group,
    log_errors,
    tail,
    webhook_environment,
)
from bot.app import open_app
from bot.settings import load_settings
from store.models import ChannelIdentity, ReminderLedger
from testing.crowd import Crowd, CuttingBotAPI, Reporter, filed, invite_crowd, text_of
from testing.pg import free_port, new_database
from testing.standin_telegram import StandinBotAPI
from testing.webhook_relay import WebhookRelay
from tests.test_crash_safety import check

SEED = 20250624
PEOPLE = 20
# reminders past the limiter (claimed, their request being made) in the ~0.1 s a kill takes to
# land, at the bulk pace of 29 a second: lost, as a request on the wire is, never sent twice
IN_FLIGHT = 3
STAGGER = 0.4  # person i opens their invitation i × this many seconds in
RUN_LIMIT = 150.0  # seconds: a run that takes longer fails, it does not hang
REMINDER = "Nhắc báo cáo tháng"  # how the reminder to report begins (vi catalog)
LEADS = "this worker now runs the reminders"  # store/leader.py's log line
TAKEOVER_WAIT = 20.0  # after everyone is done: a live worker leads within this (ticks are 5 s)


@dataclass
class Worker:
    """One `ccn-bot run` behind the relay; `since` is where its running process's lines start
    in its log (a restarted worker appends to the same file)."""

    name: str
    child: WebhookChild
    since: int = 0
    alive: bool = False

    def lines(self) -> str:
        data = self.child.log.read_bytes() if self.child.log.exists() else b""
        return data[self.since :].decode(errors="replace")

    def leads(self) -> bool:
        return self.alive and LEADS in self.lines()

    async def start(self, api: StandinBotAPI, relay: WebhookRelay) -> None:
        self.since = self.child.log.stat().st_size if self.child.log.exists() else 0
        await self.child.start(api)
        self.alive = True
        relay.add(self.name, self.child.port)


@dataclass
class LeaderKill:
    """The SIGKILL of the reminder leader as it sends the `at_reminder`-th reminder."""

    at_reminder: int
    landed: bool = False
    worker: str = ""
    chat: int = 0  # whose reminder was being sent
    at_s: float = 0.0
    reminders_before: int = 0  # reminders in the chats when it landed
    people_reporting: int = 0  # people who had started and had no receipt yet
    down_s: float = 0.0  # from the kill to the worker taking posts again
    landed_event: asyncio.Event = field(default_factory=asyncio.Event)


def reminders_in(api: StandinBotAPI, chat: int) -> int:
    return sum(1 for m in api.sent(chat) if REMINDER in text_of(m) and "edit_date" not in m)


def unanswered(api: StandinBotAPI, person: Reporter) -> list[str]:
    """The updates of a person with no answer in the chat before their next one: the bot's own
    messages in between, not counting a reminder (which comes whatever the person sent)."""
    sent = api.sent(person.chat)
    ends = [step.before for step in person.sent[1:]] + [len(sent)]
    missing = []
    for step, end in zip(person.sent, ends, strict=True):
        between = sent[step.before : end]
        if not any(REMINDER not in text_of(m) and "edit_date" not in m for m in between):
            missing.append(f"{step.what} (update {step.update_id})")
    return missing


async def ledger(url: str, data_dir: Path) -> dict[int, list[tuple[str, str, str]]]:
    """The reminder ledger by Telegram chat: (period, kind, status) of each row."""
    settings = load_settings(DATA_DIR=data_dir, DATABASE_URL=url)
    rows: dict[int, list[tuple[str, str, str]]] = {}
    async with open_app(settings) as app, app.sessions() as session:
        found = await session.execute(
            select(
                ChannelIdentity.external_id,
                ReminderLedger.period,
                ReminderLedger.kind,
                ReminderLedger.status,
            ).join(
                ChannelIdentity,
                (ChannelIdentity.person_id == ReminderLedger.person_id)
                & (ChannelIdentity.channel == "telegram"),
            )
        )
        for chat, period, kind, status in found.all():
            rows.setdefault(int(chat), []).append((period, kind, status))
    return rows


async def test_two_workers_take_the_rush_while_the_reminder_leader_is_killed(
    pg_base_url: str, pg_template: str, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    kill = LeaderKill(at_reminder=rng.randint(2, 5))
    async with new_database(pg_base_url, template=pg_template) as url:
        data_dir = tmp_path / "data"  # one photo folder for both, as on shared storage
        data_dir.mkdir()
        settings = load_settings(DATA_DIR=data_dir, DATABASE_URL=url)
        clock_start = datetime.fromisoformat(CLOCK_START)
        invited = await invite_crowd(settings, PEOPLE, clock_start)
        api = CuttingBotAPI(token="717171:TWO-WORKERS-RUSH", bot_username="ccn_rush2_bot")
        await api.start()
        relay = WebhookRelay(api, public_url=WEBHOOK_PUBLIC_URL, seed=SEED)
        workers: list[Worker] = []
        for name in ("a", "b"):
            port = free_port()
            env = base_environment()
            env.update(
                DATA_DIR=str(data_dir),
                DATABASE_URL=url,
                CLOCK_START=CLOCK_START,
                # the day's reminder is due from the start; each tick reminds whoever joined
                REMIND_DAYS="1",
                REMIND_AT=CLOCK_START[11:16],
                REMINDER_TICK_SECONDS="5",
                **webhook_environment(api, port),
            )
            log = tmp_path / f"worker-{name}.log"
            child = WebhookChild("shipped", env, tmp_path, log, port=port, forked=True)
            workers.append(Worker(name, child))
        crowd = Crowd(api, workers[0].child, settings, invited, clock_start, SEED)
        attempts = 0

        def cut(chat: int, text: str) -> bool:
            """At the n-th reminder sent, kill the leader as it sends it."""
            nonlocal attempts
            if REMINDER not in text or kill.landed:
                return False
            attempts += 1
            leaders = [w for w in workers if w.leads()]
            if attempts < kill.at_reminder or len(leaders) != 1:
                return False
            (leader,) = leaders
            kill_group(leader.child.pid)
            leader.alive = False
            kill.landed, kill.worker, kill.chat = True, leader.name, chat
            kill.at_s = time.monotonic() - crowd.began
            kill.reminders_before = sum(reminders_in(api, p.chat) for p in crowd.people)
            kill.people_reporting = sum(1 for p in crowd.people if p.sent and not p.receipts())
            kill.landed_event.set()
            return True

        async def restart_the_killed() -> None:
            await kill.landed_event.wait()
            killed = time.monotonic()
            worker = next(w for w in workers if w.name == kill.worker)
            await worker.child.kill()  # reaped
            await worker.start(api, relay)
            kill.down_s = time.monotonic() - killed

        async def run() -> float:
            await asyncio.gather(*(w.start(api, relay) for w in workers))
            await relay.start()
            api.cut = cut
            restarter = asyncio.create_task(restart_the_killed())
            try:
                elapsed = await crowd.report(STAGGER)
                if kill.landed:
                    await restarter
            finally:
                api.cut = None
                if not restarter.done():
                    restarter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await restarter
            # the lead taken over: a live worker's current process leads the reminders
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TAKEOVER_WAIT
            while not any(w.leads() for w in workers) and loop.time() < deadline:
                await asyncio.sleep(0.2)
            while relay.in_flight() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            return elapsed

        exit_codes: list[int | None] = []
        try:
            elapsed = await asyncio.wait_for(run(), RUN_LIMIT)
            leading = [w.name for w in workers if w.leads()]
            await relay.stop()
            exit_codes = [await w.child.stop() for w in workers]
        finally:
            await relay.stop()
            for worker in workers:
                await worker.child.kill()
            await api.stop()
        store = await filed(settings)
        reminded = await ledger(url, data_dir)

    relayed = relay.figures()
    chats_on_both = sum(
        1
        for p in crowd.people
        if len({w for s in p.sent for w in relay.handled_by.get(s.update_id, [])}) == 2
    )
    statuses = [status for rows in reminded.values() for _p, _k, status in rows]
    # reminders whose sendMessage reached the stand-in (the one refused at the kill included)
    requested = {
        int(params.get("chat_id") or 0)
        for params in api.called("sendMessage")
        if REMINDER in str(params.get("text"))
    }
    # claimed in the ledger and never asked of Telegram: lost while waiting, not on the wire
    claimed_not_requested = sorted(
        chat
        for chat, rows in reminded.items()
        if chat not in requested and any(status == "sending" for *_pk, status in rows)
    )
    measured: dict[str, Any] = {
        "elapsed_s": round(elapsed, 1),
        "updates_sent": crowd.updates_sent,
        "people_finished": sum(1 for p in crowd.people if p.finished and not p.problems),
        "chats_handled_by_both_workers": chats_on_both,
        "relay": relayed,
        "kill": {
            "at_reminder": kill.at_reminder,
            "landed": kill.landed,
            "worker": kill.worker,
            "at_s": round(kill.at_s, 1),
            "reminders_delivered_before": kill.reminders_before,
            "people_reporting_then": kill.people_reporting,
            "down_s": round(kill.down_s, 2),
        },
        "reminders_delivered": sum(reminders_in(api, p.chat) for p in crowd.people),
        "reminders_requested": len(requested),
        "ledger": {s: statuses.count(s) for s in sorted(set(statuses))},
        "ledger_sending_never_requested": len(claimed_not_requested),
        "leading_at_the_end": leading,
        "worker_starts": {w.name: w.child.starts for w in workers},
        "log_errors": {w.name: len(log_errors(w.child.log)) for w in workers},
        "exit_codes": exit_codes,
    }
    print(f"\ntwo workers, the rush and a killed reminder leader: {json.dumps(measured)}")
    said = f"\nmeasured: {json.dumps(measured)}\n" + "\n".join(
        f"worker {w.name} log: {' | '.join(tail(w.child.log, 4))}" for w in workers
    )

    errors = {w.name: log_errors(w.child.log)[:3] for w in workers if log_errors(w.child.log)}
    assert not errors, f"errors in the logs: {errors}{said}"
    wrong = {p.chat: w for p in crowd.people if (w := check(p, store) + unanswered_of(api, p))}
    assert not wrong, (
        f"{len(wrong)} of {PEOPLE} people:\n"
        + "\n".join(f"  chat {chat}: {'; '.join(w)}" for chat, w in wrong.items())
        + said
    )
    strays = sorted(set(store) - {p.invited.cluster for p in crowd.people})
    assert not strays, f"reports or drafts of clusters nobody reported for: {strays}{said}"
    assert relayed["updates_given_up"] == 0, said
    assert len(relay.handled_by) == crowd.updates_sent, f"updates never answered 200{said}"

    # the reminders: none twice, each matched by its ledger row, the one cut claimed not sent
    assert kill.landed, f"no reminder run to kill the leader in{said}"
    twice = {p.chat: n for p in crowd.people if (n := reminders_in(api, p.chat)) > 1}
    assert not twice, f"reminded more than once: {twice}{said}"
    for person in crowd.people:
        rows = reminded.get(person.chat, [])
        assert len(rows) == len(set(rows)) and len(rows) <= 1, (person.chat, rows, said)
        got = reminders_in(api, person.chat)
        if got:
            assert rows and rows[0][2] in ("sent", "sending"), (person.chat, rows, said)
        elif rows:  # claimed and never delivered: only what was on the wire at the kill
            assert rows[0][2] == "sending", (person.chat, rows, said)
    assert reminders_in(api, kill.chat) == 0, f"the cut reminder went out after all{said}"
    assert len(claimed_not_requested) <= IN_FLIGHT, f"claimed while still waiting, lost{said}"
    assert [status for _p, _k, status in reminded.get(kill.chat, [])] == ["sending"], said
    assert leading, f"no live worker took over the reminders{said}"
    assert exit_codes == [0, 0], f"the workers did not stop cleanly{said}"


def unanswered_of(api: StandinBotAPI, person: Reporter) -> list[str]:
    missing = unanswered(api, person)
    return [f"no answer (a reminder aside) to: {', '.join(missing)}"] if missing else []
