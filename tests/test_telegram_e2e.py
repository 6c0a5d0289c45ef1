"""`ccn-bot run` against a stand-in Telegram Bot API on loopback: a new investor is invited,
reports with an album of two photos, and gets a receipt. The bot runs in this process (the
same start-up and `serve`, real HTTP both ways) except where the process itself is tested."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from testing import unpaced
from testing.pg import free_port
from testing.standin_telegram import StandinBotAPI
from tests import inprocess
from tests.dialog import image

QUIET = 0.4  # the bot has said all it will say about one message after this long


async def webhook_registered(api: StandinBotAPI) -> dict[str, Any]:
    """The bot's setWebhook call, once the process has made it (a process that starts while
    the machine is busy may take more than the 10 s this once allowed)."""
    for _ in range(600):
        if api.called("setWebhook"):
            break
        await asyncio.sleep(0.1)
    return api.called("setWebhook")[-1]


def webhook_settings(port: int) -> dict[str, str]:
    """A bot on a webhook: Telegram posts to its public URL with the secret; it listens on
    `port` of this machine."""
    return {
        "WEBHOOK_URL": "https://ccn.example.vn/hook",
        "WEBHOOK_SECRET": "s3cret-value",
        "WEBHOOK_PORT": str(port),
    }


async def webhook_here(api: StandinBotAPI, port: int) -> tuple[dict[str, Any], str]:
    """The bot's setWebhook call (webhook_settings), and the URL that reaches it here."""
    registered = await webhook_registered(api)
    path = urlsplit(registered["url"]).path.removeprefix("/hook")
    return registered, f"http://127.0.0.1:{port}{path}"


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TELEGRAM_BOT_TOKEN")}
    env.update({"DATA_DIR": str(tmp_path / "data"), **extra})
    return env


@dataclass
class Person:
    """Someone chatting with the bot through the stand-in server."""

    api: StandinBotAPI
    chat_id: int
    said: int = 0  # the update of the last text sent

    async def _replies(self, before: int, timeout: float = 15.0) -> str:
        """What the bot sent after the `before`th message, once it has said all it will."""
        await self.api.wait_for_count(self.chat_id, before + 1, timeout=timeout)
        while True:  # wait until the bot falls quiet
            count = len(self.api.sent(self.chat_id))
            await asyncio.sleep(QUIET)
            if len(self.api.sent(self.chat_id)) == count:
                break
        return self._since(before)

    async def _answer(self, update_id: int, before: int, timeout: float = 15.0) -> str:
        """The bot's answer to one update: all of it is sent before the bot confirms the update
        to Telegram (a getUpdates with a higher offset), so no waiting for quiet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(int(p.get("offset") or 0) > update_id for p in self.api.called("getUpdates")):
            assert loop.time() < deadline, f"update {update_id} not handled in {timeout} s"
            await asyncio.sleep(0.01)
        await self.api.wait_for_count(self.chat_id, before + 1, timeout=timeout)
        return self._since(before)

    def _since(self, before: int) -> str:
        return "\n".join(
            str(m.get("text") or m.get("caption") or "")
            for m in self.api.sent(self.chat_id)[before:]
        )

    async def say(self, text: str) -> str:
        before = len(self.api.sent(self.chat_id))
        self.said = self.api.send_text(self.chat_id, text, first_name="Lê Văn C")
        return await self._answer(self.said, before)

    async def step(self, says: str) -> str:
        """A step as tests.dialog's tables write it: `[label]` taps a button, else text."""
        if says.startswith("[") and says.endswith("]"):
            return await self.tap(says[1:-1])
        return await self.say(says)

    async def tap(self, label: str) -> str:
        message_id, data = self.api.button(self.chat_id, label)
        before = len(self.api.sent(self.chat_id))
        return await self._answer(self.api.press_button(self.chat_id, data, message_id), before)

    async def edit(self, message_id: int, text: str) -> str:
        before = len(self.api.sent(self.chat_id))
        return await self._answer(self.api.edit_text(self.chat_id, message_id, text), before)

    async def document(self, data: bytes, file_name: str, mime_type: str) -> str:
        before = len(self.api.sent(self.chat_id))
        sent = self.api.send_document(self.chat_id, data, file_name, mime_type)
        return await self._answer(sent, before)

    async def album(self, photos: list[bytes]) -> str:
        """An album is answered once, a moment after its last photo: wait for quiet."""
        before = len(self.api.sent(self.chat_id))
        for data in photos:
            self.said = self.api.send_photo(self.chat_id, data, media_group_id="album-1")
        return await self._replies(before)


