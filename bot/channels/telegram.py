"""Telegram through python-telegram-bot: updates become `Incoming`, `Reply`s become messages."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
    Update,
)
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.channels import split_text
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Incoming, Reply
from reminders.sender import Delivery
from store import i18n

log = logging.getLogger(__name__)

MAX_TEXT = 4096
ALBUM_QUIET_SECONDS = 1.2  # photos of one album arrive as separate updates: answer once
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "vi": [
        ("baocao", "Gửi báo cáo tháng"),
        ("huy", "Tạm dừng, giữ bản nháp"),
        ("trogiup", "Hướng dẫn"),
        ("ngonngu", "Tiếng Việt / English"),
    ],
    "en": [
        ("report", "Send the monthly report"),
        ("cancel", "Pause, keep the draft"),
        ("help", "Help"),
        ("language", "Tiếng Việt / English"),
    ],
}

Handler = Callable[[Incoming], Awaitable[list[Reply]]]


def _locale(code: str | None) -> str | None:
    short = (code or "")[:2].lower()
    return short if short in i18n.SUPPORTED else None


def _downloader(application: Application, file_id: str) -> Callable[[], Awaitable[bytes]]:  # type: ignore[type-arg]
    async def fetch() -> bytes:
        file = await application.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    return fetch


def to_incoming(update: Update, application: Application) -> Incoming | None:  # type: ignore[type-arg]
    chat = update.effective_chat
    user = update.effective_user
    if chat is None:
        return None
    base = Incoming(
        channel="telegram",
        chat_id=str(chat.id),
        update_id=str(update.update_id),
        locale=_locale(user.language_code if user else None),
        display_name=user.full_name if user else "",
    )
    query = update.callback_query
    if query is not None:
        return dataclasses.replace(base, payload=query.data or "")
    message = update.effective_message
    if message is None:
        return None
    attachments: list[Attachment] = []
    if message.photo:
        biggest = message.photo[-1]
        attachments.append(
            Attachment(
                "photo", _downloader(application, biggest.file_id), caption=message.caption or ""
            )
        )
    elif message.document is not None:
        doc = message.document
        attachments.append(
            Attachment(
                "document",
                _downloader(application, doc.file_id),
                file_name=doc.file_name or "",
                mime=doc.mime_type or "",
                caption=message.caption or "",
            )
        )
    location = (message.location.latitude, message.location.longitude) if message.location else None
    text = message.text or ("" if attachments else message.caption or "")
    return dataclasses.replace(
        base,
        text=text,
        attachments=tuple(attachments),
        location=location,
        media_group_id=message.media_group_id,
    )


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(b.label, callback_data=b.payload) for b in row]
            for row in reply.buttons
        ]
    )


async def send(application: Application, chat_id: int, replies: list[Reply]) -> None:  # type: ignore[type-arg]
    bot = application.bot
    for reply in replies:
        chunks = split_text(reply.text, MAX_TEXT) if reply.text else []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            await bot.send_message(chat_id, chunk, reply_markup=_markup(reply) if last else None)
        if len(reply.photos) == 1:
            photo = reply.photos[0]
            await bot.send_photo(chat_id, photo.path.read_bytes(), caption=photo.caption or None)
        elif reply.photos:
            await bot.send_media_group(
                chat_id,
                [
                    InputMediaPhoto(p.path.read_bytes(), caption=p.caption or None)
                    for p in reply.photos
                ],
            )
        if reply.file is not None:
            await bot.send_document(chat_id, reply.file.read_bytes(), filename=reply.file.name)


class TelegramNotifier:
    """Reminders through the same bot: rate-limited and retried on 429 by AIORateLimiter; a 403
    means the person blocked the bot."""

    channels = frozenset({"telegram"})

    def __init__(self, application: Application) -> None:  # type: ignore[type-arg]
        self.application = application

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        try:
            await send(self.application, int(chat_id), [reply])
        except Forbidden:
            return Delivery.BLOCKED
        except TelegramError as exc:
            log.warning("reminder to %s failed: %s", chat_id, exc)
            return Delivery.FAILED
        return Delivery.SENT


class TelegramChannel:
    def __init__(self, deps: Deps, application: Application) -> None:  # type: ignore[type-arg]
        self.deps = deps
        self.application = application
        self._albums: dict[str, asyncio.Task[None]] = {}

    async def on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        incoming = to_incoming(update, self.application)
        if incoming is None:
            return
        query = update.callback_query
        if query is not None:
            with contextlib.suppress(BadRequest):
                await query.answer()
            if isinstance(query.message, Message):  # the tapped keyboard has done its job
                with contextlib.suppress(BadRequest):
                    await query.message.edit_reply_markup(reply_markup=None)
        replies = await conversation.handle(incoming, self.deps)
        chat_id = int(incoming.chat_id)
        if incoming.media_group_id:
            self._answer_album_once(incoming.media_group_id, chat_id, replies)
            return
        await self._send(chat_id, replies)

    def _answer_album_once(self, group: str, chat_id: int, replies: list[Reply]) -> None:
        pending = self._albums.pop(group, None)
        if pending is not None:
            pending.cancel()

        async def later() -> None:
            await asyncio.sleep(ALBUM_QUIET_SECONDS)
            self._albums.pop(group, None)
            await self._send(chat_id, replies)

        self._albums[group] = asyncio.create_task(later())

    async def _send(self, chat_id: int, replies: list[Reply]) -> None:
        try:
            await send(self.application, chat_id, replies)
        except Forbidden:
            log.warning("chat %s has blocked the bot", chat_id)

    async def flush(self) -> None:
        """Send replies still waiting for the end of an album (at shut-down)."""
        for task in list(self._albums.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build(
    deps: Deps, token: str, base_url: str, file_url: str
) -> tuple[Application, TelegramChannel]:  # type: ignore[type-arg]
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(file_url)
        # One message every 1/29 s, never a burst: aiolimiter's bucket lets overall_max_rate
        # through at once, and a burst on top of 30/s breaks Telegram's 30-in-any-second limit
        # (429, then every send waits 1.1 s). Measured by benchmarks/reminder_fanout.py.
        .rate_limiter(AIORateLimiter(overall_max_rate=1, overall_time_period=1 / 29, max_retries=3))
        .concurrent_updates(False)
        .build()
    )
    channel = TelegramChannel(deps, application)
    application.add_handler(CallbackQueryHandler(channel.on_update))
    application.add_handler(MessageHandler(filters.ALL, channel.on_update))
    return application, channel


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    bot = application.bot
    for language, commands in COMMANDS.items():
        await bot.set_my_commands([BotCommand(c, d) for c, d in commands], language_code=language)
    await bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS["vi"]])


@contextlib.asynccontextmanager
async def running(
    deps: Deps,
    *,
    token: str,
    base_url: str,
    file_url: str,
    webhook_url: str = "",
    webhook_secret: str | None = None,
    listen: str = "127.0.0.1",
    port: int = 8443,
) -> AsyncIterator[TelegramNotifier]:
    """The bot on Telegram for as long as the block runs: long polling, or a webhook when
    `webhook_url`; yields the notifier that reminders go through."""
    application, channel = build(deps, token, base_url, file_url)
    async with application:
        deps.config = dataclasses.replace(deps.config, bot_username=application.bot.username or "")
        await register_commands(application)
        await application.start()
        assert application.updater is not None
        if webhook_url:
            secret = webhook_secret or secrets.token_urlsafe(32)
            path = f"telegram/{secrets.token_hex(8)}"
            await application.updater.start_webhook(
                listen=listen,
                port=port,
                url_path=path,
                webhook_url=f"{webhook_url.rstrip('/')}/{path}",
                secret_token=secret,
            )
            log.info("webhook listening on %s:%s", listen, port)
        else:
            await application.updater.start_polling(poll_interval=0.0, timeout=10)
            log.info("polling %s", base_url)
        try:
            yield TelegramNotifier(application)
        finally:
            await application.updater.stop()
            await channel.flush()
            await application.stop()
