"""Reports being filled in: the drafts and the photos linked to them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.subjects import Subject
from store.db import write_now
from store.models import ReportDraft, ReportPhoto, utcnow

OPEN = "open"


async def open_draft(session: AsyncSession, draft_id: int | None) -> ReportDraft | None:
    """The draft of that id if it is still open (not submitted)."""
    if draft_id is None:
        return None
    draft = await session.get(ReportDraft, draft_id)
    return draft if draft is not None and draft.status == OPEN else None


_SAVE_ANSWERS = (
    update(ReportDraft)
    .where(ReportDraft.id == bindparam("row_id"))
    .values(
        answers=bindparam("answers", type_=ReportDraft.answers.type),
        updated_at=bindparam("updated_at", type_=ReportDraft.updated_at.type),
    )
)


async def save_answers(
    session: AsyncSession, draft: ReportDraft, answers: Mapping[str, Any]
) -> None:
    """The draft's answers, written at once (most answers write them: store.db.write_now)."""
    # a new dict, so the ORM sees the JSON column change
    await write_now(session, draft, _SAVE_ANSWERS, answers=dict(answers), updated_at=utcnow())


async def open_draft_for(
    session: AsyncSession, person_id: int, subject: Subject, period: str
) -> ReportDraft | None:
    """This person's open draft on `subject` for `period`."""
    return await session.scalar(
        select(ReportDraft).where(
            ReportDraft.person_id == person_id,
            ReportDraft.subject == subject,
            ReportDraft.period == period,
            ReportDraft.status == OPEN,
        )
    )


async def new_draft(
    session: AsyncSession,
    *,
    person_id: int,
    subject: Subject,
    cluster_id: int | None,
    organisation_id: int | None,
    period: str,
    form: str,
    answers: dict[str, Any],
) -> ReportDraft:
    draft = ReportDraft(
        person_id=person_id,
        subject=subject,
        cluster_id=cluster_id,
        organisation_id=organisation_id,
        period=period,
        form=form,
        answers=answers,
    )
    session.add(draft)
    await session.flush()
    return draft


async def has_open_draft(session: AsyncSession, person_id: int) -> bool:
    found = await session.scalar(
        select(ReportDraft.id)
        .where(ReportDraft.person_id == person_id, ReportDraft.status == OPEN)
        .limit(1)
    )
    return found is not None


async def photo_count(session: AsyncSession, draft_id: int) -> int:
    """How many photos are linked to the draft."""
    return int(
        await session.scalar(
            select(func.count()).select_from(ReportPhoto).where(ReportPhoto.draft_id == draft_id)
        )
        or 0
    )


class Linked(NamedTuple):
    """What link_photos did: photos linked, photos over the cap, and the draft's photos now."""

    linked: int
    over: int
    total: int


async def link_photos(
    session: AsyncSession,
    draft: ReportDraft,
    photo_ids: Iterable[int],
    cap: int,
    *,
    person_id: int,
    caption: str,
    channel: str,
    received_at: datetime,
) -> Linked:
    """Link photos to the draft, each once, up to `cap` in all."""
    on_draft = (
        await session.scalars(select(ReportPhoto.photo_id).where(ReportPhoto.draft_id == draft.id))
    ).all()
    count = len(on_draft)  # as photo_count: a row per link
    already = set(on_draft)
    linked = over = 0
    for photo_id in photo_ids:
        if photo_id in already:
            continue
        if count >= cap:
            over += 1
            continue
        session.add(
            ReportPhoto(
                photo_id=photo_id,
                draft_id=draft.id,
                cluster_id=draft.cluster_id,
                person_id=person_id,
                caption=caption,
                channel=channel,
                received_at=received_at,
            )
        )
        already.add(photo_id)
        count += 1
        linked += 1
    await session.flush()
    return Linked(linked, over, count)
