"""Zalo Official Account: a signed webhook in, the OA Open API (v3 messages) out.

Incoming events are verified (header `X-ZEvent-Signature: mac=<sha256 hex of app_id + raw body +
timestamp + OA secret key>`), acknowledged at once and handled in the background; the same
Incoming/Reply port as Telegram, so no handler knows it is Zalo. Buttons are `oa.query.hide`
buttons whose payload comes back as the user's text, marked with a leading `#`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select

from bot.channels import split_text
from handlers import conversation
from handlers.context import Deps
from handlers.port import Attachment, Button, Incoming, Reply
from reminders.sender import Delivery
from store import i18n
from store.access import mark_unreachable
from store.db import unit_of_work
from store.models import ChannelIdentity, Person, ZaloToken

log = logging.getLogger(__name__)

CHANNEL = "zalo"
MAX_TEXT = 2000
MAX_BUTTONS = 5
PAYLOAD_MARK = "#"
SIGNATURE_MAX_AGE = timedelta(minutes=5)
REFRESH_BEFORE = timedelta(minutes=10)
TOKEN_ERRORS = {-216, -124}
# Zalo's error codes as they appear in logs (the OA API documents many more).
ERRORS = {
    -124: "the access token is invalid",
    -201: "a parameter is invalid",
    -210: "the parameter is out of its allowed range",
    -213: "the user has not followed the OA (or unfollowed it)",
    -216: "the access token has expired or is invalid",
    -230: "the user has not interacted with the OA recently: outside the messaging window",
    -232: "the OA has no quota left for this kind of message",
    -240: "this API version is no longer supported",
}
OUT_OF_WINDOW = {-213, -230, -232}


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
    window: timedelta = timedelta(hours=48)
    zns_template_id: str = ""


class ZaloError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"Zalo error {code}: {ERRORS.get(code, message)}")
        self.code = code


def signature(app_id: str, body: bytes, timestamp: str, secret: str) -> str:
    raw = app_id.encode() + body + timestamp.encode() + secret.encode()
    return "mac=" + hashlib.sha256(raw).hexdigest()


class ZaloApi:
    """The OA Open API with its tokens: the access token is refreshed before it expires, and the
    rotated (single-use) refresh token is saved in the store at once."""

    def __init__(self, config: ZaloConfig, deps: Deps, http: aiohttp.ClientSession) -> None:
        self.config = config
        self.deps = deps
        self.http = http
        self._lock = asyncio.Lock()

    async def _stored(self) -> ZaloToken:
        async with unit_of_work(self.deps.sessions) as session:
            row = await session.scalar(select(ZaloToken).order_by(ZaloToken.id).limit(1))
            if row is None:  # first start: the tokens from the settings
                row = ZaloToken(
                    access_token=self.config.access_token,
                    refresh_token=self.config.refresh_token,
                    expires_at=self.deps.clock()
                    if not self.config.access_token
                    else self.deps.clock() + timedelta(hours=1),
                )
                session.add(row)
            return row

    async def token(self) -> str:
        row = await self._stored()
        if row.expires_at - REFRESH_BEFORE <= self.deps.clock():
            return await self.refresh(row.access_token)
        return row.access_token

    async def refresh(self, stale: str) -> str:
        async with self._lock:
            row = await self._stored()
            if row.access_token != stale and row.expires_at - REFRESH_BEFORE > self.deps.clock():
                return row.access_token  # another task refreshed it meanwhile
            async with self.http.post(
                f"{self.config.oauth_url}/v4/oa/access_token",
                headers={"secret_key": self.config.app_secret},
                data={
                    "refresh_token": row.refresh_token,
                    "app_id": self.config.app_id,
                    "grant_type": "refresh_token",
                },
            ) as response:
                body = await response.json(content_type=None)
            if "access_token" not in body:
                raise ZaloError(int(body.get("error", -216)), str(body.get("error_description")))
            async with unit_of_work(self.deps.sessions) as session:
                saved = await session.get(ZaloToken, row.id)
                assert saved is not None
                saved.access_token = body["access_token"]
                saved.refresh_token = body["refresh_token"]
                saved.expires_at = self.deps.clock() + timedelta(seconds=int(body["expires_in"]))
                saved.updated_at = self.deps.clock()
            log.info("Zalo access token refreshed")
            return str(body["access_token"])

    async def call(
        self,
        path: str,
        *,
        payload: Any = None,
        form: aiohttp.FormData | None = None,
        base: str | None = None,
    ) -> dict[str, Any]:
        """POST to the OA API; on a token error, refresh once and try again."""
        for attempt in (1, 2):
            token = await self.token()
            async with self.http.post(
                f"{base or self.config.api_url}{path}",
                headers={"access_token": token},
                json=payload if form is None else None,
                data=form,
            ) as response:
                body: dict[str, Any] = await response.json(content_type=None)
            code = int(body.get("error", 0))
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

    async def send(self, user_id: str, reply: Reply) -> None:
        buttons = [b for row in reply.buttons for b in row]
        chunks = split_text(reply.text, MAX_TEXT) if reply.text else []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            await self._text(user_id, chunk, buttons[:MAX_BUTTONS] if last else [])
        for start in range(MAX_BUTTONS, len(buttons), MAX_BUTTONS):
            await self._text(user_id, "…", buttons[start : start + MAX_BUTTONS])
        for photo in reply.photos:
            await self.image(user_id, photo.path.read_bytes(), photo.path.name, photo.caption)
        if reply.file is not None:
            await self.file(user_id, reply.file.read_bytes(), reply.file.name)

    async def _text(self, user_id: str, text: str, buttons: list[Button]) -> None:
        message: dict[str, Any] = {"text": text}
        if buttons:
            message["attachment"] = {
                "type": "template",
                "payload": {
                    "buttons": [
                        {
                            "title": b.label[:100],
                            "type": "oa.query.hide",
                            "payload": PAYLOAD_MARK + b.payload,
                        }
                        for b in buttons
                    ]
                },
            }
        await self.call(
            "/v3.0/oa/message/cs", payload={"recipient": {"user_id": user_id}, "message": message}
        )

    async def image(self, user_id: str, data: bytes, name: str, caption: str = "") -> None:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type="image/jpeg")
        uploaded = await self.call("/v2.0/oa/upload/image", form=form)
        element: dict[str, Any] = {
            "media_type": "image",
            "attachment_id": uploaded["data"]["attachment_id"],
        }
        message: dict[str, Any] = {
            "attachment": {
                "type": "template",
                "payload": {"template_type": "media", "elements": [element]},
            }
        }
        if caption:
            message["text"] = caption
        await self.call(
            "/v3.0/oa/message/cs", payload={"recipient": {"user_id": user_id}, "message": message}
        )

    async def file(self, user_id: str, data: bytes, name: str) -> None:
        form = aiohttp.FormData()
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
        uploaded = await self.call("/v2.0/oa/upload/file", form=form)
        message = {"attachment": {"type": "file", "payload": {"token": uploaded["data"]["token"]}}}
        await self.call(
            "/v3.0/oa/message/cs", payload={"recipient": {"user_id": user_id}, "message": message}
        )

    async def template(
        self, phone: str, template_id: str, data: dict[str, str], tracking: str
    ) -> None:
        """A Zalo Notification Service message, for a reminder outside the messaging window."""
        payload = {
            "phone": phone,
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking,
        }
        await self.call("/message/template", payload=payload, base=self.config.zns_url)

    async def download(self, url: str) -> bytes:
        async with self.http.get(url) as response:
            response.raise_for_status()
            return await response.read()


def to_incoming(event: dict[str, Any], fetch: Callable[[str], Awaitable[bytes]]) -> Incoming | None:
    """A webhook event as the handlers see it; None for events we ignore."""
    name = str(event.get("event_name", ""))
    sender = event.get("sender") or event.get("follower") or {}
    user = str(sender.get("id", ""))
    if not user:
        return None
    message = event.get("message") or {}
    update = str(message.get("msg_id") or f"{name}:{user}:{event.get('timestamp')}")
    base = Incoming(channel=CHANNEL, chat_id=user, update_id=update)
    if name == "follow":
        return base
    if name == "user_send_text":
        text = str(message.get("text", "")).strip()
        if text.startswith(PAYLOAD_MARK) and len(text) > 1:
            return dataclasses.replace(base, payload=text[1:])
        return dataclasses.replace(base, text=text)
    attachments = message.get("attachments") or []
    if name == "user_send_location" and attachments:
        where = attachments[0].get("payload", {}).get("coordinates", {})
        return dataclasses.replace(
            base, location=(float(where["latitude"]), float(where["longitude"]))
        )
    if name in ("user_send_image", "user_send_file") and attachments:
        files = []
        for item in attachments:
            payload = item.get("payload", {})
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
    return dataclasses.replace(base, text="", payload="unsupported:" + name)


class ZaloChannel:
    """The webhook endpoint and the replies."""

    def __init__(self, deps: Deps, api: ZaloApi) -> None:
        self.deps = deps
        self.api = api
        self.config = api.config
        self._tasks: set[asyncio.Task[None]] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.config.webhook_path, self.on_webhook)

    def verify(self, body: bytes, header: str | None) -> dict[str, Any] | None:
        """The event, if its signature is right and recent; None otherwise."""
        if not header:
            return None
        try:
            event = json.loads(body)
            timestamp = str(event["timestamp"])
            app_id = str(event["app_id"])
        except (ValueError, KeyError, TypeError):
            return None
        expected = signature(app_id, body, timestamp, self.config.oa_secret_key)
        if not hmac.compare_digest(expected.encode(), header.strip().encode()):
            return None
        age = abs(self.deps.clock().timestamp() - int(timestamp) / 1000)
        if age > SIGNATURE_MAX_AGE.total_seconds():
            return None
        return event if isinstance(event, dict) else None

    async def on_webhook(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = self.verify(body, request.headers.get("X-ZEvent-Signature"))
        if event is None:
            return web.json_response({"error": "signature"}, status=401)
        task = asyncio.create_task(self.handle(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"ok": True})

    async def drain(self) -> None:
        """Wait for the events still being handled (tests, shut-down)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def handle(self, event: dict[str, Any]) -> None:
        try:
            if event.get("event_name") == "unfollow":
                user = str((event.get("follower") or {}).get("id", ""))
                async with unit_of_work(self.deps.sessions) as session:
                    await mark_unreachable(session, CHANNEL, user)
                return
            incoming = to_incoming(event, self.api.download)
            if incoming is None:
                return
            if incoming.payload and incoming.payload.startswith("unsupported:"):
                _ = i18n.gettext_for(self.deps.config.default_locale)
                replies = [Reply(_("Sorry, the bot cannot read this kind of message yet."))]
            else:
                replies = await conversation.handle(incoming, self.deps)
            for reply in replies:
                await self.api.send(incoming.chat_id, reply)
        except Exception:
            log.exception("Zalo event %s failed", event.get("event_name"))


