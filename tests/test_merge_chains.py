"""A chain of merges, each before March 2025: Sở Tài nguyên và Môi trường (A) into B, B into C,
C into Sở Nông nghiệp và Môi trường (D). Every answer to "who answers for A in March" is D,
however long the chain: the slot D owes (/chuabaocao, /tinhhinh, the reminders) holds A's
officer, A's officer reports for D, and A's late tasks are D's in the reminders. The rule
itself (domain.orgs.answering) is tested on its own below. Real store, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import event, select

from bot.app import App
from domain.calendar import Period
from domain.orgs import Merge, answered_from, answering
from domain.roles import Role
from handlers.subjects import answering_for
from reminders.policy import Policy
from reminders.sender import plan
from reports.tasks import successors
from store.access import chat_of, person_for
from store.models import Organisation
from store.slots import slots_for
from tests.dialog import Chat
from tests.test_commune_scope import NEW, OLD, at_clock
from tests.test_orgs import at, import_orgs, join, write_csv
from tests.test_status import person_id
from tests.test_task_duties import org_report

A, D = OLD, NEW  # A leads tasks 10 and 12 of Phụ lục 1, due March 2021
B = "Sở Tài nguyên và Nông nghiệp"
C = "Sở Nông nghiệp, Tài nguyên và Môi trường"
MARCH = Period(2025, 3)
CHAIN = [
    {"name": "UBND thành phố Hà Nội", "kind": "other"},
    {"name": D, "kind": "department", "valid_from": "1/3/2025"},
    {
        "name": C,
        "kind": "department",
        "valid_from": "1/2/2025",
        "valid_to": "28/2/2025",
        "merged_into": D,
    },
    {
        "name": B,
        "kind": "department",
        "valid_from": "1/1/2025",
        "valid_to": "31/1/2025",
        "merged_into": C,
    },
    {"name": A, "kind": "department", "valid_to": "31/12/2024", "merged_into": B},
]


@pytest.fixture
async def chain(app: App, tmp_path: Path) -> Chat:
    """A's officer (chat 7001), who reported in November 2024 task 10 done and task 12 in
    progress; then the chain of merges, entered as data."""
    officer = await join(app, "2024-11-05T09:00", "7001", Role.DEPARTMENT, organisation=A)
    await org_report(
        app,
        "7001",
        "2024-11",
        {"t10.status": "done", "t12.status": "in_progress", "t12.percent": "50"},
        "2024-11-20T10:00",
    )
    await import_orgs(app, write_csv(tmp_path / "chain.csv", CHAIN))
    return officer


async def org_ids(app: App) -> dict[str, int]:
    async with app.sessions() as session:
        rows = await session.execute(
            select(Organisation.name, Organisation.id).where(Organisation.name.in_([A, B, C, D]))
        )
        return {name: id_ for name, id_ in rows.all()}


async def test_the_slot_the_last_successor_owes_holds_the_first_ones_officer(
    app: App, chain: Chat
) -> None:
    async with app.sessions() as session:
        march = await slots_for(session, MARCH, app.deps().calendar)
    departments = [(s.title, s.people) for s in march if s.reporter == "department"]
    assert departments == [(D, [await person_id(app, "7001")])]
    # before the merges reached D, the slot is the one that existed on the period's first day
    async with app.sessions() as session:
        january = await slots_for(session, Period(2025, 1), app.deps().calendar)
    assert [s.title for s in january if s.reporter == "department"] == [B]


async def test_the_first_ones_officer_reports_for_the_last_successor(app: App, chain: Chat) -> None:
    told = await at_clock(chain, "2025-03-20T09:00").say("/baocao")
    assert f"Báo cáo tháng 03/2025 — {D}." in told
    async with app.sessions() as session:
        person = await person_for(session, "telegram", "7001")
        assert person is not None
        answers = {
            str(period): org.name if (org := answering_for(person, period)) else None
            for period in (Period(2024, 12), Period(2025, 1), Period(2025, 2), MARCH)
        }
        found = await chat_of(session, "telegram", "7001")  # the way of every later update
        assert found is not None and found[1] is not None
        via_chat = answering_for(found[1], MARCH)
    assert answers == {"2024-12": A, "2025-01": B, "2025-02": C, "2025-03": D}
    assert via_chat is not None and via_chat.name == D


async def test_the_first_ones_late_tasks_are_the_last_successors(app: App, chain: Chat) -> None:
    await join(app, "2025-03-02T09:00", "7002", Role.DEPARTMENT, organisation=D)
    async with app.sessions() as session:
        outgoing, _skipped = await plan(
            session, app.deps().calendar, Policy(), at("2025-03-20T08:00"), frozenset({"telegram"})
        )
        heirs = await successors(session, MARCH)
    reminders = {o.chat_id: o.reply.text for o in outgoing if o.kind.startswith("due")}
    assert set(reminders) == {"7001", "7002"}
    for text in reminders.values():
        assert D in text
        assert "• NV 12 — quá hạn từ tháng 03/2021" in text and "NV 10" not in text
    # A's officer is told once that they report for D from the month D took over, as /baocao
    assert f"{A} đã hợp nhất vào {D}: từ kỳ 03/2025, anh/chị báo cáo cho {D}." in reminders["7001"]
    ids = await org_ids(app)
    assert {o: heirs.get(ids[o]) for o in (A, B, C)} == {A: ids[D], B: ids[D], C: ids[D]}


async def test_the_chain_is_read_only_for_a_person_whose_organisation_ended(
    app: App, chain: Chat
) -> None:
    """Every update reads its person (store.access): one of an organisation that still exists
    costs no statement more; the chain of one that ended costs one, however long."""
    await join(app, "2025-03-02T09:00", "7002", Role.DEPARTMENT, organisation=D)
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    counts = {}
    engine = app.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for chat in ("7001", "7002"):
            seen.clear()
            async with app.sessions() as session:
                person = await person_for(session, "telegram", chat)
                assert person is not None
                assert answering_for(person, MARCH) is not None
            counts[chat] = (len(seen), sum("organisations" in s for s in seen))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    statements, reading_organisations = counts["7002"]
    assert reading_organisations == 1  # with the person, in the same statement
    assert counts["7001"] == (statements + 1, 2)


# --- the rule ---------------------------------------------------------------------------------

DAY = date(2025, 3, 1)
ENDED = date(2025, 2, 28)


def test_the_rule_follows_every_merge_that_ended_before_the_day() -> None:
    orgs = {1: Merge(ENDED, 2), 2: Merge(ENDED, 3), 3: Merge(ENDED, 4), 4: Merge(None, None)}
    assert [answering(o, DAY, orgs) for o in (1, 2, 3, 4)] == [4, 4, 4, 4]
    assert answering(1, ENDED, orgs) == 1  # its last day: it still answers for itself


def test_the_rule_stops_at_one_that_has_not_ended_or_has_no_successor() -> None:
    orgs = {1: Merge(ENDED, 2), 2: Merge(date(2025, 3, 31), 3), 5: Merge(ENDED, None)}
    assert answering(1, DAY, orgs) == 2  # 2 ends in March: it answers in March
    assert answering(5, DAY, orgs) == 5  # ended with no successor: itself (and owes nothing)
    assert answering(9, DAY, orgs) == 9  # unknown to the mapping: itself
    assert answering(1, DAY, {1: Merge(ENDED, 7)}) == 7  # a successor not in the mapping


def test_the_rule_stops_before_going_round_a_cycle() -> None:
    orgs = {1: Merge(ENDED, 2), 2: Merge(ENDED, 3), 3: Merge(ENDED, 1)}
    assert [answering(o, DAY, orgs) for o in (1, 2, 3)] == [3, 1, 2]


def test_the_day_a_successor_took_over_is_after_the_last_merge_on_the_way() -> None:
    orgs = {1: Merge(date(2024, 12, 31), 2), 2: Merge(date(2025, 1, 31), 3), 3: Merge(ENDED, 4)}
    assert [answered_from(1, heir, orgs) for heir in (2, 3, 4)] == [
        date(2025, 1, 1),
        date(2025, 2, 1),
        DAY,
    ]
    assert answered_from(1, 9, orgs) is None  # not on the way
    assert answered_from(1, 3, {1: Merge(ENDED, 2), 2: Merge(ENDED, 1)}) is None  # a cycle ends
