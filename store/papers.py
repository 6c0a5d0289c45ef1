"""Reports received on paper: claimed by a reporter, confirmed or rejected by Sở Công Thương,
or recorded by an admin directly. One receipt per subject and period."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.subjects import Subject
from store.models import PaperReceipt

CLAIMED = "claimed"
CONFIRMED = "confirmed"
REJECTED = "rejected"


async def receipt_of(session: AsyncSession, subject: Subject, period: str) -> PaperReceipt | None:
    return await session.scalar(
        select(PaperReceipt).where(PaperReceipt.subject == subject, PaperReceipt.period == period)
    )


async def receipt(session: AsyncSession, receipt_id: int) -> PaperReceipt | None:
    return await session.get(PaperReceipt, receipt_id)


async def claim(
    session: AsyncSession, subjects: Iterable[Subject], period: str, person_id: int, now: datetime
) -> None:
    """The reporter says these reports went on paper; a confirmed receipt stays confirmed."""
    for subject in subjects:
        existing = await receipt_of(session, subject, period)
        if existing is None:
            existing = PaperReceipt(subject=subject, period=period, status=CLAIMED)
            session.add(existing)
        if existing.status != CONFIRMED:
            existing.status = CLAIMED
            existing.claimed_by_person_id = person_id
            existing.claimed_at = now


def decide(found: PaperReceipt, received: bool, person_id: int, now: datetime) -> None:
    """An admin's answer to a claim."""
    found.status = CONFIRMED if received else REJECTED
    found.confirmed_by_person_id = person_id
    found.confirmed_at = now


async def record(
    session: AsyncSession, subject: Subject, period: str, note: str, person_id: int, now: datetime
) -> PaperReceipt:
    """An admin records a paper report directly: confirmed, with a note."""
    found = await receipt_of(session, subject, period)
    if found is None:
        found = PaperReceipt(subject=subject, period=period, status=CONFIRMED)
        session.add(found)
    found.status = CONFIRMED
    found.note = note
    found.claimed_at = found.claimed_at or now
    found.confirmed_by_person_id = person_id
    found.confirmed_at = now
    return found
