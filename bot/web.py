"""The bot's own small web server: signed per-person download links and /healthz.

`mount()` adds both to an aiohttp Application (the Zalo webhook app); `make_app()` builds a
standalone one (a Telegram-only deployment).

Download links: `FileLinks.link()` signs (person id, path relative to the files root, expiry)
with HMAC-SHA256 under a key from `secret_from(LINK_SECRET)`. `GET /files/{token}` serves the
file only while the token verifies, has not expired, points inside `root/<person id>/`, and the
person is still active. Anyone holding the link can download until then, so links are sent
only to their person, are short-lived, and die when the person is revoked.

In production LINK_SECRET must be set to a long random value that stays the same across
restarts and workers (`python -c "import secrets; print(secrets.token_urlsafe(32))"`);
changing it invalidates every link already sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import mimetypes
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import quote

from aiohttp import hdrs, web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.context import Deps
from store.access import is_active_person
from store.health import ping

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[tuple[bool, str]]]
IsActive = Callable[[int], Awaitable[bool]]

FILES_PREFIX: Final = "/files/"
CHECK_TIMEOUT: Final = 3.0
MIN_SECRET_CHARS: Final = 16
MAX_TOKEN_CHARS: Final = 2048
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_VERSION: Final = "v1"
_KEY_LABEL: Final = b"ccn-bot/link-secret/v1\x00"
_MAC_LABEL: Final = b"ccn-bot/files/v1\x00"

# The page a refused link shows. It is served to whoever holds the URL, who is not known (so has
# no locale); Vietnamese is the default language, and the line is deliberately uninformative.
FORBIDDEN_TEXT: Final = "Liên kết không hợp lệ hoặc đã hết hạn."
NOT_FOUND_TEXT: Final = "Tệp không còn tồn tại."

CONTENT_TYPES: Final[Mapping[str, str]] = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pdf": "application/pdf",
    ".csv": "text/csv; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".zip": "application/zip",
}

LINKS_KEY: Final[web.AppKey[FileLinks]] = web.AppKey("ccn_file_links")
IS_ACTIVE_KEY: Final[web.AppKey[IsActive]] = web.AppKey("ccn_is_active")
CHECKS_KEY: Final[web.AppKey[Mapping[str, Check]]] = web.AppKey("ccn_health_checks")


def secret_from(value: str) -> bytes:
    """The link-signing key derived from the LINK_SECRET setting.

    Raises ValueError when the setting is empty or shorter than 16 characters: it must be set
    (to a long random value) wherever links are handed out.
    """
    value = value.strip()
    if len(value) < MIN_SECRET_CHARS:
        raise ValueError(
            f"LINK_SECRET must be set to a random value of at least {MIN_SECRET_CHARS} characters"
        )
    return hmac.new(_KEY_LABEL, value.encode(), hashlib.sha256).digest()


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decimal(text: str) -> int | None:
    """A canonical non-negative ASCII integer (`"42"`, not `"+42"`, `"042"` or `"٤٢"`)."""
    if not text.isascii() or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)


class FileLinks:
    """Signs and verifies download links for files under `root/<person id>/`."""

    def __init__(
        self,
        secret: bytes,
        public_url: str,
        root: Path,
        clock: Callable[[], datetime],
    ) -> None:
        """`secret` from `secret_from()`; `public_url` is where /files/ is reachable from outside
        (scheme and host, maybe a path prefix); `clock` returns an aware datetime."""
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError("the link secret is too short; use secret_from()")
        self._secret = secret
        self.public_url = public_url.rstrip("/")
        self.root = root.resolve()
        self.clock = clock

    def _folder(self, person_id: int) -> Path:
        return self.root / str(person_id)

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, _MAC_LABEL + payload, hashlib.sha256).digest()

    def _sign(self, person_id: int, relative: str, expires: int) -> str:
        payload = f"{_VERSION}:{person_id}:{expires}:{relative}".encode()
        return f"{_b64encode(payload)}.{_b64encode(self._mac(payload))}"

    def link(self, person_id: int, path: Path, *, ttl: timedelta = timedelta(days=7)) -> str:
        """The URL that lets `person_id` download `path` (inside `root/<person_id>/`) until
        now + `ttl`. Raises ValueError for any other path."""
        if isinstance(person_id, bool) or person_id <= 0:
            raise ValueError(f"not a person id: {person_id!r}")
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        target = (path if path.is_absolute() else self.root / path).resolve()
        folder = self._folder(person_id).resolve()
        if target == folder or not target.is_relative_to(folder):
            raise ValueError(f"{path} is not a file of person {person_id}")
        relative = target.relative_to(self.root).as_posix()
        if "\\" in relative:
            raise ValueError(f"{path}: a backslash in a file name cannot be linked")
        expires = int((self.clock() + ttl).timestamp())
        return f"{self.public_url}{FILES_PREFIX}{self._sign(person_id, relative, expires)}"

    def verify(self, token: str) -> tuple[int, Path] | None:
        """(person id, absolute path) for a genuine, unexpired token that stays inside its
        person's folder; None otherwise."""
        if len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
            return None
        encoded, mac = token.split(".")
        try:
            payload = _b64decode(encoded)
            given = _b64decode(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._mac(payload)):
            return None
        try:
            version, pid_text, expires_text, relative = payload.decode().split(":", 3)
        except ValueError:
            return None
        person_id, expires = _decimal(pid_text), _decimal(expires_text)
        if version != _VERSION or person_id is None or expires is None:
            return None
        if expires <= self.clock().timestamp():
            return None
        parts = PurePosixPath(relative).parts
        if (
            len(parts) < 2
            or parts[0] != str(person_id)
            or any(part in ("", ".", "..") or "\\" in part or "\x00" in part for part in parts)
        ):
            return None
        target = self.root.joinpath(*parts).resolve()
        if not target.is_relative_to(self._folder(person_id).resolve()):
            return None
        return person_id, target