@pytest.fixture
async def api() -> AsyncIterator[StandinBotAPI]:
    server = StandinBotAPI(token="424242:E2E-SECRET", bot_username="ccn_hanoi_bot")
    await server.start()
    yield server
    await server.stop()


async def menu_of(api: StandinBotAPI, chat_id: int, timeout: float = 10.0) -> list[str]:
    """The commands of the chat's own menu (BotCommandScopeChat), once the bot has set them."""
    for _ in range(int(timeout / 0.05)):
        if api.chat_commands(chat_id):
            break
        await asyncio.sleep(0.05)
    return [c["command"] for c in api.chat_commands(chat_id)]


async def run_bot(
    env: dict[str, str], cwd: Path, *, chat_pace: bool = True
) -> asyncio.subprocess.Process:
    """The real `ccn-bot run` in its own process, its output kept for the assertion message;
    `chat_pace=False`: a chat's messages not held to Telegram's pace (testing/unpaced.py)."""
    argv = [sys.executable, "-m", "bot"] if chat_pace else unpaced.ARGV
    return await asyncio.create_subprocess_exec(
        *argv,
        "run",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def start_bot(tmp_path: Path, api: StandinBotAPI, **extra: str) -> asyncio.subprocess.Process:
    """`ccn-bot run` as a real process, for what only a process shows (its memory)."""
    env = environment(tmp_path, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_URL=api.root, **extra)
    return await run_bot(env, tmp_path)


def start_here(tmp_path: Path, api: StandinBotAPI, **extra: str) -> inprocess.Bot:
    """`ccn-bot run` in this process: the tests that talk to the bot over HTTP (its start-up,
    signals and memory as a process are tested in test_operations and below). Their people
    answer at once: a chat's messages are not held to Telegram's one a second (the pace is
    tested in test_rush and test_reminders_telegram)."""
    env = environment(tmp_path, TELEGRAM_BOT_TOKEN=api.token, TELEGRAM_API_URL=api.root, **extra)
    return inprocess.Bot(env, chat_pace=False)


async def stop(bot: asyncio.subprocess.Process | inprocess.Bot) -> str:
    """SIGTERM, then the end of what the process printed."""
    if isinstance(bot, inprocess.Bot):
        return await bot.stop()
    bot.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(bot.communicate(), timeout=30)
    return output.decode(errors="replace")[-3000:]


async def stop_bot(bot: asyncio.subprocess.Process | inprocess.Bot) -> None:
    output = await stop(bot)
    assert bot.returncode == 0, output


async def invite(tmp_path: Path) -> tuple[str, str]:
    """`ccn-bot invite` (in this process, on a thread: the command runs its own event loop)."""
    env: dict[str, str | None] = {"DATABASE_URL": None, "TELEGRAM_BOT_TOKEN": None}
    env["DATA_DIR"] = str(tmp_path / "data")
    env["TELEGRAM_BOT_USERNAME"] = "ccn_hanoi_bot"
    args = ("invite", "--role", "investor", "--cluster", "dai-thang")
    done = await asyncio.to_thread(inprocess.ccn, tmp_path, env, *args)
    assert done.returncode == 0, done.stderr
    token, link = done.stdout.split()
    return token, link


def confirmed_after(api: StandinBotAPI, update_id: int, answer: str) -> bool:
    """Whether the first getUpdates that confirmed `update_id` came after the bot's `answer`."""
    calls = api.calls
    answered = next(
        i
        for i, (method, params) in enumerate(calls)
        if method.lower() in ("sendmessage", "editmessagetext") and answer in str(params)
    )
    confirmed = next(
        (
            i
            for i, (method, params) in enumerate(calls)
            if method.lower() == "getupdates" and int(params.get("offset") or 0) > update_id
        ),
        len(calls),
    )
    return answered < confirmed


async def test_new_investor_reports_with_an_album(api: StandinBotAPI, tmp_path: Path) -> None:
    token, link = await invite(tmp_path)
    assert link == f"https://t.me/ccn_hanoi_bot?start={token}"
    bot = start_here(tmp_path, api)
    person = Person(api, 5551234)
    try:
        stranger = Person(api, 5550000)
        assert "5550000" in await stranger.say("xin chào")  # refused, with its chat id
        welcome = await person.say(f"/start {token}")
        assert "Chào mừng" in welcome and "Đại Thắng" in welcome
        # an investor's own menu: what help_for lists for them, nothing of an admin's
        assert await menu_of(api, person.chat_id) == [
            "baocao",
            "huy",
            "tinhhinh",
            "lienket",
            "ngonngu",
            "trogiup",
        ]
        assert api.chat_commands(stranger.chat_id) == []
        for says, expected in [
            ("/baocao", "QHCT 1/500"),
            ("[Có]", "Phương án bồi thường"),
            ("[Có]", "Đã GPMB"),
            ("nhiều", "từ 0 đến 100"),
            ("100", "kinh phí GPMB"),
            ("[Đã chuyển đủ]", "Đất lúa"),
            ("[Không cần]", "cho thuê đất"),
            ("80", "khởi công"),
            ("[Không]", "dự án đầu tư"),
            ("0", "Giá dịch vụ chung"),
            ("[Chưa xây dựng giá]", "Trạm XLNT"),
            ("[Chưa xây dựng]", "Khó khăn"),
            ("Chưa có", "Kiến nghị"),
        ]:
            assert expected in await person.step(says), says
        # Telegram was told the update was handled (a higher getUpdates offset) only after the
        # bot answered it: killed before that, the update would be delivered again (row 10)
        assert confirmed_after(api, person.said, "Kiến nghị")
        assert "ảnh hiện trường" in await person.tap("Bỏ qua")
        photos = [image("red", (320, 240)), image("blue", (240, 320))]
        answer = await person.album(photos)
        assert answer.count("Đã nhận") == 1 and "Đã nhận 2 ảnh" in answer  # one answer per album
        # its last photo confirmed only once that answer went out: not lost in the quiet moment
        assert confirmed_after(api, person.said, "Đã nhận 2 ảnh")
        summary = await person.tap("Xong")
        assert "80 %" in summary and "2 ảnh" in summary
        receipt = await person.tap("Gửi báo cáo")
        assert "Số tham chiếu: BC-" in receipt and "Số ảnh: 2" in receipt
        commands = {c["command"] for c in api.commands.get("vi", [])}
        assert {"baocao", "huy", "trogiup", "ngonngu"} <= commands
        assert {"report", "cancel", "help"} <= {c["command"] for c in api.commands.get("en", [])}
    finally:
        output = await stop(bot)
    assert bot.returncode == 0, output

    db = sqlite3.connect(tmp_path / "data" / "ccn.db")
    reference, channel, answers = db.execute(
        "SELECT reference, channel, answers FROM reports"
    ).fetchone()
    assert reference in receipt and channel == "telegram"
    assert '"land_lease": {"v": "80"}' in answers
    stored = db.execute(
        "SELECT p.sha256, p.path FROM photos p JOIN report_photos rp ON rp.photo_id = p.id "
        "WHERE rp.report_id = (SELECT id FROM reports)"
    ).fetchall()
    assert {sha for sha, _ in stored} == {hashlib.sha256(p).hexdigest() for p in photos}
    for sha, path in stored:
        assert hashlib.sha256((tmp_path / "data" / path).read_bytes()).hexdigest() == sha


async def test_webhook_refuses_updates_without_the_secret(
    api: StandinBotAPI, tmp_path: Path
) -> None:
    import json

    import aiohttp

    port = free_port()
    bot = start_here(tmp_path, api, **webhook_settings(port))
    try:
        registered, local = await webhook_here(api, port)
        assert registered["url"].startswith("https://ccn.example.vn/hook/")
        assert registered["secret_token"] == "s3cret-value"
        update = {
            "update_id": 77,
            "message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "text": "xin chào",
                "chat": {"id": 6060, "type": "private", "first_name": "X"},
                "from": {"id": 6060, "is_bot": False, "first_name": "X"},
            },
        }
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # the webhook server may still be starting
                try:
                    async with http.post(local, json=update) as response:
                        refused = response.status
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            headers = {"X-Telegram-Bot-Api-Secret-Token": "wrong"}
            async with http.post(local, data=json.dumps(update), headers=headers) as response:
                wrong = response.status
            headers["X-Telegram-Bot-Api-Secret-Token"] = "s3cret-value"
            async with http.post(local, json=update, headers=headers) as response:
                accepted = response.status
        assert (refused, wrong, accepted) == (403, 403, 200)
        reply = await api.wait_for(6060, lambda m: "6060" in str(m.get("text")))
        assert "chưa được mời" in reply["text"]
        assert len(api.sent(6060)) == 1  # the refused posts did nothing
    finally:
        output = await stop(bot)
    assert bot.returncode == 0, output


