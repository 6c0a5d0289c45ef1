"""The review of submitted reports: the reports waiting for review, a reviewer's decision (the
report's `review_state` and a `report_reviews` row: who, when, the comment and the answers
concerned), and what the reminders must tell — a sender whose report needs changes, a reviewer
whose report sent back has been corrected. Only the latest version of a subject's period is
reviewed: an earlier one has been superseded by a correction."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Select, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from domain.slots import Review
from domain.subjects import Subject
from store.models import Cluster, Organisation, Report, ReportReview

WAITING_SHOWN = 10  # reports listed by /duyet at once


def _latest_versions() -> Select[Report]:
    """Reports no later version supersedes."""
    newer = aliased(Report)
    return select(Report).where(~exists().where(newer.supersedes_id == Report.id))


async def report(session: AsyncSession, report_id: int) -> Report | None:
    return await session.get(Report, report_id)


async def report_by_reference(session: AsyncSession, reference: str) -> Report | None:
    return await session.scalar(select(Report).where(Report.reference == reference))


async def newer_version(session: AsyncSession, found: Report) -> Report | None:
    """The latest version of the report's subject and period, if it is a later one."""
    latest = await session.scalar(
        select(Report)
        .where(Report.subject == found.subject, Report.period == found.period)
        .order_by(Report.version.desc())
        .limit(1)
    )
    return latest if latest is not None and latest.version > found.version else None


async def previous_version(session: AsyncSession, found: Report) -> Report | None:
    """The version this one corrected, if any."""
    if found.supersedes_id is None:
        return None
    return await session.get(Report, found.supersedes_id)


async def waiting(
    session: AsyncSession,
    *,
    clusters: Collection[int] | None = None,
    period: str | None = None,
    limit: int = WAITING_SHOWN,
) -> tuple[list[Report], int]:
    """The latest versions still new (not reviewed), oldest first, at most `limit`, and how
    many there are; `clusters`: only the reports of these clusters (a department's)."""
    query = _latest_versions().where(Report.review_state == Review.NEW.value)
    if clusters is not None:
        query = query.where(Report.cluster_id.in_(list(clusters)))
    if period is not None:
        query = query.where(Report.period == period)
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(Report.submitted_at, Report.id).limit(limit))
    return list(rows.all()), int(total or 0)


async def latest_reviews(
    session: AsyncSession, report_ids: Iterable[int]
) -> dict[int, ReportReview]:
    """Each report's latest decision, for the reports given."""
    wanted = list(set(report_ids))
    if not wanted:
        return {}
    rows = await session.scalars(
        select(ReportReview).where(ReportReview.report_id.in_(wanted)).order_by(ReportReview.id)
    )
    return {r.report_id: r for r in rows.all()}


async def latest_review(session: AsyncSession, report_id: int) -> ReportReview | None:
    return (await latest_reviews(session, [report_id])).get(report_id)


def decide(
    session: AsyncSession,
    found: Report,
    state: Review,
    *,
    comment: str = "",
    questions: Iterable[str] = (),
    person_id: int | None,
    actor: str,
    channel: str,
    now: datetime,
) -> ReportReview:
    """Record a reviewer's decision: the report's state, and the decision's row."""
    found.review_state = state.value
    decision = ReportReview(
        report_id=found.id,
        state=state.value,
        comment=comment,
        questions=list(questions),
        person_id=person_id,
        actor=actor[:64],
        channel=channel,
        at=now,
    )
    session.add(decision)
    return decision


async def changes_to_tell(session: AsyncSession) -> list[tuple[Report, ReportReview]]:
    """The reports waiting for changes (latest versions sent back), with the decision that sent
    each back: their senders are told, and reminded until a new version comes."""
    reports = list(
        (
            await session.scalars(
                _latest_versions()
                .where(Report.review_state == Review.NEEDS_CHANGES.value)
                .order_by(Report.id)
            )
        ).all()
    )
    reviews = await latest_reviews(session, (r.id for r in reports))
    return [(r, reviews[r.id]) for r in reports if r.id in reviews]


async def fixes_to_tell(session: AsyncSession) -> list[tuple[Report, Report, ReportReview]]:
    """The corrections not reviewed yet of reports sent back for changes: (the correction, the
    version sent back, the decision that sent it back) — the reviewer is shown what changed."""
    old = aliased(Report)
    rows = (
        await session.execute(
            select(Report, old)
            .join(old, old.id == Report.supersedes_id)
            .where(
                Report.review_state == Review.NEW.value,
                old.review_state == Review.NEEDS_CHANGES.value,
            )
            .order_by(Report.id)
        )
    ).all()
    reviews = await latest_reviews(session, (o.id for _new, o in rows))
    return [(new, o, reviews[o.id]) for new, o in rows if o.id in reviews]


async def titles(session: AsyncSession, subjects: Iterable[Subject]) -> dict[Subject, str]:
    """Each subject's cluster or organisation name (its text if it is gone)."""
    wanted = set(subjects)
    codes = [s.code for s in wanted if s.code is not None]
    orgs = [s.org_id for s in wanted if s.org_id is not None]
    names: dict[Subject, str] = {s: str(s) for s in wanted}
    if codes:
        clusters = await session.execute(
            select(Cluster.code, Cluster.name).where(Cluster.code.in_(codes))
        )
        names.update({Subject.cluster(code): name for code, name in clusters.all()})
    if orgs:
        organisations = await session.execute(
            select(Organisation.id, Organisation.name).where(Organisation.id.in_(orgs))
        )
        names.update({Subject.org(org_id): name for org_id, name in organisations.all()})
    return names
