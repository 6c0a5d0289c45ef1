"""Start-up and shut-down: settings → engine → migrations → registry."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.settings import Settings
from bot.tasks import cancelled
from domain import i18n
from handlers.context import Config, Deps
from handlers.port import Delivery, Notifier, Reply
from reports import offload
from reports.files import exports_root
from store.contacts import admin_chats
from store.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from store.images import Inspector
from store.leader import Leadership
from store.seed import SeedCounts, load_registry, registry_loaded

if TYPE_CHECKING:  # imported where used: the terminal chat needs neither
    from tenacity import RetryCallState

    from bot.web import FileLinks

log = logging.getLogger(__name__)
T = TypeVar("T")


class StartupFailed(Exception):
    """A service the bot needs at start stayed unreachable for STARTUP_TIMEOUT seconds, or
    refused the bot outright (e.g. a wrong token)."""

    def __init__(self, service: str, problem: str, seconds: float | None = None) -> None:
        super().__init__(f"{service}: {problem}")
        self.service = service
        self.problem = problem
        self.seconds = seconds


class StartupStopped(Exception):
    """SIGTERM or SIGINT arrived while start-up was waiting to try again."""


def _describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}"[:300] if error is not None else "?"


@dataclass
class Startup:
    """How start-up waits for a service that does not answer: it tries again with exponential
    backoff (1 s, 2 s, 4 s … at most 30 s), logging one line per attempt, until `timeout`
    seconds have passed since its first call; then StartupFailed. `stop` ends the wait."""

    timeout: float = 300.0
    stop: asyncio.Event | None = None
    _deadline: float | None = field(default=None, init=False, repr=False)

    async def call(
        self,
        service: str,
        attempt: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        fatal: tuple[type[BaseException], ...] = (),
    ) -> T:
        """`attempt()` until it succeeds; errors for which `retry_if` is true are retried, those
        in `fatal` end start-up at once, anything else propagates."""
        from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

        if self._deadline is None:
            self._deadline = time.monotonic() + self.timeout
        deadline = self._deadline
        backoff = wait_exponential(multiplier=1, min=1, max=30)

        def wait(state: RetryCallState) -> float:
            return max(0.0, min(backoff(state), deadline - time.monotonic()))

        def give_up(_state: RetryCallState) -> bool:
            return time.monotonic() >= deadline

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            pause = state.next_action.sleep if state.next_action is not None else 0.0
            log.warning(
                "%s unreachable (attempt %d: %s); trying again in %.0f s",
                service,
                state.attempt_number,
                _describe(error),
                pause,
                extra={"service": service, "attempt": state.attempt_number},
            )

        async def sleep(seconds: float) -> None:
            if self.stop is None:
                await asyncio.sleep(seconds)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), seconds)
            if self.stop.is_set():
                raise StartupStopped(service)

        retrying = AsyncRetrying(
            stop=give_up,
            wait=wait,
            retry=retry_if_exception(retry_if),
            before_sleep=before_sleep,
            sleep=sleep,
            reraise=True,
        )

        async def once() -> T:  # a coroutine function: tenacity awaits only those
            return await attempt()

        try:
            result: T = await retrying(once)
        except Exception as exc:
            if retry_if(exc):
                raise StartupFailed(service, _describe(exc), self.timeout) from exc
            if isinstance(exc, fatal):
                raise StartupFailed(service, _describe(exc)) from exc
            raise
        attempts = retrying.statistics.get("attempt_number", 1)
        if attempts > 1:
            log.info("%s reachable after %d attempts", service, attempts)
        return result


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    inspector: Inspector = field(default_factory=Inspector)  # in a thread unless open_app's

    def deps(self) -> Deps:
        s = self.settings
        invite_link = Config.invite_link
        if s.telegram_bot_username:  # the Telegram adapter renders it (and sets it once running)
            from bot.channels.telegram import deep_link

            invite_link = functools.partial(deep_link, s.telegram_bot_username)
        config = Config(
            calendar=s.calendar(),
            data_dir=s.data_dir,
            default_locale=s.default_locale,
            invite_link=invite_link,
            max_photos=s.max_photos,
            max_photo_bytes=s.max_photo_mb * 1024 * 1024,
            inspector=self.inspector,
            invite_days=s.invite_days,
            photo_max_age_days=s.photo_max_age_days,
            photo_max_distance_m=round(s.photo_max_distance_km * 1000),
        )
        if s.clock_start is None:
            return Deps(self.sessions, config)
        offset = s.clock_start - datetime.now(UTC)
        return Deps(self.sessions, config, lambda: datetime.now(UTC) + offset)


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    inspector = Inspector(settings.photo_processes)
    try:
        yield App(settings, engine, make_sessionmaker(engine), inspector)
    finally:
        inspector.close()
        await engine.dispose()


async def prepare(app: App) -> SeedCounts | None:
    """Migrate to the newest schema; load the plan's registry into an empty database."""
    await upgrade(app.engine)
    async with unit_of_work(app.sessions) as session:
        if await registry_loaded(session):
            return None
        return await load_registry(session)


