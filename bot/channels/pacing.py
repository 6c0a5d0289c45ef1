"""Telegram's flood limits, kept and no tighter: bulk sends one at a time, a chat's replies at
a person's pace.

Telegram's Bot FAQ ("My bot is hitting limits, how do I avoid this?"): in a single chat, avoid
more than one message per second ("we may allow short bursts that go over this limit"); bulk
notifications to many users, not more than about 30 messages per second. So:

- a *bulk* send (reminders and other notices, marked with `bulk()`) waits for the bulk gate:
  at most BULK_LIMIT requests in any BULK_WINDOW seconds (one second and a margin for their
  different times on the way; a request whose answer was slow counts longer), counted on the
  times the requests went, and spread evenly in between, never a burst (`Gate`). A 429 pauses
  the gate and the refused request takes a new turn after the pause, so a pause ends without a
  burst (aiolimiter's bucket, in PTB's AIORateLimiter, handed out turns during the pause);
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
import math
import statistics
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from datetime import timedelta
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from store.timings import STATS

log = logging.getLogger(__name__)

BULK_LIMIT = 30  # Telegram: about 30 messages a second to different chats
BULK_WINDOW = 1.015  # seconds: 1 s, and 15 ms for the requests' different times on the way
BULK_PER_SECOND = BULK_LIMIT / BULK_WINDOW  # 29.56/s, evenly spread
CATCH_UP = 0.5  # a turn this late at most (a busy loop, a late timer) is made good after
# turns given whose request has not gone, at most: a reminder claims its ledger row in that
# time, and a kill -9 then loses those rows (never sent twice); on a busy machine, where a
# claim takes longer than the spacing, the turns wait for the claims rather than pile up
MAX_PENDING = 2
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


class _Given:
    """A bulk turn taken before its block (`Pacing.bulk_turn`), for the block's first message."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.used = False


_given: contextvars.ContextVar[_Given | None] = contextvars.ContextVar(
    "telegram_bulk_given", default=None
)
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


class Sent:
    """A bulk request that went: when, and when its answer came back."""

    __slots__ = ("answered", "at")

    def __init__(self, at: float) -> None:
        self.at = at
        self.answered: float | None = None


