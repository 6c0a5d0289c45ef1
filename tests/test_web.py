"""The bot's web server over real HTTP on loopback: signed download links and /healthz."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from yarl import URL

from bot.web import (
    FORBIDDEN_TEXT,
    Check,
    FileLinks,
    active_people,
    database_check,
    make_app,
    mount,
    secret_from,
)
from store.access import revoke_person
from store.db import make_engine, make_sessionmaker, unit_of_work, upgrade
from store.models import Person
from tests.dialog import Clock

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NAME = "Báo cáo tháng 06-2021 — CCN Đại Thắng.xlsx"
NOW = datetime(2021, 6, 10, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
SECRET = secret_from("test-link-secret-0123456789abcdef")
Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database on a temporary file."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'ccn.db'}")
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
async def people(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """Two active people, A and B."""
    async with unit_of_work(sessions) as session:
        a, b = Person(full_name="Nguyễn Văn A"), Person(full_name="Trần Thị B")
        session.add_all([a, b])
        await session.flush()
        return a.id, b.id


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "files"
    path.mkdir()
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def links(root: Path, clock: Clock) -> FileLinks:
    return FileLinks(SECRET, "https://bot.example.vn/ccn/", root, clock)


@pytest.fixture
async def client(
    links: FileLinks, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Client]:
    app = make_app(links, active_people(sessions), {"database": database_check(sessions)})
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


def put(root: Path, person_id: int, name: str = NAME, data: bytes | None = None) -> Path:
    path = root / str(person_id) / "2021-06" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(4096) if data is None else data)
    return path


def token_of(url: str) -> str:
    return URL(url).path.rsplit("/", 1)[1]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def assert_refused(client: Client, token: str) -> None:
    response = await client.get(f"/files/{token}")
    assert response.status == 403
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert (await response.text()).strip() == FORBIDDEN_TEXT
    assert "Content-Disposition" not in response.headers


@dataclass
class Files:
    """The web server's download links, over the folder `root` where A and B have files."""

    client: Client
    links: FileLinks
    root: Path
    a: int
    b: int

    def put(self, person_id: int, name: str = NAME, data: bytes | None = None) -> Path:
        return put(self.root, person_id, name, data)

    def token(self, person_id: int, path: Path) -> str:
        """The token of the person's link to `path`."""
        return token_of(self.links.link(person_id, path))

    async def get(self, token: str) -> ClientResponse:
        return await self.client.get(f"/files/{token}")

    async def refused(self, token: str) -> None:
        await assert_refused(self.client, token)


@pytest.fixture
def files(client: Client, links: FileLinks, root: Path, people: tuple[int, int]) -> Files:
    return Files(client, links, root, *people)


# --- download links ------------------------------------------------------------------------


async def test_link_downloads_exact_bytes_with_headers(files: Files) -> None:
    a = files.a
    path = files.put(a)
    url = files.links.link(a, path)
    assert url.startswith("https://bot.example.vn/ccn/files/")
    assert files.links.verify(token_of(url)) == (a, path.resolve())

    response = await files.get(token_of(url))
    assert response.status == 200
    assert await response.read() == path.read_bytes()
    assert response.headers["Content-Type"] == XLSX
    assert response.headers["Cache-Control"] == "private, no-store"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith(
        'attachment; filename="Bao cao thang 06-2021 _ CCN Dai Thang.xlsx"'
    )
    assert disposition.isascii()
    encoded = disposition.split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == NAME


async def test_link_relative_to_root_and_other_types(files: Files) -> None:
    a = files.a
    files.put(a, "biểu đồ.png", b"\x89PNG fake")
    response = await files.get(files.token(a, Path(str(a), "2021-06", "biểu đồ.png")))
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/png"
    assert await response.read() == b"\x89PNG fake"


