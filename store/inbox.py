"""Webhook events acknowledged before they are handled, kept until they are: the channel
writes one before answering the webhook and deletes it once handled; at start and now and then
it handles again those a dead process left behind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import InboxEvent


async def keep(session: AsyncSession, channel: str, body: dict[str, Any], now: datetime) -> int:
    """Keep an event; its id once the session is flushed."""
    event = InboxEvent(channel=channel, body=body, received_at=now)
    session.add(event)
    await session.flush()
    return event.id


async def done(session: AsyncSession, event_id: int) -> None:
    await session.execute(delete(InboxEvent).where(InboxEvent.id == event_id))


async def left(
    session: AsyncSession, channel: str, received_before: datetime, limit: int = 500
) -> list[tuple[int, dict[str, Any]]]:
    """Events kept before that moment and not yet handled, oldest first."""
    rows = await session.execute(
        select(InboxEvent.id, InboxEvent.body)
        .where(InboxEvent.channel == channel, InboxEvent.received_at < received_before)
        .order_by(InboxEvent.id)
        .limit(limit)
    )
    return [(event_id, body) for event_id, body in rows]
