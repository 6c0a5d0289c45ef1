"""Two `ccn-bot run` workers in Telegram webhook mode on one PostgreSQL database, as a load
balancer would feed them: one person's report moves from worker to worker message by message
and ends as it does through one worker, and an album whose photos land on both workers is
answered once, after its last photo, every photo kept.

The album's answer is the part a worker cannot decide alone: each photo arrives as an update of
its own, and the worker that handled the album's last photo (as the database says) is the one
that answers. The earlier in-memory debounce (one timer per album in each process) answered
once per worker that got a photo: run against it, this test fails at the first album with two
answers, "Đã nhận 2 ảnh" from one worker and "Đã nhận 3 ảnh" from the other."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from sqlalchemy import select

from bot.app import open_app
from bot.channels.telegram import ALBUM_QUIET_SECONDS
from bot.settings import load_settings
from domain.roles import Role
from domain.state import MAX_ALBUMS, ConversationState
from store.access import create_invitation
from store.db import unit_of_work
from store.models import Conversation, Photo, Report, ReportPhoto
from testing.pg import free_port, new_database
from testing.standin_telegram import StandinBotAPI
from tests.dialog import image
from tests.test_telegram_e2e import environment, run_bot, stop
from tests.test_zalo_e2e import START

SECRET = "two-workers-webhook-secret"
SECOND_ANSWER_LATE = 1.0  # seconds: how late an album's second answer could be on a busy machine
NAME = "Lê Văn C"


@dataclass
class Worker:
    """One `ccn-bot run` and the local address of the webhook it registered."""

    process: asyncio.subprocess.Process
    url: str = ""


async def start_worker(tmp_path: Path, api: StandinBotAPI, database_url: str, host: str) -> Worker:
    """A worker in webhook mode; `host` tells its setWebhook call from the others'."""
    port = free_port()
    env = environment(
        tmp_path,
        TELEGRAM_BOT_TOKEN=api.token,
        TELEGRAM_API_URL=api.root,
        DATABASE_URL=database_url,
        WEBHOOK_URL=f"https://{host}/hook",
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_PORT=str(port),
        CLOCK_START=START.isoformat(),
        REMINDER_TICK_SECONDS="3600",  # the reminders are not what is tested here
    )
    worker = Worker(await run_bot(env, tmp_path, chat_pace=False))  # its pace is not tested here
    for _ in range(600):
        registered = [c for c in api.called("setWebhook") if f"//{host}/" in c["url"]]
        if registered:
            path = urlsplit(registered[-1]["url"]).path.removeprefix("/hook")
            worker.url = f"http://127.0.0.1:{port}{path}"
            return worker
        assert worker.process.returncode is None, await stop(worker.process)
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker {host} registered no webhook")


@dataclass
class Person:
    """Someone chatting with the bot; each update is posted to the worker the test names, as a
    load balancer would, and answered 200 once handled (its replies sent)."""

    api: StandinBotAPI
    http: aiohttp.ClientSession
    workers: dict[str, Worker]
    chat_id: int
    log: list[str] = field(default_factory=list)  # worker: what was sent

    async def post(self, worker: str, update_id: int) -> None:
        url = self.workers[worker].url
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        for _ in range(100):  # the webhook server may still be starting
            try:
                async with self.http.post(
                    url, json=self.api.queued(update_id), headers=headers
                ) as response:
                    assert response.status == 200, (worker, response.status)
                return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        raise AssertionError(f"worker {worker} did not take update {update_id}")

    def since(self, before: int) -> str:
        return "\n".join(
            str(m.get("text") or m.get("caption") or "")
            for m in self.api.sent(self.chat_id)[before:]
        )

    async def say(self, worker: str, text: str) -> str:
        before = len(self.api.sent(self.chat_id))
        await self.post(worker, self.api.send_text(self.chat_id, text, first_name=NAME))
        self.log.append(f"{worker}: {text}")
        return self.since(before)

    async def tap(self, worker: str, label: str) -> str:
        message_id, data = self.api.button(self.chat_id, label)
        before = len(self.api.sent(self.chat_id))
        await self.post(worker, self.api.press_button(self.chat_id, data, message_id))
        self.log.append(f"{worker}: [{label}]")
        return self.since(before)

    async def album(
        self, workers: Sequence[str], photos: list[bytes], group: str, *, together: bool = False
    ) -> str:
        """The photos of one album, the nth to workers[n]: in order, each a moment after the one
        before (Telegram delivers an album's photos in quick succession, not waiting for each
        answer: waiting made the test depend on a busy machine handling a photo within the
        quiet time), or `together` (all at once). All the bot says about the album, once every
        worker's quiet time has passed."""
        before = len(self.api.sent(self.chat_id))
        updates = [self.api.send_photo(self.chat_id, data, media_group_id=group) for data in photos]
        posts = [self.post(w, u) for w, u in zip(workers, updates, strict=True)]
        if together:
            await asyncio.gather(*posts)
        else:
            started = []
            for post in posts:
                started.append(asyncio.create_task(post))
                await asyncio.sleep(0.05)
            await asyncio.gather(*started)
        handled = time.monotonic()
        self.log.append(f"{'/'.join(workers)}: album {group}")
        await self.api.wait_for_count(self.chat_id, before + 1, timeout=15)
        # every photo was handled when its post returned, and each photo's answer is decided
        # one quiet time after its handling: a second answer, if any, is on its way by the
        # first's arrival and by `handled` + one quiet time. Wait past both, with a second for
        # the database read and the send on a busy machine.
        now = time.monotonic()
        await asyncio.sleep(max(now, handled + ALBUM_QUIET_SECONDS) + SECOND_ANSWER_LATE - now)
        return self.since(before)