def file_links(settings: Settings, deps: Deps) -> FileLinks | None:
    """Signed download links, when the bot has a public address (PUBLIC_URL)."""
    if not settings.public_url or settings.link_secret is None:
        return None
    from bot.web import FileLinks, secret_from

    return FileLinks(
        secret_from(settings.link_secret.get_secret_value()),
        settings.public_url,
        exports_root(deps.config.data_dir),
        deps.clock,
    )


def alert_admins(
    deps: Deps, notifiers: list[Notifier], channel: str
) -> Callable[[str], Awaitable[None]]:
    """Tell every admin, on every messenger they have, that a channel lost its token."""

    async def alert(problem: str) -> None:
        async with deps.sessions() as session:
            chats = await admin_chats(session)
        send = Notifiers(notifiers)
        for to_channel, chat_id, locale in chats:
            if to_channel not in send.channels:
                continue
            _ = i18n.gettext_for(locale)
            text = _(
                "The bot cannot renew its {channel} access token, so it cannot send messages "
                "there ({problem}). Please authorise the Official Account again and set its "
                "new refresh token."
            ).format(channel=channel.capitalize(), problem=problem[:200])
            try:
                await send.send(to_channel, chat_id, Reply(text))
            except Exception:
                log.exception("could not alert admin chat %s:%s", to_channel, chat_id)

    return alert


class Notifiers:
    """Several channels behind one notifier: each message goes through its own channel's."""

    def __init__(self, notifiers: list[Notifier]) -> None:
        self.by_channel = {c: n for n in notifiers for c in n.channels}
        self.channels = frozenset(self.by_channel)
        self.typed_channels: frozenset[str] = frozenset().union(
            *(getattr(n, "typed_channels", frozenset()) for n in notifiers)
        )

    def turn(self, channel: str, chat_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self.by_channel[channel].turn(channel, chat_id)

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        return await self.by_channel[channel].send(channel, chat_id, reply)


async def serve(app: App, stop: asyncio.Event | None = None) -> None:
    """Run every configured channel (Telegram, Zalo) and the reminder job until SIGINT or
    SIGTERM (or `stop`)."""
    from bot import web
    from bot.channels import telegram, zalo
    from reminders import scheduler

    settings = app.settings
    deps = app.deps()
    gc.freeze()  # what start-up loaded lives as long as the bot: keep it out of every collection
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    notifiers: list[Notifier] = []
    checks: dict[str, web.Check] = {"database": web.database_check(deps.sessions)}
    async with contextlib.AsyncExitStack() as stack:
        # last out: once no update is being handled, the files' child process is reaped
        stack.push_async_callback(offload.aclose)
        # the photos' decoding process starts now, not at the first photo (open_app ends it)
        warming = asyncio.create_task(app.inspector.warm())
        stack.push_async_callback(cancelled, warming)
        if settings.telegram_bot_token is not None:
            on_telegram = await stack.enter_async_context(
                telegram.running(
                    deps,
                    token=settings.telegram_bot_token.get_secret_value(),
                    base_url=settings.telegram_base_url(),
                    file_url=settings.telegram_file_url(),
                    webhook_url=settings.webhook_url,
                    webhook_secret=(
                        settings.webhook_secret.get_secret_value()
                        if settings.webhook_secret
                        else None
                    ),
                    listen=settings.webhook_listen,
                    port=settings.webhook_port,
                    startup=Startup(settings.startup_timeout, stop),
                )
            )
            notifiers.append(on_telegram)
            checks["telegram"] = on_telegram.health
        links = file_links(settings, deps)
        if settings.zalo_enabled:
            channel = await stack.enter_async_context(
                zalo.serving(
                    deps,
                    zalo.config_from(settings),
                    settings.zalo_webhook_listen,
                    settings.zalo_webhook_port,
                    links=links,
                    checks=checks,
                )
            )
            notifiers.append(zalo.ZaloNotifier(channel.api))
            channel.api.on_token_failure = alert_admins(deps, notifiers, "zalo")
        elif settings.web_port is not None:
            await stack.enter_async_context(
                web.serving(settings.web_listen, settings.web_port, links, deps, checks)
            )
        leadership = Leadership(app.engine)
        stack.push_async_callback(leadership.release)
        jobs = scheduler.start(
            deps.sessions,
            deps.calendar,
            settings.policy(),
            Notifiers(notifiers),
            every_seconds=settings.reminder_tick_seconds,
            clock=deps.clock,
            leadership=leadership,
        )
        stack.callback(jobs.shutdown, wait=False)
        gc.freeze()  # and what the channels' start loaded (about 28,000 objects more)
        await stop.wait()
