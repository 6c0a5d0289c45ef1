"""Site photos on disk under DATA_DIR/photos, named by the SHA-256 of their bytes, with what
tells whether a photo proves what it shows: its perceptual hash, capture time and place."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading
import warnings
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import ExifTags, Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.contacts import hold
from store.integrity import index_hash
from store.models import Photo

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


def _sync_folder(folder: Path) -> None:
    """Make a file's new name in `folder` durable (POSIX; Windows has no folder to sync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_files(
    data: bytes, info: Inspected, data_dir: Path, created: list[Path] | None = None
) -> tuple[str, str]:
    """Write the photo and its thumbnail, both already checked by `inspect`; the files this
    call wrote (absent before) are added to `created`. Each is on disk (synced, and its name
    in its folder) before this returns: the row the update's transaction then commits, and
    syncs, must not outlive its file in a power cut."""
    rel = Path("photos") / info.sha256[:2] / f"{info.sha256}.{info.extension}"
    thumb_rel = Path("photos") / "thumbs" / info.sha256[:2] / f"{info.sha256}.jpg"
    for target, content in ((thumb_rel, info.thumbnail), (rel, data)):
        path = data_dir / target
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".part")
        try:
            with tmp.open("wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)  # atomic: a crash never leaves half a photo under its hash
            _sync_folder(path.parent)
        finally:
            tmp.unlink(missing_ok=True)
        if created is not None:
            created.append(path)
    return str(rel), str(thumb_rel)


# --- before the transaction: check and write; inside it: the row ----------------------------
#
# The files are written before the database transaction (content-addressed, so idempotent) and
# released after it: a file this update wrote is deleted again unless a Photo row refers to its
# hash. `_claims` counts the updates holding each hash; a hash two updates held at once is never
# deleted by either, since the other may have committed its row.

_claims_lock = threading.Lock()
_claims: dict[str, int] = {}
_shared: set[str] = set()


@dataclass(frozen=True)
class Prepared:
    """A photo checked and on disk, ready for its row (`record_photo`); `written`: the files
    this update created, which `release_photos` deletes if no row came to refer to them."""

    sha256: str
    mime: str
    size_bytes: int
    width: int
    height: int
    path: str
    thumb_path: str
    taken_at: datetime | None
    latitude: Decimal | None
    longitude: Decimal | None
    written: tuple[Path, ...] = ()
    phash: str | None = None  # None only for a Prepared made by hand (tests)


class NotPrepared(RuntimeError):
    """A handler needs a photo that was not prepared before the transaction."""


def prepare_photo(data: bytes, data_dir: Path, max_bytes: int) -> Prepared:
    """Check the bytes and write the photo and its thumbnail under their hash. Blocking: run it
    in a thread, outside any transaction. Raises PhotoRejected, having written nothing. Every
    result must be passed to `release_photos` once the transaction is over."""
    info = inspect(data, max_bytes)
    created: list[Path] = []
    with _claims_lock:  # claimed before looking at the disk: a release cannot delete under us
        if _claims.get(info.sha256):
            _shared.add(info.sha256)
        _claims[info.sha256] = _claims.get(info.sha256, 0) + 1
    try:
        path, thumb = _write_files(data, info, data_dir, created)
    except BaseException:
        _release(info.sha256, tuple(created), keep=False)
        raise
    return Prepared(
        sha256=info.sha256,
        mime=info.mime,
        size_bytes=len(data),
        width=info.width,
        height=info.height,
        path=path,
        thumb_path=thumb,
        taken_at=info.taken_at,
        latitude=info.latitude,
        longitude=info.longitude,
        written=tuple(created),
        phash=info.phash,
    )


def _release(sha256: str, written: tuple[Path, ...], *, keep: bool) -> None:
    with _claims_lock:
        left = _claims.get(sha256, 1) - 1
        shared = sha256 in _shared
        if left > 0:
            _claims[sha256] = left
        else:
            _claims.pop(sha256, None)
            _shared.discard(sha256)
        if keep or shared:
            return
        for path in written:
            path.unlink(missing_ok=True)


def release_photos(prepared: Iterable[Prepared], referenced: Container[str]) -> None:
    """After the transaction: delete the files these photos wrote unless a Photo row refers to
    their hash (`referenced`), so a refused or rolled-back photo leaves no file."""
    for photo in prepared:
        _release(photo.sha256, photo.written, keep=photo.sha256 in referenced)


async def record_photo(session: AsyncSession, prepared: Prepared) -> tuple[Photo, bool]:
    """Inside the transaction: the Photo row for these files, inserted if new; and whether it
    is new."""
    await hold(session, f"photo:{prepared.sha256}")  # the same photo sent by two at once
    existing = await session.scalar(select(Photo).where(Photo.sha256 == prepared.sha256))
    if existing is not None:
        if existing.phash is None and prepared.phash is not None:  # stored before hashing
            existing.phash = prepared.phash
            await index_hash(session, existing.id, prepared.phash)
        return existing, False
    photo = Photo(
        sha256=prepared.sha256,
        mime=prepared.mime,
        size_bytes=prepared.size_bytes,
        width=prepared.width,
        height=prepared.height,
        path=prepared.path,
        thumb_path=prepared.thumb_path,
        taken_at=prepared.taken_at,
        latitude=prepared.latitude,
        longitude=prepared.longitude,
        phash=prepared.phash,
    )
    session.add(photo)
    await session.flush()
    if prepared.phash is not None:
        await index_hash(session, photo.id, prepared.phash)
    return photo, True


async def save_photo(
    session: AsyncSession, data: bytes, data_dir: Path, max_bytes: int
) -> tuple[Photo, bool]:
    """Both steps at once, for tools and tests that already hold a transaction: the stored
    photo for these bytes, and whether it is new. Raises PhotoRejected. The conversation
    prepares before its transaction instead (`prepare_photo`, `record_photo`)."""
    prepared = await asyncio.to_thread(prepare_photo, data, data_dir, max_bytes)
    try:
        result = await record_photo(session, prepared)
    except BaseException:
        release_photos([prepared], ())
        raise
    release_photos([prepared], {prepared.sha256})
    return result
