"""A crowd of people filing their monthly reports through the real `ccn-bot run` (long polling
against the stand-in Bot API) while the bot is killed with SIGKILL and started again: what the
crash-safety test (tests/test_crash_safety.py) drives and measures.

Each person opens their invitation, answers every question of their cluster's form (buttons
tapped, figures typed, one photo) and taps "Gửi báo cáo" once. They wait for the answer to each
update — until the stand-in has seen the bot confirm it (a getUpdates with a higher offset),
which the bot does only after handling it and sending its answer — and act on the last thing
the bot asked. While the bot is down they just keep waiting: Telegram delivers what was not
confirmed again. Nobody sends anything twice by hand.

The kills come at seeded moments spread over the run (counted in updates sent and receipts
received by everyone, see plan_kills): some at a random point, some at the next receipt the bot
is about to send — the stand-in refuses that sendMessage and the process is killed right then,
after the report's transaction committed and before its receipt left, the case the store's
outbox is for. At every kill the store is read while the bot is down, to count how many
submitted reports were committed without their receipt having reached the chat.

What people and the bot do is taken from benchmarks/deadline_rush.py (questions, answers,
photos, the child process); this module adds the waiting, the kills and the bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml
from sqlalchemy import func, select

from benchmarks.deadline_rush import (
    FORMS,
    QUESTION,
    RECEIPT,
    TEXTS,
    Child,
    Question,
    kill_group,
    load_questions,
    make_photo,
)
from bot.app import open_app
from bot.settings import Settings
from domain.roles import ClusterKind, Role
from store.access import create_invitation
from store.db import unit_of_work
from store.models import ChannelIdentity, Cluster, Report, ReportDraft, ReportPhoto
from testing.chat_user import ChatUser
from testing.standin_telegram import ApiError, StandinBotAPI

FIRST_CHAT = 810_000_000
STEP_TIMEOUT = 60.0  # an update not confirmed this long after it was sent: the bot is stuck
MAX_STEPS = 40  # a person who needs more updates than this is stuck
RECEIPT_WAIT = 20.0  # a kill waiting for a receipt that does not come is given up after this


# --- the stand-in, which can cut the bot off as it sends ------------------------------------


class CuttingBotAPI(StandinBotAPI):
    """The stand-in Bot API, with `cut`: called with the chat and the text of each sendMessage
    before it is recorded; when it answers True the message never reaches the chat (the caller
    has killed the bot that sent it: the process died before the bytes left)."""

    cut: Callable[[int, str], bool] | None = None

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        cut = self.cut
        if cut is not None and cut(int(params.get("chat_id") or 0), str(params.get("text"))):
            raise ApiError(502, "Bad Gateway")
        return await super()._send_message(params)


# --- the people's invitations and what the store holds -------------------------------------


@dataclass(frozen=True)
class Invited:
    token: str
    cluster: str  # its code
    form: str  # founded | operating


async def invite_crowd(settings: Settings, count: int, now: datetime) -> list[Invited]:
    """One investor invitation per person, each for a cluster of its own, the two forms taking
    turns (the database is migrated and holds the registry already)."""
    async with open_app(settings) as app, unit_of_work(app.sessions) as session:
        rows = (
            await session.execute(select(Cluster.code, Cluster.kind).order_by(Cluster.id))
        ).all()
        by_form: dict[str, list[str]] = {"founded": [], "operating": []}
        for code, kind in rows:
            by_form[ClusterKind(kind).form].append(code)
        chosen = [
            (code, form)
            for pair in zip(by_form["founded"], by_form["operating"], strict=False)
            for code, form in zip(pair, ("founded", "operating"), strict=True)
        ][:count]
        assert len(chosen) == count, f"only {len(chosen)} clusters of each form in turn"
        invited: list[Invited] = []
        for code, form in chosen:
            invitation = await create_invitation(
                session,
                role=Role.INVESTOR,
                now=now.astimezone(UTC),
                clusters=[code],
                expires_days=30,
                created_by="crash-safety",
            )
            invited.append(Invited(invitation.token, code, form))
        return invited


@dataclass
class Filed:
    """What the store holds for one cluster."""

    reports: list[tuple[str, int, dict[str, Any], int]] = field(default_factory=list)
    # (reference, version, answers, photos)
    open_drafts: int = 0
    submitted_by: set[str] = field(default_factory=set)  # telegram chat ids


async def filed(settings: Settings) -> dict[str, Filed]:
    """Every cluster's reports and open drafts, by cluster code."""
    found: dict[str, Filed] = {}
    async with open_app(settings) as app, app.sessions() as session:
        photos = (
            select(ReportPhoto.report_id, func.count().label("n"))
            .where(ReportPhoto.report_id.is_not(None))
            .group_by(ReportPhoto.report_id)
            .subquery()
        )
        rows = await session.execute(
            select(
                Cluster.code,
                Report.reference,
                Report.version,
                Report.answers,
                photos.c.n,
                ChannelIdentity.external_id,
            )
            .select_from(Report)
            .join(Cluster, Cluster.id == Report.cluster_id)
            .outerjoin(photos, photos.c.report_id == Report.id)
            .outerjoin(
                ChannelIdentity,
                (ChannelIdentity.person_id == Report.submitted_by_person_id)
                & (ChannelIdentity.channel == "telegram"),
            )
        )
        for code, reference, version, answers, n, chat in rows.all():
            entry = found.setdefault(code, Filed())
            entry.reports.append((reference, version, dict(answers or {}), int(n or 0)))
            if chat is not None:
                entry.submitted_by.add(str(chat))
        drafts = await session.execute(
            select(Cluster.code, func.count())
            .select_from(ReportDraft)
            .join(Cluster, Cluster.id == ReportDraft.cluster_id)
            .where(ReportDraft.status == "open")
            .group_by(Cluster.code)
        )
        for code, count in drafts.all():
            found.setdefault(code, Filed()).open_drafts = int(count)
    return found


