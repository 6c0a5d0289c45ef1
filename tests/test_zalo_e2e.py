"""`ccn-bot run` on Zalo only (in this process: the same start-up and `serve`), against a
stand-in Zalo OA API that refuses what Zalo refuses: the dialog tables of every form played as
signed webhook events with typed choices, photos and files as Zalo delivers them, echoes and
receipts left unanswered, the month's files for Sở Công Thương (a DOCX on Zalo, the workbook by
a signed link), and unsigned, wrongly signed or replayed events changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from bot.app import open_app
from bot.settings import load_settings
from domain.roles import Role
from handlers.port import Button
from store.access import create_invitation
from store.db import unit_of_work
from testing.pg import free_port
from testing.standin_zalo import APP_ID, APP_SECRET, OA_SECRET, StandinZalo
from tests import inprocess
from tests.dialog import IMAGES, finish, play
from tests.test_dialogs import DISTRICT_START, FOUNDED_JUNE, OPERATING_JUNE
from tests.test_telegram_e2e import environment, stop
from tests.zalo_dialog import typed_choices

QUIET = 0.15  # the bot has answered when nothing more arrives for this long
START = datetime(2021, 6, 10, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
EDIT = "✏️ "  # the summary's edit choices are the answers' own numbers on Zalo


def running_from(start: datetime) -> Callable[[], datetime]:
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


@dataclass
class ZaloPerson:
    """Someone on Zalo, talking to the real process through signed webhook events."""

    zalo: StandinZalo
    http: aiohttp.ClientSession
    url: str
    user: str
    seen: list[str] = field(default_factory=list)  # what the bot answered to the last step
    transcript: list[str] = field(default_factory=list)
    # when the bot runs in this process: waits until it has handled all the user sent
    settled: Callable[[str], Awaitable[None]] | None = None

    async def post(
        self, event: dict[str, Any], *, sign: bool = True, secret: str = OA_SECRET
    ) -> int:
        body = self.zalo.encode(event)
        headers = (
            self.zalo.sign(body, event, secret) if sign else {"Content-Type": "application/json"}
        )
        # the webhook server may still be starting: a bot process starts in 2-3 s, but in
        # over 20 s on this 2-core machine with the rest of the suite beside it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while loop.time() < deadline:
            try:
                async with self.http.post(self.url, data=body, headers=headers) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        raise AssertionError("the webhook never answered")

    async def _replies(self, before: int, timeout: float = 20.0) -> str:
        loop = asyncio.get_running_loop()
        asked = loop.time()
        deadline = asked + timeout
        while len(self.zalo.to(self.user)) <= before:
            assert loop.time() < deadline, "no answer\n" + self.log()
            await asyncio.sleep(0.02)
        if self.settled is not None:
            await asyncio.wait_for(self.settled(self.user), timeout)
        # a process: wait until the bot falls quiet, for longer when its first message was
        # slow to come (a loaded machine spaces an answer's messages out as much)
        quiet = max(QUIET, min(2.0, 2 * (loop.time() - asked)))
        while self.settled is None:
            count = len(self.zalo.to(self.user))
            await asyncio.sleep(quiet)
            if len(self.zalo.to(self.user)) == count:
                break
        self.seen = [s.text for s in self.zalo.to(self.user)[before:]]
        self.transcript.extend(f"« {line}" for line in self.text.splitlines())
        return self.text

    async def send(self, event: dict[str, Any], shown: str) -> str:
        before = len(self.zalo.to(self.user))
        self.transcript.append(f"» {shown}")
        assert await self.post(event) == 200
        return await self._replies(before)

    # --- the Player of the dialog tables ------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(self.seen)

    @property
    def buttons(self) -> list[Button]:
        return [Button(label, key) for key, label in typed_choices(self.text)]

    async def say(self, text: str) -> str:
        return await self.send(self.zalo.event("user_send_text", self.user, text=text), text)

    async def tap(self, label: str) -> str:
        if label.startswith(EDIT):
            return await self.say(label.removeprefix(EDIT))
        wanted = label.casefold()
        for button in self.buttons:
            if wanted in button.label.casefold():
                return await self.say(button.payload)  # Zalo has no buttons: type the key
        raise AssertionError(f"no choice {label!r}\n" + self.log())

    async def file(self, name: str, *, as_image: bool) -> str:
        data, mime = IMAGES[name]
        url = self.zalo.publish(f"{self.user}-{name}", data)
        if as_image:
            payload: dict[str, Any] = {"url": url, "thumbnail": url}
        else:
            payload = {"url": url, "name": name, "size": str(len(data)), "type": mime}
        kind = "image" if as_image else "file"
        event = self.zalo.event(
            f"user_send_{kind}", self.user, attachments=[{"type": kind, "payload": payload}]
        )
        return await self.send(event, f"{'📷' if as_image else '📎'} {name}")

    async def step(self, says: str) -> str:
        if says.startswith("[") and says.endswith("]"):
            return await self.tap(says[1:-1])
        if says.startswith(("📷 ", "📎 ")):
            return await self.file(says[2:].strip(), as_image=says.startswith("📷"))
        if says.startswith("📍 "):
            lat, lon = says[2:].split()
            coordinates = {"latitude": lat, "longitude": lon}
            event = self.zalo.event(
                "user_send_location",
                self.user,
                attachments=[{"type": "location", "payload": {"coordinates": coordinates}}],
            )
            return await self.send(event, says)
        return await self.say(says)

    def log(self) -> str:
        return "\n".join(self.transcript[-30:])


async def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    """The command in this process, with exactly `env` (on a thread: it runs its own loop)."""
    given: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    given.update(env)
    done = await asyncio.to_thread(inprocess.ccn, cwd, given, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def zalo_environment(tmp_path: Path, zalo: StandinZalo, port: int, **extra: str) -> dict[str, str]:
    """`ccn-bot run` on Zalo only, against the stand-in, with the bot's clock at START and its
    web server's links on `port`."""
    return environment(
        tmp_path,
        ZALO_APP_ID=APP_ID,
        ZALO_APP_SECRET=APP_SECRET,
        ZALO_OA_SECRET_KEY=OA_SECRET,
        ZALO_OA_ACCESS_TOKEN=zalo.access_token,
        ZALO_OA_REFRESH_TOKEN=zalo.refresh_token,
        ZALO_API_URL=zalo.root,
        ZALO_OAUTH_URL=zalo.root,
        ZALO_ZNS_URL=zalo.root,
        ZALO_WEBHOOK_PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        LINK_SECRET="e2e-link-secret-0123456789",
        CLOCK_START=START.isoformat(),
        # the reminder job runs at start, then not again during the test (not tested here)
        REMINDER_TICK_SECONDS="3600",
        **extra,
    )


