"""The stand-in Zalo refuses what the real Zalo refuses (bot/channels/ZALO.md), over real HTTP:
each refusal is shown once, and each accepted shape works."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from PIL import Image

from testing.standin_zalo import APP_ID, APP_SECRET, OA_ID, OA_SECRET, StandinZalo
from tests.dialog import Clock

NOW = datetime(2021, 6, 10, 2, 0, tzinfo=UTC)
USER = "2468458835296197922"
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def picture(fmt: str = "JPEG", size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, fmt)
    return buffer.getvalue()


def noisy_jpeg(at_least: int) -> bytes:
    """A real JPEG over `at_least` bytes: random pixels compress badly."""
    side = 700
    while True:
        noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
        buffer = io.BytesIO()
        noise.save(buffer, "JPEG", quality=95)
        if buffer.tell() > at_least:
            return buffer.getvalue()
        side += 100


def office(*names: str) -> bytes:
    """A skeleton OOXML package (docx: word/document.xml; xlsx: xl/workbook.xml)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("[Content_Types].xml", "<Types/>")
        for name in names:
            package.writestr(name, "<x/>")
    return buffer.getvalue()


DOCX = office("word/document.xml")
XLSX = office("xl/workbook.xml", "xl/worksheets/sheet1.xml")
DOC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "WordDocument".encode("utf-16-le")
XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504) + "Workbook".encode("utf-16-le")


@pytest.fixture
async def zalo() -> AsyncIterator[StandinZalo]:
    server = StandinZalo(clock=Clock(NOW))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def move(zalo: StandinZalo, by: timedelta) -> None:
    assert isinstance(zalo.clock, Clock)
    zalo.clock.now += by


async def cs(
    http: aiohttp.ClientSession,
    zalo: StandinZalo,
    message: dict[str, Any],
    user: str = USER,
    token: str | None = None,
) -> dict[str, Any]:
    body = {"recipient": {"user_id": user}, "message": message}
    return await post(http, zalo, "/v3.0/oa/message/cs", body, token)


async def post(
    http: aiohttp.ClientSession,
    zalo: StandinZalo,
    path: str,
    body: Any,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"access_token": zalo.access_token if token is None else token}
    async with http.post(zalo.root + path, json=body, headers=headers) as response:
        assert response.status == 200  # Zalo answers errors with HTTP 200
        answer: dict[str, Any] = await response.json()
        return answer


async def upload(
    http: aiohttp.ClientSession,
    zalo: StandinZalo,
    kind: str,
    data: bytes,
    filename: str = "x",
    content_type: str = "application/octet-stream",
    token: str | None = None,
) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=filename, content_type=content_type)
    headers = {"access_token": zalo.access_token if token is None else token}
    async with http.post(
        f"{zalo.root}/v2.0/oa/upload/{kind}", data=form, headers=headers
    ) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


async def refresh(
    http: aiohttp.ClientSession, zalo: StandinZalo, refresh_token: str, secret: str = APP_SECRET
) -> tuple[int, dict[str, Any]]:
    form = {"refresh_token": refresh_token, "app_id": APP_ID, "grant_type": "refresh_token"}
    async with http.post(
        f"{zalo.root}/v4/oa/access_token", data=form, headers={"secret_key": secret}
    ) as response:
        if response.status != 200:
            return response.status, {}
        return response.status, await response.json()


def reminder(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phone": "84912345678",
        "template_id": "ccn-reminder",
        "template_data": {
            "customer_name": "Nguyễn Văn An",
            "cluster": "Cụm công nghiệp làng nghề Đại Thắng",
            "period": "06/2021",
            "deadline": "20/06/2021",
        },
        "tracking_id": "ccn-zalo-user-1-1623290400",
    }
    body.update(changes)
    return body


# --- consultation messages -------------------------------------------------------------------


