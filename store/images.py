"""A photo's bytes checked and read, with nothing but Pillow: its format and size, a thumbnail,
its perceptual hash, and where and when EXIF says it was taken. Decoding is the CPU-heavy part
of a photo, and runs on a hostile file: `Inspector` runs it in a child process, so the bot's
event loop neither shares its interpreter with it nor dies with it."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import multiprocessing
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image, UnidentifiedImageError

from store.children import background

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "MPO": ("image/jpeg", "jpg"),  # a camera's multi-picture JPEG: stored as is, first frame shown
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
OPEN_AS = ["JPEG", "PNG", "WEBP"]  # the only decoders tried; JPEG's also opens MPO
THUMB_SIZE = (320, 320)
# JPEG thumbnails are decoded at 1/8 scale (draft mode), so a large photo costs little memory;
# PNG and WebP decode in full, so they get a smaller cap (24 MP: under 100 MB decoded).
MAX_PIXELS = 120_000_000
MAX_FULL_DECODE_PIXELS = 24_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # Pillow's own bomb check, at the same cap
# a camera's clock is local time; EXIF says its offset only since 2.31 (OffsetTimeOriginal),
# so a capture time without one is read in the zone the clusters are in
CAMERA_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
# EXIF orientation → the turn that shows the picture upright (as ImageOps.exif_transpose)
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class PhotoRejected(ValueError):
    """`not_image` (the bytes are not a whole JPEG, PNG or WebP) or `too_large` (in bytes or in
    pixels)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Inspected:
    sha256: str
    mime: str
    extension: str
    width: int
    height: int
    taken_at: datetime | None
    latitude: Decimal | None
    longitude: Decimal | None
    thumbnail: bytes  # JPEG; making it proved the whole image decodes
    phash: str  # the perceptual hash of the upright picture, 16 hex digits (store.integrity)


_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError)


def inspect(data: bytes, max_bytes: int) -> Inspected:
    """Check the bytes (not the file name): format and size from the header before anything is
    decoded, then decode once into a thumbnail (a truncated file fails here), whose pixels also
    give the perceptual hash. Also reads the capture time and GPS from EXIF."""
    if len(data) > max_bytes:
        raise PhotoRejected("too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=OPEN_AS) as probe:
                fmt, (width, height) = probe.format, probe.size
                cap = MAX_PIXELS if fmt in ("JPEG", "MPO") else MAX_FULL_DECODE_PIXELS
                if fmt not in FORMATS:
                    raise PhotoRejected("not_image")
                if width * height > cap:
                    raise PhotoRejected("too_many_pixels")
                probe.verify()
            with Image.open(io.BytesIO(data), formats=OPEN_AS) as image:
                exif = image.getexif()
                thumbnail, phash = _thumbnail(image, exif.get(ExifTags.Base.Orientation))
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PhotoRejected("too_many_pixels") from exc
    except _DECODE_ERRORS as exc:
        raise PhotoRejected("not_image") from exc
    mime, extension = FORMATS[fmt]
    taken = _taken_at(exif)
    lat, lon = _gps(exif)
    return Inspected(
        hashlib.sha256(data).hexdigest(),
        mime,
        extension,
        width,
        height,
        taken,
        lat,
        lon,
        thumbnail,
        phash,
    )


def _thumbnail(image: Image.Image, orientation: object) -> tuple[bytes, str]:
    """A small JPEG of the (first) frame, and the perceptual hash of the picture upright.
    Shrunk before any conversion: JPEG decodes straight at a reduced scale (thumbnail uses
    draft mode), and no full-size copy is ever made. pHash looks at a 32×32 grey copy, so the
    thumbnail's pixels give the hash of the whole photo (measured: the same bits, or 2 apart)."""
    image.thumbnail(THUMB_SIZE)
    small = image.convert("RGB")
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    turn = _UPRIGHT.get(orientation) if isinstance(orientation, int) else None
    upright = small.transpose(turn) if turn is not None else small
    # here, not at the top: imagehash brings numpy, 0.15 s of CPU and 12 MB in each bot start
    import imagehash

    return buffer.getvalue(), str(imagehash.phash(upright))


def _taken_at(exif: Image.Exif) -> datetime | None:
    """When the photo was taken, by the camera's clock: aware, in its EXIF offset if it gives
    one, else in CAMERA_ZONE."""
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    raw = sub.get(ExifTags.Base.DateTimeOriginal)
    offset = sub.get(ExifTags.Base.OffsetTimeOriginal)
    if not isinstance(raw, str):
        raw, offset = exif.get(ExifTags.Base.DateTime), sub.get(ExifTags.Base.OffsetTime)
    if not isinstance(raw, str):
        return None
    try:
        taken = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return taken.replace(tzinfo=_zone(offset))


def _zone(offset: object) -> tzinfo:
    """EXIF's `+07:00`, or CAMERA_ZONE if there is none or it is not one."""
    text = offset.strip("\x00 ") if isinstance(offset, str) else ""
    if len(text) == 6 and text[0] in "+-" and text[3] == ":":
        try:
            hours, minutes = int(text[1:3]), int(text[4:6])
        except ValueError:
            return CAMERA_ZONE
        if hours <= 14 and minutes < 60:
            sign = -1 if text[0] == "-" else 1
            return timezone(sign * timedelta(hours=hours, minutes=minutes))
    return CAMERA_ZONE


def _gps(exif: Image.Exif) -> tuple[Decimal | None, Decimal | None]:
    gps: dict[int, Any] = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
    try:
        lat = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"))
        lon = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"))
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None, None
    return lat, lon


def _degrees(value: Any, ref: str) -> Decimal:
    d, m, s = (float(v) for v in value)
    result = Decimal(str(round(d + m / 60 + s / 3600, 6)))
    return -result if ref in ("S", "W") else result


class Inspector:
    """`inspect`, off the event loop: in `processes` child processes (`spawn`: nothing of the
    bot's own state is copied into them; the first one started by `warm` as the bot starts, or
    else at the first photo), or with 0 in a thread. If the children are gone (killed, or a
    decoder crashed), the photo is tried once in new ones; a photo that ends those too is
    refused as not an image."""

    read: Callable[[bytes, int], Inspected] = staticmethod(inspect)  # a module's function

    def __init__(self, processes: int = 0) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def inspect(self, data: bytes, max_bytes: int) -> Inspected:
        if not self.processes:
            return await asyncio.to_thread(self.read, data, max_bytes)
        for attempt in range(2):
            pool = self._executor()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, self.read, data, max_bytes
                )
            except BrokenProcessPool:
                log.warning("the photo decoding process ended (attempt %d)", attempt + 1)
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False)
        raise PhotoRejected("not_image")

    async def inspect_then(self, data: bytes, max_bytes: int, then: Callable[[Inspected], T]) -> T:
        """`inspect`, then the blocking `then` (writing the photo's files) on what it found, in
        a thread; without child processes, both in one trip to the thread."""
        if not self.processes:
            return await asyncio.to_thread(lambda: then(self.read(data, max_bytes)))
        info = await self.inspect(data, max_bytes)
        return await asyncio.to_thread(then, info)

    async def warm(self) -> None:
        """Start the children and have them load the decoders and the hash (about 1 s of CPU
        each), so that the first photo after the bot's start does not wait for it."""
        if not self.processes:
            return
        buffer = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buffer, "PNG")
        try:
            await self.inspect(buffer.getvalue(), MAX_FULL_DECODE_PIXELS)
        except PhotoRejected:
            log.warning("the photo decoding process did not start; photos will try again")

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=context, initializer=background
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