async def test_every_form_over_zalo_end_to_end(tmp_path: Path) -> None:
    clock = running_from(START)
    zalo = StandinZalo(clock=clock)
    await zalo.start()
    port = free_port()
    env = zalo_environment(tmp_path, zalo, port, ZALO_ZNS_TEMPLATE_ID="ccn-reminder")
    # one invitation through the CLI, the others straight into the same database
    tokens = {
        "founded": (
            await cli(env, tmp_path, "invite", "--role", "investor", "--cluster", "dai-thang")
        ).split()[0]
    }
    settings = load_settings(DATA_DIR=tmp_path / "data")
    async with open_app(settings) as app, unit_of_work(app.sessions) as session:
        for who, role, scope in (
            ("operating", Role.INVESTOR, {"clusters": ["binh-phu"]}),
            ("silent", Role.INVESTOR, {"clusters": ["phu-tuc"]}),
            ("district", Role.DISTRICT, {"district": "Huyện Phú Xuyên"}),
            ("admin", Role.ADMIN, {}),
        ):
            invitation = await create_invitation(
                session,
                role=role,
                now=START,
                created_by="test",
                **scope,
            )
            tokens[who] = invitation.token
    bot = inprocess.Bot(env)  # `ccn-bot run`, in this process
    counts: dict[str, int] = {}
    steps: dict[str, list[str]] = {}
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/zalo/webhook"

            def person(user: str) -> ZaloPerson:
                return ZaloPerson(zalo, http, url, user, settled=inprocess.zalo_settled)

            founded, operating = person("zu-founded"), person("zu-operating")
            district, admin = person("zu-district"), person("zu-admin")
            t2 = asyncio.get_running_loop().time()
            intruder = zalo.event("user_send_text", founded.user, text=tokens["founded"])
            assert await founded.post(intruder, sign=False) == 401
            assert await founded.post(intruder, secret="guessed") == 401
            assert zalo.to(founded.user) == []
            print("start took", asyncio.get_running_loop().time() - t2)

            async def founded_report() -> None:
                welcome = await founded.say(tokens["founded"])  # no deep links: typed
                assert "Chào mừng" in welcome and "Đại Thắng" in welcome
                assert zalo.to(founded.user)[-1].kind == "request_user_info"
                before = len(zalo.to(founded.user))
                await play(founded, FOUNDED_JUNE)
                counts["founded"] = len(zalo.to(founded.user)) - before

            async def operating_report() -> None:
                await operating.say(tokens["operating"])
                before = len(zalo.to(operating.user))
                await play(operating, OPERATING_JUNE)
                counts["operating"] = len(zalo.to(operating.user)) - before

            async def district_report() -> None:
                await district.say(tokens["district"])
                before = len(zalo.to(district.user))
                await play(district, DISTRICT_START)
                await finish(district, prefer=("Đã hoàn thành", "Bỏ qua"))
                await play(district, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
                counts["district"] = len(zalo.to(district.user)) - before

            silent = person("zu-silent")  # joins, never reports
            t0 = asyncio.get_running_loop().time()
            await asyncio.gather(
                founded_report(),
                operating_report(),
                district_report(),
                silent.say(tokens["silent"]),
            )

            print("forms took", asyncio.get_running_loop().time() - t0)
            steps.update(f=founded.transcript, o=operating.transcript, d=district.transcript)
            # what needs no answer gets none; a sticker gets one polite line
            quiet = len(zalo.to(founded.user))
            for event in (
                zalo.oa_send_text(founded.user, "an echo of the OA's own message"),
                zalo.received(founded.user, "out1"),
                zalo.seen(founded.user, ["out1", "out2"]),
            ):
                assert await founded.post(event) == 200
            assert "chưa đọc được loại tin nhắn này" in await founded.send(
                zalo.sticker(founded.user), "sticker"
            )
            assert len(zalo.to(founded.user)) == quiet + 1

            # a district's /chuabaocao, and Sở Công Thương's month on Zalo
            before = len(zalo.to(district.user))
            missing = await district.say("/chuabaocao 6/2021")
            assert "Phú Túc" in missing and "Đại Thắng" not in missing
            counts["district_missing"] = len(zalo.to(district.user)) - before
            await admin.say(tokens["admin"])
            before = len(zalo.to(admin.user))
            t1 = asyncio.get_running_loop().time()
            month = await admin.say("/tonghop 6/2021")
            print("tonghop took", asyncio.get_running_loop().time() - t1)
            sent = zalo.to(admin.user)[before:]
            assert "Tổng hợp tháng 06/2021" in month
            assert [s.kind for s in sent] == ["text", "media", "file", "text"]
            [docx] = [u for u in zalo.upload_info.values() if u.kind == "file"]
            assert docx.filename.endswith(".docx") and docx.sniffed.endswith(
                "wordprocessingml.document"
            )
            link = month.rsplit("\n", 1)[-1].strip()
            assert link.startswith(f"http://127.0.0.1:{port}/files/"), month
            async with http.get(link) as response:
                assert response.status == 200
                workbook = await response.read()
            assert workbook[:2] == b"PK" and b"xl/" in workbook  # the XLSX, by the link
            forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
            async with http.get(forged) as response:
                assert response.status == 403
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                health = await response.json()
                assert response.status == 200 and health["status"] == "ok", health
    finally:
        log = await stop(bot)
        await zalo.stop()
    assert bot.returncode == 0, log
    assert zalo.refused == [], zalo.refused  # nothing Zalo would refuse was ever sent
    db = sqlite3.connect(tmp_path / "data" / "ccn.db")
    rows = db.execute("SELECT form, channel, answers FROM reports ORDER BY id").fetchall()
    assert sorted(form for form, _c, _a in rows) == ["founded", "operating", "tasks"]
    assert all(channel == "zalo" for _f, channel, _a in rows)
    founded_answers = next(json.loads(a) for f, _c, a in rows if f == "founded")
    assert founded_answers["gpmb"] == {"v": "60.5"}
    shas = {sha for (sha,) in db.execute("SELECT sha256 FROM photos")}
    assert shas == {hashlib.sha256(IMAGES[n][0]).hexdigest() for n in ("red.jpg", "green.png")}
    print("zalo messages:", json.dumps(counts), "steps:", {p: len(t) for p, t in steps.items()})