async def test_documented_cs_shapes_are_accepted(
    zalo: StandinZalo, http: aiohttp.ClientSession
) -> None:
    zalo.interact(USER, NOW)
    image_id = (await upload(http, zalo, "image", picture("PNG")))["data"]["attachment_id"]
    token = (await upload(http, zalo, "file", PDF, "bc.pdf"))["data"]["token"]
    media = {"type": "template", "payload": {"template_type": "media", "elements": []}}
    shapes: list[dict[str, Any]] = [
        {"text": "Xin chào"},
        {"text": "x" * 2000},
        {"text": "Trả lời", "quote_message_id": "m1"},
        {"attachment": media | {"payload": {"template_type": "media", "elements": [
            {"media_type": "image", "attachment_id": image_id}]}}, "text": "Ảnh hiện trường"},
        {"attachment": media | {"payload": {"template_type": "media", "elements": [
            {"media_type": "image", "url": "https://example.org/a.jpg"}]}}},
        {"attachment": {"type": "file", "payload": {"token": token}}},
        {"attachment": {"type": "template", "payload": {
            "template_type": "request_user_info",
            "elements": [{"title": "Sở Công Thương", "subtitle": "Xin số điện thoại",
                          "image_url": "https://example.org/banner.png"}]}}},
    ]  # fmt: skip
    for message in shapes:
        answer = await cs(http, zalo, message)
        assert answer["error"] == 0, answer
        assert answer["data"]["user_id"] == USER and answer["data"]["message_id"]
    assert zalo.refused == [] and zalo.errors == []
    assert [s.kind for s in zalo.to(USER)] == ["text"] * 3 + ["media"] * 2 + [
        "file",
        "request_user_info",
    ]
    assert zalo.to(USER)[3].text == "Ảnh hiện trường"


BUTTON = {"title": "Có", "type": "oa.query.hide", "payload": "#yes"}


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ({"text": "Chọn", "attachment": {"type": "template", "payload": {"buttons": [BUTTON]}}},
         "buttons"),
        ({"text": "Chọn", "buttons": [BUTTON]}, "buttons"),
        ({"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "url": "https://e.org/a.jpg"}], "buttons": [BUTTON]}}},
         "buttons"),
        ({"text": "x", "attachment": {"type": "template", "payload": {"elements": []}}},
         "template_type"),
        ({"attachment": {"type": "template", "payload": {"template_type": "button",
                                                         "elements": [{}]}}}, "not a CS shape"),
        ({"text": "x", "metadata": "y"}, "unknown keys"),
        ({"text": ""}, "non-empty"),
        ({"text": "   "}, "non-empty"),
        ({"text": 5}, "non-empty"),
        ({"text": "x" * 2001}, "over 2000"),
        ({"text": "x", "quote_message_id": ""}, "quote_message_id"),
        ({}, "non-empty"),
        ({"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "attachment_id": "never-uploaded"}]}}}, "attachment_id"),
        ({"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "url": "https://e.org/a.jpg"},
            {"media_type": "image", "url": "https://e.org/b.jpg"}]}}}, "exactly one"),
        ({"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "gif", "url": "https://e.org/a.gif"}]}}}, "media_type"),
        ({"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [
            {"media_type": "image", "url": "/tmp/a.jpg"}]}}}, "URL"),
        ({"attachment": {"type": "file", "payload": {"token": "never-uploaded"}}}, "token"),
        ({"text": "x", "attachment": {"type": "file", "payload": {"token": "t"}}},
         "unknown keys"),
        ({"attachment": {"type": "template", "payload": {
            "template_type": "request_user_info",
            "elements": [{"title": "x" * 101, "subtitle": "s", "image_url": "https://e.org/b"}]}}},
         "over 100"),
        ({"attachment": {"type": "template", "payload": {
            "template_type": "request_user_info",
            "elements": [{"title": "t", "subtitle": "x" * 501, "image_url": "https://e.org/b"}]}}},
         "over 500"),
        ({"attachment": {"type": "template", "payload": {
            "template_type": "request_user_info", "elements": [{"title": "t"}]}}},
         "title, subtitle, image_url"),
        ({"attachment": {"type": "list", "payload": {}}}, "not a CS shape"),
    ],
)  # fmt: skip
async def test_undocumented_cs_shapes_are_refused(
    zalo: StandinZalo, http: aiohttp.ClientSession, message: dict[str, Any], why: str
) -> None:
    zalo.interact(USER, NOW)
    answer = await cs(http, zalo, message)
    assert answer["error"] == -201, answer
    assert why in answer["message"]
    assert zalo.sent == []
    [(reason, body)] = zalo.refused
    assert why in reason and body["message"] == message


@pytest.mark.parametrize(
    "body",
    [
        {"recipient": {"user_id": 42}, "message": {"text": "x"}},
        {"recipient": {"user_id": USER, "phone": "84912345678"}, "message": {"text": "x"}},
        {"recipient": {"anonymous_id": "a1"}, "message": {"text": "x"}},
        {"recipient": {"user_id": USER}, "message": {"text": "x"}, "mode": "dev"},
        ["not", "an", "object"],
    ],
)
async def test_the_recipient_is_a_user_id(
    zalo: StandinZalo, http: aiohttp.ClientSession, body: Any
) -> None:
    zalo.interact(USER, NOW)
    answer = await post(http, zalo, "/v3.0/oa/message/cs", body)
    assert answer["error"] == -201 and zalo.sent == [] and len(zalo.refused) == 1


