"""Telegram delivering to a webhook behind a load balancer, for tests and benchmarks of more than
one `ccn-bot run` worker (bot/channels/telegram.py `webhook_server`).

The stand-in Bot API (testing/standin_telegram.py) queues the updates the test's people send;
once a worker has called setWebhook, this relay takes them (``take_for_webhook``) and posts each,
as JSON with the ``X-Telegram-Bot-Api-Secret-Token`` header the bot registered, to one of the
workers — round-robin or at random (seeded), as a load balancer spreads requests — so that the
updates of one chat may reach different workers. A post answered 2XX is confirmed to the stand-in
(``confirm_webhook``: Telegram forgets the update, and ``confirmed_at`` is set as a higher
getUpdates offset sets it in polling mode); anything else is delivered again, to any live worker:

* connection refused (nothing listens: the worker is dead or not started yet): the load balancer
  takes the worker out for ``down_for`` seconds and passes the post to the next one at once —
  the request never reached a worker (nginx's ``proxy_next_upstream error``);
* the connection lost after the post went (the worker killed while handling it), no answer
  within ``timeout``, or a status other than 2XX: Telegram's redelivery — the Bot API's
  setWebhook: "In case of an unsuccessful request (a request with response HTTP status code
  different from 2XY), we will repeat the request and give up after a reasonable amount of
  attempts" (https://core.telegram.org/bots/api#setwebhook). The same update, same update_id,
  after ``retry_delays`` (Telegram waits longer; the tests cannot), to whichever worker the
  balancer picks; the worker may have committed it before it died, so the bot must drop the
  duplicate and answer it again from what it stored (handlers/outbox.py).

At most ``max_connections`` posts are in flight at once (setWebhook's ``max_connections``,
"1-100. Defaults to 40"). The Bot API documents no order between the updates of one chat; with
``per_chat_order`` (the default) a chat's next update is posted only once the one before it was
answered 2XX, which is how a person on a phone behaves anyway (they wait for the bot's answer);
without it, a chat's updates are posted as they come and may overtake each other.

    relay = WebhookRelay(api, public_url="https://ccn-bot.example/hook")
    relay.add("a", port_a)
    relay.add("b", port_b)
    async with relay:
        ...  # people send; relay.figures() says who got what
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from testing.standin_telegram import StandinBotAPI

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_CONNECTIONS = 40  # setWebhook's default
RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)  # then the last one again
POST_TIMEOUT = 60.0  # seconds: a post not answered by then counts as failed, and is redelivered
DOWN_FOR = 0.5  # seconds a worker that refused a connection stays out of the rotation
MAX_ATTEMPTS = 200  # then the update is given up, as Telegram gives up


@dataclass
class Backend:
    """One worker behind the balancer, and what it was given."""

    name: str
    port: int
    down_until: float = 0.0
    posted: int = 0  # posts that reached it (refused connections not counted)
    answered: int = 0  # answered 2XX
    refused: int = 0  # connection refused
    lost: int = 0  # connection lost or timed out after the post went
    not_2xx: int = 0
    in_flight: int = 0
    statuses: dict[int, int] = field(default_factory=dict)  # non-2XX statuses seen

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def chat_of(update: dict[str, Any]) -> int | None:
    """The chat an update belongs to (a message's or a callback query's message's)."""
    for key, value in update.items():
        if key == "update_id" or not isinstance(value, dict):
            continue
        message = value.get("message") if key == "callback_query" else value
        chat = (message or {}).get("chat") if isinstance(message, dict) else None
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return int(chat["id"])
        sender = value.get("from")
        if isinstance(sender, dict) and isinstance(sender.get("id"), int):
            return int(sender["id"])
    return None


class WebhookRelay:
    """Posts the stand-in's queued updates to the workers added with ``add``."""

    def __init__(
        self,
        api: StandinBotAPI,
        *,
        public_url: str,
        balance: str = "round-robin",  # or "random"
        seed: int = 0,
        max_connections: int = MAX_CONNECTIONS,
        per_chat_order: bool = True,
        timeout: float = POST_TIMEOUT,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        down_for: float = DOWN_FOR,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if balance not in ("round-robin", "random"):
            raise ValueError(f"balance: round-robin or random, not {balance!r}")
        self.api = api
        self.public_path = urlsplit(public_url).path.rstrip("/")
        self.balance = balance
        self.rng = random.Random(seed)
        self.max_connections = max_connections
        self.per_chat_order = per_chat_order
        self.timeout = timeout
        self.retry_delays = tuple(retry_delays) or (0.0,)
        self.down_for = down_for
        self.max_attempts = max_attempts
        self.backends: dict[str, Backend] = {}
        # what happened: every attempt (monotonic time, update id, worker, outcome), the workers
        # each update was answered by, the updates given up
        self.attempts: list[tuple[float, int, str, str]] = []
        self.handled_by: dict[int, list[str]] = {}
        # update ids posted again after a lost post or a non-2XX answer (Telegram's redelivery),
        # and those passed on to another worker after a refused connection (the balancer's)
        self.redelivered: set[int] = set()
        self.passed_on: set[int] = set()
        self.given_up: list[int] = []
        self._turn = itertools.count()
        self._slots = asyncio.Semaphore(max_connections)
        self._http: aiohttp.ClientSession | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._tails: dict[int, asyncio.Task[None]] = {}  # a chat's latest delivery
        self._closing = False

    # ------------------------------------------------------------------ the workers

    def add(self, name: str, port: int) -> Backend:
        """A worker listening on 127.0.0.1:``port`` (the same port again after a restart)."""
        backend = self.backends.get(name)
        if backend is None or backend.port != port:
            backend = self.backends[name] = Backend(name, port)
        backend.down_until = 0.0
        return backend

    def remove(self, name: str) -> None:
        self.backends.pop(name, None)

    def _live(self) -> list[Backend]:
        now = time.monotonic()
        return [b for b in self.backends.values() if b.down_until <= now]

    async def _choose(self) -> Backend:
        while True:
            live = self._live()
            if live:
                if self.balance == "random":
                    return self.rng.choice(live)
                return live[next(self._turn) % len(live)]
            await asyncio.sleep(0.02)  # every worker is out: wait for one to come back

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._closing = False
        connector = aiohttp.TCPConnector(limit=self.max_connections, force_close=False)
        self._http = aiohttp.ClientSession(connector=connector)
        self._dispatcher = asyncio.create_task(self._dispatch())

    async def stop(self) -> None:
        self._closing = True
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._tails.clear()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> WebhookRelay:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def in_flight(self) -> int:
        """Updates taken and not yet answered 2XX (or given up)."""
        return len(self._tasks)

    # ------------------------------------------------------------------ delivery

    async def _dispatch(self) -> None:
        while not self._closing:
            for update_id, update in self.api.take_for_webhook():
                self._spawn(update_id, update)
            await self.api.updates_queued(0.25)

    def _spawn(self, update_id: int, update: dict[str, Any]) -> None:
        chat = chat_of(update) if self.per_chat_order else None
        before = self._tails.get(chat) if chat is not None else None
        task = asyncio.create_task(self._deliver(update_id, update, before))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if chat is not None:
            self._tails[chat] = task

            def forget(done: asyncio.Task[None], chat: int = chat) -> None:
                if self._tails.get(chat) is done:
                    del self._tails[chat]

            task.add_done_callback(forget)

    async def _deliver(
        self, update_id: int, update: dict[str, Any], before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:  # the chat's update before this one: answered first
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(before)
        failures = 0
        for _attempt in range(self.max_attempts):
            backend = await self._choose()
            outcome = await self._post(backend, update)
            self.attempts.append((time.monotonic(), update_id, backend.name, outcome))
            if outcome == "ok":
                self.handled_by.setdefault(update_id, []).append(backend.name)
                self.api.confirm_webhook(update_id)
                return
            if outcome == "refused":  # the balancer passes it on to the next worker at once
                backend.down_until = time.monotonic() + self.down_for
                self.passed_on.add(update_id)
                continue
            # Telegram's redelivery, after a pause
            self.redelivered.add(update_id)
            delay = self.retry_delays[min(failures, len(self.retry_delays) - 1)]
            failures += 1
            await asyncio.sleep(delay)
        self.given_up.append(update_id)

    async def _post(self, backend: Backend, update: dict[str, Any]) -> str:
        """ok, refused (never reached the worker), lost (no answer: reset or timed out) or
        http-<status>."""
        assert self._http is not None
        path = urlsplit(self.api.webhook_url).path
        if self.public_path and path.startswith(self.public_path):
            path = path[len(self.public_path) :]
        headers = {SECRET_HEADER: self.api.webhook_secret} if self.api.webhook_secret else {}
        async with self._slots:
            backend.in_flight += 1
            try:
                async with self._http.post(
                    backend.root + path,
                    json=update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientConnectorError:
                backend.refused += 1
                return "refused"
            except (aiohttp.ClientError, TimeoutError):
                backend.posted += 1
                backend.lost += 1
                backend.down_until = time.monotonic() + self.down_for
                return "lost"
            finally:
                backend.in_flight -= 1
        backend.posted += 1
        if 200 <= status < 300:
            backend.answered += 1
            return "ok"
        backend.not_2xx += 1
        backend.statuses[status] = backend.statuses.get(status, 0) + 1
        return f"http-{status}"

    # ------------------------------------------------------------------ what happened

    def figures(self) -> dict[str, Any]:
        """Per worker: posts, 2XX answers, refusals, lost posts, other statuses; and overall."""
        outcomes: dict[str, int] = {}
        for _t, _u, _b, outcome in self.attempts:
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return {
            "balance": self.balance,
            "max_connections": self.max_connections,
            "per_chat_order": self.per_chat_order,
            "workers": {
                b.name: {
                    "posted": b.posted,
                    "answered_2xx": b.answered,
                    "refused": b.refused,
                    "lost": b.lost,
                    "not_2xx": b.not_2xx,
                    **({"statuses": dict(b.statuses)} if b.statuses else {}),
                }
                for b in self.backends.values()
            },
            "attempts": len(self.attempts),
            "outcomes": outcomes,
            "updates_confirmed": len(self.handled_by),
            "updates_redelivered": len(self.redelivered),
            "updates_passed_on_after_refusal": len(self.passed_on),
            "updates_given_up": len(self.given_up),
            "updates_answered_2xx_twice": sum(1 for v in self.handled_by.values() if len(v) > 1),
        }
