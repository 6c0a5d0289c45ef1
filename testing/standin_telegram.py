"""A stand-in for the Telegram Bot API, for end-to-end tests of the bot.

An aiohttp server on 127.0.0.1 that answers the part of the Bot API a python-telegram-bot 22
``Application`` uses with long polling, so the bot runs unchanged against it::

    api = StandinBotAPI()
    async with running(api):
        app = (
            ApplicationBuilder()
            .token(api.token)
            .base_url(f"{api.root}/bot")
            .base_file_url(f"{api.root}/file/bot")
            .build()
        )
        ...
        api.send_text(42, "/start")
        reply = await api.wait_for(42, lambda m: "Xin chào" in m.get("text", ""))

The test plays the person (``send_text``, ``send_photo``, ``press_button``, ...), which queues
updates exactly as Telegram would deliver them through ``getUpdates``, and reads what the bot did
(``calls``, ``sent``, ``wait_for``, ``commands``). Benchmarks time it: ``queued_at``,
``delivered_at`` and ``confirmed_at`` (``time.monotonic()`` when each update was queued, first
handed out, and confirmed by a higher getUpdates offset), and ``on_sent``, called with the chat
and the message as each message the bot sends is recorded.

Behaviour copied from Telegram because bots break on it in production:

* The bot sends plain text: a ``parse_mode`` is refused (400), so markup cannot creep in
  untested (escaping a cluster's name for HTML or MarkdownV2 is where bots break).
* ``editMessageText`` / ``editMessageCaption`` without ``reply_markup`` remove the inline
  keyboard; an edit that changes nothing answers 400 ``message is not modified``.
* Texts over 4096 and captions over 1024 characters, callback data over 64 bytes, photos that are
  not images and unknown file ids are refused with Telegram's error descriptions.
* Private-chat message ids are shared between the person and the bot, as in Telegram.
* A second concurrent ``getUpdates`` terminates the first with 409, and ``getUpdates`` while a
  webhook is set answers 409. With a webhook set, ``take_for_webhook`` and ``confirm_webhook``
  let a relay post the queued updates to the bot (testing/webhook_relay.py).
* ``setMyCommands`` refuses what the Bot API refuses: a command not matching
  ``^[a-z0-9_]{1,32}$``, a description over 256 characters, more than 100 commands, an unknown
  scope type, a chat scope for a chat the bot has never met, a malformed language code.
* The person can edit a text they sent (``edit_text``): an ``edited_message`` update.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from PIL import Image

from domain.text import fold

JSONDict = dict[str, Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_DOWNLOAD = 20 * 1024 * 1024
LONG_POLL_CAP = 1.0  # seconds; Telegram allows 50, but tests must shut down quickly
Found = TypeVar("Found")  # what a wait looks for among the messages sent

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_WRONG_FILE = "Bad Request: wrong file identifier/HTTP URL specified"
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

# Parameters whose values are plain strings, never JSON: a text "123" or "true" stays a string.
_STRING_PARAMS = frozenset(
    {
        "action",
        "address",
        "animation",
        "audio",
        "business_connection_id",
        "callback_query_id",
        "caption",
        "currency",
        "custom_title",
        "description",
        "document",
        "emoji",
        "file_id",
        "file_name",
        "first_name",
        "game_short_name",
        "inline_message_id",
        "inline_query_id",
        "ip_address",
        "language_code",
        "last_name",
        "message_effect_id",
        "name",
        "next_offset",
        "parse_mode",
        "payload",
        "phone_number",
        "photo",
        "provider_token",
        "question",
        "result_id",
        "secret_token",
        "short_description",
        "start_parameter",
        "text",
        "thumbnail",
        "title",
        "url",
        "vcard",
        "video",
        "video_note",
        "voice",
        "web_app_query_id",
    }
)
_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?\d+\.\d*(?:[eE][-+]?\d+)?|-?\d+[eE][-+]?\d+")
_TOKEN_RE = re.compile(r"\d+:[\w-]+")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE_RE = re.compile(r"[a-z]{2}")
_SCOPE_TYPES = frozenset(
    {
        "default",
        "all_private_chats",
        "all_group_chats",
        "all_chat_administrators",
        "chat",
        "chat_administrators",
        "chat_member",
    }
)
MAX_COMMANDS = 100
MAX_COMMAND_DESCRIPTION = 256


# --------------------------------------------------------------------------------------------
# Errors and small helpers


class ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": code, "description": ...}``."""

    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as it appears in ``calls``."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str


@dataclass
class _Queued:
    update_id: int
    update: JSONDict
    delivered: bool = False
    repeat: bool = False


class _Signal:
    """Wakes every waiter when something changed."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def fire(self) -> None:
        event, self.event = self.event, asyncio.Event()
        event.set()


def _u16(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def _public(message: JSONDict) -> JSONDict:
    """The message as Telegram returns it: without the stand-in's private ``_`` keys."""
    return {key: value for key, value in message.items() if not key.startswith("_")}


