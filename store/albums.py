"""Albums across workers: a messenger delivers the photos of one album (Telegram's media
group) as separate updates, which may reach different workers. Each update's transaction notes
itself as the album's latest in the chat's conversation state (domain.state, saved with the
rest of the update under the chat's lock); after a moment of quiet, the worker that handled a
photo answers only if its update is still the album's latest, so the person gets one answer,
after the last photo, whichever worker took it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.state import ConversationState
from store.models import Conversation


async def latest_of_album(
    session: AsyncSession, channel: str, chat_id: str, group: str
) -> str | None:
    """The update of album `group` in the chat handled last, as committed; None if none was
    noted (the chat is not known, or no update of the album reached the photo flow)."""
    state = await session.scalar(
        select(Conversation.state).where(
            Conversation.channel == channel, Conversation.chat_id == chat_id
        )
    )
    return ConversationState.from_json(state).latest_of_album(group)
