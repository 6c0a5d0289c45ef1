"""Zalo Official Account, API v3: a signed webhook in, consultation messages out.

The rules followed here, and where each was confirmed, are in ZALO.md beside this file. In
short: a v3 consultation message is text (≤ 2000 characters), one image, one file (PDF, DOC,
DOCX ≤ 5 MB) or the user-info form — no buttons, so choices are typed keys
(handlers.choices); it reaches a person only within 7 days of their last message, after which
a reminder goes as a ZNS template by phone; images are ≤ 1 MB JPEG or PNG. Events are kept
in the database and acked at once, then handled in the background, one at a time per chat; one
a crash interrupted is handled after the restart."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiolimiter import AsyncLimiter
from PIL import Image
from sqlalchemy.exc import SQLAlchemyError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from bot.channels import split_text
from bot.lanes import Lanes
from bot.logs import add_secret
from bot.tasks import cancelled
from bot.web import Check, FileLinks, active_people, file_routes, health_routes
from domain import i18n
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Delivery, Incoming, Reply
from store import inbox
from store.access import mark_unreachable
from store.contacts import (
    Tokens,
    contact_of,
    inside,
    normalise_phone,
    save_zalo_tokens,
    zalo_tokens,
)
from store.db import unit_of_work

log = logging.getLogger(__name__)

CHANNEL = "zalo"
MAX_TEXT = 2000  # ZALO.md §1
IMAGE_MAX_BYTES = 1_000_000  # jpg/png ≤ 1 MB (ZALO.md §3); a little under 1 MiB to be safe
FILE_MAX_BYTES = 5 * 1024 * 1024  # PDF/DOC/DOCX ≤ 5 MB (ZALO.md §3)
FILE_TYPES = {
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}
# Zalo retries an undelivered event after 30 s, 5, 15, 30 min and 1 h (ZALO.md §5): a signed
# retry is accepted for that long after the event's own timestamp, plus a margin.
SIGNATURE_MAX_AGE = timedelta(hours=2, minutes=30)
SIGNATURE_MAX_AHEAD = timedelta(minutes=5)
# An event is kept in the inbox from before its 200 until it is handled. At start the events a
# process before this one left are handled; then every INBOX_SWEEP_SECONDS those older than
# INBOX_STALE that no one here is handling (their worker died).
INBOX_SWEEP_SECONDS = 30.0
INBOX_STALE = timedelta(minutes=1)
REFRESH_BEFORE = timedelta(minutes=10)
TOKEN_ERRORS = {-216, -220, -124}  # invalid, expired; -124 is ZNS's "invalid token"
OUT_OF_WINDOW = {-213, -230, -232}  # not a follower, no interaction within 7 days, none yet
ERRORS = {
    -32: "rate limit reached",
    -124: "the access token is invalid (ZNS)",
    -201: "a parameter is invalid",
    -210: "a parameter exceeds its limit",
    -211: "the feature's quota is used up",
    -213: "the user is not a follower of the OA",
    -216: "the access token is invalid",
    -218: "the sending limit to this user is reached",
    -220: "the access token has expired",
    -230: "the user has not interacted with the OA in the last 7 days",
    -232: "the user has not interacted with the OA, or the interaction expired",
}
# Events that need no answer: the OA's own messages echoed back, receipts, reactions.
SILENT_EVENTS = {
    "user_received_message",
    "user_seen_message",
    "user_reacted_message",
    "oa_reacted_message",
    "user_click_chatnow",
    "add_user_to_tag",
    "shop_has_order",
    "user_asking_product",
}
# ZNS template parameters (ZALO.md §4): name, type limit. The OA registers this template in
# Zalo's ZNS console (README "Zalo"); each value is cut to its type's length.
ZNS_PARAMS = {"customer_name": 30, "cluster": 100, "period": 30, "deadline": 20}


@dataclass(frozen=True)
class ZaloConfig:
    app_id: str
    app_secret: str
    oa_secret_key: str
    access_token: str
    refresh_token: str
    api_url: str = "https://openapi.zalo.me"
    oauth_url: str = "https://oauth.zaloapp.com"
    zns_url: str = "https://business.openapi.zalo.me"
    webhook_path: str = "/zalo/webhook"
    window: timedelta = timedelta(days=7)
    zns_template_id: str = ""
    oa_name: str = "Sở Công Thương Hà Nội"
    # the banner of the phone-number form (required by Zalo): the one in Zalo's PHP SDK README
    info_image_url: str = "https://stc-oa-chat-adm.zdn.vn/images/request-info-banner.png"
    requests_per_minute: int = 4000  # per app (ZALO.md §8)
    timeout_seconds: float = 20.0
    retries: int = 4
    retry_wait: float = 0.5  # the first backoff; doubled each time, with jitter


class ZaloError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {ERRORS.get(code, message)}")
        self.code = code


class ZaloUnavailable(Exception):
    """Zalo did not answer (network, time-out, 5xx) even after the retries."""


class _Transient(Exception):
    pass


def signature(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    raw = app_id.encode() + body + timestamp.encode() + secret.encode()
    return "mac=" + hashlib.sha256(raw).hexdigest()


def _same_signature(expected: str, header: str) -> bool:
    """Zalo's header is the hex digest; whether it carries `mac=` is not confirmed: both pass."""
    want = expected.removeprefix("mac=").encode()
    got = header.strip().removeprefix("mac=").encode()
    return hmac.compare_digest(want, got)


