"""Submitted reports: the last one of a subject, filing a draft as a new report (a
correction is a new version; the earlier one stays), and reopening a report sent back for
changes as a draft."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute, aliased

from domain.calendar import Period
from domain.subjects import Subject
from store.contacts import hold
from store.drafts import OPEN
from store.models import PaperReceipt, Report, ReportDraft, ReportPhoto

SUBMITTED = "submitted"


def _latest(subject: Subject | QueryableAttribute[Subject]) -> Select[Report]:
    """The subject's latest report: the latest period, its latest version."""
    return (
        select(Report)
        .where(Report.subject == subject)
        .order_by(Report.period.desc(), Report.version.desc())
        .limit(1)
    )


async def last_report(session: AsyncSession, subject: Subject) -> Report | None:
    """The subject's latest report: the latest period, its latest version."""
    return await session.scalar(_latest(subject))


async def sent(session: AsyncSession, subject: Subject, period: Period) -> bool:
    """Whether the subject's report for the period was sent, in the bot or on paper (a confirmed
    receipt, /vanban): as store.slots counts a slot filled. One statement."""
    month = str(period)
    in_bot = exists().where(Report.subject == subject, Report.period == month)
    on_paper = exists().where(
        PaperReceipt.subject == subject,
        PaperReceipt.period == month,
        PaperReceipt.status == "confirmed",
    )
    return bool(await session.scalar(select(or_(in_bot, on_paper))))


def _draft_with_last_report() -> Select[ReportDraft, Report]:
    latest = (
        _latest(ReportDraft.subject)
        .with_only_columns(Report.id)
        .correlate(ReportDraft)
        .scalar_subquery()
    )
    last = aliased(Report)  # not the subquery's own `reports`
    return (
        select(ReportDraft, last)
        .outerjoin(last, last.id == latest)
        .where(ReportDraft.id == bindparam("draft_id"))
    )


# built once: building it (an alias, a correlated subquery) took more CPU than running it
_DRAFT_WITH_LAST_REPORT = _draft_with_last_report()


async def open_draft_and_last_report(
    session: AsyncSession, draft_id: int | None
) -> tuple[ReportDraft, Report | None] | None:
    """The draft of that id if it is still open (as drafts.open_draft), with its subject's
    latest report (as last_report), in one statement."""
    if draft_id is None:
        return None
    row = (await session.execute(_DRAFT_WITH_LAST_REPORT, {"draft_id": draft_id})).first()
    if row is None or row[0].status != OPEN:
        return None
    return row[0], row[1]


def reference(period: Period, report_id: int) -> str:
    """`BC-202106-00042`."""
    return f"BC-{period.year:04d}{period.month:02d}-{report_id:05d}"


async def file_report(
    session: AsyncSession,
    draft: ReportDraft,
    answers: dict[str, Any],
    *,
    form_version: int,
    person_id: int,
    channel: str,
    now: datetime,
    deadline: datetime,
) -> tuple[Report, int]:
    """File the draft as a report with these answers; the
    draft's photos move to the report and the draft is closed. (The report, its photos.)"""
    assert draft.status == OPEN
    # two people filing for one cluster at once would both take the next version number
    await hold(session, f"report:{draft.subject}:{draft.period}")
    previous = await session.scalar(
        select(Report)
        .where(Report.subject == draft.subject, Report.period == draft.period)
        .order_by(Report.version.desc())
        .limit(1)
    )
    report = Report(
        # the reference names the row's id, known only once it is inserted. The stand-in is
        # this transaction's own: with one for all, PostgreSQL's unique index made every other
        # filing, of any cluster, wait for this transaction's end (the deadline rush's
        # submissions one after another, 0.3-1.1 s each)
        reference=f"~{secrets.token_hex(15)}",
        **_what_of(draft),
        form_version=form_version,
        version=(previous.version + 1) if previous else 1,
        answers=answers,
        submitted_at=now,
        submitted_by_person_id=person_id,
        channel=channel,
        deadline_at=deadline,
        on_time=now < deadline,
        supersedes_id=previous.id if previous else None,
        draft_id=draft.id,
    )
    session.add(report)
    await session.flush()
    report.reference = reference(Period.parse(draft.period), report.id)
    moved = await session.scalars(
        update(ReportPhoto)
        .where(ReportPhoto.draft_id == draft.id)
        .values(report_id=report.id)
        .returning(ReportPhoto.id)
    )
    draft.status = SUBMITTED
    return report, len(moved.all())


def _what_of(row: Report | ReportDraft) -> dict[str, Any]:
    """What a report and its draft share: the subject (with its cluster or organisation), the
    period and the form."""
    return {
        "subject": row.subject,
        "cluster_id": row.cluster_id,
        "organisation_id": row.organisation_id,
        "period": row.period,
        "form": row.form,
    }


async def reopen(
    session: AsyncSession,
    sent_back: Report,
    answers: dict[str, Any],
    *,
    person_id: int,
    carry_photos: bool,
) -> ReportDraft:
    """A draft to correct a report sent back for changes: this person's open draft on the
    report's subject and period (else a new one), holding `answers` (the report's, less those
    to answer again); with `carry_photos`, the report's photos are linked to it as they came
    (who sent each, when, over which channel), so the new version keeps them."""
    draft = await session.scalar(
        select(ReportDraft).where(
            ReportDraft.person_id == person_id,
            ReportDraft.subject == sent_back.subject,
            ReportDraft.period == sent_back.period,
            ReportDraft.status == OPEN,
        )
    )
    if draft is None:
        draft = ReportDraft(person_id=person_id, **_what_of(sent_back), answers=answers)
        session.add(draft)
        await session.flush()
    else:
        draft.answers = dict(answers)
    if carry_photos:
        on_draft = set(
            (
                await session.scalars(
                    select(ReportPhoto.photo_id).where(ReportPhoto.draft_id == draft.id)
                )
            ).all()
        )
        sent = await session.scalars(
            select(ReportPhoto)
            .where(ReportPhoto.report_id == sent_back.id)
            .order_by(ReportPhoto.id)
        )
        for photo in sent.all():
            if photo.photo_id in on_draft:
                continue
            on_draft.add(photo.photo_id)
            session.add(
                ReportPhoto(
                    photo_id=photo.photo_id,
                    draft_id=draft.id,
                    cluster_id=photo.cluster_id,
                    person_id=photo.person_id,
                    caption=photo.caption,
                    channel=photo.channel,
                    received_at=photo.received_at,
                )
            )
        await session.flush()
    return draft
