"""The answer kept with an update's mark reads back as it was sent; a file gone from disk is
left out, not an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from handlers import outbox
from handlers.context import Deps
from handlers.port import Button, Photo, Reply
from reminders.scheduler import KEEP_PROCESSED
from store import conversations
from store.db import unit_of_work
from store.models import ProcessedUpdate
from tests.dialog import Chat


def test_replies_read_back_as_they_were(tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"png")
    replies = [
        Reply(
            "Đã GPMB?",
            buttons=[[Button("Có", "a:q:yes", "1"), Button("Không", "a:q:no", "2", listed=False)]],
            free_input=True,
        ),
        Reply("", photos=(Photo(chart, "Biểu đồ"),), file=tmp_path / "gone.xlsx"),
        Reply("Xin số điện thoại", ask_contact=True, facts=(("period", "11/2026"),)),
    ]
    again = outbox.decode(outbox.encode(replies))
    assert again[0] == replies[0]
    assert again[1] == Reply("", photos=(Photo(chart, "Biểu đồ"),))  # the workbook is gone
    assert again[2] == replies[2]


def test_unreadable_kept_answers_give_none() -> None:
    assert outbox.decode(None) == []
    assert outbox.decode([{"no text": 1}, {"text": "ok"}]) == [Reply("ok")]


async def test_marks_older_than_a_channel_could_redeliver_are_forgotten(deps: Deps) -> None:
    chat = Chat(deps, chat_id="9009")
    await chat.say("xin chào")
    now = datetime.now(UTC)
    async with unit_of_work(deps.sessions) as session:
        assert await conversations.forget_processed(session, now - KEEP_PROCESSED) == 0
        assert await conversations.forget_processed(session, now + timedelta(seconds=1)) == 1
    async with deps.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0
