"""Telegram through python-telegram-bot: updates become `Incoming`, `Reply`s become messages."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    InputMediaPhoto,
    Message,
    Update,
)
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.app import Startup
from bot.channels import split_text
from bot.channels.http import AiohttpRequest
from bot.channels.pacing import Pacing, bulk, retry_seconds
from bot.lanes import Lanes
from bot.tasks import cancelled
from domain import i18n
from domain.roles import Role
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Delivery, Incoming, Reply
from handlers.review import REVIEWERS
from store import inbox
from store.access import LINK_DIGITS, chat_roles
from store.albums import latest_of_album
from store.db import unit_of_work
from store.images import PhotoRejected
from store.timings import STATS

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_DOWNLOAD = 20 * 1024 * 1024  # getFile refuses files over 20 MB ("file is too big")
WEBHOOK_MAX_BODY = 1024 * 1024  # an update is a few KB; anything this big is not Telegram's
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
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

# Each person's own menu (BotCommandScopeChat): the commands help_for lists for their role, in
# its order. A chat's menu outranks the default scope's, whatever the language (Bot API,
# "Determining list of commands"), so descriptions follow the person's locale.
_ADMIN = frozenset({Role.ADMIN})
_OVERVIEW = frozenset({Role.ADMIN, Role.DISTRICT})
MENU: tuple[tuple[str, str, frozenset[str] | None], ...] = (  # None: every role
    ("baocao", i18n.N_("Send this month's report"), None),
    ("huy", i18n.N_("Pause; your answers are kept"), None),
    ("moi", i18n.N_("Invite someone"), _ADMIN),
    ("nguoidung", i18n.N_("List people"), _ADMIN),
    ("thuhoi", i18n.N_("Withdraw someone's access"), _ADMIN),
    ("vanban", i18n.N_("Record a report received on paper"), _ADMIN),
    ("tinhhinh", i18n.N_("How a cluster is doing"), None),
    ("chuabaocao", i18n.N_("Who has not reported"), _OVERVIEW),
    ("tonghop", i18n.N_("The month's summary"), _OVERVIEW),
    ("duyet", i18n.N_("Review the reports received"), REVIEWERS),
    ("lienket", i18n.N_("Use the bot on both Telegram and Zalo"), None),
    ("ngonngu", "Tiếng Việt / English", None),  # the same in both languages
    ("trogiup", i18n.N_("Help"), None),
)
Menu = tuple[str, str]  # (role, locale) a chat's menu was set for
MENU_CHECKS_AT_ONCE = 4  # chats whose menu is being checked after an update, at most

Handler = Callable[[Incoming], Awaitable[list[Reply]]]


def menu_for(role: str, locale: str) -> list[BotCommand]:
    """The commands a person of `role` can use, described in `locale`."""
    _ = i18n.gettext_for(locale)
    return [
        BotCommand(command, _(description))
        for command, description, roles in MENU
        if roles is None or role in roles
    ]


def for_telegram(deps: Deps) -> Deps:
    """The handlers' dependencies with the photo limit Telegram can deliver: the smaller of
    MAX_PHOTO_MB and the Bot API's 20 MB download cap, so a refusal names the limit that
    applies."""
    limit = min(deps.config.max_photo_bytes, MAX_DOWNLOAD)
    return dataclasses.replace(deps, config=dataclasses.replace(deps.config, max_photo_bytes=limit))


def _locale(code: str | None) -> str | None:
    short = (code or "")[:2].lower()
    return short if short in i18n.SUPPORTED else None


def _downloader(
    application: Application,  # type: ignore[type-arg]
    file_id: str,
    size: int | None,
    max_bytes: int,
) -> Callable[[], Awaitable[bytes]]:
    async def fetch() -> bytes:
        # Refused by the size the update declares, before any download; the handlers answer
        # PhotoRejected as for a photo found too large after download.
        if size is not None and size > max_bytes:
            raise PhotoRejected("too_large")
        try:
            file = await application.bot.get_file(file_id)
        except BadRequest as exc:
            if "too big" in exc.message.lower():  # no file_size given, yet over 20 MB
                raise PhotoRejected("too_large") from exc
            raise
        return bytes(await file.download_as_bytearray())

    return fetch


def deep_link(bot_username: str, token: str) -> str:
    """The link that opens a chat with the bot and sends `/start <token>`."""
    return f"https://t.me/{bot_username or '<bot>'}?start={token}"


def without_mention(text: str, bot_username: str | None) -> str:
    """`/baocao@ccn_bot 5/2021` as `/baocao 5/2021`: Telegram's menu may name the bot."""
    word, sep, rest = text.partition(" ")
    command, at, name = word.partition("@")
    if not text.startswith("/") or not at or name.lower() != (bot_username or "").lower():
        return text
    return command + sep + rest


