"""A stand-in for Zalo's OA Open API, OAuth and ZNS servers on loopback, and a Zalo that sends
signed webhook events, for the tests.

It refuses what the real Zalo refuses, as bot/channels/ZALO.md documents it (§ numbers below
are that file's sections): a request the bot must never send is answered with Zalo's error and
listed in `refused`; every error answer is also listed in `errors`. Time comes from `clock`, so
tests on a fixed clock see the 7-day messaging window and the 25 h token lifetime move with it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import re
import secrets
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

APP_ID = "4242424242"
OA_ID = "oa-1"
OA_SECRET = "oa-secret-key"
APP_SECRET = "app-secret"

MAX_TEXT = 2000  # §1 "Max text 2000 chars"
WINDOW = timedelta(days=7)  # §2 CS messages within 7 days of the last interaction
TOKEN_LIFETIME = timedelta(seconds=90000)  # §6 access token lives 25 h
IMAGE_MAX = 1024 * 1024  # §3 image ≤ 1 MB
FILE_MAX = 5 * 1024 * 1024  # §3 file ≤ 5 MB
TITLE_MAX = 100  # assumption: request_user_info title cap (not documented)
SUBTITLE_MAX = 500  # assumption: request_user_info subtitle cap (not documented)
TRACKING_MAX = 48  # assumption: ZNS tracking_id cap (not in ZALO.md)
OAUTH_BAD_REQUEST = -14002  # assumption: ZALO.md gives no code for a malformed OAuth request

JPEG = b"\xff\xd8\xff"
PNG = b"\x89PNG\r\n\x1a\n"
GIF = (b"GIF87a", b"GIF89a")
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP = b"PK\x03\x04"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# §4 ZNS param types and their max chars (ZNSP1/ZNSP2 copies of Zalo's table).
PARAM_TYPES: dict[str, int] = {
    "name": 30,
    "phone": 15,
    "address": 200,
    "code": 30,
    "label": 30,
    "status": 30,
    "contact": 50,
    "title": 5,
    "product": 200,
    "amount": 20,
    "time": 20,
    "otp": 10,
    "url": 200,
    "currency": 12,
    "bank_note": 90,
}
# §4 time params: `hh:mm:ss dd/mm/yyyy`, `hh:mm dd/mm/yyyy`, `dd/mm/yyyy` or `mm/yyyy`.
TIME_FORMATS = {
    re.compile(r"\d{2}:\d{2}:\d{2} \d{2}/\d{2}/\d{4}"): "%H:%M:%S %d/%m/%Y",
    re.compile(r"\d{2}:\d{2} \d{2}/\d{2}/\d{4}"): "%H:%M %d/%m/%Y",
    re.compile(r"\d{2}/\d{2}/\d{4}"): "%d/%m/%Y",
    re.compile(r"\d{2}/\d{4}"): "%m/%Y",
}
NUMBER = re.compile(r"-?\d+(\.\d+)?")  # §4 numbers as `1000` or `0.3`
PHONE = re.compile(r"84\d{9}")  # §4 send `84` plus 9 digits (-108 otherwise)


def default_templates() -> dict[str, dict[str, tuple[str, int]]]:
    """The ZNS template registered for the bot's reminders: param name → (type, max chars).
    A cluster's name ("Cụm công nghiệp làng nghề Đại Thắng") outgrows a 30-char label, so
    `cluster` is a product/brand param, at the stricter 100 chars of the newer table copy."""
    return {
        "ccn-reminder": {
            "customer_name": ("name", 30),
            "cluster": ("product", 100),
            "period": ("label", 30),
            "deadline": ("time", 20),
        }
    }


def sniff(data: bytes) -> str | None:
    """The content type judged from the bytes, for the types Zalo takes (§3); None otherwise."""
    if data.startswith(JPEG):
        return "image/jpeg"
    if data.startswith(PNG):
        return "image/png"
    if data.startswith(GIF):
        return "image/gif"
    if data.startswith(b"%PDF"):
        return "application/pdf"
    # An OLE2 compound file is a .doc only with a WordDocument stream (an .xls has Workbook).
    if data.startswith(OLE2) and "WordDocument".encode("utf-16-le") in data:
        return "application/msword"
    if data.startswith(ZIP):
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return None
        return DOCX if "word/document.xml" in names else None  # an .xlsx has xl/ instead
    return None


def mac(body: bytes, event: dict[str, Any], secret: str = OA_SECRET) -> str:
    """§5: sha256(app_id + raw body + timestamp + OA secret key), lowercase hex."""
    raw = str(event["app_id"]).encode() + body + str(event["timestamp"]).encode() + secret.encode()
    return hashlib.sha256(raw).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Refused(Exception):
    """A request Zalo answers with an error code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def _only(where: str, value: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(value) - allowed
    if unknown:
        raise Refused(-201, f"{where}: unknown keys {sorted(unknown)} (§1 v3 CS shapes)")


def _keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _keys(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keys(item)


def _text(value: Any, where: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Refused(-201, f"{where} must be a non-empty string")
    if len(value) > limit:
        raise Refused(-201, f"{where} is {len(value)} chars, over {limit}")
    return value


def _url(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise Refused(-201, f"{where} must be an http(s) URL")


def _as_dict(body: Any) -> dict[str, Any]:
    return body if isinstance(body, dict) else {"body": body}


def _time(value: str) -> bool:
    for pattern, fmt in TIME_FORMATS.items():
        if pattern.fullmatch(value):
            try:
                datetime.strptime(value, fmt)
            except ValueError:
                return False
            return True
    return False


@dataclass
class Sent:
    user_id: str
    message: dict[str, Any]
    message_id: str = ""

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))

    @property
    def kind(self) -> str:
        """text, media, file or request_user_info."""
        attachment = self.message.get("attachment")
        if not attachment:
            return "text"
        if attachment["type"] == "file":
            return "file"
        return str(attachment["payload"]["template_type"])

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """Always empty now that buttons are refused (§1); kept for older tests."""
        payload = (self.message.get("attachment") or {}).get("payload") or {}
        return [(b["title"], b["payload"]) for b in payload.get("buttons", [])]


@dataclass
class Upload:
    kind: str  # image or file
    filename: str  # as declared in the multipart part
    content_type: str  # as declared in the multipart part
    sniffed: str  # as judged from the bytes
    data: bytes
    at: datetime


@dataclass
class StandinZalo:
    access_token: str = "access-0"
    refresh_token: str = "refresh-0"
    clock: Callable[[], datetime] = _utc_now
    token_expires_at: datetime | None = None  # set to clock() + 25 h by start() when None
    window_closed: set[str] = field(default_factory=set)  # users forced outside the window
    last_interaction: dict[str, datetime] = field(default_factory=dict)
    welcome: dict[str, int] = field(default_factory=dict)  # messages allowed after a follow
    templates: dict[str, dict[str, tuple[str, int]]] = field(default_factory=default_templates)
    mac_prefix: bool = True  # sign() writes `mac=<hex>`; §5 says the prefix is unconfirmed
    oauth_down: bool = False  # the OAuth server answers HTTP 502
    outage: int = 0  # the next N API calls answer HTTP 503 (a server in trouble)
    outages_seen: int = 0
    oauth_refuses: bool = False  # the OAuth server refuses every refresh (-14014)
    rate_limit_per_minute: int | None = None  # §8: OA API calls over it get -32
    sent: list[Sent] = field(default_factory=list)
    refused: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # malformed requests
    errors: list[tuple[int, str]] = field(default_factory=list)  # every error answer: code, path
    uploads: dict[str, bytes] = field(default_factory=dict)
    upload_info: dict[str, Upload] = field(default_factory=dict)
    zns: list[dict[str, Any]] = field(default_factory=list)
    refreshes: int = 0
    token_errors: int = 0
    media: dict[str, bytes] = field(default_factory=dict)
    media_delay: dict[str, float] = field(default_factory=dict)  # name → seconds before serving
    root: str = ""
    _used_refresh_tokens: set[str] = field(default_factory=set)
    _calls: dict[int, int] = field(default_factory=dict)  # minute → OA API calls
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        if self.token_expires_at is None:
            self.token_expires_at = self.clock() + TOKEN_LIFETIME
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/v4/oa/access_token", self._oauth)
        app.router.add_post("/v3.0/oa/message/cs", self._message)
        app.router.add_post("/v2.0/oa/upload/image", self._upload)
        app.router.add_post("/v2.0/oa/upload/file", self._upload)
        app.router.add_post("/message/template", self._template)
        app.router.add_get("/media/{name}", self._media)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.root = f"http://127.0.0.1:{port}"
        return self.root

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test controls -----------------------------------------------------------------------

    def expire_token(self) -> None:
        """Zalo invalidates the access token: the next call gets -216 (ZNS: -124)."""
        self.access_token = f"access-{secrets.token_hex(4)}"

    def expire_after(self, seconds: float) -> None:
        """The access token expires `seconds` from now on the clock: then -220 (ZNS: -124)."""
        self.token_expires_at = self.clock() + timedelta(seconds=seconds)

    def interact(self, user_id: str, at: datetime) -> None:
        """The user's last interaction with the OA, which opens the 7-day window (§2)."""
        self.last_interaction[user_id] = at

    def to(self, user_id: str) -> list[Sent]:
        return [s for s in self.sent if s.user_id == user_id]

    def publish(self, name: str, data: bytes) -> str:
        """A file Zalo hosts for an incoming event; its URL."""
        self.media[name] = data
        return f"{self.root}/media/{name}"

    # --- the person's side: signed webhook events ----------------------------------------

    def event(
        self, name: str, user_id: str, /, *, msg_id: str | None = None, **message: Any
    ) -> dict[str, Any]:
        """A webhook event stamped from the clock (§5: `timestamp` in ms, a string). A user_send_*
        or user_submit_info event is an interaction: it opens the user's 7-day window (§2)."""
        now = self.clock()
        body: dict[str, Any] = {
            "app_id": APP_ID,
            "event_name": name,
            "timestamp": str(int(now.timestamp() * 1000)),
            "user_id_by_app": f"app-{user_id}",
        }
        if name in ("follow", "unfollow"):
            # §5: follower.id, oa_id, source, and no sender
            body.update(
                oa_id=OA_ID, follower={"id": user_id}, source=message.get("source", "oa_profile")
            )
            if name == "follow":  # §1/§2: a follow grants one `welcome_msg` quota message
                self.welcome[user_id] = 1
            return body
        if name.startswith("oa_send_") or name in ("user_received_message", "user_seen_message"):
            # §5 echoes: sender is the OA. Statuses likewise (assumption: the Summary notes the
            # bot reads them "from the OA's id")
            body.update(sender={"id": OA_ID}, recipient={"id": user_id})
        else:
            body.update(sender={"id": user_id}, recipient={"id": OA_ID})
        if name == "user_submit_info":
            body["info"] = dict(message)  # §5: the older documented shape
        elif name == "user_seen_message":
            body["message"] = dict(message)  # §5: message.msg_ids[], no msg_id
        else:
            body["message"] = {"msg_id": msg_id or self._new_id("m"), **message}
        if name.startswith("user_send_") or name == "user_submit_info":
            self.last_interaction[user_id] = now
        return body

    def submit_info(
        self,
        user_id: str,
        *,
        name: str,
        phone: str,
        address: str = "",
        city: str = "",
        district: str = "",
    ) -> dict[str, Any]:
        """§5 user_submit_info, older shape; the phone as Zalo sends it, `84…`."""
        return self.event(
            "user_submit_info",
            user_id,
            name=name,
            phone=phone,
            address=address,
            city=city,
            district=district,
        )

    def oa_send_text(self, user_id: str, text: str) -> dict[str, Any]:
        """§5 echo of a text the OA sent (sender = OA, recipient = user)."""
        return self.event("oa_send_text", user_id, text=text)

    def received(self, user_id: str, msg_id: str) -> dict[str, Any]:
        """§5 user_received_message: the user's phone got the OA's message."""
        return self.event("user_received_message", user_id, msg_id=msg_id)

    def seen(self, user_id: str, msg_ids: list[str]) -> dict[str, Any]:
        """§5 user_seen_message, with message.msg_ids."""
        return self.event("user_seen_message", user_id, msg_ids=list(msg_ids))

    def sticker(self, user_id: str, sticker_id: str = "st-1") -> dict[str, Any]:
        """§5 user_send_sticker: an attachment {url, id}."""
        url = f"{self.root}/media/sticker-{sticker_id}.png"
        return self.event(
            "user_send_sticker",
            user_id,
            attachments=[{"type": "sticker", "payload": {"id": sticker_id, "url": url}}],
        )

    def follow(self, user_id: str, source: str = "oa_profile") -> dict[str, Any]:
        """§5 follow (source: oa_profile | message_invite | social_plugin); not an interaction."""
        return self.event("follow", user_id, source=source)

    def sign(
        self,
        body: bytes,
        event: dict[str, Any],
        secret: str = OA_SECRET,
        *,
        mac_prefix: bool | None = None,
        num_retry: int | None = None,
    ) -> dict[str, str]:
        """The headers Zalo posts the event with: its signature (§5; `mac=` prefixed unless
        `mac_prefix` or the field says otherwise) and, for a redelivery, `num_retry`."""
        digest = mac(body, event, secret)
        prefixed = self.mac_prefix if mac_prefix is None else mac_prefix
        headers = {
            "X-ZEvent-Signature": f"mac={digest}" if prefixed else digest,
            "Content-Type": "application/json",
        }
        if num_retry is not None:
            headers["num_retry"] = str(num_retry)  # §5 retries carry a num_retry header
        return headers

    @staticmethod
    def encode(event: dict[str, Any]) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode()

    # --- the API side ----------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}-{secrets.token_hex(3)}"

    def _error(
        self, request: web.Request, code: int, message: str, body: Any = None
    ) -> web.Response:
        """Zalo's error answer: HTTP 200 and `error != 0` (Summary: "never trust the HTTP
        status"). `body` is given for a malformed request, which goes to `refused`."""
        self.errors.append((code, request.path))
        if body is not None:
            self.refused.append((f"{request.path}: {message}", body))
        return web.json_response({"error": code, "message": message})

    def _gate(self, request: web.Request, *, zns: bool = False) -> web.Response | None:
        """The token and rate checks every API call passes first; an error answer or None."""
        if self.outage > 0:  # a network or server failure: HTTP 503, nothing recorded
            self.outage -= 1
            self.outages_seen += 1
            return web.Response(status=503, text="Service Unavailable")
        if request.headers.get("access_token") != self.access_token:
            self.token_errors += 1
            # §6: -216 invalid access token; §4: ZNS says -124
            return self._error(request, -124 if zns else -216, "Access token is invalid")
        if self.token_expires_at is not None and self.clock() >= self.token_expires_at:
            self.token_errors += 1
            # §6: -220 expired; assumption: ZNS, whose table has no expiry code, says -124
            return self._error(request, -124 if zns else -220, "Access token has expired")
        if self.rate_limit_per_minute is not None and not zns:
            minute = int(self.clock().timestamp() // 60)
            self._calls[minute] = self._calls.get(minute, 0) + 1
            if self._calls[minute] > self.rate_limit_per_minute:
                return self._error(request, -32, "Rate limit reached")  # §8
        return None

    async def _json(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except ValueError as exc:
            raise Refused(-201, "the body is not JSON") from exc

    async def _oauth(self, request: web.Request) -> web.Response:
        if self.oauth_down:
            return web.Response(status=502, text="Bad Gateway")

        def oauth_error(code: int, name: str, refused: Any = None) -> web.Response:
            # §6: OAuth errors carry error and error_name/error_description, not message
            self.errors.append((code, request.path))
            if refused is not None:
                self.refused.append((f"{request.path}: {name}", refused))
            return web.json_response({"error": code, "error_name": name, "error_description": name})

        # §6: a form, header secret_key (the App secret), refresh_token, app_id, grant_type
        if request.content_type != "application/x-www-form-urlencoded":
            return oauth_error(OAUTH_BAD_REQUEST, "Invalid request", {})
        form = {key: str(value) for key, value in (await request.post()).items()}
        if (
            request.headers.get("secret_key") != APP_SECRET
            or form.get("app_id") != APP_ID
            or form.get("grant_type") != "refresh_token"
        ):
            return oauth_error(OAUTH_BAD_REQUEST, "Invalid app or request", form)
        if self.oauth_refuses:
            return oauth_error(-14014, "Invalid refresh token")
        if form.get("refresh_token") != self.refresh_token:
            # §6: single-use refresh tokens; -14014 per [REFRESH-T] (not confirmed)
            used = form.get("refresh_token") in self._used_refresh_tokens
            return oauth_error(
                -14014, "Refresh token already used" if used else "Invalid refresh token"
            )
        self._used_refresh_tokens.add(self.refresh_token)
        self.refreshes += 1
        # §6: a new pair; the old access token stops working at once
        self.access_token = f"access-{self.refreshes}-{secrets.token_hex(3)}"
        self.refresh_token = f"refresh-{self.refreshes}-{secrets.token_hex(3)}"
        self.token_expires_at = self.clock() + TOKEN_LIFETIME
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": str(int(TOKEN_LIFETIME.total_seconds())),  # §6: "90000", a string
            }
        )

    async def _message(self, request: web.Request) -> web.Response:
        if (gated := self._gate(request)) is not None:
            return gated
        body: Any = None
        try:
            body = await self._json(request)
            user, message = self._consultation(body)
        except Refused as refusal:
            return self._error(request, refusal.code, refusal.reason, _as_dict(body))
        if user in self.window_closed:
            return self._error(request, -230, "User has not interacted with the OA in 7 days")
        last = self.last_interaction.get(user)
        if last is None and self.welcome.get(user, 0) > 0:
            self.welcome[user] -= 1  # the one welcome message after a follow (quota welcome_msg)
        elif last is None:  # §2: -232 no interaction yet
            return self._error(request, -232, "User has not interacted with the OA")
        elif self.clock() - last > WINDOW:  # §2: -230 outside 7 days
            return self._error(request, -230, "User has not interacted with the OA in 7 days")
        sent = Sent(user, message, self._new_id("out"))
        self.sent.append(sent)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "message_id": sent.message_id,
                    "user_id": user,
                    "sent_time": str(int(self.clock().timestamp() * 1000)),
                },
            }
        )

    def _consultation(self, body: Any) -> tuple[str, dict[str, Any]]:
        """The recipient and message of a documented v3 CS body (§1); Refused otherwise."""
        if not isinstance(body, dict):
            raise Refused(-201, "the body is not a JSON object")
        _only("body", body, {"recipient", "message"})
        recipient = body.get("recipient")
        if (
            not isinstance(recipient, dict)
            or set(recipient) != {"user_id"}
            or not isinstance(recipient["user_id"], str)
            or not recipient["user_id"]
        ):
            raise Refused(-201, 'recipient must be {"user_id": <str>}')
        message = body.get("message")
        if not isinstance(message, dict):
            raise Refused(-201, "message must be an object")
        if "buttons" in _keys(message):
            # §1: buttons are only in transaction/promotion templates, not in CS
            raise Refused(-201, "buttons are not part of a v3 CS message")
        if "attachment" not in message:
            # §1 text: message.text ≤ 2000 chars, optional quote_message_id
            _only("message", message, {"text", "quote_message_id"})
            _text(message.get("text"), "message.text", MAX_TEXT)
            quote = message.get("quote_message_id", "id")
            if not isinstance(quote, str) or not quote:
                raise Refused(-201, "message.quote_message_id must be a message id")
            return recipient["user_id"], message
        attachment = message["attachment"]
        if not isinstance(attachment, dict) or not isinstance(attachment.get("payload"), dict):
            raise Refused(-201, "message.attachment must be {type, payload{…}}")
        _only("message.attachment", attachment, {"type", "payload"})
        payload: dict[str, Any] = attachment["payload"]
        if attachment.get("type") == "file":
            # §1 file: attachment{type:"file", payload{token}}, the token from /upload/file
            _only("message", message, {"attachment"})
            _only("payload", payload, {"token"})
            if payload.get("token") not in self._uploaded("file"):
                raise Refused(-201, "payload.token is not a file upload token")
            return recipient["user_id"], message
        if attachment.get("type") != "template":
            raise Refused(-201, f"attachment type {attachment.get('type')!r} is not a CS shape")
        if "template_type" not in payload:
            raise Refused(-201, "an attachment template needs a template_type")
        _only("payload", payload, {"template_type", "elements"})
        elements = payload.get("elements")
        if (
            not isinstance(elements, list)
            or len(elements) != 1
            or not isinstance(elements[0], dict)
        ):
            raise Refused(-201, "payload.elements must hold exactly one object")
        element: dict[str, Any] = elements[0]
        if payload["template_type"] == "media":
            # §1 image: one {media_type:"image", attachment_id | url}, with an optional caption
            _only("message", message, {"attachment", "text"})
            if "text" in message:
                _text(message["text"], "message.text", MAX_TEXT)
            if element.get("media_type") != "image":
                raise Refused(-201, "media_type must be image (gif/sticker: not supported here)")
            sources = set(element) - {"media_type"}
            if sources == {"attachment_id"}:
                if element["attachment_id"] not in self._uploaded("image"):
                    raise Refused(-201, "attachment_id is not an image upload's")
            elif sources == {"url"}:
                _url(element["url"], "element.url")
            else:
                raise Refused(-201, "a media element takes one of attachment_id or url")
            return recipient["user_id"], message
        if payload["template_type"] == "request_user_info":
            # §1 request user info: one {title, subtitle, image_url}
            _only("message", message, {"attachment"})
            if set(element) != {"title", "subtitle", "image_url"}:
                raise Refused(-201, "a request_user_info element is {title, subtitle, image_url}")
            _text(element["title"], "element.title", TITLE_MAX)
            _text(element["subtitle"], "element.subtitle", SUBTITLE_MAX)
            _url(element["image_url"], "element.image_url")
            return recipient["user_id"], message
        raise Refused(-201, f"template_type {payload['template_type']!r} is not a CS shape")

    def _uploaded(self, kind: str) -> set[str]:
        return {key for key, upload in self.upload_info.items() if upload.kind == kind}

    async def _upload(self, request: web.Request) -> web.Response:
        if (gated := self._gate(request)) is not None:
            return gated
        kind = "image" if request.path.endswith("/image") else "file"
        try:
            form = await request.post()
        except ValueError:
            form = None
        upload = form.get("file") if form is not None else None
        if not isinstance(upload, web.FileField):
            # §3: a multipart field `file`
            return self._error(request, -201, "no multipart field file", {"kind": kind})
        data = upload.file.read()
        declared = {
            "kind": kind,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": len(data),
        }
        sniffed = sniff(data)
        # §3: image jpg/png ≤ 1 MB; file PDF/DOC/DOCX ≤ 5 MB, judged here from the bytes. The
        # codes are not confirmed (§3): -201 for a wrong type, -210 for a size over the limit.
        if kind == "image":
            if sniffed not in ("image/jpeg", "image/png"):
                return self._error(request, -201, "an image must be JPEG or PNG", declared)
            if len(data) > IMAGE_MAX:
                return self._error(request, -210, "an image must be at most 1 MB", declared)
        else:
            if sniffed not in ("application/pdf", "application/msword", DOCX):
                return self._error(request, -201, "a file must be PDF, DOC or DOCX", declared)
            if len(data) > FILE_MAX:
                return self._error(request, -210, "a file must be at most 5 MB", declared)
        key = self._new_id("up")
        self.uploads[key] = data
        self.upload_info[key] = Upload(
            kind, upload.filename, upload.content_type, sniffed, data, self.clock()
        )
        field_name = "attachment_id" if kind == "image" else "token"  # §3 response fields
        return web.json_response({"error": 0, "message": "Success", "data": {field_name: key}})

    async def _template(self, request: web.Request) -> web.Response:
        if (gated := self._gate(request, zns=True)) is not None:
            return gated
        body: Any = None
        try:
            body = await self._json(request)
            self._check_zns(body)
        except Refused as refusal:
            return self._error(request, refusal.code, refusal.reason, _as_dict(body))
        self.zns.append(body)
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {
                    "msg_id": self._new_id("zns"),
                    "sent_time": str(int(self.clock().timestamp() * 1000)),
                },
            }
        )

    def _check_zns(self, body: Any) -> None:
        """§4: {phone, template_id, template_data, tracking_id}; Refused otherwise."""
        if not isinstance(body, dict):
            raise Refused(-112, "the body is not a JSON object")
        if not isinstance(body.get("phone"), str) or not PHONE.fullmatch(body["phone"]):
            raise Refused(-108, "phone must be 84 and 9 digits")  # §4 -108
        params = self.templates.get(str(body.get("template_id")))
        if params is None:
            raise Refused(-109, "unknown template_id")  # §4 -109
        data = body.get("template_data")
        if not data:
            raise Refused(-111, "template_data is empty")  # §4 -111
        if not isinstance(data, dict):
            raise Refused(-112, "template_data must be an object")  # §4 -112
        missing, unknown = set(params) - set(data), set(data) - set(params)
        if missing or unknown:
            # §4 -112 template data invalid
            raise Refused(-112, f"params missing {sorted(missing)}, unknown {sorted(unknown)}")
        for name, value in data.items():
            kind, limit = params[name]
            text = str(value) if isinstance(value, int | float) and kind == "amount" else value
            # §4 -132 invalid parameter: typed max lengths and formats
            if not isinstance(text, str) or not text:
                raise Refused(-132, f"{name} must be a non-empty string")
            if len(text) > limit:
                raise Refused(-132, f"{name} is {len(text)} chars, over {limit} ({kind})")
            if kind == "time" and not _time(text):
                raise Refused(-132, f"{name} is not a time (dd/mm/yyyy…)")
            if kind == "amount" and not NUMBER.fullmatch(text):
                raise Refused(-132, f"{name} is not a number")
        tracking = body.get("tracking_id")
        if tracking is not None and (not isinstance(tracking, str) or len(tracking) > TRACKING_MAX):
            raise Refused(-132, f"tracking_id must be a string of at most {TRACKING_MAX} chars")

    async def _media(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        data = self.media.get(name)
        if data is None:
            raise web.HTTPNotFound()
        if self.media_delay.get(name):
            await asyncio.sleep(self.media_delay[name])  # a slow download from Zalo's servers
        return web.Response(body=data, content_type=sniff(data) or "application/octet-stream")
