"""Telegram's flood limits, kept and no tighter: bulk sends one at a time, a chat's replies at
a person's pace.

Telegram's Bot FAQ ("My bot is hitting limits, how do I avoid this?"): in a single chat, avoid
more than one message per second ("we may allow short bursts that go over this limit"); bulk
notifications to many users, not more than about 30 messages per second. So:

- a *bulk* send (reminders and other notices, marked with `bulk()`) waits for the bulk gate:
  one request every 1/BULK_PER_SECOND s on a fixed grid, never a burst. A 429 pauses the gate
  and the refused request takes a new turn after the pause, so a pause ends without a burst
  (aiolimiter's bucket, in PTB's AIORateLimiter, handed out turns during the pause);
- a message in a chat (a reply, or a bulk send once through the gate) keeps to that chat's
  pace: a burst of CHAT_BURST, then one a second;
- a call that sends no message (answerCallbackQuery, editMessageReplyMarkup, getFile,
  setMyCommands, getUpdates) is not paced: the person is waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from store.timings import STATS

log = logging.getLogger(__name__)

BULK_PER_SECOND = 29.0  # under 30 in any second, with room for arrival jitter
CHAT_BURST = 4  # /tonghop answers with text, chart and two files at once
CHAT_PER_SECOND = 1.0
MAX_RETRIES = 3
MESSAGES = frozenset(  # in lower case: Bot API methods are case-insensitive
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendmediagroup",
        "sendlocation",
        "sendvideo",
        "sendaudio",
        "sendvoice",
        "sendanimation",
        "sendsticker",
        "copymessage",
        "forwardmessage",
    }
)

_bulk: contextvars.ContextVar[str] = contextvars.ContextVar("telegram_bulk", default="")
_NOT_BULK, _BULK, _PACED = "", "bulk", "paced"  # _PACED: the bulk turn is already taken
# the chat whose pace a bulk turn has already waited for: its first message does not wait again
_chat_paid: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "telegram_chat_paid", default=None
)

Result = bool | dict[str, Any] | list[dict[str, Any]]


@contextlib.contextmanager
def bulk() -> Iterator[None]:
    """The Bot API calls in this block are bulk sends (not replies)."""
    token = _bulk.set(_BULK if _bulk.get() != _PACED else _PACED)
    try:
        yield
    finally:
        _bulk.reset(token)


def retry_seconds(exc: RetryAfter) -> float:
    """How long Telegram asked to wait (PTB 22 deprecates the int `retry_after` for a
    timedelta; its own limiter reads the timedelta kept here)."""
    wait = getattr(exc, "_retry_after", None)
    return wait.total_seconds() if isinstance(wait, timedelta) else 1.0


class Gate:
    """One turn every `interval` seconds on a fixed grid: lateness of the timer does not add
    up, and a queue of waiters never goes through at once."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self._lock:  # FIFO: turns in the order they were asked for
            loop = asyncio.get_running_loop()
            while (wait := self._next - loop.time()) > 0:  # again if paused meanwhile
                await asyncio.sleep(wait)
            now = loop.time()
            on_grid = now - self._next < self.interval  # else idle: the grid starts again
            self._next = (self._next if on_grid else now) + self.interval

    def pause(self, seconds: float) -> None:
        """No turn before `seconds` from now (Telegram answered 429 retry_after)."""
        self._next = max(self._next, asyncio.get_running_loop().time() + seconds)


class ChatPace:
    """A chat's token bucket: CHAT_BURST messages at once, then CHAT_PER_SECOND."""

    def __init__(self) -> None:
        self.tokens = float(CHAT_BURST)
        self.at = 0.0
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            loop = asyncio.get_running_loop()
            now = loop.time()
            self.tokens = min(CHAT_BURST, self.tokens + (now - self.at) * CHAT_PER_SECOND)
            self.at = now
            if self.tokens < 1:
                if STATS is not None:
                    STATS.add("pace/chat_wait", (1 - self.tokens) / CHAT_PER_SECOND)
                await asyncio.sleep((1 - self.tokens) / CHAT_PER_SECOND)
                self.at = loop.time()
                self.tokens = 1.0
            self.tokens -= 1

    def idle(self, now: float) -> bool:
        return not self.lock.locked() and self.tokens + (now - self.at) >= CHAT_BURST


class Pacing(BaseRateLimiter[None]):
    """The rate limiter given to python-telegram-bot's Application (see the module's doc)."""

    def __init__(self, bulk_per_second: float | None = None) -> None:
        self.gate = Gate(bulk_per_second or BULK_PER_SECOND)
        self._chats: dict[str, ChatPace] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    @contextlib.asynccontextmanager
    async def bulk_turn(self, chat_id: str | None = None) -> AsyncIterator[None]:
        """Wait for the chat's pace (a person answering questions has used their burst) and
        then a bulk turn, now; the first message to that chat in the block waits for neither
        again. The reminder sender claims its ledger row in between: a crash then loses only
        the request on the wire, not those still waiting."""
        if chat_id is not None:
            await self._chat(chat_id).take()
        await self.gate.turn()
        token = _bulk.set(_PACED)
        paid = _chat_paid.set(chat_id)
        try:
            yield
        finally:
            _chat_paid.reset(paid)
            _bulk.reset(token)

    def _chat(self, chat_id: str) -> ChatPace:
        if len(self._chats) > 4096:  # forget the chats at rest
            now = asyncio.get_running_loop().time()
            self._chats = {k: v for k, v in self._chats.items() if not v.idle(now)}
        return self._chats.setdefault(chat_id, ChatPace())

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Result]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> Result:
        chat_id = data.get("chat_id")
        message = endpoint.lower() in MESSAGES and chat_id is not None
        kind = _bulk.get()
        for attempt in range(MAX_RETRIES + 1):
            if message and kind == _BULK:
                await self.gate.turn()
            if message and attempt == 0 and _chat_paid.get() == str(chat_id):
                _chat_paid.set(None)  # its turn was taken before the claim
            elif message:
                await self._chat(str(chat_id)).take()
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if attempt == MAX_RETRIES:
                    raise
                seconds = retry_seconds(exc) + 0.1
                log.info("Telegram asked to wait %.1f s (%s)", seconds, endpoint)
                if kind != _NOT_BULK:
                    self.gate.pause(seconds)
                    kind = _BULK  # a new turn after the pause, in the queue's order
                await asyncio.sleep(seconds)
        raise AssertionError("unreachable")