# --- what Zalo takes: images and files ------------------------------------------------------


def fit_image(data: bytes) -> tuple[bytes, str, str]:
    """An image Zalo's upload takes: JPEG or PNG of at most 1 MB; (bytes, mime, suffix)."""
    with Image.open(io.BytesIO(data)) as image:
        kind = image.format
        if kind in ("JPEG", "PNG") and len(data) <= IMAGE_MAX_BYTES:
            return data, f"image/{kind.lower()}", ".jpg" if kind == "JPEG" else ".png"
        picture = image.convert("RGB")
    side = max(picture.size)
    for quality, limit in ((85, 2560), (80, 1920), (75, 1600), (70, 1280), (60, 1024)):
        scaled = picture.copy()
        if side > limit:
            scaled.thumbnail((limit, limit))
        buffer = io.BytesIO()
        scaled.save(buffer, "JPEG", quality=quality, optimize=True)
        if buffer.tell() <= IMAGE_MAX_BYTES:
            return buffer.getvalue(), "image/jpeg", ".jpg"
    raise ValueError("image cannot be made small enough")


def file_kind(path: Path, data: bytes) -> str | None:
    """The MIME type if Zalo's file upload takes it (by the bytes, not only the name)."""
    mime = FILE_TYPES.get(path.suffix.lower())
    if mime is None or len(data) > FILE_MAX_BYTES:
        return None
    if path.suffix.lower() == ".pdf" and not data.startswith(b"%PDF"):
        return None
    if path.suffix.lower() == ".docx" and not data.startswith(b"PK"):
        return None
    return mime


# --- the OA API -----------------------------------------------------------------------------


