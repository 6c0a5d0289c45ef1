"""The APScheduler job inside `ccn-bot run`: every tick, send what is due — in one worker at a
time when several share a PostgreSQL database (store/leader.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.calendar import Calendar
from handlers.port import Notifier
from reminders.policy import Policy
from reminders.sender import tick
from store import conversations
from store.db import unit_of_work
from store.leader import Leadership

log = logging.getLogger(__name__)

# updates handled longer ago than this are forgotten (their marks and kept answers): no channel
# delivers one again so late; looked at every HOUSEKEEPING_SECONDS
KEEP_PROCESSED = timedelta(days=3)
HOUSEKEEPING_SECONDS = 3600


def _now() -> datetime:
    return datetime.now(UTC)


def start(
    sessions: async_sessionmaker[AsyncSession],
    calendar: Calendar,
    policy: Policy,
    notifier: Notifier,
    *,
    every_seconds: int,
    clock: Callable[[], datetime] = _now,
    leadership: Leadership | None = None,
) -> AsyncIOScheduler:
    """Start the reminder job on the running event loop; the caller shuts the scheduler down."""

    async def job() -> None:
        try:
            if leadership is not None and not await leadership.held():
                return  # another worker runs the reminders
            result = await tick(sessions, calendar, policy, notifier, clock())
        except asyncio.CancelledError:
            # the bot is stopping mid-run: the ledger keeps what went (at most once); no
            # traceback in the log for an ordinary shutdown
            log.info("reminder run stopped: the bot is shutting down")
            return
        except Exception:
            log.exception("reminder tick failed")
            return
        if result.sent or result.blocked or result.failed:
            log.info(
                "reminders: %s sent, %s blocked, %s failed",
                result.sent,
                result.blocked,
                result.failed,
            )

    async def housekeeping() -> None:
        try:
            if leadership is not None and not await leadership.held():
                return
            async with unit_of_work(sessions) as session:
                forgotten = await conversations.forget_processed(session, _now() - KEEP_PROCESSED)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("housekeeping failed")
            return
        if forgotten:
            log.info("forgot %s handled updates older than %s", forgotten, KEEP_PROCESSED)

    scheduler = AsyncIOScheduler(timezone=calendar.zone)
    # each at once, in real time: the scheduler's timing is real even when `clock` (the time
    # the tick reasons about) is set back; a past first run was "missed", and APScheduler
    # walked every interval since then before the first tick (13 s at CLOCK_START 2021)
    for work, seconds, name in (
        (housekeeping, HOUSEKEEPING_SECONDS, "housekeeping"),
        (job, every_seconds, "reminders"),
    ):
        scheduler.add_job(
            work,
            "interval",
            seconds=seconds,
            next_run_time=_now(),
            max_instances=1,
            coalesce=True,
            id=name,
        )
    scheduler.start()
    return scheduler
