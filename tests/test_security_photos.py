"""Photos that used to hurt: a tiny PNG of 59 megapixels (memory), a truncated JPEG (an apology
and a file left on disk), a camera's MPO (refused as "not a photo")."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import App
from handlers.context import Deps
from handlers.port import Attachment
from store.db import unit_of_work
from store.images import PhotoRejected
from store.integrity import band_keys
from store.models import Photo, PhotoHashBand
from store.photos import prepare_photo, record_photo, save_photo
from tests.dialog import play
from tests.test_dialogs import investor

REPO = Path(__file__).parent.parent
MAX_BYTES = 20 * 1024 * 1024


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def huge_png(side: int = 7700) -> bytes:
    """A real, valid RGB PNG of side × side black pixels: about 180 KB, 178 MB decoded."""
    row = b"\x00" + bytes(3 * side)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )


def noisy_jpeg(size: tuple[int, int] = (800, 600)) -> bytes:
    rng = random.Random(7)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def mpo() -> bytes:
    left, right = Image.new("RGB", (640, 480), "red"), Image.new("RGB", (640, 480), "blue")
    buffer = io.BytesIO()
    left.save(buffer, format="MPO", save_all=True, append_images=[right])
    return buffer.getvalue()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def save(app: App, data: bytes, data_dir: Path) -> Photo:
    async with unit_of_work(app.sessions) as session:
        photo, _new = await save_photo(session, data, data_dir, MAX_BYTES)
        return photo


def peak_growth_mb(path: Path, data_dir: Path) -> dict[str, object]:
    """Inspect and store the photo in a fresh process: how much its peak memory grew (MB)."""
    script = f"""
import json, resource, sys
from pathlib import Path
from store.images import PhotoRejected, inspect
from store.photos import _write_files
data = Path({str(path)!r}).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    info = inspect(data, {MAX_BYTES})
    _write_files(data, info, Path({str(data_dir)!r}))
    outcome = "stored"
except PhotoRejected as exc:
    outcome = exc.reason
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"outcome": outcome, "growth": (after - before) / 1024}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_tiny_png_of_59_megapixels_is_refused_before_it_is_decoded(tmp_path: Path) -> None:
    data = huge_png()
    assert len(data) < 400_000
    path = tmp_path / "huge.png"
    path.write_bytes(data)
    result = peak_growth_mb(path, tmp_path / "data")
    assert result["outcome"] == "too_many_pixels"
    assert float(str(result["growth"])) < 40  # decoding it would take 178 MB at least
    assert files_under(tmp_path / "data") == []


def test_a_59_megapixel_jpeg_is_thumbnailed_in_little_memory(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (7700, 7700), "green").save(buffer, "JPEG", quality=70)
    path = tmp_path / "huge.jpg"
    path.write_bytes(buffer.getvalue())
    del buffer
    result = peak_growth_mb(path, tmp_path / "data")
    assert result["outcome"] == "stored"
    assert float(str(result["growth"])) < 60  # a full decode is 178 MB, and a copy as much
    thumbs = list((tmp_path / "data" / "photos" / "thumbs").rglob("*.jpg"))
    with Image.open(thumbs[0]) as thumb:
        assert max(thumb.size) <= 320


async def test_a_normal_12_megapixel_jpeg_still_works(app: App, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), "orange").save(buffer, "JPEG", quality=90)
    photo = await save(app, buffer.getvalue(), tmp_path)
    assert (photo.mime, photo.width, photo.height) == ("image/jpeg", 4000, 3000)
    assert (tmp_path / photo.path).exists() and (tmp_path / photo.thumb_path).exists()


async def test_a_truncated_jpeg_is_not_a_photo_and_leaves_no_file(app: App, tmp_path: Path) -> None:
    whole = noisy_jpeg()
    with pytest.raises(PhotoRejected) as refused:
        await save(app, whole[: len(whole) * 2 // 3], tmp_path / "store")
    assert refused.value.reason == "not_image"
    assert files_under(tmp_path / "store") == []


async def test_a_truncated_jpeg_in_the_chat(deps: Deps, app: App) -> None:
    chat = await investor(deps)
    whole = noisy_jpeg()

    async def fetch() -> bytes:
        return whole[: len(whole) // 2]

    await chat.say("/baocao")
    answer = await chat.send(
        chat.incoming(attachments=(Attachment("photo", fetch, file_name="a.jpg"),))
    )
    assert "không phải ảnh" in answer and "Xin lỗi" not in answer
    assert files_under(deps.config.data_dir / "photos") == []
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Photo)) == 0


async def test_a_camera_mpo_is_a_jpeg(app: App, tmp_path: Path) -> None:
    data = mpo()
    with Image.open(io.BytesIO(data)) as probe:
        assert probe.format == "MPO" and getattr(probe, "n_frames", 1) == 2
    photo = await save(app, data, tmp_path)
    assert (photo.mime, photo.width, photo.height) == ("image/jpeg", 640, 480)
    assert (tmp_path / photo.path).read_bytes() == data  # the bytes as they came
    with Image.open(tmp_path / photo.thumb_path) as thumb:
        red, green, blue = thumb.convert("RGB").getpixel((10, 10))  # type: ignore[misc]
    assert red > 200 and green < 50 and blue < 50  # the first frame


async def test_an_mpo_in_the_chat(deps: Deps) -> None:
    chat = await investor(deps)
    data = mpo()

    async def fetch() -> bytes:
        return data

    await play(chat, [("/baocao", "QHCT")])
    answer = await chat.send(
        chat.incoming(attachments=(Attachment("photo", fetch, file_name="a.jpg"),))
    )
    assert "Đã nhận 1 ảnh" in answer and "không phải ảnh" not in answer


@pytest.mark.parametrize("first_ends", ["committed", "rolled back"])
async def test_one_photo_recorded_by_two_updates_at_once_is_stored_once(
    app: App, tmp_path: Path, first_ends: str
) -> None:
    """The same photo sent twice at once (two chats, or a redelivery): the second waits for the
    first; the photo is stored once, its hash indexed once, whichever way the first ends."""
    data_dir = tmp_path / "data"
    prepared = [prepare_photo(noisy_jpeg(), data_dir, MAX_BYTES) for _ in range(2)]

    async def second() -> tuple[int, bool]:
        async with unit_of_work(app.sessions) as session:
            photo, new = await record_photo(session, prepared[1])
            return photo.id, new

    waiting: asyncio.Task[tuple[int, bool]] | None = None
    with contextlib.suppress(ZeroDivisionError):
        async with unit_of_work(app.sessions) as session:
            photo, new = await record_photo(session, prepared[0])
            assert new
            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.3)
            assert not waiting.done()  # it waits for the first transaction
            if first_ends == "rolled back":
                raise ZeroDivisionError
    assert waiting is not None
    second_id, second_new = await asyncio.wait_for(waiting, 10)
    assert second_new == (first_ends == "rolled back")
    if first_ends == "committed":
        assert second_id == photo.id
    async with app.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Photo)) == 1
        bands = await session.scalar(select(func.count()).select_from(PhotoHashBand))
    assert bands == len(band_keys(prepared[0].phash or ""))