def content_type(path: Path) -> str:
    """The Content-Type to serve `path` with."""
    suffix = path.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, encoding = mimetypes.guess_type(path.name)
    return guessed if guessed and not encoding else "application/octet-stream"


def _ascii_name(name: str) -> str:
    """`Báo cáo tháng 6.xlsx` → `Bao cao thang 6.xlsx`, safe inside a quoted header value."""
    name = name.replace("đ", "d").replace("Đ", "D")
    folded = "".join(
        ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch)
    )
    safe = "".join(ch if " " <= ch <= "~" and ch not in '"\\%' else "_" for ch in folded)
    return safe.strip() or "download"


def content_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename` and the exact UTF-8 `filename*` (RFC 6266/5987)."""
    return f"attachment; filename=\"{_ascii_name(name)}\"; filename*=UTF-8''{quote(name, safe='')}"


def _refused() -> web.Response:
    return web.Response(
        status=403,
        text=FORBIDDEN_TEXT + "\n",
        headers={hdrs.CACHE_CONTROL: "no-store", hdrs.REFERRER_POLICY: "no-referrer"},
    )


async def download(request: web.Request) -> web.StreamResponse:
    """GET /files/{token}: the file, 403 for a bad or revoked link, 404 if the file is gone."""
    # verify() resolves paths (file-system calls): keep it off the event loop.
    verified = await asyncio.to_thread(request.app[LINKS_KEY].verify, request.match_info["token"])
    if verified is None:
        return _refused()
    person_id, path = verified
    if not await request.app[IS_ACTIVE_KEY](person_id):
        return _refused()
    if not await asyncio.to_thread(path.is_file):
        return web.Response(status=404, text=NOT_FOUND_TEXT + "\n")
    return web.FileResponse(
        path,
        headers={
            hdrs.CONTENT_TYPE: content_type(path),
            hdrs.CONTENT_DISPOSITION: content_disposition(path.name),
            hdrs.CACHE_CONTROL: "private, no-store",
            hdrs.REFERRER_POLICY: "no-referrer",
            hdrs.X_CONTENT_TYPE_OPTIONS: "nosniff",
        },
    )


def file_routes(app: web.Application, links: FileLinks, is_active: IsActive) -> None:
    """Add GET /files/{token} to `app`."""
    app[LINKS_KEY] = links
    app[IS_ACTIVE_KEY] = is_active
    app.router.add_get(FILES_PREFIX + "{token}", download)


async def _run_check(name: str, check: Check, timeout: float) -> tuple[bool, str]:
    try:
        async with asyncio.timeout(timeout):
            ok, detail = await check()
    except TimeoutError:
        return False, f"timed out after {timeout:g} s"
    except Exception as exc:
        log.warning("health check %s failed", name, exc_info=True)
        return False, type(exc).__name__
    return bool(ok), str(detail)


async def run_checks(
    checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT
) -> tuple[bool, dict[str, dict[str, bool | str]]]:
    """Every check at once, each within `timeout` seconds: (all ok, {name: {ok, detail}})."""
    names = list(checks)
    results = await asyncio.gather(*(_run_check(n, checks[n], timeout) for n in names))
    report: dict[str, dict[str, bool | str]] = {
        name: {"ok": ok, "detail": detail}
        for name, (ok, detail) in zip(names, results, strict=True)
    }
    return all(ok for ok, _ in results), report


def health_routes(
    app: web.Application,
    checks: Mapping[str, Check],
    *,
    timeout: float = CHECK_TIMEOUT,
) -> None:
    """Add GET /healthz: 200 `{"status": "ok", "checks": {...}}` when every check passes, 503
    with `"fail"` otherwise (a check that raises or exceeds `timeout` seconds fails)."""
    app[CHECKS_KEY] = checks

    async def healthz(request: web.Request) -> web.Response:
        ok, report = await run_checks(request.app[CHECKS_KEY], timeout)
        return web.json_response(
            {"status": "ok" if ok else "fail", "checks": report},
            status=200 if ok else 503,
            headers={hdrs.CACHE_CONTROL: "no-store"},
        )

    app.router.add_get("/healthz", healthz)


def database_check(sessions: async_sessionmaker[AsyncSession]) -> Check:
    """A health check that runs `SELECT 1` on the store."""

    async def check() -> tuple[bool, str]:
        started = time.perf_counter()
        await ping(sessions)
        return True, f"SELECT 1 in {(time.perf_counter() - started) * 1000:.0f} ms"

    return check


def active_people(sessions: async_sessionmaker[AsyncSession]) -> IsActive:
    """An `is_active` callback backed by the store: the person exists and is not revoked."""

    async def is_active(person_id: int) -> bool:
        async with sessions() as session:
            return await is_active_person(session, person_id)

    return is_active


def mount(
    app: web.Application,
    links: FileLinks,
    is_active: IsActive,
    checks: Mapping[str, Check],
    *,
    timeout: float = CHECK_TIMEOUT,
) -> web.Application:
    """Add /files/{token} and /healthz to an existing app (e.g. the Zalo webhook's)."""
    file_routes(app, links, is_active)
    health_routes(app, checks, timeout=timeout)
    return app


def make_app(
    links: FileLinks,
    is_active: IsActive,
    checks: Mapping[str, Check],
    *,
    timeout: float = CHECK_TIMEOUT,
) -> web.Application:
    """A standalone app with just /files/{token} and /healthz (a Telegram-only deployment)."""
    return mount(web.Application(), links, is_active, checks, timeout=timeout)


@contextlib.asynccontextmanager
async def serving(
    listen: str,
    port: int,
    links: FileLinks | None,
    deps: Deps,
    checks: Mapping[str, Check],
) -> AsyncIterator[web.Application]:
    """The web server on its own (no Zalo webhook to share): /healthz, and /files/ when the
    bot has a public address."""
    app = web.Application()
    health_routes(app, checks)
    if links is not None:
        file_routes(app, links, active_people(deps.sessions))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, listen, port).start()
    log.info("web server listening on %s:%s", listen, port)
    try:
        yield app
    finally:
        await runner.cleanup()