def _decode_value(key: str, value: str) -> Any:
    """Decode a form value the way the Bot API reads it: numbers, booleans and JSON objects."""
    if key in _STRING_PARAMS:
        return value
    stripped = value.strip()
    if stripped in ("true", "false"):
        return stripped == "true"
    if _INT_RE.fullmatch(stripped):
        return int(stripped)
    if _FLOAT_RE.fullmatch(stripped):
        return float(stripped)
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height if Pillow can decode the image, else None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.width, image.height
    except Exception:
        return None


def _thumbnail(data: bytes, side: int = 90) -> tuple[bytes, int, int] | None:
    """A JPEG thumbnail at most ``side`` pixels wide and high, like Telegram's "s" size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            small = image.convert("RGB")
            small.thumbnail((side, side))
            buffer = io.BytesIO()
            small.save(buffer, format="JPEG")
            return buffer.getvalue(), small.width, small.height
    except Exception:
        return None


# --------------------------------------------------------------------------------------------
# The server


class StandinBotAPI:
    """A Telegram Bot API server for one bot, with the test as the person chatting with it."""

    def __init__(
        self,
        token: str = "123456:TEST",
        bot_username: str = "ccn_test_bot",
        *,
        enforce_limits: bool = False,
    ) -> None:
        self.token = token
        self.bot_username = bot_username
        self.enforce_limits = enforce_limits
        self.root = ""
        # what the bot did
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.commands: dict[str | None, list[dict[str, str]]] = {}
        self.scoped_commands: dict[tuple[str, str | None], list[dict[str, str]]] = {}
        self.callback_answers: dict[str, dict[str, Any]] = {}
        self.files_served = 0
        self.files_asked = 0  # downloads begun
        self.hold_files: asyncio.Event | None = None  # set: downloads wait for it (a slow network)
        self.too_many_requests = 0
        self.flood_next: set[int] = set()  # chats whose next send gets one 429, as in a flood
        self.blocked_chats: set[int] = set()
        self.webhook_url = ""
        self.webhook_secret = ""  # the secret_token of the last setWebhook
        # when (time.monotonic()) each update was queued for getUpdates, first handed out and
        # confirmed (forgotten by a higher offset), and a hook called as each message to a chat
        # is recorded: for benchmarks' timings
        self.queued_at: dict[int, float] = {}
        self.delivered_at: dict[int, float] = {}
        self.confirmed_at: dict[int, float] = {}
        self.on_sent: Callable[[int, dict[str, Any]], None] | None = None
        # state
        self._bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 1
        self._next_update_id = 100_001
        self._queue: list[_Queued] = []
        self._history: dict[int, JSONDict] = {}
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._closing = False
        self._people: dict[int, tuple[str, str | None]] = {}
        self._last_message_id: dict[int, int] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._chat_order: dict[int, list[int]] = {}
        self._sent: dict[int, list[JSONDict]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._file_paths: dict[str, _StoredFile] = {}
        self._file_count = 0
        self._media_group_count = 0
        self._open_queries: set[str] = set()
        self._chat_instances: dict[int, str] = {}
        self._sends_all: deque[float] = deque()
        self._sends_per_chat: dict[int, deque[float]] = {}
        self._updates_signal = _Signal()
        self._sent_signal = _Signal()
        self._runner: web.AppRunner | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Start serving on a free loopback port; returns the root URL."""
        self._closing = False
        self._updates_signal = _Signal()
        self._sent_signal = _Signal()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_route("GET", "/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        port = runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"
        return self.root

    async def stop(self) -> None:
        """Stop serving; long polls in progress answer at once."""
        self._closing = True
        self._updates_signal.fire()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # ---------------------------------------------------------------- the person

    def send_text(
        self, chat_id: int, text: str, *, first_name: str = "Test", username: str | None = None
    ) -> int:
        """The person sends a text; a leading /command carries its bot_command entity."""
        self._people[chat_id] = (first_name, username)
        message = self._person_message(chat_id, {"text": text})
        if text.startswith("/"):
            first_word = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16(first_word)}]
        return self._queue_update({"message": message})

    def send_photo(
        self,
        chat_id: int,
        data: bytes,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> int:
        """The person sends a photo (two sizes, as Telegram delivers them)."""
        body: JSONDict = {"photo": self._photo_sizes(data, strict=False)}
        if media_group_id is not None:
            body["media_group_id"] = media_group_id
        if caption is not None:
            body["caption"] = caption
        return self._queue_update({"message": self._person_message(chat_id, body)})

    def send_document(
        self,
        chat_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        *,
        caption: str | None = None,
        media_group_id: str | None = None,
    ) -> int:
        """The person sends a file as a document."""
        body: JSONDict = {"document": self._document(data, file_name, mime_type)}
        if media_group_id is not None:
            body["media_group_id"] = media_group_id
        if caption is not None:
            body["caption"] = caption
        return self._queue_update({"message": self._person_message(chat_id, body)})

    def edit_text(self, chat_id: int, message_id: int, text: str) -> int:
        """The person edits a text they sent: an ``edited_message`` update, as Telegram sends."""
        current = self._messages.get((chat_id, message_id))
        if current is None or not current.get("_from_person") or "text" not in current:
            raise AssertionError(f"chat {chat_id} has no text {message_id} from the person")
        edited = {**current, "text": text, "edit_date": int(time.time())}
        edited.pop("entities", None)
        if text.startswith("/"):
            first_word = text.split(maxsplit=1)[0]
            edited["entities"] = [{"type": "bot_command", "offset": 0, "length": _u16(first_word)}]
        self._messages[(chat_id, message_id)] = edited
        return self._queue_update({"edited_message": _public(edited)})

    def meet(self, chat_id: int, *, first_name: str = "Test") -> None:
        """The person has talked with the bot before (so Telegram knows the chat)."""
        self._people.setdefault(chat_id, (first_name, None))

    def send_location(self, chat_id: int, latitude: float, longitude: float) -> int:
        """The person shares a location."""
        body: JSONDict = {"location": {"latitude": latitude, "longitude": longitude}}
        return self._queue_update({"message": self._person_message(chat_id, body)})

    def press_button(self, chat_id: int, data: str, message_id: int | None = None) -> int:
        """The person taps the inline button with callback ``data``.

        ``message_id`` defaults to the bot's latest message in the chat that has an inline
        keyboard. Tapping a button the message does not show raises AssertionError.
        """
        if message_id is None:
            for candidate in reversed(self._chat_order.get(chat_id, [])):
                current = self._messages[(chat_id, candidate)]
                if current.get("reply_markup") and not current.get("_deleted"):
                    message_id = candidate
                    break
            else:
                raise AssertionError(f"no bot message with an inline keyboard in chat {chat_id}")
        message = self._messages.get((chat_id, message_id))
        if message is None or message.get("_deleted"):
            raise AssertionError(f"chat {chat_id} has no message {message_id}")
        buttons = self.keyboard(message)
        if data not in [button_data for row in buttons for _, button_data in row]:
            raise AssertionError(
                f"message {message_id} in chat {chat_id} has no button {data!r}; it has {buttons}"
            )
        query_id = str(secrets.randbits(62))
        self._open_queries.add(query_id)
        instance = self._chat_instances.setdefault(chat_id, str(secrets.randbits(62)))
        query: JSONDict = {
            "id": query_id,
            "from": self._person(chat_id),
            "message": _public(message),
            "chat_instance": instance,
            "data": data,
        }
        return self._queue_update({"callback_query": query})

    def repeat_update(self, update_id: int) -> None:
        """Queue the very same update again, with the same update_id (duplicate delivery)."""
        if update_id not in self._history:
            raise ValueError(f"no update {update_id} was queued")
        update = copy.deepcopy(self._history[update_id])
        self._queue.append(_Queued(update_id, update, repeat=True))
        self._updates_signal.fire()

    # ---------------------------------------------------------------- webhook delivery

    # In webhook mode Telegram posts each update to the bot instead of waiting for getUpdates;
    # testing/webhook_relay.py plays that part (and a load balancer's) with these three.

    def take_for_webhook(self) -> list[tuple[int, JSONDict]]:
        """The queued updates not handed out yet (duplicates queued by ``repeat_update``
        included), oldest first, now marked handed out; they stay queued, as pending, until
        ``confirm_webhook``. Nothing while no webhook is set: Telegram keeps them for
        getUpdates."""
        if not self.webhook_url:
            return []
        fresh = sorted(
            (queued for queued in self._queue if not queued.delivered),
            key=lambda queued: queued.update_id,
        )
        now = time.monotonic()
        for queued in fresh:
            queued.delivered = True
            self.delivered_at.setdefault(queued.update_id, now)
        return [(queued.update_id, copy.deepcopy(queued.update)) for queued in fresh]

    def confirm_webhook(self, update_id: int) -> None:
        """A post of the update was answered 2XX: Telegram forgets it (one queued copy)."""
        for index, queued in enumerate(self._queue):
            if queued.update_id == update_id and queued.delivered:
                del self._queue[index]
                break
        self.confirmed_at.setdefault(update_id, time.monotonic())

    async def updates_queued(self, timeout: float) -> None:
        """Return when an update is queued or a webhook set (or after ``timeout`` s)."""
        event = self._updates_signal.event
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)

    # ---------------------------------------------------------------- what the bot did

    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to the chat, in order, with edits (editMessageText/Caption)."""
        return list(self._sent.get(chat_id, []))

    def queued(self, update_id: int) -> dict[str, Any]:
        """An update as it was queued for the bot."""
        return copy.deepcopy(self._history[update_id])

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        """The current state of a message (after edits; ``_deleted`` if deleted)."""
        return self._messages[(chat_id, message_id)]

    def chat_commands(self, chat_id: int, language: str | None = None) -> list[dict[str, str]]:
        """The command menu set for one chat (``BotCommandScopeChat``); [] if none."""
        scope = json.dumps({"chat_id": chat_id, "type": "chat"}, sort_keys=True)
        return list(self.scoped_commands.get((scope, language), []))

    def called(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of ``method`` (case-insensitive), in order."""
        return [params for name, params in self.calls if name.lower() == method.lower()]

    async def wait_for(
        self,
        chat_id: int,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """The first message sent to the chat (past or future) that satisfies ``predicate``."""
        return await self._wait_sent(
            chat_id,
            timeout,
            lambda messages: next((m for m in messages if predicate(m)), None),
            lambda _messages: "no matching message",
        )

    async def wait_for_count(
        self, chat_id: int, count: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were sent to the chat; returns them all."""
        return await self._wait_sent(
            chat_id,
            timeout,
            lambda messages: list(messages) if len(messages) >= count else None,
            lambda messages: f"{len(messages)} of {count} messages",
        )

    async def _wait_sent(
        self,
        chat_id: int,
        timeout: float,
        found: Callable[[list[dict[str, Any]]], Found | None],
        missing: Callable[[list[dict[str, Any]]], str],
    ) -> Found:
        """What ``found`` finds in the messages sent to the chat, as soon as it finds it; an
        AssertionError after ``timeout`` seconds, saying what is ``missing`` and what was sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._sent_signal.event
            messages = self._sent.get(chat_id, [])
            result = found(messages)
            if result is not None:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"{missing(messages)} in chat {chat_id} within {timeout} s; "
                    f"sent: {self._describe(chat_id)}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def button(self, chat_id: int, label: str) -> tuple[int, str]:
        """The newest button in the chat whose text has `label` in it (case and accents aside),
        as its message's id and its callback data, as the message stands now."""
        for message in reversed(self.sent(chat_id)):
            current = self.message(chat_id, message["message_id"])
            for row in self.keyboard(current):
                for text, data in row:
                    if fold(label) in fold(text):
                        return message["message_id"], data
        raise AssertionError(f"no button {label!r}")

    def keyboard(self, message: dict[str, Any]) -> list[list[tuple[str, str]]]:
        """The inline keyboard as rows of (text, callback_data); url buttons give their url."""
        markup = message.get("reply_markup") or {}
        return [
            [
                (
                    str(button.get("text", "")),
                    str(button.get("callback_data", button.get("url", ""))),
                )
                for button in row
            ]
            for row in markup.get("inline_keyboard", [])
        ]

    def _describe(self, chat_id: int) -> str:
        lines = []
        for message in self._sent.get(chat_id, []):
            content = message.get("text", message.get("caption", ""))
            kind = next(
                (key for key in ("photo", "document", "location") if key in message), "text"
            )
            line = f"#{message['message_id']} {kind} {content!r}"
            if "edit_date" in message:
                line += " (edited)"
            if message.get("reply_markup"):
                line += f" keyboard={self.keyboard(message)}"
            lines.append(line)
        return "\n  " + "\n  ".join(lines) if lines else "nothing"

    # ---------------------------------------------------------------- people, files, updates

    def _bot_user(self) -> JSONDict:
        return {
            "id": self._bot_id,
            "is_bot": True,
            "first_name": "CCN Test Bot",
            "username": self.bot_username,
        }

    def _person(self, chat_id: int) -> JSONDict:
        first_name, username = self._people.get(chat_id, ("Test", None))
        user: JSONDict = {"id": chat_id, "is_bot": False, "first_name": first_name}
        if username is not None:
            user["username"] = username
        user["language_code"] = "vi"
        return user

    def _chat(self, chat_id: int) -> JSONDict:
        first_name, username = self._people.get(chat_id, ("Test", None))
        chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
        if username is not None:
            chat["username"] = username
        return chat

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _person_message(self, chat_id: int, body: JSONDict) -> JSONDict:
        message: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "from": self._person(chat_id),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            **body,
        }
        self._messages[(chat_id, message["message_id"])] = {**message, "_from_person": True}
        return message

    def _queue_update(self, body: JSONDict) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        update = {"update_id": update_id, **body}
        self._history[update_id] = copy.deepcopy(update)
        self._queue.append(_Queued(update_id, update))
        self.queued_at[update_id] = time.monotonic()
        self._updates_signal.fire()
        return update_id

    def _store_file(self, data: bytes, folder: str, extension: str, prefix: str) -> _StoredFile:
        self._file_count += 1
        stored = _StoredFile(
            file_id=prefix + secrets.token_urlsafe(36),
            file_unique_id="AQAD" + secrets.token_urlsafe(9),
            data=data,
            file_path=f"{folder}/file_{self._file_count}.{extension}",
        )
        self._files[stored.file_id] = stored
        self._file_paths[stored.file_path] = stored
        return stored

    def _photo_sizes(self, data: bytes, *, strict: bool) -> list[JSONDict]:
        """A small and a large PhotoSize; with ``strict``, non-images are refused as Telegram."""
        size = _image_size(data)
        if size is None:
            if strict:
                raise _bad("IMAGE_PROCESS_FAILED")
            size = (100, 100)
        width, height = size
        thumbnail = _thumbnail(data) or (data, min(width, 90), min(height, 90))
        sizes = []
        for content, w, h in (thumbnail, (data, width, height)):
            stored = self._store_file(content, "photos", "jpg", "AgACAgIAAxkBAAI")
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "width": w,
                    "height": h,
                    "file_size": len(content),
                }
            )
        return sizes

    def _document(self, data: bytes, file_name: str, mime_type: str) -> JSONDict:
        extension = file_name.rpartition(".")[2] if "." in file_name else "bin"
        stored = self._store_file(data, "documents", extension, "BQACAgIAAxkBAAI")
        return {
            "file_name": file_name,
            "mime_type": mime_type,
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(data),
        }

    # ---------------------------------------------------------------- HTTP

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        return self._error(ApiError(404, "Not Found"))

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._error(ApiError(404, "Not Found"))
        stored = self._file_paths.get(request.match_info["path"])
        if stored is None:
            return self._error(ApiError(404, "Not Found"))
        self.files_asked += 1
        if self.hold_files is not None:
            await self.hold_files.wait()
        self.files_served += 1
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _handle_method(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        if token != self.token:
            if _TOKEN_RE.fullmatch(token):
                return self._error(ApiError(401, "Unauthorized"))
            return self._error(ApiError(404, "Not Found"))
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except ApiError as exc:
            return self._error(exc)
        self.calls.append((method, params))
        handler = self._handlers().get(method.lower())
        try:
            result = await handler(params) if handler is not None else True
        except ApiError as exc:
            return self._error(exc)
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(exc: ApiError) -> web.Response:
        body: JSONDict = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            body["parameters"] = exc.parameters
        return web.json_response(body, status=exc.code)

    @staticmethod
    async def _read_params(request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {
            key: _decode_value(key, value) for key, value in request.query.items()
        }
        if request.method != "POST" or not request.can_read_body:
            return params
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError as exc:
                raise _bad("can't parse JSON object") from exc
            if not isinstance(body, dict):
                raise _bad("can't parse JSON object")
            for key, value in body.items():
                params[key] = _decode_value(key, value) if isinstance(value, str) else value
            return params
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                params[key] = UploadedFile(
                    field=key,
                    filename=value.filename,
                    content_type=value.content_type,
                    data=value.file.read(),
                )
            else:
                text = value if isinstance(value, str) else bytes(value).decode()
                params[key] = _decode_value(key, text)
        return params

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[Any]]]:
        return {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setchatmenubutton": self._answer_true,
            "getchat": self._get_chat,
            "sendmessage": self._send_message,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendmediagroup": self._send_media_group,
            "sendchataction": self._send_chat_action,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "answercallbackquery": self._answer_callback_query,
            "getfile": self._get_file,
        }

    # ---------------------------------------------------------------- methods: bot and updates

    async def _answer_true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> JSONDict:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_chat(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params, check_blocked=False)
        return {**self._chat(chat_id), "accent_color_id": 0, "max_reaction_count": 11}

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = str(params.get("url") or "")
        self.webhook_secret = str(params.get("secret_token") or "")
        if params.get("drop_pending_updates"):
            self._queue.clear()
        self._updates_signal.fire()  # a webhook relay waiting for one may deliver now
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = ""
        if params.get("drop_pending_updates"):
            self._queue.clear()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> JSONDict:
        info: JSONDict = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._queue),
        }
        if self._allowed_updates is not None:
            info["allowed_updates"] = self._allowed_updates
        return info

    async def _get_updates(self, params: dict[str, Any]) -> list[JSONDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use "
                "deleteWebhook to delete the webhook first",
            )
        self._poll_generation += 1
        generation = self._poll_generation
        self._updates_signal.fire()  # an older poll still waiting is now terminated
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = min(max(float(params.get("timeout") or 0), 0.0), LONG_POLL_CAP)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._updates_signal.event
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )
            batch = self._take(limit)
            if batch or self._closing:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _confirm(self, offset: int) -> None:
        """Forget the updates an offset confirms, as Telegram does."""
        if offset > 0:
            kept = [
                queued
                for queued in self._queue
                if queued.update_id >= offset or (queued.repeat and not queued.delivered)
            ]
            if len(kept) < len(self._queue):
                now = time.monotonic()
                for queued in self._queue:
                    if queued.update_id < offset and not queued.repeat:
                        self.confirmed_at.setdefault(queued.update_id, now)
            self._queue = kept
        elif offset < 0:
            self._queue = sorted(self._queue, key=lambda queued: queued.update_id)[offset:]

    def _take(self, limit: int) -> list[JSONDict]:
        if self._allowed_updates is not None:
            allowed = set(self._allowed_updates)
            self._queue = [
                queued
                for queued in self._queue
                if any(key in allowed for key in queued.update if key != "update_id")
            ]
        # ascending ids, so PTB's next offset (last id + 1) confirms the whole batch
        batch = sorted(self._queue, key=lambda queued: queued.update_id)[:limit]
        now = time.monotonic()
        for queued in batch:
            queued.delivered = True
            self.delivered_at.setdefault(queued.update_id, now)
        return [copy.deepcopy(queued.update) for queued in batch]

    # setMyCommands, getMyCommands, deleteMyCommands as the Bot API documents them
    # (https://core.telegram.org/bots/api#setmycommands, #botcommand, #botcommandscope): at most
    # 100 commands; a command is 1-32 characters of lowercase English letters, digits and
    # underscores; a description is 1-256 characters; language_code is empty or a two-letter
    # ISO 639-1 code; scope is one of the 7 BotCommandScope types, and a chat scope names a chat
    # the bot knows. PTB sends all of these unchecked, so the stand-in refuses what Telegram does.

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad('parameter "commands" is required')
        if len(commands) > MAX_COMMANDS:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        cleaned: list[dict[str, str]] = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand")
            name = str(command.get("command", ""))
            description = str(command.get("description", ""))
            if not _COMMAND_RE.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= MAX_COMMAND_DESCRIPTION:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": name, "description": description})
        scope, language = self._command_key(params)
        if scope == "default":
            self.commands[language] = cleaned
        self.scoped_commands[(scope, language)] = cleaned
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return self.scoped_commands.get(self._command_key(params), [])

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        scope, language = self._command_key(params)
        if scope == "default":
            self.commands.pop(language, None)
        self.scoped_commands.pop((scope, language), None)
        return True

    def _command_key(self, params: dict[str, Any]) -> tuple[str, str | None]:
        """The (scope, language) a command list is stored under; refuses a malformed one."""
        scope = params.get("scope")
        if scope is not None and not isinstance(scope, dict):
            raise _bad("can't parse BotCommandScope JSON object")
        scope = scope or {"type": "default"}
        kind = scope.get("type")
        if kind not in _SCOPE_TYPES:
            raise _bad("wrong BotCommandScope type specified")
        if kind in ("chat", "chat_administrators", "chat_member"):
            chat_id = scope.get("chat_id")
            if isinstance(chat_id, bool) or not isinstance(chat_id, int):
                raise _bad("chat not found")
            if chat_id not in self._people and chat_id not in self._last_message_id:
                raise _bad("chat not found")
        language = params.get("language_code") or None
        if language is not None and not _LANGUAGE_RE.fullmatch(str(language)):
            raise _bad("invalid language code specified")
        scope_key = json.dumps(scope, sort_keys=True) if kind != "default" else "default"
        return scope_key, language

    # ---------------------------------------------------------------- methods: messages

    def _chat_id(self, params: dict[str, Any], *, check_blocked: bool = True) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _bad("chat not found")
        if check_blocked and chat_id in self.blocked_chats:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat_id

    def _check_limits(self, chat_id: int) -> None:
        """Telegram's flood limits: 1 message a second per chat, 30 a second in all."""
        if chat_id in self.flood_next:
            self.flood_next.discard(chat_id)
            self.too_many_requests += 1
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        if not self.enforce_limits:
            return
        now = time.monotonic()
        per_chat = self._sends_per_chat.setdefault(chat_id, deque())
        for window in (self._sends_all, per_chat):
            while window and now - window[0] >= 1.0:
                window.popleft()
        if per_chat or len(self._sends_all) >= 30:
            self.too_many_requests += 1
            raise ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        per_chat.append(now)
        self._sends_all.append(now)

    @staticmethod
    def _inline_markup(params: dict[str, Any]) -> JSONDict | None:
        """The inline keyboard to show on the message, validated as Telegram does."""
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return None  # reply keyboards are not part of the returned Message
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad("can't parse inline keyboard button: Text must be a String")
                if not any(action in button for action in _BUTTON_ACTIONS):
                    raise _bad(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                data = button.get("callback_data")
                if "callback_data" in button and (
                    not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA
                ):
                    raise _bad("BUTTON_DATA_INVALID")
        if not any(rows):
            return None
        return {"inline_keyboard": rows}

    def _text_and_entities(
        self, params: dict[str, Any], key: str, entities_key: str, limit: int
    ) -> tuple[str, list[JSONDict]]:
        raw = params.get(key)
        text = "" if raw is None else str(raw)
        given = params.get(entities_key)
        if isinstance(given, list):
            plain, entities = text, [entity for entity in given if isinstance(entity, dict)]
        else:
            if params.get("parse_mode"):
                # The bot sends plain text only, so no markup parser here: a parse_mode means
                # someone started sending markup, which needs its escaping tested first.
                raise _bad("this stand-in does not parse markup: the bot sends plain text")
            plain, entities = text, []
        if key == "text" and not plain.strip():
            raise _bad("message text is empty")
        if _u16(plain) > limit:
            raise _bad("message is too long" if key == "text" else "message caption is too long")
        return plain, entities

    def _caption(self, params: dict[str, Any], body: JSONDict) -> None:
        if params.get("caption") is None:
            return
        caption, entities = self._text_and_entities(
            params, "caption", "caption_entities", MAX_CAPTION
        )
        if caption:
            body["caption"] = caption
        if entities:
            body["caption_entities"] = entities

    def _reply_to(self, params: dict[str, Any], chat_id: int) -> JSONDict | None:
        reply = params.get("reply_parameters")
        reply = reply if isinstance(reply, dict) else {}
        target_id = reply.get("message_id", params.get("reply_to_message_id"))
        if not isinstance(target_id, int):
            return None
        target = self._messages.get((chat_id, target_id))
        if target is None or target.get("_deleted"):
            if reply.get("allow_sending_without_reply") or params.get(
                "allow_sending_without_reply"
            ):
                return None
            raise _bad("message to be replied not found")
        return _public(target)

    def _bot_message(self, chat_id: int, params: dict[str, Any], body: JSONDict) -> JSONDict:
        """Store and return a new message from the bot (validation done before)."""
        message: JSONDict = {
            "message_id": self._new_message_id(chat_id),
            "from": self._bot_user(),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
        }
        reply_to = self._reply_to(params, chat_id)
        if reply_to is not None:
            message["reply_to_message"] = reply_to
        message.update(body)
        self._messages[(chat_id, message["message_id"])] = message
        self._chat_order.setdefault(chat_id, []).append(message["message_id"])
        self._record_sent(chat_id, message)
        return _public(message)

    def _record_sent(self, chat_id: int, message: JSONDict) -> None:
        recorded = dict(message)
        self._sent.setdefault(chat_id, []).append(recorded)
        self._sent_signal.fire()
        if self.on_sent is not None:
            self.on_sent(chat_id, recorded)

    def _upload(self, params: dict[str, Any], key: str) -> tuple[bytes, str, str]:
        """The bytes, file name and MIME type of a file parameter (upload or known file_id)."""
        value = params.get(key)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            if not value.data:
                raise _bad("file must be non-empty")
            return value.data, value.filename, value.content_type
        if isinstance(value, str) and value in self._files:
            stored = self._files[value]
            return stored.data, stored.file_path.rpartition("/")[2], "application/octet-stream"
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            raise _bad("failed to get HTTP URL content")
        if value is None:
            raise _bad(f"there is no {key} in the request")
        raise _bad(_WRONG_FILE.removeprefix("Bad Request: "))

    async def _send_message(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        text, entities = self._text_and_entities(params, "text", "entities", MAX_TEXT)
        body: JSONDict = {"text": text}
        if entities:
            body["entities"] = entities
        return self._send(chat_id, params, dict, body)

    def _send(
        self,
        chat_id: int,
        params: dict[str, Any],
        content: Callable[[], JSONDict],
        body: JSONDict,
    ) -> JSONDict:
        """A new message from the bot once the checks of a send pass, in Telegram's order (the
        keyboard, the message replied to, the flood limits): its `content` (a photo, a
        document: made only then), then `body` and its keyboard."""
        markup = self._inline_markup(params)
        self._reply_to(params, chat_id)
        self._check_limits(chat_id)
        body = {**content(), **body}
        if markup is not None:
            body["reply_markup"] = markup
        return self._bot_message(chat_id, params, body)

    async def _send_photo(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        data, _, _ = self._upload(params, "photo")
        if _image_size(data) is None:
            raise _bad("IMAGE_PROCESS_FAILED")
        body: JSONDict = {}
        self._caption(params, body)
        return self._send(
            chat_id,
            params,
            lambda: {"photo": self._photo_sizes(data, strict=True)},
            {**body, "_bytes": data},
        )

    async def _send_document(self, params: dict[str, Any]) -> JSONDict:
        chat_id = self._chat_id(params)
        data, file_name, mime_type = self._upload(params, "document")
        body: JSONDict = {}
        self._caption(params, body)
        return self._send(
            chat_id,
            params,
            lambda: {"document": self._document(data, file_name, mime_type)},
            {**body, "_bytes": data},
        )

    async def _send_media_group(self, params: dict[str, Any]) -> list[JSONDict]:
        chat_id = self._chat_id(params)
        media = params.get("media")
        if not isinstance(media, list) or not all(isinstance(item, dict) for item in media):
            raise _bad('parameter "media" is required')
        if not 1 <= len(media) <= 10:
            raise _bad("wrong number of media specified")
        bodies: list[JSONDict] = []
        for item in media:
            kind = item.get("type")
            if kind not in ("photo", "document"):
                raise _bad(f"media type {kind!r} is not supported by the stand-in")
            data, file_name, mime_type = self._upload({**params, kind: item.get("media")}, kind)
            body: JSONDict = {}
            self._caption(item, body)
            if kind == "photo" and _image_size(data) is None:
                raise _bad("IMAGE_PROCESS_FAILED")
            bodies.append(
                {"_kind": kind, "_data": data, "_name": file_name, "_mime": mime_type, **body}
            )
        self._reply_to(params, chat_id)
        self._check_limits(chat_id)
        self._media_group_count += 1
        group_id = str(13_000_000_000_000_000 + self._media_group_count)
        messages = []
        for body in bodies:
            data = body.pop("_data")
            kind = body.pop("_kind")
            name, mime = body.pop("_name"), body.pop("_mime")
            content: JSONDict
            if kind == "photo":
                content = {"photo": self._photo_sizes(data, strict=True)}
            else:
                content = {"document": self._document(data, name, mime)}
            content.update({"media_group_id": group_id, **body, "_bytes": data})
            messages.append(self._bot_message(chat_id, params, content))
        return messages

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._chat_id(params)
        if not params.get("action"):
            raise _bad("wrong parameter action in request")
        return True

    def _editable(self, params: dict[str, Any]) -> tuple[int, JSONDict]:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        current = self._messages.get((chat_id, message_id)) if isinstance(message_id, int) else None
        if current is None or current.get("_deleted"):
            raise _bad("message to edit not found")
        if current.get("_from_person"):
            raise _bad("message can't be edited")
        return chat_id, current

    def _apply_edit(
        self, chat_id: int, current: JSONDict, changes: JSONDict, *, record: bool
    ) -> JSONDict:
        """Apply an edit: unchanged content is 400 "not modified", as in Telegram."""
        edited = {**current, **changes}
        for key, value in changes.items():
            if value is None:
                edited.pop(key, None)
        same = all(current.get(key) == edited.get(key) for key in changes)
        if same:
            raise _bad(_NOT_MODIFIED.removeprefix("Bad Request: "))
        edited["edit_date"] = int(time.time())
        self._messages[(chat_id, current["message_id"])] = edited
        if record:
            self._record_sent(chat_id, edited)
        return _public(edited)

    async def _edit_message_text(self, params: dict[str, Any]) -> JSONDict:
        chat_id, current = self._editable(params)
        if "text" not in current:
            raise _bad("there is no text in the message to edit")
        text, entities = self._text_and_entities(params, "text", "entities", MAX_TEXT)
        changes: JSONDict = {
            "text": text,
            "entities": entities or None,
            # no reply_markup in the edit removes the inline keyboard, as in Telegram
            "reply_markup": self._inline_markup(params),
        }
        return self._apply_edit(chat_id, current, changes, record=True)

    async def _edit_message_caption(self, params: dict[str, Any]) -> JSONDict:
        chat_id, current = self._editable(params)
        if "text" in current:
            raise _bad("there is no caption in the message to edit")
        body: JSONDict = {}
        self._caption(params, body)
        changes: JSONDict = {
            "caption": body.get("caption"),
            "caption_entities": body.get("caption_entities"),
            "reply_markup": self._inline_markup(params),
        }
        return self._apply_edit(chat_id, current, changes, record=True)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> JSONDict:
        chat_id, current = self._editable(params)
        changes: JSONDict = {"reply_markup": self._inline_markup(params)}
        return self._apply_edit(chat_id, current, changes, record=False)

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        current = self._messages.get((chat_id, message_id)) if isinstance(message_id, int) else None
        if current is None or current.get("_deleted"):
            raise _bad("message to delete not found")
        current["_deleted"] = True
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        query_id = params.get("callback_query_id")
        if not isinstance(query_id, str) or query_id not in self._open_queries:
            raise _bad(_QUERY_INVALID.removeprefix("Bad Request: "))
        self._open_queries.discard(query_id)
        self.callback_answers[query_id] = {
            key: value for key, value in params.items() if key != "callback_query_id"
        }
        return True

    async def _get_file(self, params: dict[str, Any]) -> JSONDict:
        stored = self._files.get(str(params.get("file_id", "")))
        if stored is None:
            raise _bad("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise _bad("file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
            "file_path": stored.file_path,
        }


@contextlib.asynccontextmanager
async def running(api: StandinBotAPI) -> AsyncIterator[StandinBotAPI]:
    """Serve ``api`` for the duration of the ``async with`` block."""
    await api.start()
    try:
        yield api
    finally:
        await api.stop()
