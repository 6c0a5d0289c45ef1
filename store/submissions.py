"""Submitted reports: the last one of a subject, and filing a draft as a new report (a
correction is a new version; the earlier one stays)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Period
from domain.subjects import Subject
from store.drafts import OPEN
from store.models import Report, ReportDraft, ReportPhoto

SUBMITTED = "submitted"


async def last_report(session: AsyncSession, subject: Subject) -> Report | None:
    """The subject's latest report: the latest period, its latest version."""
    return await session.scalar(
        select(Report)
        .where(Report.subject == subject)
        .order_by(Report.period.desc(), Report.version.desc())
        .limit(1)
    )


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
    previous = await session.scalar(
        select(Report)
        .where(Report.subject == draft.subject, Report.period == draft.period)
        .order_by(Report.version.desc())
        .limit(1)
    )
    report = Report(
        reference="",
        subject=draft.subject,
        cluster_id=draft.cluster_id,
        organisation_id=draft.organisation_id,
        period=draft.period,
        form=draft.form,
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
    photos = (
        await session.scalars(select(ReportPhoto).where(ReportPhoto.draft_id == draft.id))
    ).all()
    for link in photos:
        link.report_id = report.id
    draft.status = SUBMITTED
    return report, len(photos)