# --- a person --------------------------------------------------------------------------------


@dataclass
class Sent:
    """One update a person sent, and what came of it."""

    what: str  # start, baocao, tap:<question>, type:<question>, photo, photos-done, submit
    update_id: int
    before: int  # messages in the chat before it was sent
    answered: bool = False  # something reached the chat between sending and confirming it


def text_of(message: dict[str, Any]) -> str:
    return str(message.get("text") or message.get("caption") or "")


class Reporter(ChatUser[list[dict[str, Any]]]):
    """One person filing one report. `given` is what each answered question should be stored
    as; `problems` what went wrong (this person's report is then not finished)."""

    def __init__(
        self, crowd: Crowd, chat: int, invited: Invited, photo: bytes, rng: random.Random
    ) -> None:
        super().__init__(chat, photo, rng)
        self.crowd = crowd
        self.invited = invited
        self.sent: list[Sent] = []
        self.given: dict[str, str] = {}
        self.submit: Sent | None = None
        self.finished = False

    @property
    def api(self) -> CuttingBotAPI:
        return self.crowd.api

    def receipts(self) -> list[tuple[int, str]]:
        """(position in the chat, reference) of every receipt the chat got."""
        return [
            (i, found.group(1))
            for i, message in enumerate(self.api.sent(self.chat))
            if (found := RECEIPT.search(text_of(message)))
        ]

    async def send(self, what: str, action: Callable[[], int]) -> list[dict[str, Any]]:
        """Send one update and wait until the bot has confirmed it — its answer is in the chat
        by then, and so are the answers to anything of this chat delivered again before it;
        while the bot is down, that is after its restart. What reached the chat since."""
        before = len(self.api.sent(self.chat))
        step = Sent(what, action(), before)
        self.sent.append(step)
        if what == "submit":
            self.submit = step  # tapped: from now on the bot owes a receipt
        self.crowd.updates_sent += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STEP_TIMEOUT
        while step.update_id not in self.api.confirmed_at:
            if loop.time() > deadline:
                raise AssertionError(f"{what} (update {step.update_id}) not confirmed in time")
            await asyncio.sleep(0.02)
        # the answers are new messages: a tapped keyboard's removal is not recorded, and the
        # bot edits no text
        answer = [m for m in self.api.sent(self.chat)[before:] if "edit_date" not in m]
        step.answered = bool(answer)
        return answer

    def acting(self, answer: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The last message of an answer that asks for something (a question, the summary's
        Submit, the photos' Done) or is a receipt."""
        message: dict[str, Any]
        for message in reversed(answer):
            text = text_of(message)
            datas = self.buttons(message)
            if RECEIPT.search(text) or QUESTION.search(text):
                return message
            if "submit" in datas or any(d.startswith("done:") for d in datas):
                return message
        return None

    async def run(self) -> None:
        try:
            await self._run()
        except Exception as exc:  # one person's failure is reported, not the run's
            self.problems.append(f"{type(exc).__name__}: {exc}"[:400])

    async def _run(self) -> None:
        welcome = await self.send("start", self.say(f"/start {self.invited.token}"))
        if not any("/baocao" in text_of(m) for m in welcome):
            self.problems.append(f"no welcome after the invitation: {welcome_texts(welcome)}")
            return
        answer = await self.send("baocao", self.say("/baocao"))
        last_label = ""
        for _ in range(MAX_STEPS):
            message = self.acting(answer)
            if message is None:
                step = self.sent[-1]
                if not answer:
                    self.problems.append(f"no answer to {step.what} (update {step.update_id})")
                else:
                    self.problems.append(
                        f"nothing to act on after {step.what}: {welcome_texts(answer)}"
                    )
                return
            text = text_of(message)
            if self.submit is not None:
                if RECEIPT.search(text) is None:
                    self.problems.append(
                        f"no receipt after Gửi báo cáo (update {self.submit.update_id}); "
                        f"the chat got {welcome_texts(answer)}"
                    )
                self.finished = True
                return  # "Gửi" is tapped once: never again by hand
            if RECEIPT.search(text):
                self.problems.append("a receipt before Gửi báo cáo was tapped")
                return
            datas = self.buttons(message)
            if "submit" in datas:
                answer = await self.send("submit", self.tap(message, "submit"))
                continue
            done = [d for d in datas if d.startswith("done:")]
            asked = QUESTION.search(text)
            if done and self.photo_sent and (asked is None or self._is_photos(asked.group(3))):
                answer = await self.send("photos-done", self.tap(message, done[0]))
                continue
            if asked is None:
                self.problems.append(f"nothing asked in {text[:160]!r}")
                return
            label = asked.group(3).strip()
            if label == last_label:  # every answer given is valid: asked again, it was lost
                step = self.sent[-1]
                self.problems.append(
                    f"{label!r} asked again after {step.what} (update {step.update_id}): "
                    "its answer was lost"
                )
                return
            last_label = label
            question = self.crowd.questions.get(label)
            if question is None:
                self.problems.append(f"unknown question {label!r}")
                return
            answer = await self.answer(message, question, datas)
        self.problems.append(f"no summary after {MAX_STEPS} updates")

    def _is_photos(self, label: str) -> bool:
        question = self.crowd.questions.get(label.strip())
        return question is not None and question.type == "photos"

    async def answer(
        self, message: dict[str, Any], question: Question, datas: list[str]
    ) -> list[dict[str, Any]]:
        if question.type == "photos":
            return await self.answer_photos(message, datas)
        prefix = f"a:{question.id}:"
        options = [d for d in datas if d.startswith(prefix)]
        if options:
            if question.type == "yesno":
                wanted = f"{prefix}{'no' if question.unlocks == 'no' else 'yes'}"
                data = wanted if wanted in options else options[0]
                self.given[question.id] = data.removeprefix(prefix)
            else:  # a choice's button carries its index in the form's list
                values = self.crowd.choices[(self.invited.form, question.id)]
                unlocking = (
                    f"{prefix}{values.index(question.unlocks)}"
                    if (question.unlocks in values)
                    else None
                )
                data = unlocking if unlocking in options else self.rng.choice(options)
                self.given[question.id] = values[int(data.removeprefix(prefix))]
            return await self.send(f"tap:{question.id}", self.tap(message, data))
        typed, stored = self.typed(question)
        self.given[question.id] = stored
        return await self.send(f"type:{question.id}", self.say(typed))

    def typed(self, question: Question) -> tuple[str, str]:
        """What the person types to a question without buttons, and how it is stored (plain
        decimals, ISO dates and months)."""
        year, month = self.crowd.clock_start.year, self.crowd.clock_start.month
        if question.unlocks is not None and question.type in ("percent", "number"):
            return str(question.unlocks), str(question.unlocks)
        if question.type == "percent":
            value = self.rng.randint(5, 95)
            if self.rng.random() < 0.3:
                return f"{value},5", f"{value}.5"
            return str(value), str(value)
        if question.type == "number":
            value = self.rng.randint(0, 40)
            return str(value), str(value)
        if question.type == "date":
            day = self.rng.randint(1, 23)
            return f"{day:02d}/{month:02d}/{year}", f"{year:04d}-{month:02d}-{day:02d}"
        if question.type == "month":
            return f"{month:02d}/{year - 1}", f"{year - 1:04d}-{month:02d}"
        text = self.rng.choice(TEXTS)
        return text, text


def form_choices() -> dict[tuple[str, str], list[str]]:
    """The values of each choice question's choices, in order, by (form, question id)."""
    found: dict[tuple[str, str], list[str]] = {}
    for form in ("founded", "operating"):
        data = yaml.safe_load((FORMS / f"{form}.yaml").read_text(encoding="utf-8"))
        for q in data["questions"]:
            if q.get("choices"):
                found[(form, q["id"])] = [str(c["value"]) for c in q["choices"]]
    return found


def welcome_texts(answer: list[dict[str, Any]]) -> str:
    return repr([text_of(m)[:80] for m in answer])[:400]


# --- the kills ---------------------------------------------------------------------------------


@dataclass
class Kill:
    """One SIGKILL: when it is due, and what it found."""

    after_updates: int = 0  # due once everyone together has sent this many updates
    after_receipts: int = 0  # ... and this many people have their receipt
    at_receipt: bool = False  # then: at the next receipt the bot sends (else after `delay`)
    delay: float = 0.0
    landed: bool = False
    at_updates: int = 0  # updates sent when it landed
    at_s: float = 0.0  # seconds into the run
    submits_in_flight: int = 0  # "Gửi" sent, no receipt in the chat yet
    committed_no_receipt: list[int] = field(default_factory=list)  # of those: report stored
    down_s: float = 0.0  # from the kill to the new process polling
    start_s: float = 0.0  # of which starting the new process


def plan_kills(rng: random.Random, people: int, expected_updates: int) -> list[Kill]:
    """Four moments spread over the run: a random point while people answer questions (15-70 %
    of the updates expected; the first receipts come at about 75 %); the next receipt after a
    random few people have theirs; a random point while reports are being submitted; the next
    receipt after most people have theirs."""
    return [
        Kill(
            after_updates=round(expected_updates * rng.uniform(0.15, 0.70)),
            delay=rng.uniform(0.0, 0.5),
        ),
        Kill(after_receipts=rng.randint(1, people // 4), at_receipt=True),
        Kill(after_receipts=rng.randint(people // 3, people // 2), delay=rng.uniform(0.0, 0.5)),
        Kill(after_receipts=rng.randint(people * 2 // 3, people - 3), at_receipt=True),
    ]


class Crowd:
    """The people, the bot process, and the kills of one run."""

    def __init__(
        self,
        api: CuttingBotAPI,
        child: Child,
        settings: Settings,
        invited: list[Invited],
        clock_start: datetime,
        seed: int,
    ) -> None:
        self.api = api
        self.child = child
        self.settings = settings
        self.clock_start = clock_start
        self.rng = random.Random(seed)
        self.questions = load_questions()
        self.choices = form_choices()
        self.updates_sent = 0
        self.people = [
            Reporter(self, FIRST_CHAT + i, inv, make_photo(i), random.Random(self.rng.random()))
            for i, inv in enumerate(invited)
        ]
        self.kills: list[Kill] = []
        self.starts = 0
        self.exit_code: int | None = None
        self.began = 0.0

    async def run(self, kills: list[Kill], stagger: float) -> float:
        """Start the bot, let everyone report (person i starting i × `stagger` s in), kill and
        restart the bot as planned; the bot is stopped at the end. The seconds it took."""
        self.kills = kills
        began = self.began = time.monotonic()
        await self.child.start(self.api)
        self.starts = 1

        async def person(index: int, reporter: Reporter) -> None:
            await asyncio.sleep(index * stagger)
            await reporter.run()

        tasks = [asyncio.create_task(person(i, p)) for i, p in enumerate(self.people)]
        killer = asyncio.create_task(self._kill_all())
        try:
            await asyncio.gather(*tasks)
        finally:
            killer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await killer
            self.api.cut = None
        self.exit_code = await self.child.stop()
        return time.monotonic() - began

    async def report(self, stagger: float) -> float:
        """Let everyone report (person i starting i × `stagger` s in) and return the seconds it
        took, with nothing started, stopped or killed here: for a caller that runs the bot
        itself (several workers behind tests' webhook relay, say) and whose `child` is only
        a placeholder."""
        began = self.began = time.monotonic()

        async def person(index: int, reporter: Reporter) -> None:
            await asyncio.sleep(index * stagger)
            await reporter.run()

        await asyncio.gather(*(person(i, p) for i, p in enumerate(self.people)))
        return time.monotonic() - began

    def receipts(self) -> int:
        """People with a receipt in their chat."""
        return sum(1 for p in self.people if p.submit is not None and p.receipts())

    def _everyone_done(self) -> bool:
        return all(p.finished or p.problems for p in self.people)

    async def _kill_all(self) -> None:
        for kill in self.kills:
            while self.updates_sent < kill.after_updates or self.receipts() < kill.after_receipts:
                if self._everyone_done():
                    return
                await asyncio.sleep(0.01)
            if kill.at_receipt:
                if not await self._at_next_receipt():
                    continue
            else:
                await asyncio.sleep(kill.delay)
                if self._everyone_done():
                    return
                kill_group(self.child.pid)
            await self._restart(kill)

    async def _at_next_receipt(self) -> bool:
        """Kill the bot as it sends the next receipt (that receipt never reaches the chat)."""
        cut = asyncio.Event()

        def at_receipt(chat: int, text: str) -> bool:
            if RECEIPT.search(text) is None or cut.is_set():
                return False
            if any(RECEIPT.search(text_of(m)) for m in self.api.sent(chat)):
                return False  # a receipt answered again: wait for one of a report not yet heard of
            kill_group(self.child.pid)
            cut.set()
            self.api.cut = None
            return True

        self.api.cut = at_receipt
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECEIPT_WAIT
        while not cut.is_set() and loop.time() < deadline and not self._everyone_done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cut.wait(), 0.1)
        self.api.cut = None
        return cut.is_set()

    async def _restart(self, kill: Kill) -> None:
        killed = time.monotonic()
        await self.child.kill()  # reaped
        kill.landed = True
        kill.at_updates = self.updates_sent
        kill.at_s = killed - self.began
        # the bot is down: what did it commit that the chat has not heard of?
        waiting = [
            p
            for p in self.people
            if p.submit is not None and not any(i >= p.submit.before for i, _ in p.receipts())
        ]
        kill.submits_in_flight = len(waiting)
        if waiting:
            store = await filed(self.settings)
            kill.committed_no_receipt = [
                p.chat for p in waiting if store.get(p.invited.cluster, Filed()).reports
            ]
        starting = time.monotonic()
        await self.child.start(self.api)
        self.starts += 1
        kill.start_s = time.monotonic() - starting
        kill.down_s = time.monotonic() - killed