def to_incoming(
    update: Update,
    application: Application,  # type: ignore[type-arg]
    max_bytes: int = MAX_DOWNLOAD,
) -> Incoming | None:
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
                "photo",
                _downloader(application, biggest.file_id, biggest.file_size, max_bytes),
                caption=message.caption or "",
            )
        )
    elif message.document is not None:
        doc = message.document
        attachments.append(
            Attachment(
                "document",
                _downloader(application, doc.file_id, doc.file_size, max_bytes),
                file_name=doc.file_name or "",
                mime=doc.mime_type or "",
                caption=message.caption or "",
            )
        )
    location = (message.location.latitude, message.location.longitude) if message.location else None
    text = message.text or ("" if attachments else message.caption or "")
    text = without_mention(text, application.bot.username)
    return dataclasses.replace(
        base,
        text=text,
        attachments=tuple(attachments),
        location=location,
        media_group_id=message.media_group_id,
    )


async def _acknowledge(query: CallbackQuery) -> None:
    """Stop the button's spinner and take the tapped keyboard away: it has done its job."""

    async def keyboard() -> None:
        message = query.message
        if isinstance(message, Message):
            await unread(
                query.get_bot(),
                "editMessageReplyMarkup",
                {"chat_id": message.chat.id, "message_id": message.message_id},
            )

    for done in await asyncio.gather(query.answer(), keyboard(), return_exceptions=True):
        if isinstance(done, BaseException) and not isinstance(done, BadRequest):
            raise done


def kind_of(update: Update) -> str:
    """What an update is, for the timings (store.timings)."""
    query = update.callback_query
    if query is not None:
        data = query.data or ""
        return "tap:" + (data.split(":", 1)[0] if ":" in data else data)
    message = update.effective_message
    if message is None:
        return "other"
    if message.photo or message.document:
        return "photo"
    text = message.text or ""
    if text.startswith("/"):
        return text.split()[0]
    return "typed"


def _markup(reply: Reply) -> dict[str, Any] | None:
    """The reply's buttons as the Bot API's InlineKeyboardMarkup, written as JSON as it is: PTB's
    objects for it cost more to build and to turn back into a dict than the request itself."""
    if not reply.buttons:
        return None
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": b.payload} for b in row] for row in reply.buttons
        ]
    }


async def unread(bot: Bot, method: str, params: dict[str, object]) -> None:
    """A Bot API call whose answer (the Message sent or edited) the bot never reads: PTB would
    build a Message from it, about a sixth of the bot's CPU per reply under load (py-spy). The
    method is named in lower case (Bot API methods are case-insensitive) because PTB warns
    when do_api_request names a method it has."""
    await bot.do_api_request(method.lower(), {k: v for k, v in params.items() if v is not None})


async def send(application: Application, chat_id: int, replies: list[Reply]) -> None:  # type: ignore[type-arg]
    bot = application.bot
    for reply in replies:
        chunks = split_text(reply.text, MAX_TEXT) if reply.text else []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            markup = _markup(reply) if last else None
            await unread(
                bot, "sendMessage", {"chat_id": chat_id, "text": chunk, "reply_markup": markup}
            )
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
        self.problem: str | None = None  # why the last call to Telegram failed; None when fine

    async def health(self) -> tuple[bool, str]:
        """For /healthz: does Telegram answer the bot (its token included)?"""
        if self.problem is not None:
            return False, self.problem
        return True, f"@{self.application.bot.username} reachable"

    @contextlib.asynccontextmanager
    async def turn(self, channel: str, chat_id: str) -> AsyncIterator[None]:
        """Wait for the chat's pace and a bulk turn; the send in the block goes out without
        waiting again."""
        limiter = self.application.bot.rate_limiter
        if not isinstance(limiter, Pacing):
            yield
            return
        async with limiter.bulk_turn(chat_id):
            yield

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        try:
            with bulk():  # a notice, not a reply: paced like a broadcast
                await send(self.application, int(chat_id), [reply])
        except Forbidden:
            return Delivery.BLOCKED
        except TelegramError as exc:
            log.warning("reminder to %s failed: %s", chat_id, exc)
            return Delivery.FAILED
        return Delivery.SENT