async def test_edits_and_oversized_files(api: StandinBotAPI, tmp_path: Path) -> None:
    """Editing "40" to "2" is not an answer to the choice now open; a 30 MB file (over the
    Bot API's 20 MB download cap) is refused by its declared size, never fetched."""
    token, _link = await invite(tmp_path)
    bot = start_here(tmp_path, api)
    person = Person(api, 5557777)
    try:
        await person.say(f"/start {token}")
        await person.say("/baocao")
        await person.tap("Có")
        assert "Đã GPMB" in await person.tap("Có")
        assert "kinh phí GPMB" in await person.say("40")
        forty = api.queued(person.said)["message"]["message_id"]
        answer = await person.edit(forty, "2")
        assert "không đọc tin nhắn đã sửa" in answer and "gửi lại" in answer
        assert "Đất lúa" not in answer  # the open question was not answered
        assert "Đất lúa" in await person.tap("Đã chuyển đủ")  # still the same question
        big = await person.document(b"\0" * (30 * 1024 * 1024), "ban-ve.pdf", "application/pdf")
        assert "lớn hơn 10 MB" in big and "có lỗi" not in big
        assert api.called("getFile") == [] and api.files_served == 0
    finally:
        await stop_bot(bot)
    db = sqlite3.connect(tmp_path / "data" / "ccn.db")
    (answers,) = db.execute("SELECT answers FROM report_drafts").fetchone()
    assert '"gpmb": {"v": "40"}' in answers and '"gpmb_funds": {"v": "fully"}' in answers


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
async def test_webhook_refuses_a_large_body_without_reading_it(
    api: StandinBotAPI, tmp_path: Path
) -> None:
    """A post with a wrong or no secret is refused from its headers (four 50 MB posts once took
    the bot from 153 to 403 MB); a body over 1 MB is refused even with the secret."""
    import aiohttp

    port = free_port()
    bot = await start_bot(tmp_path, api, **webhook_settings(port))
    try:
        _registered, local = await webhook_here(api, port)
        junk = b"x" * (50 * 1024 * 1024)
        secret = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-value"}
        async with aiohttp.ClientSession() as http:
            for _ in range(100):  # the webhook server may still be starting
                try:
                    async with http.post(local, json={"update_id": 1}, headers=secret) as response:
                        assert response.status == 200
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            before = rss_mb(bot.pid)
            statuses = []
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}, {}):
                async with http.post(local, data=junk, headers=headers) as response:
                    statuses.append(response.status)
            grown = rss_mb(bot.pid) - before
            async with http.post(
                local, data=b"{" + b" " * (2 * 1024 * 1024) + b"}", headers=secret
            ) as response:
                too_large = response.status
        assert statuses == [403, 403, 403, 403]
        assert grown < 30, f"the bot grew by {grown:.0f} MB reading refused bodies"
        assert too_large == 413
    finally:
        await stop_bot(bot)


async def test_healthz_shows_when_telegram_stops_answering(
    api: StandinBotAPI, tmp_path: Path
) -> None:
    """A Telegram-only bot serves /healthz on WEB_PORT; when Telegram stops answering the bot's
    polls, the telegram check fails and a load balancer gets 503."""
    import aiohttp

    port = free_port()
    bot = start_here(tmp_path, api, WEB_PORT=str(port))
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):  # the web server starts once Telegram has answered
                try:
                    async with http.get(url) as response:
                        status, body = response.status, await response.json()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            assert status == 200, body
            assert body["checks"]["telegram"]["ok"] and body["checks"]["database"]["ok"]
            await api.stop()  # Telegram goes away
            for _ in range(100):
                async with http.get(url) as response:
                    status, body = response.status, await response.json()
                if status == 503:
                    break
                await asyncio.sleep(0.1)
            assert status == 503 and not body["checks"]["telegram"]["ok"], body
            assert body["checks"]["database"]["ok"]
    finally:
        output = await stop(bot)
    assert bot.returncode == 0, output
