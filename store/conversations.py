"""Where each chat is: its conversation row (the state, as JSON), and the updates already
handled, so that one delivered twice is handled once."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from domain.state import ConversationState
from store.models import Conversation, Photo, ProcessedUpdate


async def mark_processed(
    session: AsyncSession, channel: str, update_id: str
) -> ProcessedUpdate | None:
    """Mark the update handled, as the transaction's first write, sharing its fate; None if
    it was marked already (the transaction is then spoiled: roll it back). No SAVEPOINT, which
    on pysqlite runs outside a transaction, so its RELEASE committed the mark alone."""
    mark = ProcessedUpdate(channel=channel, update_id=update_id)
    session.add(mark)
    try:
        await session.flush()
    except IntegrityError:
        return None
    return mark


def keep_replies(mark: ProcessedUpdate, replies: list[dict[str, Any]]) -> None:
    """What the update was answered, written with its mark when the transaction commits."""
    mark.replies = replies


async def replies_of(session: AsyncSession, channel: str, update_id: str) -> object:
    """The replies kept with an update's mark (None: none kept, e.g. marked before they were)."""
    return await session.scalar(
        select(ProcessedUpdate.replies).where(
            ProcessedUpdate.channel == channel, ProcessedUpdate.update_id == update_id
        )
    )


async def forget_processed(session: AsyncSession, before: datetime) -> int:
    """Drop the marks (and kept answers) of updates handled before that moment: no channel
    delivers an update again that late (Telegram keeps one 24 h, Zalo retries for 2 h)."""
    result = await session.execute(delete(ProcessedUpdate).where(ProcessedUpdate.at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def new_conversation(session: AsyncSession, channel: str, chat_id: str) -> Conversation:
    conversation = Conversation(channel=channel, chat_id=chat_id, state={})
    session.add(conversation)
    return conversation


def state_of(conversation: Conversation) -> ConversationState:
    """The chat's state as stored; whatever the column holds, a state (a fresh one at worst)."""
    return ConversationState.from_json(conversation.state)


def save_state(conversation: Conversation, state: ConversationState) -> None:
    conversation.state = state.to_json()  # a new object, so the JSON column is written


async def photos_on_record(session: AsyncSession, sha256s: Collection[str]) -> set[str]:
    """Which of these photo files a Photo row refers to."""
    if not sha256s:
        return set()
    found = await session.scalars(select(Photo.sha256).where(Photo.sha256.in_(list(sha256s))))
    return set(found)
