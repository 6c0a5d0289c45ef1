"""`ccn-bot reminders preview|send` as operations run them (the commands in this process), real
PTB, a stand-in Bot API that enforces Telegram's flood limits and has a person who blocked the
bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import open_app, prepare
from bot.settings import load_settings
from domain.roles import Role
from store.access import accept_invitation, create_invitation
from store.clusters import all_clusters
from store.db import unit_of_work
from store.models import ChannelIdentity, ReminderLedger
from testing.standin_telegram import StandinBotAPI
from tests import inprocess

PEOPLE = 40
BLOCKED = 7_000_003
AT = "2021-06-20T08:00+07:00"


@pytest.fixture
async def api() -> AsyncIterator[StandinBotAPI]:
    server = StandinBotAPI(token="515151:REMIND", enforce_limits=True)
    server.blocked_chats.add(BLOCKED)
    await server.start()
    yield server
    await server.stop()


async def ccn(tmp_path: Path, api: StandinBotAPI, *args: str) -> tuple[int, str]:
    """The command in this process (on a thread: it runs its own event loop, and the stand-in
    answers on this one); its output and errors together, as a terminal shows them."""
    env: dict[str, str | None] = {"DATABASE_URL": None}
    env.update(DATA_DIR=str(tmp_path / "data"), TELEGRAM_BOT_TOKEN=api.token)
    env.update(TELEGRAM_API_URL=api.root)
    done = await asyncio.wait_for(
        asyncio.to_thread(inprocess.ccn, tmp_path, env, *args), timeout=240
    )
    return done.returncode, done.stdout + done.stderr


async def test_send_is_rate_limited_retried_and_once_only(
    api: StandinBotAPI, tmp_path: Path
) -> None:
    settings = load_settings(DATA_DIR=tmp_path / "data")
    now = datetime(2021, 6, 1, tzinfo=UTC)
    async with open_app(settings) as app:
        await prepare(app)
        async with unit_of_work(app.sessions) as session:
            clusters = await all_clusters(session)
            for number, cluster in enumerate(clusters[:PEOPLE]):
                invitation = await create_invitation(
                    session, role=Role.INVESTOR, now=now, clusters=[cluster.code]
                )
                await accept_invitation(
                    session,
                    invitation.token,
                    channel="telegram",
                    chat_id=str(7_000_000 + number),
                    display_name=f"CĐT {number}",
                    locale="vi",
                    now=now,
                )

    code, preview = await ccn(tmp_path, api, "reminders", "preview", "--at", AT)
    assert code == 0, preview
    assert f"{PEOPLE} tin nhắc đến hạn gửi; 0 tin đã gửi trước đó" in preview
    assert not api.called("sendMessage")  # a preview sends nothing

    flooded = {7_000_010, 7_000_020}
    api.flood_next |= flooded  # Telegram answers these two with 429 retry_after once
    code, output = await ccn(tmp_path, api, "reminders", "send", "--at", AT)
    assert code == 0, output
    assert f"Đã gửi {PEOPLE - 1}; bị chặn 1; lỗi 0" in output
    assert api.too_many_requests >= len(flooded) and not api.flood_next  # 429s, retried
    for number in range(PEOPLE):
        chat = 7_000_000 + number
        expected = 0 if chat == BLOCKED else 1
        assert len(api.sent(chat)) == expected, chat

    code, output = await ccn(tmp_path, api, "reminders", "send", "--at", AT)
    assert code == 0 and f"đã gửi trước đó {PEOPLE}" in output
    assert sum(len(api.sent(7_000_000 + n)) for n in range(PEOPLE)) == PEOPLE - 1

    async with open_app(settings) as app, app.sessions() as session:
        blocked = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.external_id == str(BLOCKED))
        )
        statuses = (await session.scalars(select(ReminderLedger.status))).all()
    assert blocked is not None and not blocked.reachable
    assert sorted(statuses) == ["blocked"] + ["sent"] * (PEOPLE - 1)