class Gate:
    """Bulk turns: at most `limit` requests in any `window` seconds, counted on the times the
    requests went (`go`), not on the times their turns were given; in between, one turn every
    window/limit seconds, so that a queue of waiters never goes at once. A turn that came late
    (a busy event loop, a late timer) is made good: the next ones come sooner, at most twice as
    fast and as far as the window allows, which a fixed grid cannot do without compressing its
    window. After a pause or idle time the spacing starts again from the first turn.

    Telegram counts a request when it arrives. One slower on the way than the others
    arrives later by that much, and the request `limit` after it could then arrive within a
    second of it: so a request whose answer took longer than the recent ones' usual time (or
    than the window's margin, if longer) counts in the window that much longer (it arrived no
    later than its answer came back).

    A turn's request goes through `go` (which waits only if the window, counted on requests
    sent, is full, or while paused), and `answered` when its answer is back; or the turn is
    given back with `release`. What happens between turn and `go` (the reminder sender commits
    its ledger row, ~5-10 ms on SQLite) is allowed for: a turn is given that much, the median
    of the recent ones, before the window opens, so that the requests go as it opens rather
    than a commit later; a claimed request whose commit was quicker waits the difference."""

    def __init__(
        self,
        limit: int = BULK_LIMIT,
        window: float = BULK_WINDOW,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.interval = window / limit
        self._clock = clock
        self._sleep = sleep or asyncio.sleep
        self._sent: deque[Sent] = deque(maxlen=2 * limit)  # the last requests that went
        self._trips: deque[float] = deque(maxlen=limit)  # how long their answers took
        self._leads: deque[float] = deque(maxlen=limit)  # from their turn to their `go`
        self._pending = 0  # turns given whose request has not gone yet
        self._next = -math.inf  # the spacing: no turn before this
        self._last = -math.inf  # the last turn given
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _window_opens(self, more: int) -> float:
        """When `more` requests may go, counted on those sent: no more than `limit` in any
        window (those still in it when it opens: `limit - more`)."""
        stay = self.limit - more
        now = self.now()
        if stay < 0:  # with none to spare, look again once a given turn may have gone
            return now + self.interval
        if len(self._sent) <= stay:
            return -math.inf
        # a request counts longer by how much its answer took longer than the usual time
        # (at least the window's margin, which allows for that much already)
        usual = max(statistics.median(self._trips) if self._trips else 0.0, self.window - 1.0)
        ends = sorted(
            sent.at
            + self.window
            + min(
                max(0.0, (now if sent.answered is None else sent.answered) - sent.at - usual),
                self.window,
            )
            for sent in self._sent
        )
        return ends[len(ends) - stay - 1]

    async def turn(self) -> float:
        """Wait for a turn; returns the time it was given (for `go`)."""
        async with self._lock:  # FIFO: turns in the order they were asked for
            while True:
                if self._pending >= MAX_PENDING:  # look again once one may have gone
                    await self._sleep(self.interval / 4)
                    continue
                lead = min(statistics.median(self._leads), self.interval) if self._leads else 0.0
                opens = max(
                    self._next,
                    self._last + self.interval / 2,
                    self._paused_until,
                    # the turns given go first
                    self._window_opens(self._pending + 1) - lead,
                )
                if (wait := opens - self.now()) <= 0:
                    break
                await self._sleep(wait)
            now = self.now()
            late = now - self._next
            self._next = (self._next if late <= CATCH_UP else now) + self.interval
            self._last = now
            self._pending += 1
            return now

    async def go(self, given: float | None = None) -> Sent:
        """The request of the turn given at `given` goes now: at once unless the window,
        counted on the requests sent, is full (a claim quicker than the recent ones), or the
        gate was paused after the turn."""
        if given is not None:
            self._leads.append(self.now() - given)
        while (wait := max(self._paused_until, self._window_opens(1)) - self.now()) > 0:
            await self._sleep(wait)
        sent = Sent(self.now())
        self._sent.append(sent)
        return sent

    def answered(self, sent: Sent) -> None:
        """The request's answer (or error) came back."""
        sent.answered = self.now()
        self._trips.append(sent.answered - sent.at)

    def release(self) -> None:
        """A turn given is over: its request went (after `go`), or will not go."""
        self._pending = max(0, self._pending - 1)

    def pause(self, seconds: float) -> None:
        """No turn before `seconds` from now (Telegram answered 429 retry_after)."""
        self._paused_until = max(self._paused_until, self.now() + seconds)


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
        self.gate = Gate(BULK_LIMIT, BULK_LIMIT / (bulk_per_second or BULK_PER_SECOND))
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
        given = _Given(await self.gate.turn())
        token = _bulk.set(_PACED)
        turn = _given.set(given)
        paid = _chat_paid.set(chat_id)
        try:
            yield
        finally:
            _chat_paid.reset(paid)
            _given.reset(turn)
            _bulk.reset(token)
            if not given.used:
                self.gate.release()

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
            if message and attempt == 0 and _chat_paid.get() == str(chat_id):
                _chat_paid.set(None)  # its chat's pace was waited for before the claim
            elif message:
                await self._chat(str(chat_id)).take()
            if message and kind != _NOT_BULK:  # last: the window counts when requests go
                given = _given.get() if kind == _PACED else None
                if given is not None and not given.used:
                    given.used = True  # the block's turn, taken before the claim
                    at = given.at
                else:
                    at = await self.gate.turn()
                try:
                    sent: Sent | None = await self.gate.go(at)
                finally:
                    self.gate.release()
            else:
                sent = None
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as exc:
                if sent is not None:
                    self.gate.answered(sent)
                    sent = None
                if attempt == MAX_RETRIES:
                    raise
                seconds = retry_seconds(exc) + 0.1
                log.info("Telegram asked to wait %.1f s (%s)", seconds, endpoint)
                if kind != _NOT_BULK:
                    self.gate.pause(seconds)
                    kind = _BULK  # a new turn after the pause, in the queue's order
                await asyncio.sleep(seconds)
            finally:
                if sent is not None:
                    self.gate.answered(sent)
        raise AssertionError("unreachable")