class ZaloApi:
    """One client for every call to Zalo: time-outs, retries with backoff and jitter on network
    errors and 5xx, a rate limit, the machine's proxy settings (aiohttp `trust_env`), and the
    tokens — refreshed before they expire, the rotated single-use refresh token saved at once."""

    def __init__(self, config: ZaloConfig, deps: Deps, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.deps = deps
        self.http = http
        self._lock = asyncio.Lock()
        self._limiter = AsyncLimiter(config.requests_per_minute, 60)
        self.token_problem: str | None = None  # why the last refresh failed; None when fine
        self.on_token_failure: Callable[[str], Awaitable[None]] | None = None
        self.links: Callable[[Path], str | None] | None = None  # a download link for a file
        # the tokens last read or rotated: a send needs no database read while they are fresh
        # (another worker's refresh kills them, Zalo answers -216, and refresh() reads the store)
        self._known: Tokens | None = None

    def _initial(self) -> Tokens:
        now = self.deps.clock()
        expires = now + timedelta(hours=1) if self.config.access_token else now
        return Tokens(self.config.access_token, self.config.refresh_token, expires)

    async def _stored(self) -> Tokens:
        async with unit_of_work(self.deps.sessions) as session:
            tokens = await zalo_tokens(session, self._initial())
        add_secret(tokens.access_token)  # never in a log line, however it got there
        add_secret(tokens.refresh_token)
        self._known = tokens
        return tokens

    async def token(self) -> str:
        tokens = self._known or await self._stored()
        if tokens.expires_at - REFRESH_BEFORE <= self.deps.clock():
            return await self.refresh(tokens.access_token)
        return tokens.access_token

    async def refresh(self, stale: str) -> str:
        async with self._lock:
            tokens = await self._stored()
            fresh = tokens.expires_at - REFRESH_BEFORE > self.deps.clock()
            if tokens.access_token != stale and fresh:
                return tokens.access_token  # another task refreshed it meanwhile
            try:
                body = await self._request(
                    f"{self.config.oauth_url}/v4/oa/access_token",
                    headers={"secret_key": self.config.app_secret},
                    data={
                        "refresh_token": tokens.refresh_token,
                        "app_id": self.config.app_id,
                        "grant_type": "refresh_token",
                    },
                )
                if "access_token" not in body or "refresh_token" not in body:
                    raise ZaloError(
                        int(body.get("error", -216) or -216),
                        str(body.get("error_description") or body.get("error_name") or ""),
                    )
            except (ZaloError, ZaloUnavailable) as exc:
                await self._token_failed(str(exc))
                raise
            now = self.deps.clock()
            rotated = Tokens(
                str(body["access_token"]),
                str(body["refresh_token"]),
                now + timedelta(seconds=int(body.get("expires_in") or 90000)),
            )
            add_secret(rotated.access_token)
            add_secret(rotated.refresh_token)
            async with unit_of_work(self.deps.sessions) as session:
                await save_zalo_tokens(session, rotated, now)
            self._known = rotated
            self.token_problem = None
            log.info("Zalo access token refreshed")
            return rotated.access_token

    async def health(self) -> tuple[bool, str]:
        """For /healthz: is the access token usable?"""
        if self.token_problem is not None:
            return False, f"token refresh failed: {self.token_problem}"
        tokens = await self._stored()
        left = tokens.expires_at - self.deps.clock()
        if left <= timedelta(0):
            return True, "access token expired; refreshed on the next call"
        return True, f"access token valid for {int(left.total_seconds() // 60)} min"

    async def _token_failed(self, problem: str) -> None:
        first = self.token_problem is None
        self.token_problem = problem
        log.error("Zalo token refresh failed: %s", problem)
        if first and self.on_token_failure is not None:
            try:
                await self.on_token_failure(problem)
            except Exception:
                log.exception("could not alert the admins about the Zalo token")

    async def _request(
        self,
        url: str,
        *,
        headers: dict[str, str],
        json_body: Any = None,
        data: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None,
    ) -> dict[str, Any]:
        """One POST with retries on time-outs, connection errors and 5xx (not on Zalo's own
        error codes, which come with HTTP 200)."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retries),
            wait=wait_exponential(multiplier=self.config.retry_wait, max=10)
            + wait_random(0, self.config.retry_wait),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._limiter:
                        try:
                            async with self.http.post(
                                url,
                                headers=headers,
                                json=json_body,
                                data=form() if form is not None else data,
                                timeout=aiohttp.ClientTimeout(total=self.config.timeout_seconds),
                            ) as response:
                                if response.status >= 500:
                                    raise _Transient(f"HTTP {response.status}")
                                body = await response.json(content_type=None)
                        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                            raise _Transient(repr(exc)) from exc
                    return body if isinstance(body, dict) else {}
        except _Transient as exc:
            raise ZaloUnavailable(f"{url}: {exc}") from exc
        raise AssertionError("unreachable")

    async def call(
        self,
        path: str,
        *,
        payload: Any = None,
        form: Callable[[], aiohttp.FormData] | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        """POST to the OA API; on a token error, refresh once and try again."""
        for attempt in (1, 2):
            token = await self.token()
            body = await self._request(
                f"{base or self.config.api_url}{path}",
                headers={"access_token": token},
                json_body=payload if form is None else None,
                form=form,
            )
            code = int(body.get("error", 0) or 0)
            if code in TOKEN_ERRORS and attempt == 1:
                await self.refresh(token)
                continue
            if code != 0:
                log.warning(
                    "Zalo %s: error %s: %s", path, code, ERRORS.get(code, body.get("message"))
                )
                raise ZaloError(code, str(body.get("message")))
            return body
        raise AssertionError("unreachable")

    async def _message(self, user_id: str, message: dict[str, Any]) -> None:
        await self.call(
            "/v3.0/oa/message/cs", payload={"recipient": {"user_id": user_id}, "message": message}
        )

    async def text(self, user_id: str, text: str) -> None:
        for chunk in split_text(text, MAX_TEXT):
            if chunk.strip():
                await self._message(user_id, {"text": chunk})

    async def send(self, user_id: str, reply: Reply, locale: str = "vi") -> None:
        """A reply as Zalo takes it. A part Zalo refuses (an image, a file) is told to the
        person in one line; a text Zalo refuses raises."""
        _ = i18n.gettext_for(locale)
        if reply.buttons:  # handlers render choices for typed channels; never send buttons
            log.error("a reply with buttons reached the Zalo adapter; its buttons were dropped")
        if reply.ask_contact:  # the form carries the words
            await self.request_info(user_id, reply.text or self.config.oa_name)
        elif reply.text:
            await self.text(user_id, reply.text)
        for photo in reply.photos:
            try:
                data = await asyncio.to_thread(photo.path.read_bytes)
                await self.image(user_id, data, photo.caption)
            except (ZaloError, ValueError, OSError) as exc:
                log.warning("Zalo image not sent: %s", exc)
                await self.text(
                    user_id,
                    _("Zalo did not accept the picture {name}.").format(
                        name=photo.caption or photo.path.name
                    ),
                )
        if reply.file is not None:
            await self.file(user_id, reply.file, locale)

    async def image(self, user_id: str, data: bytes, caption: str = "") -> None:
        fitted, mime, suffix = await asyncio.to_thread(fit_image, data)

        def form() -> aiohttp.FormData:
            body = aiohttp.FormData()
            body.add_field("file", fitted, filename=f"image{suffix}", content_type=mime)
            return body

        uploaded = await self.call("/v2.0/oa/upload/image", form=form)
        element = {"media_type": "image", "attachment_id": uploaded["data"]["attachment_id"]}
        message: dict[str, Any] = {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "media", "elements": [element]},
            }
        }
        if caption:
            message["text"] = caption[:MAX_TEXT]
        await self._message(user_id, message)

    async def file(self, user_id: str, path: Path, locale: str) -> None:
        """A PDF/DOC/DOCX goes as a file; anything else (the XLSX workbook) as a download link."""
        _ = i18n.gettext_for(locale)
        data = await asyncio.to_thread(path.read_bytes)
        mime = file_kind(path, data)
        if mime is not None:
            try:
                await self._upload_file(user_id, path.name, data, mime)
                return
            except ZaloError as exc:
                log.warning("Zalo file %s not sent: %s", path.name, exc)
        link = self.links(path) if self.links is not None else None
        if link is None:
            await self.text(
                user_id,
                _(
                    "Zalo cannot send the file {name}; it is on Telegram or from Sở Công Thương."
                ).format(name=path.name),
            )
            return
        await self.text(
            user_id,
            _("Download {name} (link valid 7 days, for you only):\n{link}").format(
                name=path.name, link=link
            ),
        )

    async def _upload_file(self, user_id: str, name: str, data: bytes, mime: str) -> None:
        def form() -> aiohttp.FormData:
            body = aiohttp.FormData()
            body.add_field("file", data, filename=name, content_type=mime)
            return body

        uploaded = await self.call("/v2.0/oa/upload/file", form=form)
        token = uploaded["data"]["token"]
        await self._message(user_id, {"attachment": {"type": "file", "payload": {"token": token}}})

    async def request_info(self, user_id: str, subtitle: str) -> None:
        """Zalo's form that asks the person for their phone (answered by `user_submit_info`)."""
        element = {
            "title": self.config.oa_name[:100],
            "subtitle": subtitle[:500],
            "image_url": self.config.info_image_url,
        }
        await self._message(
            user_id,
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "request_user_info", "elements": [element]},
                }
            },
        )

    async def template(
        self, phone: str, template_id: str, data: dict[str, str], tracking: str
    ) -> None:
        """A ZNS message, for a reminder outside the messaging window."""
        payload = {
            "phone": phone,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking,
        }
        await self.call("/message/template", payload=payload, base=self.config.zns_url)

    async def download(self, url: str, limit: int) -> bytes:
        """A file a person sent; refused past `limit` bytes without reading the rest."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds * 3)
        async with self.http.get(url, timeout=timeout) as response:
            response.raise_for_status()
            if (response.content_length or 0) > limit:
                raise TooLarge()
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    raise TooLarge()
            return bytes(data)


class TooLarge(Exception):
    pass


# --- events in ------------------------------------------------------------------------------


def to_incoming(
    event: dict[str, Any], fetch: Callable[[str], Awaitable[bytes]], oa_id: str = ""
) -> Incoming | None:
    """A webhook event as the handlers see it; None for events that need no answer."""
    name = str(event.get("event_name", ""))
    if name in SILENT_EVENTS or name.startswith(("oa_", "anonymous_")):
        return None
    sender = event.get("sender") or event.get("follower") or {}
    user = str(sender.get("id", "")) if isinstance(sender, dict) else ""
    if not user or (oa_id and user == oa_id):
        return None
    message = event.get("message") or {}
    if not isinstance(message, dict):
        message = {}
    update = str(message.get("msg_id") or f"{name}:{user}:{event.get('timestamp')}")
    base = Incoming(
        channel=CHANNEL, chat_id=user, update_id=update, typed_choices=True, asks_contact=True
    )
    if name == "follow":
        return base
    if name == "user_submit_info":
        info = event.get("info") or {}
        if not isinstance(info, dict):
            return None
        return dataclasses.replace(
            base, phone=str(info.get("phone") or ""), display_name=str(info.get("name") or "")
        )
    if name == "user_send_text":
        return dataclasses.replace(base, text=str(message.get("text", "")).strip())
    attachments = [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    if name == "user_send_location" and attachments:
        where = (attachments[0].get("payload") or {}).get("coordinates") or {}
        try:
            location = (float(where["latitude"]), float(where["longitude"]))
        except (KeyError, TypeError, ValueError):
            return dataclasses.replace(base, payload="unsupported:" + name)
        return dataclasses.replace(base, location=location)
    if name in ("user_send_image", "user_send_file") and attachments:
        files = []
        for item in attachments:
            payload = item.get("payload") or {}
            url = str(payload.get("url", ""))

            async def get(url: str = url) -> bytes:
                return await fetch(url)

            files.append(
                Attachment(
                    "photo" if name == "user_send_image" else "document",
                    get,
                    file_name=str(payload.get("name", "")),
                    caption=str(message.get("text", "")),
                )
            )
        return dataclasses.replace(base, attachments=tuple(files))
    if name.startswith("user_send_"):  # stickers, GIFs, voice, video, links, cards
        return dataclasses.replace(base, payload="unsupported:" + name)
    return None


class ZaloChannel:
    """The webhook endpoint and the replies."""

    def __init__(self, deps: Deps, api: ZaloApi) -> None:
        self.deps = deps
        self.api = api
        self.config = api.config
        self._tasks: set[asyncio.Task[None]] = set()
        self.lanes = Lanes()  # a chat's events in the order they came, one at a time
        self._kept: set[int] = set()  # inbox rows being handled here
        self._sweeper: asyncio.Task[None] | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.config.webhook_path, self.on_webhook)

    def verify(self, body: bytes, header: str | None) -> dict[str, Any] | None:
        """The event, if its signature is right, it is for our app and recent; else None."""
        if not header:
            return None
        try:
            event = json.loads(body)
            timestamp = str(event["timestamp"])
            app_id = str(event["app_id"])
            sent_at = int(timestamp) / 1000
        except (ValueError, KeyError, TypeError, OverflowError):
            return None
        expected = signature(app_id, body, timestamp, self.config.oa_secret_key)
        if not _same_signature(expected, header):
            return None
        if app_id != self.config.app_id:
            return None
        age = self.deps.clock().timestamp() - sent_at
        if age > SIGNATURE_MAX_AGE.total_seconds() or -age > SIGNATURE_MAX_AHEAD.total_seconds():
            return None
        return event if isinstance(event, dict) else None

    async def on_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = self.verify(body, request.headers.get("X-ZEvent-Signature"))
        if event is None:
            return web.json_response({"error": "signature"}, status=401)
        try:  # kept before the 200: a crash before it is handled loses nothing
            async with unit_of_work(self.deps.sessions) as session:
                kept = await inbox.keep(session, CHANNEL, event, datetime.now(UTC))
        except SQLAlchemyError:
            log.exception("Zalo event not kept; Zalo will send it again")
            return web.json_response({"error": "busy"}, status=503)
        self._start(event, kept)
        return web.json_response({"ok": True})  # within Zalo's 2 s; the work goes on

    def _start(self, event: dict[str, Any], kept: int) -> None:
        self._kept.add(kept)
        task = asyncio.create_task(self._handle_kept(event, kept))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_kept(self, event: dict[str, Any], kept: int) -> None:
        try:
            await self.handle(event)
            async with unit_of_work(self.deps.sessions) as session:
                await inbox.done(session, kept)
        except SQLAlchemyError as exc:  # left in the inbox: its mark makes a replay harmless
            log.warning("Zalo event %s handled but not cleared: %s", kept, exc)
        finally:
            self._kept.discard(kept)

    def resume(self) -> None:
        """Handle the events a process before this one acknowledged and did not finish, then
        look now and then for those of a worker that died."""
        self._sweeper = asyncio.create_task(self._sweep())

    async def _sweep(self) -> None:
        before = datetime.now(UTC)
        while True:
            try:
                async with self.deps.sessions() as session:
                    waiting = await inbox.left(session, CHANNEL, before)
                for kept, event in waiting:
                    if kept not in self._kept:
                        log.info("Zalo event %s left by a stopped process: handled now", kept)
                        self._start(event, kept)
            except SQLAlchemyError as exc:
                log.warning("Zalo inbox not read: %s", exc)
            await asyncio.sleep(INBOX_SWEEP_SECONDS)
            before = datetime.now(UTC) - INBOX_STALE

    async def drain(self) -> None:
        """Wait for the events still being handled (tests, shut-down)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Stop looking for left events and finish those being handled."""
        if self._sweeper is not None:
            await cancelled(self._sweeper)
        await self.drain()

    async def handle(self, event: dict[str, Any]) -> None:
        locale = self.deps.config.default_locale
        try:
            if event.get("event_name") == "unfollow":
                user = str((event.get("follower") or {}).get("id", ""))
                async with unit_of_work(self.deps.sessions) as session:
                    await mark_unreachable(session, CHANNEL, user)
                return
            recipient = event.get("recipient") or {}
            oa_id = str(recipient.get("id", "")) if isinstance(recipient, dict) else ""
            incoming = to_incoming(event, self._fetch, oa_id)
            if incoming is None:
                return
            async with self.lanes.turn(incoming.chat_id):
                if incoming.payload and incoming.payload.startswith("unsupported:"):
                    _ = i18n.gettext_for(locale)
                    replies = [Reply(_("Sorry, the bot cannot read this kind of message yet."))]
                else:
                    replies = await conversation.handle(incoming, self.deps)
                for reply in replies:
                    await self.api.send(incoming.chat_id, reply, locale)
        except Exception:
            log.exception("Zalo event %s failed", event.get("event_name"))

    async def _fetch(self, url: str) -> bytes:
        try:
            return await self.api.download(url, self.deps.config.max_photo_bytes)
        except TooLarge:
            return b""  # the photo store refuses an empty file as "not a photo"


# --- reminders ------------------------------------------------------------------------------


def zns_data(facts: dict[str, str]) -> dict[str, str] | None:
    """The template's parameters from a reminder's facts, each within its type's limit."""
    values = {
        "customer_name": facts.get("name", ""),
        "cluster": facts.get("subject", ""),
        "period": facts.get("period", ""),
        "deadline": facts.get("deadline", ""),
    }
    if not all(values.values()):
        return None
    return {k: _cut(v, ZNS_PARAMS[k]) for k, v in values.items()}