class ZaloNotifier:
    """Reminders on Zalo: a normal message inside the window after the person's last message;
    outside it, a ZNS template message when a template and their phone are known; otherwise
    unreachable (listed in the admins' digest)."""

    channels = frozenset({CHANNEL})

    def __init__(self, api: ZaloApi) -> None:
        self.api = api

    async def send(self, channel: str, chat_id: str, reply: Reply) -> Delivery:
        deps = self.api.deps
        async with deps.sessions() as session:
            row = (
                await session.execute(
                    select(ChannelIdentity.last_seen_at, Person.phone, Person.full_name)
                    .join(Person, Person.id == ChannelIdentity.person_id)
                    .where(
                        ChannelIdentity.channel == CHANNEL, ChannelIdentity.external_id == chat_id
                    )
                )
            ).first()
        last_seen, phone, name = row if row else (None, None, "")
        inside = last_seen is not None and deps.clock() - last_seen < self.api.config.window
        if inside:
            try:
                await self.api.send(chat_id, reply)
                return Delivery.SENT
            except ZaloError as exc:
                if exc.code not in OUT_OF_WINDOW:
                    return Delivery.FAILED
        if self.api.config.zns_template_id and phone:
            try:
                await self.api.template(
                    phone,
                    self.api.config.zns_template_id,
                    {"name": name or "", "content": reply.text[:400]},
                    tracking=f"ccn-{chat_id}-{int(time.time())}",
                )
                return Delivery.SENT
            except ZaloError:
                return Delivery.FAILED
        return Delivery.UNREACHABLE


def config_from(settings: Any) -> ZaloConfig:
    secret = settings.zalo_app_secret.get_secret_value()
    return ZaloConfig(
        app_id=settings.zalo_app_id,
        app_secret=secret,
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
    )


@contextlib.asynccontextmanager
async def serving(deps: Deps, config: ZaloConfig, listen: str, port: int) -> Any:
    """The webhook server and the API client, for as long as the block runs."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        api = ZaloApi(config, deps, http)
        channel = ZaloChannel(deps, api)
        app = web.Application(client_max_size=2 * 1024 * 1024)
        channel.routes(app)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen, port)
        await site.start()
        log.info("Zalo webhook listening on %s:%s%s", listen, port, config.webhook_path)
        try:
            yield channel
        finally:
            await channel.drain()
            await runner.cleanup()