PHOTOS = [image("red", (320, 240)), image("blue", (240, 320)), image("green", (300, 300))]
KEPT = [image("yellow", (200, 100)), image("purple", (100, 200)), image("orange", (150, 150))]
KEPT.append(image("white", (120, 90)))


async def report(person: Person, token: str, at: Sequence[str]) -> list[str]:
    """The report of tests/test_telegram_e2e with a three-photo album, each message to the
    worker `at` names in turn (the album's photos too); what the bot answered each."""
    turn = itertools.cycle(at)
    said: list[str] = []
    steps: list[tuple[str, str, str]] = [
        ("say", f"/start {token}", "Chào mừng"),
        ("say", "/baocao", "QHCT 1/500"),
        ("tap", "Có", "Phương án bồi thường"),
        ("tap", "Có", "Đã GPMB"),
        ("say", "nhiều", "từ 0 đến 100"),
        ("say", "100", "kinh phí GPMB"),
        ("tap", "Đã chuyển đủ", "Đất lúa"),
        ("tap", "Không cần", "cho thuê đất"),
        ("say", "80", "khởi công"),
        ("tap", "Không", "dự án đầu tư"),
        ("say", "0", "Giá dịch vụ chung"),
        ("tap", "Chưa xây dựng giá", "Trạm XLNT"),
        ("tap", "Chưa xây dựng", "Khó khăn"),
        ("say", "Chưa có", "Kiến nghị"),
        ("tap", "Bỏ qua", "ảnh hiện trường"),
    ]
    for kind, what, expected in steps:
        worker = next(turn)
        answer = await (person.say if kind == "say" else person.tap)(worker, what)
        assert expected in answer, (person.log, answer)
        said.append(answer)
    answer = await person.album([next(turn) for _ in PHOTOS], PHOTOS, "album-report")
    assert answer.count("Đã nhận") == 1 and "Đã nhận 3 ảnh" in answer, (person.log, answer)
    said.append(answer)
    summary = await person.tap(next(turn), "Xong")
    assert "80 %" in summary and "3 ảnh" in summary, (person.log, summary)
    receipt = await person.tap(next(turn), "Gửi báo cáo")
    assert "Số tham chiếu: BC-" in receipt and "Số ảnh: 3" in receipt, (person.log, receipt)
    said += [summary, receipt]
    # with no report open, an album posted all at once to both: kept for the next report
    kept = await person.album([next(turn) for _ in KEPT], KEPT, "album-kept", together=True)
    assert kept.count("Đã lưu") == 1 and "Đã lưu 4 ảnh" in kept, (person.log, kept)
    said.append(kept)
    return said


def comparable(answers: list[str]) -> list[str]:
    """Answers without what differs between two databases (a report's reference)."""
    return [re.sub(r"BC-[\w/.-]+", "BC-…", answer) for answer in answers]


async def invitation(url: str, data_dir: Path) -> str:
    settings = load_settings(DATA_DIR=data_dir, DATABASE_URL=url)
    async with open_app(settings) as app, unit_of_work(app.sessions) as session:
        invited = await create_invitation(
            session, role=Role.INVESTOR, now=START, created_by="test", clusters=["dai-thang"]
        )
    return invited.token


