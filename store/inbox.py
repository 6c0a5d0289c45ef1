"""Events acknowledged before they are handled, kept until they are: the Zalo channel writes
one before answering the webhook and deletes it once handled; at start and now and then it
handles again those a dead process left behind. Telegram's long polling keeps here the updates
it confirms to Telegram before they are handled (when many are in flight), and clears them in
batches once handled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import InboxEvent


async def keep(session: AsyncSession, channel: str, body: dict[str, Any], now: datetime) -> int:
    """Keep an event; its id once the session is flushed."""
    event = InboxEvent(channel=channel, body=body, received_at=now)
    session.add(event)
    await session.flush()
    return event.id


async def keep_many(
    session: AsyncSession, channel: str, bodies: dict[int, dict[str, Any]], now: datetime
) -> dict[int, int]:
    """Keep several events, each under a key of its own that its body holds as `key`, in one
    statement; their ids by key. (The rows come back in any order: asking SQLite for them in
    the order given would cost a statement a row.)"""
    if not bodies:
        return {}
    rows = await session.execute(
        insert(InboxEvent).returning(InboxEvent.id, InboxEvent.body),
        [{"channel": channel, "body": body, "received_at": now} for body in bodies.values()],
    )
    return {int(body[KEY]): event_id for event_id, body in rows}


KEY = "update_id"  # what keep_many's bodies are told apart by


async def done(session: AsyncSession, event_id: int) -> None:
    await session.execute(delete(InboxEvent).where(InboxEvent.id == event_id))


async def done_many(session: AsyncSession, event_ids: list[int]) -> None:
    if event_ids:
        await session.execute(delete(InboxEvent).where(InboxEvent.id.in_(event_ids)))


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
