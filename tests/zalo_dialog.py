"""The dialog tables played through the Zalo adapter: each step becomes a signed webhook event,
and the bot's answers are read back from what the stand-in OA API received."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import aiohttp
from aiohttp import web

from bot.channels.zalo import ZaloApi, ZaloChannel, ZaloConfig
from handlers.context import Deps
from handlers.port import Button, Incoming, Reply
from testing.standin_zalo import APP_ID, APP_SECRET, OA_SECRET, StandinZalo
from tests.dialog import Chat


@dataclass
class ZaloChat(Chat):
    zalo: StandinZalo = field(default_factory=StandinZalo)
    webhook: str = ""
    http: aiohttp.ClientSession | None = None
    channel_obj: ZaloChannel | None = None
    channel: str = "zalo"

    async def post(self, event: dict[str, object], secret: str = OA_SECRET) -> int:
        assert self.http is not None and self.channel_obj is not None
        body = self.zalo.encode(event)
        async with self.http.post(
            self.webhook, data=body, headers=self.zalo.sign(body, event, secret)
        ) as r:
            status = r.status
        await self.channel_obj.drain()
        return status

    async def send(self, incoming: Incoming) -> str:
        user = self.chat_id
        if incoming.payload is not None:  # Zalo has no buttons: the person types the key
            event = self.zalo.event("user_send_text", user, text=incoming.payload)
        elif incoming.location is not None:
            lat, lon = incoming.location
            event = self.zalo.event(
                "user_send_location",
                user,
                attachments=[
                    {
                        "type": "location",
                        "payload": {"coordinates": {"latitude": lat, "longitude": lon}},
                    }
                ],
            )
        elif incoming.attachments:
            attachment = incoming.attachments[0]
            url = self.zalo.publish(attachment.file_name or "photo.jpg", await attachment.fetch())
            kind = "image" if attachment.kind == "photo" else "file"
            event = self.zalo.event(
                f"user_send_{kind}",
                user,
                attachments=[{"type": kind, "payload": {"url": url, "name": attachment.file_name}}],
            )
        else:
            event = self.zalo.event("user_send_text", user, text=incoming.text)
        event["timestamp"] = str(int(self.deps.clock().timestamp() * 1000))
        before = len(self.zalo.to(user))
        status = await self.post(event)
        assert status == 200, status
        self.replies = [
            Reply(s.text, [[Button(label, key)] for key, label in typed_choices(s.text)])
            for s in self.zalo.to(user)[before:]
        ]
        self.transcript.append(
            f"» {incoming.text or incoming.payload or incoming.location or '📷'}"
        )
        self.transcript.extend(f"« {line}" for line in self.text.splitlines())
        return self.text


CHOICE = re.compile(r"\[([0-9a-z]+)\] (.+?)(?=\s{3}\[[0-9a-z]+\] |$)", re.MULTILINE)


def typed_choices(text: str) -> list[tuple[str, str]]:
    """The (key, label) choices written under a message: `[1] Có   [2] Không`."""
    return [(m.group(1), m.group(2).strip()) for m in CHOICE.finditer(text)]


@asynccontextmanager
async def zalo_bot(
    deps: Deps,
    *,
    window: timedelta = timedelta(days=7),
    zns_template_id: str = "",
    zalo: StandinZalo | None = None,
) -> AsyncIterator[tuple[StandinZalo, ZaloChannel, str, aiohttp.ClientSession]]:
    """A stand-in Zalo (a new one, or one that lives on across bot restarts), and the bot's
    Zalo channel serving its webhook on loopback."""
    zalo = zalo or StandinZalo(clock=deps.clock)
    root = await zalo.start()
    config = ZaloConfig(
        app_id=APP_ID,
        app_secret=APP_SECRET,
        oa_secret_key=OA_SECRET,
        access_token=zalo.access_token,
        refresh_token=zalo.refresh_token,
        api_url=root,
        oauth_url=root,
        zns_url=root,
        window=window,
        zns_template_id=zns_template_id,
        retry_wait=0.01,
    )
    async with aiohttp.ClientSession() as http:
        api = ZaloApi(config, deps, http)
        channel = ZaloChannel(deps, api)
        app = web.Application()
        channel.routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        channel.resume()
        try:
            yield zalo, channel, f"http://127.0.0.1:{port}{config.webhook_path}", http
            await channel.drain()
            assert zalo.refused == [], zalo.refused  # the bot sent nothing Zalo refuses
        finally:
            await channel.stop()
            await runner.cleanup()
            await zalo.stop()