# --- the messaging window ----------------------------------------------------------------------


async def test_the_seven_day_window(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    zalo.expire_after(timedelta(days=30).total_seconds())  # a token that outlives the test
    hello = {"text": "Xin chào"}
    assert (await cs(http, zalo, hello))["error"] == -232  # never interacted
    zalo.follow(USER)  # following is not an interaction, but grants one welcome message
    zalo.seen(USER, ["out1"])
    zalo.received(USER, "out1")
    zalo.oa_send_text(USER, "echo")
    assert (await cs(http, zalo, hello))["error"] == 0  # the welcome (quota welcome_msg)
    assert (await cs(http, zalo, hello))["error"] == -232  # and no more
    event = zalo.event("user_send_text", USER, text="chào")
    assert event["timestamp"] == str(int(NOW.timestamp() * 1000))
    assert zalo.last_interaction[USER] == NOW
    move(zalo, timedelta(days=7))
    assert (await cs(http, zalo, hello))["error"] == 0  # seven days on: still inside
    move(zalo, timedelta(minutes=1))
    assert (await cs(http, zalo, hello))["error"] == -230  # past seven days
    zalo.submit_info(USER, name="An", phone="84912345678")  # an interaction too
    assert (await cs(http, zalo, hello))["error"] == 0
    zalo.window_closed.add(USER)
    assert (await cs(http, zalo, hello))["error"] == -230
    zalo.window_closed.clear()
    zalo.interact(USER, NOW)  # set directly: eight days ago now
    assert (await cs(http, zalo, hello))["error"] == -230
    assert len(zalo.to(USER)) == 3
    assert zalo.refused == []  # well-formed messages: only out of the window
    assert [code for code, _ in zalo.errors] == [-232, -232, -230, -230, -230]


# --- tokens ------------------------------------------------------------------------------------


async def test_expired_token_then_refresh(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    zalo.interact(USER, NOW)
    hello = {"text": "Xin chào"}
    held = zalo.access_token  # the bot's copy
    zalo.expire_token()
    assert (await cs(http, zalo, hello, token=held))["error"] == -216
    assert (await upload(http, zalo, "image", picture(), token=held))["error"] == -216
    zns = await post(http, zalo, "/message/template", reminder(), token=held)
    assert zns["error"] == -124  # ZNS's code for it
    assert zalo.token_errors == 3
    old_refresh = zalo.refresh_token
    status, pair = await refresh(http, zalo, old_refresh)
    assert status == 200 and pair["expires_in"] == "90000"
    assert pair["access_token"] == zalo.access_token and pair["refresh_token"] != old_refresh
    assert (await cs(http, zalo, hello))["error"] == 0
    # single use: the old refresh token is refused, and the pair is unchanged
    status, again = await refresh(http, zalo, old_refresh)
    assert again["error"] == -14014 and "error_name" in again and "message" not in again
    assert zalo.access_token == pair["access_token"]
    # the next refresh kills the previous access token at once
    status, newer = await refresh(http, zalo, pair["refresh_token"])
    assert (await cs(http, zalo, hello, token=pair["access_token"]))["error"] == -216
    assert (await cs(http, zalo, hello, token=newer["access_token"]))["error"] == 0
    assert zalo.refreshes == 2 and zalo.refused == []


async def test_token_lifetime(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    zalo.interact(USER, NOW)
    move(zalo, timedelta(hours=25))  # the first token's 25 h are up
    assert (await cs(http, zalo, {"text": "x"}))["error"] == -220
    assert (await post(http, zalo, "/message/template", reminder()))["error"] == -124
    await refresh(http, zalo, zalo.refresh_token)
    zalo.interact(USER, zalo.clock())
    assert (await cs(http, zalo, {"text": "x"}))["error"] == 0
    zalo.expire_after(60)
    move(zalo, timedelta(seconds=59))
    assert (await cs(http, zalo, {"text": "x"}))["error"] == 0
    move(zalo, timedelta(seconds=1))
    assert (await upload(http, zalo, "file", PDF))["error"] == -220


async def test_refresh_failures(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    current = zalo.refresh_token
    _, answer = await refresh(http, zalo, current, secret="not-the-app-secret")
    assert answer["error"] == -14002 and len(zalo.refused) == 1
    async with http.post(
        f"{zalo.root}/v4/oa/access_token",
        json={"refresh_token": current, "app_id": APP_ID, "grant_type": "refresh_token"},
        headers={"secret_key": APP_SECRET},
    ) as response:
        assert (await response.json())["error"] == -14002  # a form, not JSON
    zalo.oauth_down = True
    assert (await refresh(http, zalo, current))[0] == 502
    zalo.oauth_down, zalo.oauth_refuses = False, True
    assert (await refresh(http, zalo, current))[1]["error"] == -14014
    zalo.oauth_refuses = False
    assert "access_token" in (await refresh(http, zalo, current))[1]  # nothing was consumed
    assert zalo.refreshes == 1


# --- uploads -----------------------------------------------------------------------------------


async def test_image_uploads(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    jpeg = picture()
    answer = await upload(http, zalo, "image", jpeg, "site.png", "image/png")
    key = answer["data"]["attachment_id"]
    assert answer["error"] == 0 and zalo.uploads[key] == jpeg
    info = zalo.upload_info[key]  # judged from the bytes, the declared name and type kept
    assert (info.filename, info.content_type, info.sniffed) == (
        "site.png",
        "image/png",
        "image/jpeg",
    )
    assert (await upload(http, zalo, "image", picture("PNG")))["error"] == 0
    big = noisy_jpeg(int(1.2 * 1024 * 1024))
    assert (await upload(http, zalo, "image", big, "big.jpg", "image/jpeg"))["error"] == -210
    for wrong in (picture("GIF"), picture("BMP"), PDF, b"not an image"):
        assert (await upload(http, zalo, "image", wrong, "a.jpg", "image/jpeg"))["error"] == -201
    assert len(zalo.uploads) == 2 and len(zalo.refused) == 5
    assert zalo.refused[0][1]["size"] == len(big)


async def test_file_uploads(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    for data in (PDF, DOCX, DOC):
        answer = await upload(http, zalo, "file", data, "bc")
        assert answer["error"] == 0 and answer["data"]["token"] in zalo.uploads
    assert "attachment_id" not in answer["data"]
    big_pdf = PDF + bytes(5 * 1024 * 1024)
    assert (await upload(http, zalo, "file", big_pdf, "big.pdf"))["error"] == -210
    for wrong in (XLSX, XLS, picture(), b"PK\x03\x04 broken zip", b"plain text"):
        assert (await upload(http, zalo, "file", wrong, "bc.docx", DOCX_TYPE))["error"] == -201
    form = aiohttp.FormData()
    form.add_field("document", PDF, filename="bc.pdf")
    async with http.post(
        f"{zalo.root}/v2.0/oa/upload/file", data=form, headers={"access_token": zalo.access_token}
    ) as response:
        assert (await response.json())["error"] == -201  # the field must be named file
    assert len(zalo.uploads) == 3 and len(zalo.refused) == 7
    # a file token is no image attachment id, nor the reverse
    zalo.interact(USER, NOW)
    token = next(iter(zalo.uploads))
    media = {
        "template_type": "media",
        "elements": [{"media_type": "image", "attachment_id": token}],
    }
    assert (await cs(http, zalo, {"attachment": {"type": "template", "payload": media}}))[
        "error"
    ] == -201


DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --- ZNS -----------------------------------------------------------------------------------------


async def test_a_registered_template_is_sent(
    zalo: StandinZalo, http: aiohttp.ClientSession
) -> None:
    answer = await post(http, zalo, "/message/template", reminder())
    assert answer["error"] == 0 and answer["data"]["msg_id"]
    for deadline in ("17:00 20/06/2021", "17:00:00 20/06/2021", "06/2021"):
        data = reminder()["template_data"] | {"deadline": deadline}
        assert (await post(http, zalo, "/message/template", reminder(template_data=data)))[
            "error"
        ] == 0
    assert (await post(http, zalo, "/message/template", reminder(tracking_id="x" * 48)))[
        "error"
    ] == 0
    assert len(zalo.zns) == 5 and zalo.zns[0] == reminder() and zalo.refused == []


@pytest.mark.parametrize(
    ("top", "params", "code"),
    [
        ({"phone": "0912345678"}, {}, -108),
        ({"phone": "+84912345678"}, {}, -108),
        ({"phone": "8491234567"}, {}, -108),
        ({"template_id": "tmpl-7"}, {}, -109),
        ({"template_data": {}}, {}, -111),
        ({"template_data": None}, {}, -111),
        ({}, {"customer_name": "N" * 31}, -132),  # a name param: at most 30 chars
        ({}, {"cluster": "C" * 101}, -132),
        ({}, {"deadline": "2021-06-20"}, -132),
        ({}, {"deadline": "31/02/2021"}, -132),
        ({}, {"deadline": "trước ngày 20/06/2021"}, -132),
        ({}, {"period": ""}, -132),
        ({}, {"content": "Nhắc báo cáo " * 30}, -112),  # an unknown param
        ({}, {"deadline": None}, -112),  # a missing param
        ({"tracking_id": "x" * 49}, {}, -132),
    ],
)
async def test_zns_refusals(
    zalo: StandinZalo,
    http: aiohttp.ClientSession,
    top: dict[str, Any],
    params: dict[str, Any],
    code: int,
) -> None:
    """`None` removes a key."""
    body = reminder()
    data = {k: v for k, v in (body["template_data"] | params).items() if v is not None}
    body = {k: v for k, v in (body | {"template_data": data} | top).items() if v is not None}
    answer = await post(http, zalo, "/message/template", body)
    assert answer["error"] == code, answer
    assert zalo.zns == [] and len(zalo.refused) == 1


# --- rate limit, media, webhook events -------------------------------------------------------


async def test_rate_limit(zalo: StandinZalo, http: aiohttp.ClientSession) -> None:
    zalo.interact(USER, NOW)
    zalo.rate_limit_per_minute = 2
    codes = [(await cs(http, zalo, {"text": str(n)}))["error"] for n in range(3)]
    assert codes == [0, 0, -32]
    move(zalo, timedelta(minutes=1))
    assert (await cs(http, zalo, {"text": "again"}))["error"] == 0


async def test_media_downloads_carry_their_type(
    zalo: StandinZalo, http: aiohttp.ClientSession
) -> None:
    for name, data, kind in [
        ("a.jpg", picture(), "image/jpeg"),
        ("a.jpg.png", picture("PNG"), "image/png"),
        ("bc.pdf", PDF, "application/pdf"),
        ("odd", b"??", "application/octet-stream"),
    ]:
        async with http.get(zalo.publish(name, data)) as response:
            assert response.content_type == kind and await response.read() == data
    async with http.get(f"{zalo.root}/media/missing") as response:
        assert response.status == 404


def test_signed_events(zalo: StandinZalo) -> None:
    event = zalo.event("user_send_text", USER, text="chào")
    body = zalo.encode(event)
    raw = APP_ID.encode() + body + event["timestamp"].encode() + OA_SECRET.encode()
    digest = hashlib.sha256(raw).hexdigest()
    assert zalo.sign(body, event)["X-ZEvent-Signature"] == "mac=" + digest
    assert zalo.sign(body, event, mac_prefix=False)["X-ZEvent-Signature"] == digest
    zalo.mac_prefix = False
    headers = zalo.sign(body, event, num_retry=2)
    assert headers["X-ZEvent-Signature"] == digest and headers["num_retry"] == "2"
    assert "num_retry" not in zalo.sign(body, event)
    assert zalo.sign(body, event, "other")["X-ZEvent-Signature"] != digest


def test_event_shapes(zalo: StandinZalo) -> None:
    stamp = str(int(NOW.timestamp() * 1000))
    text = zalo.event("user_send_text", USER, text="chào")
    assert text["sender"] == {"id": USER} and text["recipient"] == {"id": OA_ID}
    assert text["message"]["text"] == "chào" and text["message"]["msg_id"]
    assert text["timestamp"] == stamp and text["app_id"] == APP_ID
    info = zalo.submit_info(
        USER, name="An", phone="84912345678", address="1 Tràng Tiền", city="Hà Nội", district="HK"
    )
    assert info["event_name"] == "user_submit_info" and "message" not in info
    assert info["info"] == {
        "name": "An",
        "phone": "84912345678",
        "address": "1 Tràng Tiền",
        "city": "Hà Nội",
        "district": "HK",
    }
    echo = zalo.oa_send_text(USER, "đã nhận")
    assert echo["sender"] == {"id": OA_ID} and echo["recipient"] == {"id": USER}
    received = zalo.received(USER, "out7")
    assert received["event_name"] == "user_received_message"
    assert received["message"] == {"msg_id": "out7"}
    seen = zalo.seen(USER, ["out7", "out8"])
    assert seen["message"] == {"msg_ids": ["out7", "out8"]}
    sticker = zalo.sticker(USER, "st-9")
    [attachment] = sticker["message"]["attachments"]
    assert attachment["type"] == "sticker" and attachment["payload"]["id"] == "st-9"
    follow = zalo.follow(USER, source="message_invite")
    assert follow["follower"] == {"id": USER} and follow["source"] == "message_invite"
    assert follow["oa_id"] == OA_ID and "sender" not in follow and "message" not in follow
    assert zalo.event("unfollow", USER)["follower"] == {"id": USER}
    assert all(e["timestamp"] == stamp for e in (info, echo, received, seen, sticker, follow))