def _cut(value: str, limit: int) -> str:
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


class ZaloNotifier:
    """Reminders on Zalo: a consultation message inside the 7-day window after the person's
    last message; outside it, a ZNS template message when a template and their phone are known;
    otherwise unreachable (listed in the admins' digest)."""

    channels = frozenset({CHANNEL})
    typed_channels = frozenset({CHANNEL})

    def __init__(self, api: ZaloApi) -> None:
        self.api = api

    def turn(self, channel: str, chat_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Zalo documents no pace for an OA's messages: no wait."""
        return contextlib.nullcontext()

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        deps = self.api.deps
        async with deps.sessions() as session:
            contact = await contact_of(session, CHANNEL, chat_id)
        locale = contact.locale if contact else deps.config.default_locale
        window = self.api.config.window
        if contact is not None and inside(contact.last_seen_at, deps.clock(), window):
            try:
                await self.api.send(chat_id, reply, locale)
                return Delivery.SENT
            except ZaloError as exc:
                if exc.code not in OUT_OF_WINDOW:
                    return Delivery.FAILED
            except ZaloUnavailable:
                return Delivery.FAILED
        phone = normalise_phone(contact.phone or "") if contact else None
        data = zns_data(dict(reply.facts))
        if self.api.config.zns_template_id and phone and data:
            try:
                await self.api.template(
                    phone,
                    self.api.config.zns_template_id,
                    data,
                    tracking=f"ccn-{chat_id}-{int(time.time())}"[:48],
                )
                return Delivery.SENT
            except (ZaloError, ZaloUnavailable):
                return Delivery.FAILED
        return Delivery.UNREACHABLE


def config_from(settings: Any) -> ZaloConfig:
    return ZaloConfig(
        app_id=settings.zalo_app_id,
        app_secret=settings.zalo_app_secret.get_secret_value(),
        oa_secret_key=settings.zalo_oa_secret_key.get_secret_value(),
        access_token=settings.zalo_oa_access_token.get_secret_value()
        if settings.zalo_oa_access_token
        else "",
        refresh_token=settings.zalo_oa_refresh_token.get_secret_value(),
        api_url=settings.zalo_api_url.rstrip("/"),
        oauth_url=settings.zalo_oauth_url.rstrip("/"),
        zns_url=settings.zalo_zns_url.rstrip("/"),
        webhook_path=settings.zalo_webhook_path,
        window=timedelta(hours=settings.zalo_window_hours),
        zns_template_id=settings.zalo_zns_template_id,
        oa_name=settings.zalo_oa_name,
        info_image_url=settings.zalo_info_image_url,
    )


def http_session() -> aiohttp.ClientSession:
    """The client for Zalo: the machine's proxy settings (HTTP(S)_PROXY) are honoured."""
    return aiohttp.ClientSession(trust_env=True, timeout=aiohttp.ClientTimeout(total=60))


def link_maker(links: FileLinks) -> Callable[[Path], str | None]:
    """A download link for a file under `exports/<person id>/`, for that person only."""

    def make(path: Path) -> str | None:
        try:
            person = int(path.resolve().relative_to(links.root).parts[0])
            return links.link(person, path)
        except (ValueError, IndexError):
            return None

    return make


@contextlib.asynccontextmanager
async def serving(
    deps: Deps,
    config: ZaloConfig,
    listen: str,
    port: int,
    *,
    links: FileLinks | None = None,
    checks: dict[str, Check] | None = None,
) -> AsyncIterator[ZaloChannel]:
    """The webhook server (with /healthz and the download links) and the API client, for as
    long as the block runs."""
    async with http_session() as http:
        api = ZaloApi(config, deps, http)
        channel = ZaloChannel(deps, api)
        app = web.Application(client_max_size=2 * 1024 * 1024)
        channel.routes(app)
        all_checks = {**(checks or {}), "zalo": api.health}
        health_routes(app, all_checks)
        if links is not None:
            file_routes(app, links, active_people(deps.sessions))
            api.links = link_maker(links)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen, port)
        await site.start()
        log.info("Zalo webhook listening on %s:%s%s", listen, port, config.webhook_path)
        channel.resume()
        try:
            yield channel
        finally:
            await channel.stop()
            await runner.cleanup()
