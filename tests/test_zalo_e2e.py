"""The real `ccn-bot run` process on Zalo only, against a stand-in Zalo OA API: signed webhook
events in (text, button postbacks, an image), the investor's whole journey, and events that
are unsigned, wrongly signed or replayed changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.dialog import image
from tests.standin_zalo import APP_ID, APP_SECRET, OA_SECRET, StandinZalo
from tests.test_telegram_e2e import environment

QUIET = 0.4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ZaloPerson:
    def __init__(self, zalo: StandinZalo, http: aiohttp.ClientSession, url: str, user: str) -> None:
        self.zalo, self.http, self.url, self.user = zalo, http, url, user

    async def post(
        self, event: dict[str, Any], *, sign: bool = True, secret: str = OA_SECRET
    ) -> int:
        body = self.zalo.encode(event)
        headers = (
            self.zalo.sign(body, event, secret) if sign else {"Content-Type": "application/json"}
        )
        for _ in range(100):  # the webhook server may still be starting
            try:
                async with self.http.post(self.url, data=body, headers=headers) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        raise AssertionError("the webhook never answered")

    async def replies(self, before: int, timeout: float = 15.0) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.zalo.to(self.user)) <= before:
            assert loop.time() < deadline, "no answer"
            await asyncio.sleep(0.05)
        while True:
            count = len(self.zalo.to(self.user))
            await asyncio.sleep(QUIET)
            if len(self.zalo.to(self.user)) == count:
                break
        return "\n".join(s.text for s in self.zalo.to(self.user)[before:])

    async def send(self, event: dict[str, Any]) -> str:
        before = len(self.zalo.to(self.user))
        assert await self.post(event) == 200
        return await self.replies(before)

    async def say(self, text: str) -> str:
        return await self.send(self.zalo.event("user_send_text", self.user, text=text))

    async def tap(self, label: str) -> str:
        for sent in reversed(self.zalo.to(self.user)):
            for title, payload in sent.buttons:
                if label.lower() in title.lower():
                    return await self.say(payload)  # a query button sends its payload as text
        raise AssertionError(f"no button {label!r}")


async def test_investor_journey_on_zalo(tmp_path: Path) -> None:
    zalo = StandinZalo()
    root = await zalo.start()
    port = free_port()
    env = environment(
        tmp_path,
        ZALO_APP_ID=APP_ID,
        ZALO_APP_SECRET=APP_SECRET,
        ZALO_OA_SECRET_KEY=OA_SECRET,
        ZALO_OA_ACCESS_TOKEN=zalo.access_token,
        ZALO_OA_REFRESH_TOKEN=zalo.refresh_token,
        ZALO_API_URL=root,
        ZALO_OAUTH_URL=root,
        ZALO_ZNS_URL=root,
        ZALO_WEBHOOK_PORT=str(port),
    )
    invite = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "invite",
        "--role",
        "investor",
        "--cluster",
        "dai-thang",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
    )
    token = (await invite.communicate())[0].decode().split()[0]
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    photo = image("purple", (320, 240))
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/zalo/webhook"
            person = ZaloPerson(zalo, http, url, "zu-77")
            intruder = zalo.event("user_send_text", "zu-77", text=token)
            assert await person.post(intruder, sign=False) == 401
            assert await person.post(intruder, secret="guessed") == 401
            assert zalo.to("zu-77") == []
            welcome = await person.say(token)
            assert "Chào mừng" in welcome and "Đại Thắng" in welcome
            assert "QHCT 1/500" in await person.say("/baocao")
            assert "Phương án bồi thường" in await person.tap("Có")
            assert "Đã GPMB" in await person.tap("Có")
            assert "kinh phí GPMB" in await person.say("100")
            assert "Đất lúa" in await person.tap("Đã chuyển đủ")
            assert "cho thuê đất" in await person.tap("Không cần")
            assert "khởi công" in await person.say("80")
            assert "Trạm XLNT" in await person.tap("Không")
            assert "Khó khăn" in await person.tap("Chưa xây dựng")
            assert "Kiến nghị" in await person.say("Chưa có")
            assert "ảnh hiện trường" in await person.tap("Bỏ qua")
            url_photo = zalo.publish("site.jpg", photo)
            image_event = zalo.event(
                "user_send_image",
                "zu-77",
                attachments=[
                    {"type": "image", "payload": {"url": url_photo, "thumbnail": url_photo}}
                ],
            )
            assert "Đã nhận 1 ảnh" in await person.send(image_event)
            before = len(zalo.to("zu-77"))
            assert await person.post(image_event) == 200  # replayed: the same message id
            await asyncio.sleep(1.0)
            assert len(zalo.to("zu-77")) == before
            summary = await person.tap("Xong")
            assert "80 %" in summary and "1 ảnh" in summary
            receipt = await person.tap("Gửi báo cáo")
            assert "Số tham chiếu: BC-" in receipt and "Số ảnh: 1" in receipt
    finally:
        bot.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(bot.communicate(), timeout=30)
        await zalo.stop()
    assert bot.returncode == 0, output.decode(errors="replace")[-3000:]
    db = sqlite3.connect(tmp_path / "data" / "ccn.db")
    channel, answers = db.execute("SELECT channel, answers FROM reports").fetchone()
    assert channel == "zalo" and json.loads(answers)["land_lease"] == {"v": "80"}
    [(sha,)] = db.execute("SELECT sha256 FROM photos").fetchall()
    assert sha == hashlib.sha256(photo).hexdigest()
