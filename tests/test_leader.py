"""More than one worker: the reminder scheduler runs in one of them at a time, and another
takes over when that one is killed (PostgreSQL advisory lock)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import App
from handlers.context import Deps
from reminders import scheduler
from reminders.policy import Policy
from reminders.sender import TickResult, tick
from store.db import make_engine
from store.leader import Leadership
from tests.dialog import Chat
from tests.test_reminders import Outbox
from tests.test_zalo import token_for

HOLDER = """
import asyncio, sys
from store.db import make_engine
from store.leader import Leadership

async def main() -> None:
    leadership = Leadership(make_engine(sys.argv[1]))
    print("lead" if await leadership.held() else "follow", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_one_worker_leads_and_another_takes_over(db_url: str) -> None:
    engine = make_engine(db_url)
    mine = Leadership(engine)
    if not mine.shared:  # SQLite: one machine's file, every worker leads
        assert await mine.held()
        await engine.dispose()
        return
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, db_url, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert (await asyncio.wait_for(holder.stdout.readline(), 30)).strip() == b"lead"
        assert not await mine.held()  # the other worker leads
        holder.send_signal(signal.SIGKILL)  # it dies mid-run
        await holder.wait()
        for _ in range(100):  # PostgreSQL releases the lock with the dead connection
            if await mine.held():
                break
            await asyncio.sleep(0.1)
        assert await mine.held()
        assert await mine.held()  # and keeps it
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await mine.release()
        await engine.dispose()


async def test_only_the_leader_ticks(app: App, deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two workers' reminder jobs on one database at the same moment: on PostgreSQL only the
    leader plans and sends (the follower does not even read the store); on SQLite both tick
    and the ledger keeps each reminder to one."""
    chat = Chat(deps, chat_id="4242", channel="telegram")
    await chat.say(f"/start {await token_for(deps)}")
    moment = datetime(2021, 6, 20, 8, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
    ticks: list[int] = []

    async def counted(*args: Any, **kwargs: Any) -> TickResult:
        ticks.append(1)
        return await tick(*args, **kwargs)

    monkeypatch.setattr(scheduler, "tick", counted)
    # the scheduler's own first run an hour from now: the test runs each worker's tick itself
    later = datetime.now(UTC) + timedelta(hours=1)
    monkeypatch.setattr(scheduler, "_now", lambda: later)
    url = app.engine.url.render_as_string(hide_password=False)
    boxes = [Outbox(), Outbox()]
    leaders = [Leadership(make_engine(url)), Leadership(make_engine(url))]
    jobs = [
        scheduler.start(
            deps.sessions,
            deps.calendar,
            Policy(),
            box,
            every_seconds=3600,
            clock=lambda: moment,
            leadership=leader,
        )
        for box, leader in zip(boxes, leaders, strict=True)
    ]
    try:
        # each worker's tick at the same moment (the scheduler's own timing is not under test)
        for job in jobs:
            await job.get_job("reminders").func()
        assert sum(len(b.to("4242")) for b in boxes) == 1
        assert len(ticks) == (1 if leaders[0].shared else 2)
    finally:
        for job in jobs:
            job.shutdown(wait=False)
        for leader in leaders:
            await leader.release()
            await leader.engine.dispose()
