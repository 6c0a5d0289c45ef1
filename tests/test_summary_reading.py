"""Reading a month for /tonghop (reports.summary.summarise, then reports.upward.read): the
clusters' report history is read once, as plain rows, and says what the rule of the latest
answers says: each question's latest answer up to the month, and what the month's reports
changed against the answers before it. Checked on the status tests' hand-built June 2021
(tests/test_status.py, `month`) with a correction, an older month and a later one added."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select

from bot.app import App
from domain.calendar import Period
from domain.subjects import Subject
from reports import upward
from reports.month import Month, _topic_questions
from reports.progress import Answer, latest_answers
from reports.summary import Summary, summarise
from store.db import unit_of_work
from store.models import Report
from tests.test_status import INVESTOR_A, at, month, report

__all__ = ["month"]
JUNE = Period(2021, 6)


@contextmanager
def statements(app: App) -> Iterator[list[str]]:
    """The SQL statements run on the app's engine while it lasts, each with its parameters."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(f"{args[2]} {args[3]!r}")

    engine = app.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def read_june(app: App) -> tuple[Summary, Month]:
    calendar = app.deps().calendar
    async with unit_of_work(app.sessions) as session:
        summary = await summarise(session, JUNE, calendar)
        return summary, await upward.read(session, summary, calendar, at("2021-06-26T09:00"))


async def more_history(app: App) -> None:
    """Đại Thắng corrects June with fewer answers and reports July; Phú Túc reported April."""
    await report(
        app,
        INVESTOR_A,
        "dai-thang",
        "2021-06",
        {"qhct": "yes", "gpmb": "100", "htkt": "90"},
        "2021-06-22T10:00",
        version=2,
    )
    await report(app, INVESTOR_A, "dai-thang", "2021-07", {"gpmb": "50"}, "2021-07-10T10:00")
    await report(
        app,
        INVESTOR_A,
        "phu-tuc",
        "2021-04",
        {"gpmb": "97", "wastewater": "building", "htkt": "10"},
        "2021-04-20T10:00",
    )


def shown(answers: dict[str, Answer]) -> dict[str, tuple[str | None, str | None, str, int]]:
    return {q: (a.value, a.reason, a.report.period, a.report.version) for q, a in answers.items()}


async def test_the_month_reads_the_clusters_history_once(month: App) -> None:
    with statements(month) as seen:
        await read_june(month)
    history = [
        q for q in seen if re.search(r"FROM reports\b.*reports\.period <=.*'cluster:'", q, re.S)
    ]
    assert len(history) == 1


async def test_the_months_answers_are_the_latest_and_what_moved_is_against_the_month_before(
    month: App,
) -> None:
    await more_history(month)
    summary, facts = await read_june(month)
    clusters = {c.code: c for c in facts.clusters}
    dai_thang, phu_tuc = clusters["dai-thang"], clusters["phu-tuc"]
    # the correction's answers, June's first version's where it says nothing; never July's
    assert (dai_thang.now["htkt"], dai_thang.now["groundbreaking"]) == ("90", "yes")
    assert dai_thang.now["gpmb"] == "100"
    assert (dai_thang.before["gpmb"], dai_thang.before["groundbreaking"]) == ("80", "no")
    assert dai_thang.moved("gpmb") and dai_thang.moved("groundbreaking")
    assert not dai_thang.moved("wastewater")  # operating in May as in June
    # Phú Túc's clearance and wastewater plant are where April left them; its groundbreaking
    # is new in June
    assert phu_tuc.before["gpmb"] == "97" and not phu_tuc.moved("gpmb")
    assert not phu_tuc.moved("wastewater") and phu_tuc.moved("groundbreaking")
    # ... and every cluster's answers are those the rule of the latest answers gives
    async with month.sessions() as session:
        stored = (
            await session.scalars(select(Report).where(Report.subject.startswith(Subject.CLUSTER)))
        ).all()
    topics = _topic_questions(summary.forms)
    for c in facts.clusters:
        mine = [r for r in stored if r.subject.ref == c.code]
        now = latest_answers([r for r in mine if r.period <= str(JUNE)])
        before = latest_answers([r for r in mine if r.period < str(JUNE)])
        assert shown(summary.answers[c.code]) == shown(now), c.code
        assert dict(c.now) == {q: a.value for q, a in now.items()}, c.code
        assert c.fresh == {q for q, a in now.items() if a.report.period == str(JUNE)}, c.code
        expected = {q: before[q].value for q in topics[c.form] if q in before}
        assert dict(c.before) == expected, c.code