async def test_forged_token_bit_flipped(files: Files) -> None:
    a = files.a
    token = files.token(a, files.put(a))
    payload, mac = token.split(".")
    flipped_mac = bytearray(unb64(mac))
    flipped_mac[0] ^= 0x01
    flipped_payload = bytearray(unb64(payload))
    flipped_payload[-1] ^= 0x01
    for forged in (
        f"{payload}.{b64(bytes(flipped_mac))}",
        f"{b64(bytes(flipped_payload))}.{mac}",
        f"{payload}.",
        payload,
        "not-a-token",
        f"{payload}.{mac}.{mac}",
    ):
        assert files.links.verify(forged) is None
        await files.refused(forged)
    # A token signed under another secret is refused too.
    other = FileLinks(
        secret_from("another-secret-of-enough-length"), "http://x", files.root, files.links.clock
    )
    await files.refused(token_of(other.link(a, files.put(a))))


async def test_expired_token(files: Files, clock: Clock) -> None:
    a = files.a
    token = files.token(a, files.put(a))
    clock.now = NOW + timedelta(days=6, hours=23)
    assert (await files.get(token)).status == 200
    clock.now = NOW + timedelta(days=7, seconds=1)
    await files.refused(token)

    short = token_of(files.links.link(a, files.put(a), ttl=timedelta(hours=1)))
    assert (await files.get(short)).status == 200
    clock.now += timedelta(hours=1)
    await files.refused(short)


async def test_person_id_swapped_in_token(files: Files) -> None:
    a, b = files.a, files.b
    files.put(b)  # B has a file at the same place, so only the signature stands in the way
    token = files.token(a, files.put(a))
    payload, mac = token.split(".")
    text = unb64(payload).decode()
    assert text.startswith(f"v1:{a}:")
    swapped = text.replace(f"v1:{a}:", f"v1:{b}:", 1).replace(f":{a}/", f":{b}/", 1)
    await files.refused(f"{b64(swapped.encode())}.{mac}")


async def test_another_persons_folder_and_path_escape(files: Files, tmp_path: Path) -> None:
    a, b, root = files.a, files.b, files.root
    b_file = files.put(b, data=b"B's workbook")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (root / str(a)).mkdir(exist_ok=True)
    (root / str(a) / "escape.txt").symlink_to(secret)

    # Nothing outside root/<person>/ is ever signed.
    for outside in (
        b_file,
        secret,
        root / str(a),
        root / str(a) / ".." / str(b) / "2021-06" / NAME,
        root / str(a) / "escape.txt",
        Path("..", "secret.txt"),
    ):
        with pytest.raises(ValueError):
            files.links.link(a, outside)

    # Even a correctly signed token (a leaked key, a bug) must stay inside its person's folder.
    expires = int((NOW + timedelta(days=1)).timestamp())
    for relative in (
        f"{b}/2021-06/{NAME}",
        f"{a}/../{b}/2021-06/{NAME}",
        f"{a}/../../secret.txt",
        f"{a}/escape.txt",
        f"{a}//../secret.txt",
        f"/{a}/x",
        str(secret),
    ):
        token = files.links._sign(a, relative, expires)
        assert files.links.verify(token) is None, relative
        await files.refused(token)

    # `..` in the URL itself: an encoded one reaches the handler as a (bad) token; a plain one
    # is normalised away before routing and matches nothing.
    await files.refused("..%2F..%2Fsecret.txt")
    for raw in ("/files/%2e%2e", "/files/../secret.txt"):
        response = await files.client.get(raw)
        assert response.status == 404, raw
        assert await response.text() != "do not serve"


async def test_revoked_person(files: Files, sessions: async_sessionmaker[AsyncSession]) -> None:
    a, b = files.a, files.b
    token_a = files.token(a, files.put(a))
    token_b = files.token(b, files.put(b))
    assert (await files.get(token_a)).status == 200
    async with unit_of_work(sessions) as session:
        assert await revoke_person(session, a, actor="admin", now=NOW) is not None
    await files.refused(token_a)
    assert (await files.get(token_b)).status == 200
    # A person who never existed (deleted, or a stale database) is refused the same way.
    files.put(999)
    await files.refused(files.token(999, files.root / "999" / "2021-06" / NAME))


