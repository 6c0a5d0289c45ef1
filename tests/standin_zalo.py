"""A stand-in for Zalo's OA Open API, OAuth and ZNS servers on loopback, and a Zalo that sends
signed webhook events, for the tests."""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.channels.zalo import signature

APP_ID = "4242424242"
OA_SECRET = "oa-secret-key"
APP_SECRET = "app-secret"


@dataclass
class Sent:
    user_id: str
    message: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        payload = (self.message.get("attachment") or {}).get("payload") or {}
        return [(b["title"], b["payload"]) for b in payload.get("buttons", [])]


@dataclass
class StandinZalo:
    access_token: str = "access-0"
    refresh_token: str = "refresh-0"
    window_closed: set[str] = field(default_factory=set)  # users outside the messaging window
    sent: list[Sent] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    zns: list[dict[str, Any]] = field(default_factory=list)
    refreshes: int = 0
    token_errors: int = 0
    media: dict[str, bytes] = field(default_factory=dict)
    root: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
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

    def expire_token(self) -> None:
        """Zalo invalidates the access token: the next call gets error -216."""
        self.access_token = f"access-{secrets.token_hex(4)}"

    def to(self, user_id: str) -> list[Sent]:
        return [s for s in self.sent if s.user_id == user_id]

    def publish(self, name: str, data: bytes) -> str:
        """An image Zalo hosts for an incoming event; its URL."""
        self.media[name] = data
        return f"{self.root}/media/{name}"

    # --- the person's side: signed webhook events ----------------------------------------

    def event(
        self, name: str, user_id: str, *, msg_id: str | None = None, **message: Any
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "app_id": APP_ID,
            "event_name": name,
            "timestamp": str(int(time.time() * 1000)),
            "sender": {"id": user_id},
            "recipient": {"id": "oa-1"},
            "user_id_by_app": f"app-{user_id}",
        }
        if name in ("follow", "unfollow"):
            body["follower"] = body.pop("sender")
        else:
            body["message"] = {
                "msg_id": msg_id or f"m{next(self._ids)}-{secrets.token_hex(3)}",
                **message,
            }
        return body

    @staticmethod
    def sign(body: bytes, event: dict[str, Any], secret: str = OA_SECRET) -> dict[str, str]:
        return {
            "X-ZEvent-Signature": signature(event["app_id"], body, event["timestamp"], secret),
            "Content-Type": "application/json",
        }

    @staticmethod
    def encode(event: dict[str, Any]) -> bytes:
        return json.dumps(event, ensure_ascii=False).encode()

    # --- the API side ----------------------------------------------------------------------

    def _authorised(self, request: web.Request) -> bool:
        ok = request.headers.get("access_token") == self.access_token
        if not ok:
            self.token_errors += 1
        return ok

    async def _oauth(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.headers.get("secret_key") != APP_SECRET or form.get("app_id") != APP_ID:
            return web.json_response({"error": -14002, "error_description": "Invalid app"})
        if form.get("refresh_token") != self.refresh_token:  # single use
            return web.json_response(
                {"error": -14014, "error_description": "Invalid refresh token"}
            )
        self.refreshes += 1
        self.access_token = f"access-{self.refreshes}"
        self.refresh_token = f"refresh-{self.refreshes}"
        return web.json_response(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_in": "90000",
            }
        )

    async def _message(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        body = await request.json()
        user = str(body["recipient"]["user_id"])
        if user in self.window_closed:
            return web.json_response({"error": -230, "message": "User has not interacted"})
        message = body["message"]
        if len(message.get("text", "")) > 2000:
            return web.json_response({"error": -201, "message": "Text is too long"})
        buttons = ((message.get("attachment") or {}).get("payload") or {}).get("buttons", [])
        if len(buttons) > 5:
            return web.json_response({"error": -201, "message": "Too many buttons"})
        self.sent.append(Sent(user, message))
        return web.json_response(
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": f"out{next(self._ids)}", "user_id": user},
            }
        )

    async def _upload(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        key = f"up{next(self._ids)}"
        self.uploads[key] = upload.file.read()
        field_name = "attachment_id" if request.path.endswith("image") else "token"
        return web.json_response({"error": 0, "message": "Success", "data": {field_name: key}})

    async def _template(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": -216, "message": "Access token is invalid"})
        self.zns.append(await request.json())
        return web.json_response({"error": 0, "message": "Success", "data": {"msg_id": "zns1"}})

    async def _media(self, request: web.Request) -> web.Response:
        data = self.media.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="image/jpeg")
