"""What a channel adapter needs to know of a chat, so that no adapter writes SQL of its own:
the messaging window and phone of a chat, the admins' chats, the Zalo tokens, and the choices
offered in a chat outside a conversation turn (a reminder)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from domain.roles import Role
from store.models import ChannelIdentity, Conversation, Person, ZaloToken


@dataclass(frozen=True)
class Contact:
    person_id: int
    full_name: str
    phone: str | None
    locale: str
    last_seen_at: datetime | None


async def contact_of(session: AsyncSession, channel: str, chat_id: str) -> Contact | None:
    row = (
        await session.execute(
            select(
                Person.id,
                Person.full_name,
                Person.phone,
                Person.locale,
                ChannelIdentity.last_seen_at,
            )
            .join(Person, Person.id == ChannelIdentity.person_id)
            .where(ChannelIdentity.channel == channel, ChannelIdentity.external_id == chat_id)
        )
    ).first()
    if row is None:
        return None
    return Contact(row[0], row[1] or "", row[2], row[3] or "vi", row[4])


async def admin_chats(session: AsyncSession) -> list[tuple[str, str, str]]:
    """(channel, chat id, locale) of every reachable chat of an active admin."""
    rows = await session.execute(
        select(ChannelIdentity.channel, ChannelIdentity.external_id, Person.locale)
        .join(Person, Person.id == ChannelIdentity.person_id)
        .where(
            Person.role == Role.ADMIN.value,
            Person.active.is_(True),
            ChannelIdentity.reachable.is_(True),
        )
        .order_by(ChannelIdentity.id)
    )
    return [(c, e, loc or "vi") for c, e, loc in rows.all()]


def normalise_phone(raw: str) -> str | None:
    """A Vietnamese mobile number as ZNS takes it (84 and nine digits), or None."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if digits.startswith("0") and len(digits) == 10:
        digits = "84" + digits[1:]
    if digits.startswith("84") and len(digits) == 11:
        return digits
    return None


# --- the choices a chat was offered outside a conversation turn ------------------------------


async def chat_state(session: AsyncSession, channel: str, chat_id: str) -> dict[str, Any]:
    state = await session.scalar(
        select(Conversation.state).where(
            Conversation.channel == channel, Conversation.chat_id == chat_id
        )
    )
    return dict(state or {})


async def update_chat_state(
    session: AsyncSession,
    channel: str,
    chat_id: str,
    key: str,
    change: Callable[[Any], Any],
) -> None:
    """Set one key of a chat's conversation state from its previous value."""
    conversation = await session.scalar(
        select(Conversation)
        .where(Conversation.channel == channel, Conversation.chat_id == chat_id)
        .with_for_update()
    )
    if conversation is None:
        session.add(Conversation(channel=channel, chat_id=chat_id, state={key: change(None)}))
    else:
        state = dict(conversation.state or {})
        conversation.state = {**state, key: change(state.get(key))}


# --- Zalo's OA tokens -------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: datetime


async def zalo_tokens(session: AsyncSession, initial: Tokens) -> Tokens:
    """The stored tokens; on first start, those of the settings (saved)."""
    row = await session.scalar(select(ZaloToken).order_by(ZaloToken.id).limit(1))
    if row is None:
        row = ZaloToken(
            access_token=initial.access_token,
            refresh_token=initial.refresh_token,
            expires_at=initial.expires_at,
        )
        session.add(row)
    return Tokens(row.access_token, row.refresh_token, row.expires_at)


async def save_zalo_tokens(session: AsyncSession, tokens: Tokens, now: datetime) -> None:
    """Save a rotated pair at once: the old refresh token no longer works."""
    row = await session.scalar(select(ZaloToken).order_by(ZaloToken.id).limit(1).with_for_update())
    if row is None:
        row = ZaloToken(access_token="", refresh_token="", expires_at=now)
        session.add(row)
    row.access_token = tokens.access_token
    row.refresh_token = tokens.refresh_token
    row.expires_at = tokens.expires_at
    row.updated_at = now


def inside(last_seen: datetime | None, now: datetime, window: timedelta) -> bool:
    return last_seen is not None and now - last_seen < window


async def hold(session: AsyncSession, key: str) -> None:
    """Hold `key` for the rest of the transaction (PostgreSQL: another transaction holding it
    waits here until that one ends). SQLite runs one writer at a time anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
    )
