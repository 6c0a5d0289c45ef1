"""Updates of different chats handled at the same time, each chat's one at a time in the order
they came: a person's answers never overtake each other, and nobody waits for someone else's
photo download or reply. (Between processes sharing PostgreSQL, each update holds its chat's
conversation row: store.access.chat_of.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

# Updates handled at once: enough to overlap the waits (the database, Telegram's answers, a
# download), and under the database pool (store.db: 20 + 10 connections on PostgreSQL). With
# 8, a rush's first seconds on PostgreSQL (500 /start, each about 14 round trips to the
# server) queued for a slot: p95 of the whole rush 306 ms with 16 against 640 with 8, back to
# back.
MAX_AT_ONCE = 16


class Lanes:
    def __init__(self, at_once: int = MAX_AT_ONCE) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._holders: Counter[Hashable] = Counter()  # holding or waiting for a lane's lock
        self._slots = asyncio.Semaphore(at_once)

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        """Wait for every earlier turn of `key` to end (asyncio.Lock wakes its waiters in the
        order they came), then for one of the slots."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._holders[key] += 1
        try:
            async with lock, self._slots:
                yield
        finally:
            self._holders[key] -= 1
            if not self._holders[key]:
                del self._holders[key]
                del self._locks[key]

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        async with self.turn(key):
            return await work()
