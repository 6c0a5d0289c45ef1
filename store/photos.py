"""Site photos on disk under DATA_DIR/photos, named by the SHA-256 of their bytes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Photo

FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
THUMB_SIZE = (320, 320)
MAX_PIXELS = 60_000_000


class PhotoRejected(ValueError):
    """`not_image` (the bytes are not a JPEG, PNG or WebP) or `too_large`."""

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


def inspect(data: bytes, max_bytes: int) -> Inspected:
    """Check the bytes (not the file name) and read size, capture time and GPS from EXIF."""
    if len(data) > max_bytes:
        raise PhotoRejected("too_large")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                probe.verify()
            image = Image.open(io.BytesIO(data))
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise PhotoRejected("not_image") from exc
    if image.format not in FORMATS or image.width * image.height > MAX_PIXELS:
        raise PhotoRejected("not_image")
    mime, extension = FORMATS[image.format]
    exif = image.getexif()
    taken = _taken_at(exif)
    lat, lon = _gps(exif)
    return Inspected(
        hashlib.sha256(data).hexdigest(),
        mime,
        extension,
        image.width,
        image.height,
        taken,
        lat,
        lon,
    )


def _taken_at(exif: Image.Exif) -> datetime | None:
    raw = exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal) or exif.get(
        ExifTags.Base.DateTime
    )
    if not isinstance(raw, str):
        return None
    try:
        return datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


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


def _write_files(data: bytes, info: Inspected, data_dir: Path) -> tuple[str, str]:
    rel = Path("photos") / info.sha256[:2] / f"{info.sha256}.{info.extension}"
    thumb_rel = Path("photos") / "thumbs" / info.sha256[:2] / f"{info.sha256}.jpg"
    for target, content in ((rel, data), (thumb_rel, None)):
        path = data_dir / target
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            with Image.open(io.BytesIO(data)) as image:
                thumb = image.convert("RGB")
                thumb.thumbnail(THUMB_SIZE)
                buffer = io.BytesIO()
                thumb.save(buffer, "JPEG", quality=80)
                content = buffer.getvalue()
        tmp = path.with_suffix(path.suffix + ".part")
        tmp.write_bytes(content)
        os.replace(tmp, path)  # atomic: a crash never leaves half a photo under its hash
    return str(rel), str(thumb_rel)


async def save_photo(
    session: AsyncSession, data: bytes, data_dir: Path, max_bytes: int
) -> tuple[Photo, bool]:
    """The stored photo for these bytes, and whether it is new. Raises PhotoRejected."""
    info = await asyncio.to_thread(inspect, data, max_bytes)
    existing = await session.scalar(select(Photo).where(Photo.sha256 == info.sha256))
    path, thumb = await asyncio.to_thread(_write_files, data, info, data_dir)
    if existing is not None:
        return existing, False
    photo = Photo(
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
    )
    session.add(photo)
    await session.flush()
    return photo, True
