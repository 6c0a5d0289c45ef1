"""Issue "Trust": the transaction of an update is short and all-or-nothing. A photo downloads
before it, so nobody else waits on SQLite's write lock (row 1); an update whose handling fails
leaves no "processed" mark, so its redelivery is answered (row 8); a refused or rolled-back
photo leaves no file behind (row 13)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import App, open_app, prepare
from bot.settings import load_settings
from domain.roles import Role
from handlers import conversation, reporting
from handlers.context import Deps
from handlers.port import Attachment
from store import submissions
from store.access import create_invitation
from store.db import unit_of_work
from store.models import ChannelIdentity, Photo, ProcessedUpdate, Report
from testing.pg import free_port
from testing.standin_zalo import StandinZalo
from tests import inprocess
from tests.dialog import IMAGES, Chat, Clock, finish, play
from tests.test_dialogs import investor
from tests.test_security_photos import files_under, noisy_jpeg
from tests.test_telegram_e2e import stop
from tests.test_zalo_e2e import START, ZaloPerson, running_from, zalo_environment

SORRY = "Xin lỗi, có lỗi xảy ra"
DOWNLOAD_SECONDS = 3.0


# --- row 1: a slow download holds no lock -------------------------------------------------


async def test_a_slow_photo_download_on_zalo_does_not_fail_anyone_else(tmp_path: Path) -> None:
    clock = running_from(START)
    zalo = StandinZalo(clock=clock)
    await zalo.start()
    port = free_port()
    env = zalo_environment(tmp_path, zalo, port)  # no DATABASE_URL: SQLite under DATA_DIR
    others = [f"zu-other-{n}" for n in range(5)]
    tokens: dict[str, str] = {}
    settings = load_settings(DATA_DIR=tmp_path / "data")
    async with open_app(settings) as app:
        await prepare(app)  # migrations and the registry, as `ccn-bot run` does
        async with unit_of_work(app.sessions) as session:
            for user in ["zu-photographer", *others]:
                is_investor = user == "zu-photographer"
                invitation = await create_invitation(
                    session,
                    role=Role.INVESTOR if is_investor else Role.ADMIN,
                    now=START,
                    created_by="test",
                    clusters=["dai-thang"] if is_investor else [],
                )
                tokens[user] = invitation.token
    bot = inprocess.Bot(env)  # `ccn-bot run`, in this process
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/zalo/webhook"
            people = {
                u: ZaloPerson(zalo, http, url, u, settled=inprocess.zalo_settled)
                for u in ["zu-photographer", *others]
            }
            for user, person in people.items():
                assert "Chào mừng" in await person.say(tokens[user])
            photographer = people["zu-photographer"]
            await play(photographer, [("/baocao", "QHCT 1/500")])  # a report open: on_answer
            loop = asyncio.get_running_loop()

            async def timed_text(person: ZaloPerson) -> tuple[str, float]:
                sent = loop.time()
                answer = await person.say("/trogiup")
                return answer, loop.time() - sent

            # 3 s: the others waited for the download; 6 s (past SQLite's 5 s busy timeout):
            # they were told "Xin lỗi, có lỗi xảy ra"
            for count, (name, seconds) in enumerate(
                (("red.jpg", DOWNLOAD_SECONDS), ("blue.jpg", 2 * DOWNLOAD_SECONDS)), start=1
            ):
                media = f"{photographer.user}-slow-{name}"
                link = zalo.publish(media, IMAGES[name][0])
                zalo.media_delay[media] = seconds
                event = zalo.event(
                    "user_send_image",
                    photographer.user,
                    attachments=[{"type": "image", "payload": {"url": link, "thumbnail": link}}],
                )
                photo = asyncio.create_task(photographer.send(event, f"📷 {name}"))
                await asyncio.sleep(0.5)  # the download is under way
                answers = await asyncio.gather(*(timed_text(people[u]) for u in others))
                for user, (answer, took) in zip(others, answers, strict=True):
                    assert SORRY not in answer, f"{user}: {answer}"
                    assert "/baocao" in answer and "/moi" in answer, f"{user}: {answer}"
                    assert took < 1.5, f"{user} waited {took:.1f} s behind the download"
                assert not photo.done()  # the download was still going on meanwhile
                received = await photo
                assert f"Đã nhận {count} ảnh" in received and SORRY not in received, received
    finally:
        output = await stop(bot)
        await zalo.stop()
    assert bot.returncode == 0, output


# --- row 8: a failed update leaves no mark ------------------------------------------------


async def test_a_failed_update_is_handled_when_delivered_again(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await investor(deps)
    real_route = conversation.route
    failures: list[str] = []

    async def route_failing_once(*args: object, **kwargs: object) -> object:
        if not failures:
            failures.append("failed")
            raise RuntimeError("the handler broke after the update was marked")
        return await real_route(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(conversation, "route", route_failing_once)
    update = chat.incoming(text="/baocao")
    assert SORRY in await chat.send(update)
    async with app.sessions() as session:
        marks = select(func.count()).select_from(ProcessedUpdate)
        assert await session.scalar(marks.where(ProcessedUpdate.update_id == update.update_id)) == 0
    answer = await chat.send(update)  # the same update id, redelivered
    assert "QHCT 1/500" in answer, answer
    assert await chat.send(update) == ""  # and now it is a duplicate


async def test_a_duplicate_is_still_dropped(deps: Deps) -> None:
    chat = await investor(deps)
    update = chat.incoming(text="/trogiup")
    assert "/baocao" in await chat.send(update)
    assert await chat.send(update) == ""


# --- row 13: no orphan files ----------------------------------------------------------------


def _photo(data: bytes, name: str = "a.jpg") -> Attachment:
    async def fetch() -> bytes:
        return data

    return Attachment("photo", fetch, file_name=name)


async def _photo_rows(app: App) -> int:
    async with app.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Photo)) or 0)


async def test_a_rolled_back_photo_leaves_no_file(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])

    async def broken(*_args: object) -> tuple[int, int]:
        raise RuntimeError("the transaction fails after the photo was stored")

    monkeypatch.setattr(reporting, "link_photos", broken)
    data, _mime = IMAGES["red.jpg"]
    assert SORRY in await chat.send(chat.incoming(attachments=(_photo(data),)))
    assert files_under(deps.config.data_dir / "photos") == []
    assert await _photo_rows(app) == 0
    monkeypatch.undo()
    answer = await chat.send(chat.incoming(attachments=(_photo(data),)))  # sent again: kept
    assert "Đã nhận 1 ảnh" in answer, answer
    assert len(files_under(deps.config.data_dir / "photos")) == 2  # the photo and its thumbnail
    assert await _photo_rows(app) == 1


async def test_a_refused_photo_leaves_no_file(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])
    whole = noisy_jpeg()
    truncated = _photo(whole[: len(whole) // 2])
    fake, _mime = IMAGES["fake.jpg"]
    answer = await chat.send(chat.incoming(attachments=(truncated, _photo(fake, "b.jpg"))))
    assert "không phải ảnh" in answer and SORRY not in answer, answer
    too_big = _photo(whole)
    small = replace(deps, config=replace(deps.config, max_photo_bytes=len(whole) - 1))
    answer = await Chat(small, chat_id=chat.chat_id).send(chat.incoming(attachments=(too_big,)))
    assert "lớn hơn" in answer and SORRY not in answer, answer
    assert files_under(deps.config.data_dir / "photos") == []
    assert await _photo_rows(app) == 0


async def test_a_strangers_photo_is_not_kept(deps: Deps, app: App) -> None:
    data, _mime = IMAGES["blue.jpg"]
    stranger = Chat(deps, chat_id="999")
    answer = await stranger.send(stranger.incoming(attachments=(_photo(data),)))
    assert "chưa được mời" in answer or "999" in answer, answer
    assert files_under(deps.config.data_dir / "photos") == []


async def test_a_photo_in_an_album_of_duplicates_is_kept_once(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])
    red, _mime = IMAGES["red.jpg"]
    green, _mime = IMAGES["green.png"]
    answer = await chat.send(chat.incoming(attachments=(_photo(red), _photo(green), _photo(red))))
    assert "Đã nhận 2 ảnh" in answer, answer
    assert len(files_under(deps.config.data_dir / "photos")) == 4
    assert await _photo_rows(app) == 2


async def test_photos_of_someone_who_joined_meanwhile_are_prepared_then(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before the transaction said "stranger", the transaction found a person: the
    photos are prepared then, and the update handled in a fresh transaction."""
    chat = await investor(deps)
    await play(chat, [("/baocao", "QHCT")])

    async def said_stranger(*_args: object) -> bool:
        return False

    monkeypatch.setattr(conversation, "_may_keep_photos", said_stranger)
    red, _mime = IMAGES["red.jpg"]
    answer = await chat.send(chat.incoming(attachments=(_photo(red),)))
    assert "Đã nhận 1 ảnh" in answer and SORRY not in answer, answer
    assert len(files_under(deps.config.data_dir / "photos")) == 2
    assert await _photo_rows(app) == 1