async def stored(url: str, data_dir: Path, chat_id: int) -> tuple[Any, set[str], Any]:
    """The report's answers, the SHA-256 of its photos, and the chat's conversation state."""
    settings = load_settings(DATA_DIR=data_dir, DATABASE_URL=url)
    async with open_app(settings) as app, app.sessions() as session:
        (filed,) = (await session.scalars(select(Report))).all()
        photos = await session.scalars(
            select(Photo.sha256)
            .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
            .where(ReportPhoto.report_id == filed.id)
        )
        state = await session.scalar(
            select(Conversation.state).where(Conversation.chat_id == str(chat_id))
        )
        kept = await session.scalars(
            select(Photo.sha256).where(
                Photo.id.in_(ConversationState.from_json(state).pending_photos)
            )
        )
        return filed.answers, set(photos), (state, set(kept))


async def test_a_report_and_its_albums_move_between_two_workers(
    pg_base_url: str, pg_template: str, tmp_path: Path
) -> None:
    api = StandinBotAPI(token="424242:TWO-WORKERS", bot_username="ccn_hanoi_bot")
    await api.start()
    moving_dir, solo_dir = tmp_path / "moving", tmp_path / "solo"
    moving_dir.mkdir()
    solo_dir.mkdir()
    async with (
        new_database(pg_base_url, template=pg_template) as moving_url,
        new_database(pg_base_url, template=pg_template) as solo_url,
    ):
        moving_token = await invitation(moving_url, moving_dir / "data")
        solo_token = await invitation(solo_url, solo_dir / "data")
        started = await asyncio.gather(
            start_worker(moving_dir, api, moving_url, "worker-a.example"),
            start_worker(moving_dir, api, moving_url, "worker-b.example"),
            start_worker(solo_dir, api, solo_url, "solo.example"),
            return_exceptions=True,
        )
        workers = [w for w in started if isinstance(w, Worker)]
        try:
            for failed in started:
                if isinstance(failed, BaseException):
                    raise failed
            a, b, solo = workers
            async with aiohttp.ClientSession() as http:
                moving = Person(api, http, {"A": a, "B": b}, chat_id=7001)
                alone = Person(api, http, {"S": solo}, chat_id=7002)
                # side by side: the same report through one worker and through two
                through_one, through_two = await asyncio.gather(
                    report(alone, solo_token, ["S"]), report(moving, moving_token, ["A", "B"])
                )
        finally:
            outputs = [await stop(w.process) for w in workers]
            await api.stop()
        for worker, output in zip(workers, outputs, strict=True):
            assert worker.process.returncode == 0, output
        assert comparable(through_two) == comparable(through_one)
        answers, photos, (state, kept) = await stored(moving_url, moving_dir / "data", 7001)
        solo_answers, _photos, (solo_state, _kept) = await stored(solo_url, solo_dir / "data", 7002)
    assert answers == solo_answers and answers["land_lease"] == {"v": "80"}
    assert photos == {hashlib.sha256(p).hexdigest() for p in PHOTOS}
    assert kept == {hashlib.sha256(p).hexdigest() for p in KEPT}
    assert [group for group, _update in ConversationState.from_json(state).albums] == [
        "album-report",
        "album-kept",
    ]
    assert state.keys() == solo_state.keys()


# --- the album's latest update in the conversation state ---------------------------------------


def test_an_albums_latest_update_is_kept_in_the_state() -> None:
    state = ConversationState()
    state.album_update("g1", "101")
    state.album_update("g2", "201")
    state.album_update("g1", "103")  # handled last: g1 moves to the end
    assert state.latest_of_album("g1") == "103" and state.latest_of_album("g3") is None
    assert state.to_json() == {"albums": [["g2", "201"], ["g1", "103"]]}
    assert ConversationState.from_json(state.to_json()) == state
    state.reset()  # the report's end: the albums stay, they are about delivery
    assert state.latest_of_album("g1") == "103"
    for n in range(MAX_ALBUMS + 3):
        state.album_update(f"x{n}", str(n))
    assert len(state.albums) == MAX_ALBUMS and state.latest_of_album("g1") is None


def test_stored_albums_are_read_field_by_field() -> None:
    assert ConversationState.from_json({"albums": "g1"}).albums == ()
    garbled = {"albums": [["g1", "1"], ["g1", "2"], ["g2"], [3, "4"], None, ["g3", "x" * 999]]}
    assert ConversationState.from_json(garbled).albums == (("g1", "2"),)
    many = {"albums": [[f"g{n}", str(n)] for n in range(50)]}
    assert len(ConversationState.from_json(many).albums) == MAX_ALBUMS
    # a state stored before albums were noted reads as it did
    old = {"draft": 12, "period": "2021-06", "mode": "ask", "q": "gpmb"}
    assert ConversationState.from_json(old).to_json() == old
