"""Two `ccn-bot run` workers on one PostgreSQL database behind a load balancer, as the real
processes: a conversation moves between them message by message, and two messages of one chat
arriving at both workers at once are handled one after the other, none lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bot.app import open_app
from bot.settings import load_settings
from domain.roles import Role
from store.access import create_invitation
from store.db import unit_of_work
from store.models import ReportDraft
from testing.pg import free_port, new_database
from testing.standin_zalo import StandinZalo
from tests.test_telegram_e2e import run_bot, stop
from tests.test_zalo_e2e import START, ZaloPerson, running_from, zalo_environment

USER = "zu-moving"


async def test_a_conversation_moves_between_two_workers(
    pg_base_url: str, pg_template: str, tmp_path: Path
) -> None:
    async with (
        new_database(pg_base_url, template=pg_template) as url,
        open_app(load_settings(DATA_DIR=tmp_path / "data", DATABASE_URL=url)) as app,
    ):
        async with unit_of_work(app.sessions) as session:
            invitation = await create_invitation(
                session,
                role=Role.INVESTOR,
                now=START,
                created_by="test",
                clusters=["dai-thang"],
            )
        zalo = StandinZalo(clock=running_from(START))
        await zalo.start()
        ports = [free_port(), free_port()]
        workers = [
            await run_bot(zalo_environment(tmp_path, zalo, port, DATABASE_URL=url), tmp_path)
            for port in ports
        ]
        try:
            async with aiohttp.ClientSession() as http:
                a, b = (
                    ZaloPerson(zalo, http, f"http://127.0.0.1:{port}/zalo/webhook", USER)
                    for port in ports
                )
                assert "Chào mừng" in await a.say(invitation.token)
                assert "QHCT 1/500" in await b.say("/baocao")  # the other worker goes on
                assert "Phương án bồi thường" in await a.say("1")
                assert "Đã GPMB" in await b.say("1")
                # two answers at once, one to each worker: GPMB 1 %, then the first choice
                # of the next question — handled one after the other, neither lost
                both = [
                    zalo.event("user_send_text", USER, text="1"),
                    zalo.event("user_send_text", USER, text="1"),
                ]
                statuses = await asyncio.gather(a.post(both[0]), b.post(both[1]))
                assert list(statuses) == [200, 200]
                draft: ReportDraft | None = None
                # both land within moments; the deadline is for a machine under heavy load
                deadline = asyncio.get_running_loop().time() + 60
                async with app.sessions() as session:
                    while asyncio.get_running_loop().time() < deadline:
                        draft = await session.scalar(select(ReportDraft))
                        assert draft is not None
                        await session.refresh(draft)
                        if {"gpmb", "gpmb_funds"} <= set(draft.answers):
                            break
                        await asyncio.sleep(0.1)
                assert draft is not None and draft.answers["gpmb"] == {"v": "1"}
                assert draft.answers["gpmb_funds"]["v"] is not None
        finally:
            outputs = [await stop(worker) for worker in workers]
            await zalo.stop()
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, output
        assert zalo.refused == []
