"""Where each chat is: its conversation row (the state, as JSON), and the updates already
handled, so that one delivered twice is handled once."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from domain.state import ConversationState
from store.db import insert_unless_stored, write_now
from store.models import Conversation, Photo, ProcessedUpdate, utcnow


def _mark(insert: Any, prefix: str = "") -> Insert:
    """The mark's INSERT; its parameters named `prefix` + the column."""
    statement: Insert = (
        insert(ProcessedUpdate)
        .values(
            channel=bindparam(f"{prefix}channel"),
            update_id=bindparam(f"{prefix}update_id"),
            replies=bindparam(f"{prefix}replies", type_=ProcessedUpdate.replies.type),
        )
        .on_conflict_do_nothing(index_elements=["channel", "update_id"])
        .returning(ProcessedUpdate.id)
    )
    return statement


# built once, by dialect (True: PostgreSQL): every update runs it, and building it (values
# coerced, the conflict clause) took more CPU than running it
_MARK = {False: _mark(sqlite.insert), True: _mark(postgresql.insert)}


async def mark_processed(
    session: AsyncSession, channel: str, update_id: str, replies: list[dict[str, Any]]
) -> bool:
    """Mark the update handled, with what it was answered (handlers.outbox), as the
    transaction's last write: one INSERT that shares the transaction's fate; False if it was
    marked already (by an earlier delivery, or by another worker that committed it meanwhile:
    on PostgreSQL the INSERT waits for that one to end), and then the transaction must be
    rolled back. No SAVEPOINT (on pysqlite its RELEASE committed the mark alone)."""
    statement = _MARK[session.get_bind().dialect.name == "postgresql"]
    params = {"channel": channel, "update_id": update_id, "replies": replies}
    # a Core statement on the session's connection: the ORM's execution of an INSERT (its
    # bulk-persistence path) took three times the CPU of the statement itself
    connection = await session.connection()
    return (await connection.execute(statement, params)).scalar() is not None


async def was_processed(session: AsyncSession, channel: str, update_id: str) -> bool:
    """Whether the update's mark is there (an update delivered again)."""
    found = await session.scalar(
        select(ProcessedUpdate.id).where(
            ProcessedUpdate.channel == channel, ProcessedUpdate.update_id == update_id
        )
    )
    return found is not None


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


async def new_conversation(
    session: AsyncSession, channel: str, chat_id: str
) -> Conversation | None:
    """A first contact's conversation, stored at once (store.db.insert_unless_stored); None if
    the chat has one: made meanwhile by another transaction, which this one waited for."""
    return await insert_unless_stored(
        session, Conversation(channel=channel, chat_id=chat_id, state={}), "channel", "chat_id"
    )


def state_of(conversation: Conversation) -> ConversationState:
    """The chat's state as stored; whatever the column holds, a state (a fresh one at worst)."""
    return ConversationState.from_json(conversation.state)


_SAVE_STATE = (
    update(Conversation)
    .where(Conversation.id == bindparam("row_id"))
    .values(state=bindparam("state", type_=Conversation.state.type))
)


async def save_state(
    session: AsyncSession, conversation: Conversation, state: ConversationState
) -> None:
    """The chat's state, written if it changed (every answer writes it: store.db.write_now)."""
    await _save_written(session, conversation, state.to_json())


async def _save_written(
    session: AsyncSession, conversation: Conversation, written: dict[str, Any]
) -> None:
    # `written` is a new object, so the JSON column is written
    if conversation.id is not None and written == conversation.state:
        return
    await write_now(session, conversation, _SAVE_STATE, state=written)


# … and on PostgreSQL with the state's UPDATE in the same statement (a round trip less). Its
# parameters are named apart from the conversation's other columns: an UPDATE also sets every
# column that a parameter is named after.
_SAVE_AND_MARK = (
    _mark(postgresql.insert, "mark_")
    .values(at=bindparam("at"))  # the columns' Python defaults are not run with a WITH
    .add_cte(
        update(Conversation)
        .where(Conversation.id == bindparam("row_id"))
        .values(
            state=bindparam("state", type_=Conversation.state.type),
            updated_at=bindparam("at"),
        )
        .cte("saved")
    )
)


async def save_and_mark(
    session: AsyncSession,
    conversation: Conversation,
    state: ConversationState,
    update_id: str,
    replies: list[dict[str, Any]],
) -> bool:
    """save_state, then mark_processed (the chat's channel): the transaction's last writes.
    On PostgreSQL a changed state is written by the mark's statement."""
    written = state.to_json()
    if (
        conversation.id is None
        or written == conversation.state
        or session.get_bind().dialect.name != "postgresql"
    ):
        await _save_written(session, conversation, written)
        return await mark_processed(session, conversation.channel, update_id, replies)
    params = {
        "mark_channel": conversation.channel,
        "mark_update_id": update_id,
        "mark_replies": replies,
        "row_id": conversation.id,
        "state": written,
        "at": utcnow(),
    }
    connection = await session.connection()
    marked = (await connection.execute(_SAVE_AND_MARK, params)).scalar() is not None
    set_committed_value(conversation, "state", written)
    return marked


async def photos_on_record(session: AsyncSession, sha256s: Collection[str]) -> set[str]:
    """Which of these photo files a Photo row refers to."""
    if not sha256s:
        return set()
    found = await session.scalars(select(Photo.sha256).where(Photo.sha256.in_(list(sha256s))))
    return set(found)
