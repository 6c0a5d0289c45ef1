"""Who gets which reminder, on a fixed clock, over a month, a quarter end and December."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from domain.subjects import Subject
from handlers.context import Deps
from handlers.port import Delivery, Reply
from reminders import scheduler
from reminders.policy import Policy
from reminders.sender import tick
from store.db import unit_of_work
from store.models import ChannelIdentity, Person, ReminderLedger, Report
from tests.dialog import Chat, Clock
from tests.records import join

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HANOI)


@dataclass
class Outbox:
    """A notifier that records what it was asked to send; some chats have blocked the bot."""

    blocked: set[str] = field(default_factory=set)
    sent: list[tuple[str, Reply]] = field(default_factory=list)
    channels: frozenset[str] = frozenset({"telegram"})

    def turn(self, channel: str, chat_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        if chat_id in self.blocked:
            return Delivery.BLOCKED
        self.sent.append((chat_id, reply))
        return Delivery.SENT

    def to(self, chat_id: str) -> list[str]:
        return [r.text for c, r in self.sent if c == chat_id]

    def chats(self) -> set[str]:
        return {c for c, _ in self.sent}


INVESTOR_A, INVESTOR_B, DISTRICT, DEPARTMENT, ADMIN = "101", "102", "103", "104", "105"


@pytest.fixture
async def people(app: App) -> App:
    """Two investors (one with two clusters), a district, a department and an admin."""
    now = at("2021-06-01T09:00")
    invites = [
        (INVESTOR_A, "Chị Lan", dict(role=Role.INVESTOR, clusters=["dai-thang", "phu-tuc"])),
        (INVESTOR_B, "Anh Minh", dict(role=Role.INVESTOR, clusters=["binh-phu"])),
        (DISTRICT, "UBND Phú Xuyên", dict(role=Role.DISTRICT, district="Huyện Phú Xuyên")),
        (
            DEPARTMENT,
            "Sở TN&MT",
            dict(role=Role.DEPARTMENT, organisation="Sở Tài nguyên và Môi trường"),
        ),
        (ADMIN, "Sở Công Thương", dict(role=Role.ADMIN)),
    ]
    async with unit_of_work(app.sessions) as session:
        for chat_id, name, scope in invites:
            await join(session, chat_id, name, now, **scope)  # type: ignore[arg-type]
    return app


async def run(app: App, outbox: Outbox, when: str, policy: Policy | None = None) -> Outbox:
    calendar = app.deps().calendar
    await tick(app.sessions, calendar, policy or Policy(), outbox, at(when))
    return outbox


async def file_report(app: App, subject: str, period: str, when: str) -> None:
    async with unit_of_work(app.sessions) as session:
        person_id = await session.scalar(
            select(ChannelIdentity.person_id).where(ChannelIdentity.external_id == INVESTOR_B)
        )
        assert person_id is not None
        deadline = app.deps().calendar.deadline(Period.parse(period))
        session.add(
            Report(
                reference=f"BC-T-{subject}",
                subject=subject,
                period=period,
                form="operating",
                form_version=1,
                version=1,
                answers={},
                submitted_at=at(when),
                submitted_by_person_id=person_id,
                channel="telegram",
                deadline_at=deadline,
                on_time=at(when) < deadline,
            )
        )


async def test_a_month_of_reminders(people: App) -> None:
    app = people
    # 20 June, 08:00: five days before the deadline, every reporter with something open
    box = await run(app, Outbox(), "2021-06-20T08:00")
    assert box.chats() == {INVESTOR_A, INVESTOR_B, DISTRICT, DEPARTMENT}
    [to_a] = box.to(INVESTOR_A)  # one message listing both of her clusters
    assert "Nhắc báo cáo tháng 06/2021: hạn nộp trước ngày 25/06/2021 (còn 5 ngày)" in to_a
    assert "Đại Thắng" in to_a and "Phú Túc" in to_a
    assert "Đây cũng là báo cáo Quý II/2021" in to_a  # June closes the quarter
    buttons = [b for _, r in box.sent if _ == INVESTOR_A for row in r.buttons for b in row]
    assert [b.payload for b in buttons] == [
        "report:cluster:dai-thang:2021-06",
        "report:cluster:phu-tuc:2021-06",
        "paper:2021-06",
    ]
    # the same moment again: the ledger keeps it silent
    assert (await run(app, Outbox(), "2021-06-20T08:00")).sent == []
    assert (await run(app, Outbox(), "2021-06-20T15:00")).sent == []
    # Bình Phú reports; 23 June, 08:00: two days before, only those still missing
    await file_report(app, "cluster:binh-phu", "2021-06", "2021-06-21T10:00")
    assert (await run(app, Outbox(), "2021-06-22T21:30")).sent == []  # quiet hours
    box = await run(app, Outbox(), "2021-06-23T08:00")
    assert box.chats() == {INVESTOR_A, DISTRICT, DEPARTMENT}
    assert "còn 2 ngày" in box.to(INVESTOR_A)[0]
    box = await run(app, Outbox(), "2021-06-24T08:05")
    assert "còn 1 ngày" in box.to(DISTRICT)[0]
    # 25 June, 08:00: the morning after — the district and the admins get the missing list
    box = await run(app, Outbox(), "2021-06-25T08:00")
    assert box.chats() == {DISTRICT, ADMIN}
    [to_district] = box.to(DISTRICT)
    assert "Trên địa bàn Huyện Phú Xuyên còn thiếu 3 báo cáo" in to_district
    assert "Đại Thắng" in to_district and "UBND Huyện Phú Xuyên" in to_district
    assert "Bình phú" not in to_district and "Tài nguyên" not in to_district
    [to_admin] = box.to(ADMIN)
    assert "Toàn Thành phố còn thiếu 4 báo cáo" in to_admin
    assert "Huyện Phú Xuyên (3)" in to_admin and "Các sở, ngành Thành phố (1)" in to_admin
    # 26 June: Sở Công Thương's own deadline (28th), with the reporting rate
    box = await run(app, Outbox(), "2021-06-26T08:00")
    [office] = box.to(ADMIN)
    assert "báo cáo tổng hợp tháng 06/2021 gửi UBND Thành phố và Bộ Công Thương" in office
    assert "hạn trước ngày 28/06/2021 (còn 2 ngày)" in office
    assert "Đã nhận 1/5 báo cáo (20 %); đúng hạn 1, muộn 0" in office
    assert (await run(app, Outbox(), "2021-06-28T08:00")).sent == []


async def test_quarter_end_and_december(people: App) -> None:
    box = await run(people, Outbox(), "2021-08-20T08:00")
    assert "Đây cũng là" not in box.to(INVESTOR_A)[0]  # August is an ordinary month
    box = await run(people, Outbox(), "2021-09-20T08:00")
    assert "Đây cũng là báo cáo Quý III/2021" in box.to(INVESTOR_A)[0]
    box = await run(people, Outbox(), "2021-12-15T08:00")  # December: due before the 20th
    [to_a] = box.to(INVESTOR_A)
    assert "hạn nộp trước ngày 20/12/2021 (còn 5 ngày)" in to_a
    assert "Đây cũng là báo cáo cả năm 2021" in to_a
    assert "Và báo cáo Quý IV/2021, cùng hạn." in to_a  # every report due in December, named
    box = await run(people, Outbox(), "2021-12-20T08:00")
    assert box.chats() == {DISTRICT, ADMIN}  # the morning after the 19th
    box = await run(people, Outbox(), "2021-12-23T08:00")
    assert "hạn trước ngày 25/12/2021 (còn 2 ngày)" in box.to(ADMIN)[0]


async def file_tasks(app: App, chat_id: str, period: str, answers: dict[str, str]) -> None:
    """The task report of the organisation of the person on `chat_id`."""
    async with unit_of_work(app.sessions) as session:
        person = await session.scalar(
            select(Person).join(ChannelIdentity).where(ChannelIdentity.external_id == chat_id)
        )
        assert person is not None and person.organisation_id is not None
        session.add(
            Report(
                reference=f"BC-T-{chat_id}-{period}",
                subject=Subject.org(person.organisation_id),
                organisation_id=person.organisation_id,
                period=period,
                form="tasks",
                form_version=1,
                version=1,
                answers={k: {"v": v} for k, v in answers.items()},
                submitted_at=at(f"{period}-22T10:00"),
                submitted_by_person_id=person.id,
                channel="telegram",
                deadline_at=app.deps().calendar.deadline(Period.parse(period)),
                on_time=True,
            )
        )


async def test_the_reminder_names_the_late_tasks_the_organisation_leads(people: App) -> None:
    box = await run(people, Outbox(), "2021-06-20T08:00")
    [june] = box.to(DISTRICT)
    assert "Nhiệm vụ Phụ lục 1 do đơn vị chủ trì đã quá hạn, chưa báo cáo hoàn thành:" in june
    assert "• NV 20 — quá hạn từ tháng 05/2021: Rà soát, xây dựng kế hoạch" in june
    assert "NV 18" not in june  # due in Quý II/2021, which June closes
    [to_department] = box.to(DEPARTMENT)
    assert "• NV 10 — quá hạn từ tháng 03/2021" in to_department
    assert "• NV 12 — quá hạn từ tháng 03/2021" in to_department
    assert "quá hạn" not in box.to(INVESTOR_A)[0]  # investors lead no city task by name
    # the district reports task 20 done and task 18 under way: July names 18, not 20
    await file_tasks(
        people, DISTRICT, "2021-06", {"t20.status": "done", "t18.status": "in_progress"}
    )
    box = await run(people, Outbox(), "2021-07-20T08:00")
    [july] = box.to(DISTRICT)
    assert "• NV 18 — quá hạn từ Quý II/2021: Rà soát, cập nhật, bổ sung" in july
    assert "NV 20" not in july


async def test_blocked_person_is_recorded_and_listed(people: App) -> None:
    app = people
    box = await run(app, Outbox(blocked={DEPARTMENT}), "2021-06-20T08:00")
    assert DEPARTMENT not in box.chats()
    async with app.sessions() as session:
        identity = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.external_id == DEPARTMENT)
        )
        ledger = await session.scalar(
            select(ReminderLedger).where(ReminderLedger.status == "blocked")
        )
    assert identity is not None and not identity.reachable
    assert ledger is not None and ledger.kind == "due-5"
    box = await run(app, Outbox(), "2021-06-25T08:00")
    assert "Không liên lạc được (đã chặn bot hoặc chưa có kênh): 1" in box.to(ADMIN)[0]
    assert "Sở TN&MT" in box.to(ADMIN)[0]


async def test_paper_claim_confirmed_by_the_admin(people: App) -> None:
    app = people
    clock = Clock(at("2021-06-20T09:00"))
    base = app.deps()
    deps = Deps(base.sessions, base.config, clock)
    investor = Chat(deps, chat_id=INVESTOR_A, channel="telegram")
    admin = Chat(deps, chat_id=ADMIN, channel="telegram")
    box = await run(app, Outbox(), "2021-06-20T08:00")
    investor.replies = [r for c, r in box.sent if c == INVESTOR_A]
    answer = await investor.tap("Đã gửi bằng văn bản")
    assert "Sở Công Thương sẽ xác nhận" in answer
    box = await run(app, Outbox(), "2021-06-20T09:01")  # the next tick asks the admin
    asks = [r for c, r in box.sent if c == ADMIN]  # one question per cluster she claimed
    [dai_thang] = [r for r in asks if "Đại Thắng" in r.text]
    [phu_tuc] = [r for r in asks if "Phú Túc" in r.text]
    assert "Chị Lan báo đã gửi báo cáo tháng 06/2021 của Cụm công nghiệp" in dai_thang.text
    admin.replies = [dai_thang]
    assert "Đã xác nhận" in await admin.tap("Đã nhận bản giấy")
    admin.replies = [phu_tuc]
    assert "vẫn còn thiếu" in await admin.tap("Chưa nhận được")
    admin.replies = [phu_tuc]
    assert "đã được xử lý" in await admin.tap("Chưa nhận được")  # the same button again
    box = await run(app, Outbox(), "2021-06-23T08:00")
    [to_a] = box.to(INVESTOR_A)
    assert "Phú Túc" in to_a and "Đại Thắng" not in to_a  # the paper copy filled that slot


async def test_reminder_button_opens_that_report(people: App) -> None:
    app = people
    base = app.deps()
    deps = Deps(base.sessions, base.config, Clock(at("2021-06-20T09:00")))
    investor = Chat(deps, chat_id=INVESTOR_A, channel="telegram")
    box = await run(app, Outbox(), "2021-06-20T08:00")
    investor.replies = [r for c, r in box.sent if c == INVESTOR_A]
    answer = await investor.tap("Báo cáo: Cụm công nghiệp làng nghề Phú Túc")
    assert "Báo cáo tháng 06/2021 — Cụm công nghiệp làng nghề Phú Túc" in answer
    assert "QHCT" in answer


@dataclass
class SlowChannel(Outbox):
    """A channel whose pace lets no notice go until `go` is set."""

    go: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0

    @contextlib.asynccontextmanager
    async def turn(self, channel: str, chat_id: str) -> AsyncIterator[None]:
        self.waiting += 1
        await self.go.wait()
        yield


async def test_a_reminder_is_claimed_only_when_its_turn_comes(people: App) -> None:
    """Killed while reminders wait for the channel's pace, the bot has claimed none of them:
    the next run sends them all (only a request already on the wire can be lost)."""
    app = people
    slow = SlowChannel()
    sending = asyncio.create_task(run(app, slow, "2021-06-20T08:00"))
    while slow.waiting < 4 and not sending.done():
        await asyncio.sleep(0.01)
    async with app.sessions() as session:
        claimed = await session.scalar(select(func.count()).select_from(ReminderLedger))
    assert claimed == 0
    slow.go.set()
    await sending
    assert slow.chats() == {INVESTOR_A, INVESTOR_B, DISTRICT, DEPARTMENT}


async def test_the_reminder_job_runs_at_start_with_the_clock_set_back(
    people: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CLOCK_START years back (a demo, a test), the job's first run comes at once with
    that moment's reminders, not an hour later after a catch-up of every missed interval."""
    box = Outbox()
    ran = asyncio.Event()

    async def first_tick(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tick(*args, **kwargs)
        finally:
            ran.set()

    monkeypatch.setattr(scheduler, "tick", first_tick)
    moment = at("2021-06-20T08:00")
    calendar = people.deps().calendar
    jobs = scheduler.start(
        people.sessions, calendar, Policy(), box, every_seconds=3600, clock=lambda: moment
    )
    try:
        await asyncio.wait_for(ran.wait(), 10)
    finally:
        jobs.shutdown(wait=False)
    assert box.chats() == {INVESTOR_A, INVESTOR_B, DISTRICT, DEPARTMENT}