async def test_missing_file_404(files: Files) -> None:
    path = files.put(files.a)
    token = files.token(files.a, path)
    path.unlink()
    response = await files.get(token)
    assert response.status == 404
    assert "Content-Disposition" not in response.headers


def test_secret_from() -> None:
    for weak in ("", "   ", "short"):
        with pytest.raises(ValueError, match="LINK_SECRET"):
            secret_from(weak)
    assert secret_from("x" * 32) == secret_from(" " + "x" * 32 + "\n")
    assert secret_from("x" * 32) != secret_from("y" * 32)
    assert len(secret_from("x" * 32)) == 32


# --- /healthz ------------------------------------------------------------------------------


def fixed(ok: bool, detail: str) -> Check:
    async def check() -> tuple[bool, str]:
        return ok, detail

    return check


async def hangs() -> tuple[bool, str]:
    await asyncio.sleep(60)
    return True, "never"


async def raises() -> tuple[bool, str]:
    raise ConnectionError("secret connection string")


async def healthz(app: web.Application) -> tuple[int, dict[str, Any]]:
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        response = await client.get("/healthz")
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["Cache-Control"] == "no-store"
        body = json.loads(await response.text())
        assert isinstance(body, dict)
        return response.status, body


async def test_healthz_ok(
    client: Client,
    links: FileLinks,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["detail"].startswith("SELECT 1 in ")

    app = make_app(
        links,
        active_people(sessions),
        {"database": database_check(sessions), "zalo": fixed(True, "token valid")},
    )
    status, body = await healthz(app)
    assert status == 200
    assert body == {
        "status": "ok",
        "checks": {
            "database": {"ok": True, "detail": body["checks"]["database"]["detail"]},
            "zalo": {"ok": True, "detail": "token valid"},
        },
    }


async def test_healthz_fails_on_failure_timeout_or_error(
    links: FileLinks, sessions: async_sessionmaker[AsyncSession]
) -> None:
    database = database_check(sessions)
    is_active = active_people(sessions)

    status, body = await healthz(
        make_app(links, is_active, {"database": database, "zalo": fixed(False, "HTTP 401")})
    )
    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["zalo"] == {"ok": False, "detail": "HTTP 401"}
    assert body["checks"]["database"]["ok"] is True

    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await healthz(
        make_app(links, is_active, {"database": database, "zalo": hangs}, timeout=0.3)
    )
    assert loop.time() - started < 5
    assert status == 503
    assert body["checks"] == {
        "database": body["checks"]["database"],
        "zalo": {"ok": False, "detail": "timed out after 0.3 s"},
    }

    status, body = await healthz(make_app(links, is_active, {"zalo": raises}))
    assert status == 503
    assert body == {
        "status": "fail",
        "checks": {"zalo": {"ok": False, "detail": "ConnectionError"}},
    }


async def test_healthz_database_down(tmp_path: Path, links: FileLinks) -> None:
    broken = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    try:
        sessions = make_sessionmaker(broken)
        status, body = await healthz(
            make_app(links, active_people(sessions), {"database": database_check(sessions)})
        )
    finally:
        await broken.dispose()
    assert status == 503
    assert body == {
        "status": "fail",
        "checks": {"database": {"ok": False, "detail": "OperationalError"}},
    }


async def test_mount_on_an_existing_app(
    links: FileLinks,
    root: Path,
    sessions: async_sessionmaker[AsyncSession],
    people: tuple[int, int],
) -> None:
    """The Zalo webhook app keeps its own routes and gains /files/ and /healthz."""

    async def webhook(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/zalo/webhook", webhook)
    mount(app, links, active_people(sessions), {"database": database_check(sessions)})
    a, _ = people
    token = token_of(links.link(a, put(root, a, data=b"xlsx")))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert (await client.post("/zalo/webhook")).status == 200
        assert (await client.get("/healthz")).status == 200
        response = await client.get(f"/files/{token}")
        assert response.status == 200
        assert await response.read() == b"xlsx"
