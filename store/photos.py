"""Site photos on disk under DATA_DIR/photos, named by the SHA-256 of their bytes, with what
tells whether a photo proves what it shows: its perceptual hash, capture time and place
(read by store.images)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Container, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from store.contacts import hold
from store.db import insert_unless_stored, stored_like
from store.images import Inspected, inspect
from store.integrity import index_hash
from store.models import Photo


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


def prepare_photo(
    data: bytes, data_dir: Path, max_bytes: int, info: Inspected | None = None
) -> Prepared:
    """Check the bytes (unless `info` is what store.images.inspect found in them already) and
    write the photo and its thumbnail under their hash. Blocking: run it in a thread, outside
    any transaction. Raises PhotoRejected, having written nothing. Every result must be passed
    to `release_photos` once the transaction is over."""
    if info is None:
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
    is new. A new photo (most) costs one statement and its hash's index."""
    new = Photo(
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
    photo = await insert_unless_stored(session, new, "sha256")
    if photo is not None:
        if prepared.phash is not None:
            await index_hash(session, photo.id, prepared.phash)
        return photo, True
    await hold(session, f"photo:{prepared.sha256}")  # one backfill of its hash at a time
    existing = await stored_like(session, new, "sha256")
    if existing.phash is None and prepared.phash is not None:  # stored before hashing
        existing.phash = prepared.phash
        await index_hash(session, existing.id, prepared.phash)
    return existing, False


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
