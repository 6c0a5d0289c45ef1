"""One invitation opened by many chats at the same moment binds exactly one of them."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot.app import App
from domain.roles import Role
from handlers.context import Deps
from store.models import ChannelIdentity, Invitation, Person
from tests.dialog import Chat
from tests.test_dialogs import invite


async def test_twenty_chats_race_for_one_invitation(deps: Deps, app: App) -> None:
    token = await invite(deps, Role.INVESTOR, clusters=["dai-thang"])
    chats = [Chat(deps, chat_id=f"race-{n}", channel="telegram") for n in range(20)]
    answers = await asyncio.gather(*(chat.say(f"/start {token}") for chat in chats))
    welcomed = [a for a in answers if "Chào mừng" in a]
    used = [a for a in answers if "Lời mời này đã được sử dụng" in a]
    assert (len(welcomed), len(used)) == (1, 19), answers
    async with app.sessions() as session:
        people = await session.scalar(select(func.count()).select_from(Person))
        bound = await session.scalar(select(func.count()).select_from(ChannelIdentity))
        invitation = await session.scalar(select(Invitation).where(Invitation.token == token))
    assert (people, bound) == (1, 1)
    assert invitation is not None and invitation.used_by_person_id is not None