class TelegramChannel:
    def __init__(self, deps: Deps, application: Application) -> None:  # type: ignore[type-arg]
        self.deps = for_telegram(deps)
        self.application = application
        # album answers waiting for quiet, by update id: the update is confirmed to Telegram
        # only once its answer went out or was left to a later photo (settle)
        self._albums: dict[int, asyncio.Task[None]] = {}
        self.lanes = Lanes()
        self._menus: dict[int, Menu] = {}  # the menu last set per chat; absent: the default
        self._menu_lock = asyncio.Lock()
        self._menu_sync: asyncio.Task[None] | None = None
        self._menu_lanes = Lanes(MENU_CHECKS_AT_ONCE)
        self._menu_checks: set[asyncio.Task[None]] = set()  # checks after updates, under way

    async def on_update(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        incoming = to_incoming(update, self.application, self.deps.config.max_photo_bytes)
        if incoming is None:
            return
        query = update.callback_query
        # the tap is acknowledged while it is handled, not before: the answer waits for neither
        acknowledged = asyncio.create_task(_acknowledge(query)) if query is not None else None
        began = time.perf_counter()
        try:
            replies = await conversation.handle(incoming, self.deps)
            handled = time.perf_counter()
            chat_id = int(incoming.chat_id)
            if incoming.media_group_id:
                self._answer_album_once(incoming, chat_id, replies)
            else:
                await self._send(chat_id, replies)
            sent = time.perf_counter()
            if self._may_change_menu(incoming):
                self._menu_later(chat_id)
            if STATS is not None:
                kind = kind_of(update)
                STATS.add(f"{kind}/handle", handled - began)
                STATS.add(f"{kind}/send", sent - handled)
        finally:
            if acknowledged is not None:
                waited = time.perf_counter()
                await acknowledged
                if STATS is not None:
                    STATS.add("ack/after_answer", time.perf_counter() - waited)

    def _menu_later(self, chat_id: int) -> None:
        """Check the chat's menu once its answer has gone, outside its lane: the check (a
        query, and a call when the menu changed) held the chat's next update and one of the
        few updates handled at once, 18-32 ms for each command on PostgreSQL in a rush. A
        chat's checks run in the order of its updates (their own lanes), so an older one never
        sets its menu after a newer one."""

        async def check() -> None:
            try:
                await self._menu_lanes.run(chat_id, functools.partial(self._update_menu, chat_id))
            except Exception:  # no update's handler to report it to
                log.exception("menu of chat %s not checked", chat_id)

        task = asyncio.create_task(check())
        self._menu_checks.add(task)
        task.add_done_callback(self._menu_checks.discard)

    def _may_change_menu(self, incoming: Incoming) -> bool:
        """Whether this update may have changed the chat's role or language: a command (an
        invitation, /ngonngu, a withdrawn person trying one), a language button, a typed link
        code, or a chat whose menu is not known. An answer to a question (a typed figure
        included) changes neither, and not looking saves a query per answer."""
        text = incoming.text.strip()
        return (
            int(incoming.chat_id) not in self._menus
            or text.startswith("/")
            or (len(text) == LINK_DIGITS and text.isdigit())
            or (incoming.payload or "").startswith("lang:")
        )

    def lane(self, update: Update) -> int | str:
        """The chat's updates one at a time; an update of no chat in a lane of its own."""
        chat = update.effective_chat
        return chat.id if chat is not None else f"update:{update.update_id}"

    async def on_edit(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited message is never read as an answer: by the time it is edited the
        conversation has moved on, and an edit of "40" to "2" would otherwise answer whatever is
        asked now. Ignoring it silently would leave the person believing the correction was
        taken, so one short line says edits are not read and to send the answer again (a figure
        already given is corrected from the summary's ✏️ buttons)."""
        chat = update.effective_chat
        if chat is None:
            return
        try:
            known = await self._menu_of(chat.id)
        except SQLAlchemyError:
            known = None
        user = update.effective_user
        locale = (
            known[1]
            if known is not None
            else _locale(user.language_code if user else None) or self.deps.config.default_locale
        )
        _ = i18n.gettext_for(locale)
        text = _("Edited messages are not read. Please send your answer again as a new message.")
        await self._send(chat.id, [Reply(text)])

    def _answer_album_once(self, incoming: Incoming, chat_id: int, replies: list[Reply]) -> None:
        """An album's photos arrive as separate updates, perhaps at different workers; each is
        handled (and its photo stored) at once, and the album is answered once, after its last
        photo: ALBUM_QUIET_SECONDS after handling this update, its replies go out only if it is
        still the album's latest handled, as the database says (store.albums; the photo flow
        notes it in the update's own transaction). Whatever worker handled the later one
        answers instead. An update the photo flow did not see (a stranger's, a duplicate) noted
        nothing and is answered on its own."""
        if not replies:
            return
        group, update_id = incoming.media_group_id, incoming.update_id
        assert group is not None

        async def later() -> None:
            await asyncio.sleep(ALBUM_QUIET_SECONDS)
            try:
                async with self.deps.sessions() as session:
                    latest = await latest_of_album(session, "telegram", incoming.chat_id, group)
            except SQLAlchemyError as exc:  # better twice than never
                log.warning("album %s of chat %s not checked: %s", group, chat_id, exc)
                latest = None
            if latest is None or latest == update_id:
                try:
                    await self._send(chat_id, replies)
                except TelegramError as exc:  # no update's handler to report it to
                    log.warning("album %s of chat %s not answered: %s", group, chat_id, exc)

        key = int(update_id) if update_id is not None and update_id.isdigit() else -1
        task = asyncio.create_task(later())
        self._albums[key] = task
        task.add_done_callback(lambda _: self._albums.pop(key, None))

    async def settle(self, update: Update) -> None:
        """Once the update is handled: wait until an album photo's answer went out or was left
        to a later photo, outside the chat's lane (the album's next photo is handled
        meanwhile). Long polling confirms the update only after it, so a crash in the quiet
        moment gets it delivered again and answered (handlers.outbox)."""
        task = self._albums.get(update.update_id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def _send(self, chat_id: int, replies: list[Reply]) -> None:
        try:
            await send(self.application, chat_id, replies)
        except Forbidden:
            log.warning("chat %s has blocked the bot", chat_id)

    async def flush(self) -> None:
        """Send replies still waiting for the end of an album, and finish the menu checks under
        way (at shut-down)."""
        if self._menu_sync is not None:
            await cancelled(self._menu_sync)
        if self._menu_checks:
            await asyncio.wait(list(self._menu_checks), timeout=STOP_GRACE)
        for task in list(self._albums.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- each chat's command menu -----------------------------------------------------------

    def start_menus(self) -> None:
        """Set every known chat's menu, in the background: the rate limiter lets ~29 calls a
        second through, so many people would hold up the start."""
        self._menu_sync = asyncio.create_task(self._sync_all_menus())

    async def _menu_of(self, chat_id: int) -> Menu | None:
        """The role and locale of the person behind the chat; None for a stranger or someone
        whose access was withdrawn."""
        async with self.deps.sessions() as session:
            roles = await chat_roles(session, "telegram", str(chat_id))
        return roles.get(str(chat_id))

    async def _sync_all_menus(self) -> None:
        try:
            async with self.deps.sessions() as session:
                chats = await chat_roles(session, "telegram")
        except SQLAlchemyError as exc:
            log.warning("chat menus not set: %s", exc)
            return
        for chat, menu in chats.items():
            if not chat.lstrip("-").isdigit():
                continue
            async with self._menu_lock:
                if int(chat) not in self._menus:  # else an update has just set a fresher one
                    await self._set_menu(int(chat), menu, force=True)

    async def _update_menu(self, chat_id: int) -> None:
        """After an update: who its transaction found behind the chat (handlers.context.
        Members), else one small query; and a call only if the chat's role or language changed
        (an invitation accepted, a language chosen, access withdrawn)."""
        known, menu = self.deps.members.found("telegram", str(chat_id))
        if not known:
            try:
                menu = await self._menu_of(chat_id)
            except SQLAlchemyError as exc:  # keep the menu as it is
                log.warning("menu of chat %s not checked: %s", chat_id, exc)
                return
        async with self._menu_lock:
            await self._set_menu(chat_id, menu)

    async def _set_menu(self, chat_id: int, menu: Menu | None, *, force: bool = False) -> None:
        if not force and self._menus.get(chat_id) == menu:
            return
        bot = self.application.bot
        scope = BotCommandScopeChat(chat_id)
        try:
            if menu is None:  # back to the default scope's menu
                await bot.delete_my_commands(scope=scope)
            else:
                await bot.set_my_commands(menu_for(*menu), scope=scope)
        except TelegramError as exc:  # e.g. a chat Telegram no longer knows
            log.warning("menu of chat %s not set: %s", chat_id, exc)
            return
        if menu is None:
            self._menus.pop(chat_id, None)
        else:
            self._menus[chat_id] = menu


def build(
    deps: Deps, token: str, base_url: str, file_url: str
) -> tuple[Application, TelegramChannel]:  # type: ignore[type-arg]
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(file_url)
        # bulk sends 30 in any 1.015 s, replies at each chat's pace (bot/channels/pacing.py);
        # measured by benchmarks/reminder_fanout.py and benchmarks/deadline_rush.py
        .rate_limiter(Pacing())
        .request(AiohttpRequest())  # bot/channels/http.py: a quarter of httpx's CPU per call
        .get_updates_request(AiohttpRequest(connections=1))
        .concurrent_updates(False)
        .build()
    )
    channel = TelegramChannel(deps, application)
    application.add_handler(CallbackQueryHandler(channel.on_update))
    application.add_handler(MessageHandler(filters.UpdateType.MESSAGE, channel.on_update))
    application.add_handler(MessageHandler(filters.UpdateType.EDITED_MESSAGE, channel.on_edit))
    return application, channel


async def register_commands(application: Application) -> None:  # type: ignore[type-arg]
    bot = application.bot
    for language, commands in COMMANDS.items():
        await bot.set_my_commands([BotCommand(c, d) for c, d in commands], language_code=language)
    await bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS["vi"]])


@contextlib.asynccontextmanager
async def webhook_server(
    application: Application,  # type: ignore[type-arg]
    lanes: Lanes,
    lane: Callable[[Update], Hashable],
    *,
    listen: str,
    port: int,
    path: str,
    secret: str,
) -> AsyncIterator[None]:
    """Updates posted by Telegram, into the application's queue. Our own server rather than
    PTB's: PTB's (tornado) reads a body of up to 100 MB before it looks at the secret. Here a
    wrong or missing secret is refused from the headers, and a body over WEBHOOK_MAX_BODY is
    never read whole."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return web.Response(status=403)
        if (request.content_length or 0) > WEBHOOK_MAX_BODY:
            return web.Response(status=413)
        try:
            body = await request.read()  # past client_max_size: HTTPRequestEntityTooLarge
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413)
        try:
            update = Update.de_json(json.loads(body), application.bot)
        except Exception:  # not an update: nothing to queue
            log.warning("webhook: a post that is not an update (%d bytes)", len(body))
            return web.Response(status=400)
        # answered 200 only once handled (its transaction committed): a crash before that and
        # Telegram posts it again; the store's dedupe drops what was already handled
        # (an album photo's 200 does not wait for the album's answer, as polling's confirmation
        # does: Telegram may hold the album's next photo until this post is answered)
        await lanes.run(lane(update), lambda: application.process_update(update))
        return web.Response()

    app = web.Application(client_max_size=WEBHOOK_MAX_BODY)
    app.router.add_post(f"/{path}", receive)
    # a body refused unread closes its connection at once; aiohttp would otherwise read and
    # drop up to 10 s more of it ("lingering"), and a shut-down would wait for that
    runner = web.AppRunner(app, access_log=None, lingering_time=0)
    await runner.setup()
    try:
        await web.TCPSite(runner, listen, port).start()
        yield
    finally:
        await runner.cleanup()


GET_UPDATES_LIMIT = 100  # getUpdates' default and most
POLL_SPACING = 0.05  # while updates are being handled, one getUpdates at most this often
STOP_GRACE = 5.0  # at shut-down, updates being handled get this long to finish
# More updates than this in flight: those not kept yet are kept in the inbox and confirmed at
# once, rather than read again by every getUpdates and holding back what comes after them.
# Under it (a few people at a time) an update is confirmed only once handled and answered.
KEEP_AT = 24
MAX_IN_FLIGHT = 1000  # past this many updates being handled, nothing new is taken
CLEAR_EVERY = 1.0  # kept updates handled since: their inbox rows deleted this often, together
CLEAR_BATCH = 100
INBOX_CHANNEL = "telegram"


class _Kept:
    """The inbox rows of updates confirmed to Telegram before they were handled."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None) -> None:
        self.sessions = sessions
        self.rows: dict[int, int] = {}  # update id -> inbox row, while it is being handled
        self.cleared: list[int] = []  # rows of updates handled since: deleted in a batch
        self.cleared_at = 0.0

    async def left(self) -> list[tuple[int, dict[str, Any]]]:
        """Updates kept by a process that stopped before handling them, oldest first."""
        if self.sessions is None:
            return []
        async with self.sessions() as session:
            rows = await inbox.left(session, INBOX_CHANNEL, datetime.now(UTC), limit=100_000)
        return sorted(rows, key=lambda row: int(row[1]["update_id"]))

    async def keep(self, bodies: dict[int, dict[str, Any]]) -> bool:
        """Keep these updates (update id -> JSON); False if the store refused."""
        if self.sessions is None:
            return False
        try:
            async with unit_of_work(self.sessions) as session:
                ids = await inbox.keep_many(session, INBOX_CHANNEL, bodies, datetime.now(UTC))
        except SQLAlchemyError as exc:  # not confirmed, then: Telegram keeps them
            log.warning("%d updates not kept (%s); confirmed once handled", len(bodies), exc)
            return False
        self.rows.update(ids)
        if STATS is not None:
            STATS.count("poll/kept", len(bodies))
        return True

    def finished(self, update_id: int) -> None:
        row = self.rows.pop(update_id, None)
        if row is not None:
            self.cleared.append(row)

    async def clear(self, *, now: float, force: bool = False) -> None:
        """Delete the rows of kept updates handled since (a crash before that: they are
        handled again, and answered again from their kept answer)."""
        if not self.cleared or self.sessions is None:
            return
        if not force and len(self.cleared) < CLEAR_BATCH and now - self.cleared_at < CLEAR_EVERY:
            return
        rows, self.cleared = self.cleared, []
        self.cleared_at = now
        try:
            async with unit_of_work(self.sessions) as session:
                await inbox.done_many(session, rows)
        except SQLAlchemyError as exc:
            log.warning("inbox rows of %d handled updates not cleared: %s", len(rows), exc)
            self.cleared.extend(rows)


async def poll(
    application: Application,  # type: ignore[type-arg]
    notifier: TelegramNotifier,
    lanes: Lanes,
    lane: Callable[[Update], Hashable],
    settle: Callable[[Update], Awaitable[None]] | None = None,
    sessions: async_sessionmaker[AsyncSession] | None = None,
) -> None:
    """Long polling that confirms an update to Telegram only once it is handled (and, for an
    album's photo, answered or left to a later photo: `settle`) or kept in the inbox.

    Telegram forgets an update when a later getUpdates asks for a higher offset. PTB's updater
    asks again as soon as it has fetched a batch, so updates fetched but not yet handled were
    lost when the process died (a report's "Gửi" with no receipt). Here the offset asked for is
    that of the oldest update still being handled and not kept — its transaction not yet
    committed — so a crash gets it redelivered, and the store's dedupe drops what was already
    handled.

    Updates are handled at once, each chat's in order (bot.lanes), so nobody waits for someone
    else's download. While a few are being handled, getUpdates is asked again with their offset:
    Telegram sends them again (skipped by their id) with what has come since. When more than
    KEEP_AT are in flight (a rush), those not yet kept are written to the inbox (`sessions`,
    one statement) and confirmed at once: each is then read once, and a slow one no longer
    holds back the 100 updates a getUpdates returns. Their rows are deleted in batches once
    handled; those left by a process that died are handled first at the next start, in their
    order."""
    bot = application.bot
    handling: dict[int, asyncio.Task[None]] = {}
    unkept: dict[int, dict[str, Any]] = {}  # updates being handled, not kept: their JSON
    kept = _Kept(sessions)
    newest = -1  # the newest update taken
    loop = asyncio.get_running_loop()

    def finished(update_id: int, task: asyncio.Task[None]) -> None:
        handling.pop(update_id, None)
        unkept.pop(update_id, None)
        if task.cancelled():  # cut short at shut-down: its row stays, for the next start
            kept.rows.pop(update_id, None)
            return
        kept.finished(update_id)
        if task.exception() is not None:
            log.error("update %s failed", update_id, exc_info=task.exception())

    def take(data: dict[str, Any]) -> int:
        update = Update.de_json(data, bot)
        task = asyncio.create_task(_handled(application, lanes, lane, settle, update))
        handling[update.update_id] = task
        task.add_done_callback(functools.partial(finished, update.update_id))
        return update.update_id

    try:
        left = await kept.left()
    except SQLAlchemyError as exc:
        log.warning("inbox not read: %s", exc)
        left = []
    for row, data in left:  # before anything Telegram sends: a chat's updates in order
        update_id = take(data)
        kept.rows[update_id] = row
        newest = max(newest, update_id)
    if left:
        log.info("%d updates kept by a stopped process: handled now", len(left))

    backoff = 1.0
    try:
        while True:
            await kept.clear(now=loop.time())
            if unkept and len(handling) > KEEP_AT:
                batch = dict(unkept)
                if await kept.keep(batch):
                    for update_id in batch:
                        unkept.pop(update_id, None)
                        if update_id not in handling:  # finished while it was being kept
                            kept.finished(update_id)
            while len(handling) >= MAX_IN_FLIGHT:
                await asyncio.wait(list(handling.values()), return_when=asyncio.FIRST_COMPLETED)
            offset = min(unkept) if unkept else newest + 1
            wait = 0 if unkept else 10
            try:
                # lower case: the same method (Bot API methods are case-insensitive) without
                # PTB parsing every update again, or warning that get_updates exists
                raw = await bot.do_api_request(
                    "getupdates",
                    {"timeout": wait, "allowed_updates": Update.ALL_TYPES}
                    | ({"offset": offset} if offset > 0 else {}),
                    read_timeout=wait + 10,
                )
            except RetryAfter as exc:
                await asyncio.sleep(retry_seconds(exc))
                continue
            except (NetworkError, Forbidden) as exc:  # TimedOut included; Forbidden: revoked
                notifier.problem = f"getUpdates failed: {exc}"[:200]
                log.warning("getUpdates failed (%s); trying again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            notifier.problem = None
            backoff = 1.0
            fresh = [data for data in raw if int(data["update_id"]) > newest]
            if STATS is not None:
                STATS.count("poll/requests")
                STATS.count("poll/read", len(raw))
                STATS.count("poll/fresh", len(fresh))
                STATS.add("poll/handling", float(len(handling)))
            for data in fresh:
                newest = take(data)
                unkept[newest] = data
            if unkept and not fresh and len(raw) >= GET_UPDATES_LIMIT:
                # a page of updates still being handled, not kept: nothing new can show
                # before the oldest is done
                blocked = time.perf_counter()
                await asyncio.wait([handling[min(unkept)]])
                if STATS is not None:
                    STATS.add("poll/blocked_by_oldest", time.perf_counter() - blocked)
            elif unkept and not fresh:  # Telegram has nothing new: wait for one to finish
                await asyncio.wait(
                    [handling[u] for u in unkept], timeout=0.25, return_when=asyncio.FIRST_COMPLETED
                )
            if unkept:  # each poll reads the unfinished ones again: fewer polls when many
                await asyncio.sleep(max(POLL_SPACING, 0.002 * len(unkept)))
    finally:
        if handling:  # let them finish (their answers go out); the rest is redelivered
            await asyncio.wait(list(handling.values()), timeout=STOP_GRACE)
            for task in handling.values():
                task.cancel()
        with contextlib.suppress(Exception):
            await kept.clear(now=loop.time(), force=True)


def webhook_identity(token: str, secret: str | None) -> tuple[str, str]:
    """The webhook's path and secret token, the same in every worker of one bot, so that
    workers behind one load balancer take each other's posts: WEBHOOK_SECRET if set, else one
    derived from the bot token (which every worker has and no one else should)."""
    if not secret:
        key = hmac.new(token.encode(), b"ccn-bot telegram webhook", hashlib.sha256).digest()
        secret = base64.urlsafe_b64encode(key).decode().rstrip("=")  # Telegram: A-Z a-z 0-9 _ -
    path = "telegram/" + hashlib.sha256(secret.encode()).hexdigest()[:16]
    return path, secret


async def _handled(
    application: Application,  # type: ignore[type-arg]
    lanes: Lanes,
    lane: Callable[[Update], Hashable],
    settle: Callable[[Update], Awaitable[None]] | None,
    update: Update,
) -> None:
    if STATS is None:
        await lanes.run(lane(update), functools.partial(application.process_update, update))
    else:
        stats = STATS
        queued = time.perf_counter()

        async def work() -> None:
            began = time.perf_counter()
            stats.add(f"{kind_of(update)}/lane_wait", began - queued)
            await application.process_update(update)
            stats.add(f"{kind_of(update)}/in_lane", time.perf_counter() - began)

        await lanes.run(lane(update), work)
        stats.add(f"{kind_of(update)}/total", time.perf_counter() - queued)
    if settle is not None:
        await settle(update)


def unreachable(error: BaseException) -> bool:
    """Worth trying again at start: Telegram (or the network to it) did not answer. A refusal
    (BadRequest, Forbidden, InvalidToken) will not change by waiting."""
    return isinstance(error, NetworkError | RetryAfter) and not isinstance(error, BadRequest)


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
    startup: Startup | None = None,
) -> AsyncIterator[TelegramNotifier]:
    """The bot on Telegram for as long as the block runs: long polling, or a webhook when
    `webhook_url`; yields the notifier that reminders go through. The start-up calls (getMe,
    setMyCommands, setWebhook or the first poll) wait for Telegram as `startup` says."""
    application, channel = build(deps, token, base_url, file_url)
    start = startup or Startup()

    async def call(attempt: Callable[[], Awaitable[object]]) -> None:
        await start.call("Telegram", attempt, retry_if=unreachable, fatal=(TelegramError,))

    await call(application.initialize)  # getMe
    notifier = TelegramNotifier(application)
    async with application, contextlib.AsyncExitStack() as stack:
        username = application.bot.username or ""
        deps.config = dataclasses.replace(
            deps.config, invite_link=functools.partial(deep_link, username)
        )
        channel.deps = for_telegram(deps)
        await call(lambda: register_commands(application))
        await application.start()
        stack.push_async_callback(application.stop)
        stack.push_async_callback(channel.flush)
        if webhook_url:
            path, secret = webhook_identity(token, webhook_secret)
            await stack.enter_async_context(
                webhook_server(
                    application,
                    channel.lanes,
                    channel.lane,
                    listen=listen,
                    port=port,
                    path=path,
                    secret=secret,
                )
            )
            await call(
                lambda: application.bot.set_webhook(
                    f"{webhook_url.rstrip('/')}/{path}", secret_token=secret
                )
            )
            log.info("webhook listening on %s:%s", listen, port)
        else:
            await call(lambda: application.bot.delete_webhook())  # getUpdates needs none
            poller = asyncio.create_task(
                poll(
                    application,
                    notifier,
                    channel.lanes,
                    channel.lane,
                    channel.settle,
                    channel.deps.sessions,
                )
            )
            stack.push_async_callback(cancelled, poller)
            log.info("polling %s", base_url)
        channel.start_menus()
        yield notifier
