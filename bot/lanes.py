"""Updates of different chats handled at the same time, each chat's one at a time in the order
they came: a person's answers never overtake each other, and nobody waits for someone else's
photo download or reply. (Between processes sharing PostgreSQL, each update holds its chat's
conversation row: store.access.chat_of.)"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Updates handled at once: enough to overlap the waits (the database, Telegram's answers, a
# download), and under the database pool (store.db: 10 + 10 connections on PostgreSQL). With
# 8, a rush's first seconds on PostgreSQL (500 /start, each about 14 round trips to the
# server) queued for a slot: p95 of the whole rush 306 ms with 16 against 640 with 8, back to
# back.
MAX_AT_ONCE = 16


# Photos downloaded and checked at once (each out of its update's slot, `aside`), per Lanes: a
# photo's bytes are in memory meanwhile, up to MAX_PHOTO_MB each.
ASIDE_AT_ONCE = 8


@dataclass
class _Turn:
    slots: asyncio.Semaphore
    aside: asyncio.Semaphore
    holds_slot: bool = True


_TURN: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("lane_turn", default=None)


class Lanes:
    def __init__(self, at_once: int = MAX_AT_ONCE, aside_at_once: int = ASIDE_AT_ONCE) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._holders: Counter[Hashable] = Counter()  # holding or waiting for a lane's lock
        self._slots = asyncio.Semaphore(at_once)
        self._aside = asyncio.Semaphore(aside_at_once)

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Wait for every earlier turn of `key` to end (asyncio.Lock wakes its waiters in the
        order they came), then for one of the slots."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] += 1
        try:
            async with lock:
                await self._slots.acquire()
                turn = _Turn(self._slots, self._aside)
                token = _TURN.set(turn)
                try:
                    yield
                finally:
                    _TURN.reset(token)
                    if turn.holds_slot:
                        self._slots.release()
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key]
                del self._locks[key]

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        async with self.turn(key):
            return await work()


@contextlib.asynccontextmanager
async def aside() -> AsyncIterator[None]:
    """Within a turn: its slot given to another update while waiting for what needs neither
    the event loop nor the database — a photo's download, decoding and writing to disk (in
    the deadline rush a photo held its slot about 150 ms for them, and the other updates
    queued for the slots) — at most ASIDE_AT_ONCE at once. The chat's lane stays held: its
    next update still waits. Outside a turn, nothing."""
    turn = _TURN.get()
    if turn is None or not turn.holds_slot:
        yield
        return
    turn.slots.release()
    turn.holds_slot = False
    try:
        async with turn.aside:
            yield
    finally:
        await turn.slots.acquire()  # cancelled here: no slot held, none to give back
        turn.holds_slot = True