# --- updates of different chats run at once (bot/lanes.py) ---------------------------------


async def _both_at_their_summary(deps: Deps, second_cluster: str) -> tuple[Chat, Chat]:
    """An investor of Đại Thắng and one of `second_cluster`, each with a whole report before
    them, one tap from filing it."""
    first = await investor(deps, chat_id="1001")
    second = await investor(deps, second_cluster, chat_id="1002")
    for chat in (first, second):
        await chat.say("/baocao")
        await finish(chat)
    return first, second


async def test_two_people_file_for_one_cluster_at_the_same_moment(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both get a receipt and both reports are kept, as versions 1 and 2. The first filing
    waits (up to 2 s) until the second has begun its own, so on PostgreSQL the two
    transactions overlap; SQLite lets one writer in at a time and the wait runs out."""
    first, second = await _both_at_their_summary(deps, "dai-thang")
    real = submissions.file_report
    begun: list[object] = []
    both = asyncio.Event()

    async def side_by_side(*args: Any, **kwargs: Any) -> Any:
        begun.append(args[1])
        if len(begun) == 2:
            both.set()
        filed = await real(*args, **kwargs)
        if len(begun) == 1:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 2.0)
        return filed

    monkeypatch.setattr(submissions, "file_report", side_by_side)
    receipts = await asyncio.gather(first.tap("Gửi báo cáo"), second.tap("Gửi báo cáo"))
    assert all("Số tham chiếu: BC-" in receipt for receipt in receipts), receipts
    async with app.sessions() as session:
        versions = await session.scalars(
            select(Report.version).where(Report.subject == "cluster:dai-thang")
        )
        assert sorted(versions) == [1, 2]


@pytest.mark.parametrize("prepared_url", ["postgresql"], indirect=True)  # SQLite: one writer
async def test_filings_for_two_clusters_do_not_wait_for_each_other(
    deps: Deps, app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the 24th hundreds file within minutes: one filing's transaction must not hold up
    another cluster's. The first filing keeps its transaction open until the second's report
    is in (up to 5 s); both get their own reference."""
    first, second = await _both_at_their_summary(deps, "quat-dong")
    real = submissions.file_report
    filed: list[object] = []
    both = asyncio.Event()
    waited_out: list[bool] = []

    async def side_by_side(*args: Any, **kwargs: Any) -> Any:
        report = await real(*args, **kwargs)
        filed.append(report)
        if len(filed) == 2:
            both.set()
        else:
            try:
                await asyncio.wait_for(both.wait(), 5.0)
            except TimeoutError:
                waited_out.append(True)
        return report

    monkeypatch.setattr(submissions, "file_report", side_by_side)
    receipts = await asyncio.gather(first.tap("Gửi báo cáo"), second.tap("Gửi báo cáo"))
    assert not waited_out, "the second filing waited for the first one's transaction"
    references = {receipt.split("Số tham chiếu: ")[1].split(".")[0] for receipt in receipts}
    assert len(references) == 2 and all(r.startswith("BC-2021") for r in references), receipts


async def test_when_someone_last_wrote_is_kept_to_the_minute(
    deps: Deps, app: App, clock: Clock
) -> None:
    """Answer after answer does not rewrite it (a statement per update saved); a message a
    minute or more later does (Zalo's 7-day window and the reminders' choice of chat read it)."""
    chat = await investor(deps)
    start = clock.now

    async def last_seen() -> object:
        async with app.sessions() as session:
            return await session.scalar(
                select(ChannelIdentity.last_seen_at).where(ChannelIdentity.external_id == "1001")
            )

    assert await last_seen() == start
    clock.now = start + timedelta(seconds=40)
    await chat.say("/trogiup")
    assert await last_seen() == start
    clock.now = start + timedelta(minutes=3)
    await chat.say("/trogiup")
    assert await last_seen() == start + timedelta(minutes=3)
