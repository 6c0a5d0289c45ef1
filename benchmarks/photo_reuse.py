"""Photo reuse: what the perceptual hash and the reuse lookup add to each photo at 20,000 stored
photos (target: under 50 ms), against the photo pipeline without hashing and a lookup that reads
every stored hash, measured in the same run.

    .venv/bin/python -m benchmarks.photo_reuse [--photos 20000] [--db sqlite|postgresql|both]

Prints one JSON document to stdout; progress goes to stderr. The generated site photos (also
used by tests/test_photo_integrity.py) are made up of gradients, shapes, noise and text, from
fixed seeds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import imagehash
import numpy as np
from PIL import Image, ImageDraw
from sqlalchemy import func, insert, select

from benchmarks import document
from bot.app import App, open_app, prepare
from bot.settings import load_settings
from domain.calendar import Period
from domain.subjects import Subject
from store import integrity
from store.db import unit_of_work
from store.models import (
    Cluster,
    Person,
    Photo,
    PhotoHashBand,
    Report,
    ReportPhoto,
)
from store.photos import Prepared, prepare_photo, record_photo, release_photos

TARGET_MS = 50
MAX_BYTES = 20 * 1024 * 1024
PHOTOS_PER_REPORT = 10
REAL = 50  # stored photos made full size, whose re-encoded copies are probed
PROBE_SIZE = (1280, 960)  # a phone photo as Telegram or Zalo pass it on
_FAKE_HASH = imagehash.ImageHash(np.zeros((8, 8), dtype=bool))


def progress(message: str) -> None:
    print(f"[photo_reuse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- made-up site photos ---------------------------------------------------------------------


def site_photo(seed: int, size: tuple[int, int] = (400, 300)) -> Image.Image:
    """A made-up site photo: sky and ground in gradients, buildings and machines as shapes,
    sensor noise, a sign; the same seed, the same photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    horizon = int(h * rng.uniform(0.3, 0.7))
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    sky = [rng.uniform(60, 255, 3).astype(np.float32) for _ in range(2)]
    ground = [rng.uniform(20, 200, 3).astype(np.float32) for _ in range(2)]
    tilt = np.float32(rng.uniform(0, 1))
    t = y * (1 - tilt) + x * tilt
    pixels = np.empty((h, w, 3), np.float32)
    pixels[:horizon] = (sky[0] * (1 - t) + sky[1] * t)[:horizon]
    pixels[horizon:] = np.broadcast_to(ground[0] * (1 - x) + ground[1] * x, (h, w, 3))[horizon:]
    pixels += rng.normal(0, rng.uniform(2, 14), (h, w, 3)).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    scale = w / 400

    def colour() -> tuple[int, int, int]:
        r, g, b = (int(v) for v in rng.integers(0, 256, 3))
        return r, g, b

    for _ in range(int(rng.integers(3, 14))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour())
        else:
            corners = int(rng.integers(3, 7))
            points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(corners)]
            draw.polygon(points, fill=colour())
    for _ in range(int(rng.integers(0, 4))):
        at = (int(rng.integers(0, w - int(100 * scale))), int(rng.integers(0, h - int(20 * scale))))
        size_px = max(6, int(int(rng.integers(10, 30)) * scale))
        draw.text(at, f"CCN lô {seed}", fill=colour(), font_size=size_px)
    return image


def jpeg(image: Image.Image, quality: int = 90, exif: Image.Exif | None = None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, exif=exif if exif is not None else Image.Exif())
    return buffer.getvalue()


def resent(data: bytes, scale: float, quality: int) -> bytes:
    """The photo as a messenger passes it on: resized, re-encoded, EXIF gone."""
    with Image.open(io.BytesIO(data)) as image:
        size = (round(image.width * scale), round(image.height * scale))
        return jpeg(image.resize(size, Image.Resampling.LANCZOS), quality)


def _small_hash(seed: int) -> str:
    """The pHash of a generated photo, made small (pHash looks at 32×32 anyway): the stored
    photos' hashes, with the bit statistics of real ones rather than random bits."""
    return str(imagehash.phash(site_photo(seed, (128, 96))))


# --- the store ---------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="ccn-photo-reuse-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def database(kind: str, root: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{root / 'ccn.db'}"
        return
    from testing.pg import new_database, postgres_server

    with postgres_server() as base:
        async with new_database(base, prefix="bench") as url:
            yield url


async def fill(app: App, hashes: list[str], real: list[bytes], data_dir: Path) -> dict[str, int]:
    """Reports of every cluster month after month, ten photos each, until `hashes` and `real`
    are all stored: the real ones through the bot's own path, the others in bulk."""
    async with unit_of_work(app.sessions) as session:
        person = Person(full_name="Chủ đầu tư", role="investor")
        session.add(person)
        await session.flush()
        clusters = (await session.execute(select(Cluster.id, Cluster.code))).all()
        real_ids = []
        for data in real:
            prepared = prepare_photo(data, data_dir, MAX_BYTES)
            photo, _new = await record_photo(session, prepared)
            release_photos([prepared], {prepared.sha256})
            real_ids.append(photo.id)
        person_id = person.id
    rng = random.Random(15)
    photo_rows = [
        {
            "sha256": f"{rng.getrandbits(256):064x}",
            "mime": "image/jpeg",
            "size_bytes": 200_000,
            "width": 1280,
            "height": 960,
            "path": "photos/x.jpg",
            "thumb_path": "photos/thumbs/x.jpg",
            "phash": h,
            "created_at": datetime(2021, 1, 1, tzinfo=UTC),
        }
        for h in hashes
    ]
    async with unit_of_work(app.sessions) as session:
        ids: list[int] = list(real_ids)
        for start in range(0, len(photo_rows), 2000):
            chunk = photo_rows[start : start + 2000]
            result = await session.execute(insert(Photo).returning(Photo.id), chunk)
            new = list(result.scalars())
            ids.extend(new)
            bands = [
                {"key": k, "photo_id": i}
                for i, row in zip(new, chunk, strict=True)
                for k in integrity.band_keys(str(row["phash"]))
            ]
            await session.execute(insert(PhotoHashBand), bands)
        rng.shuffle(ids)
        period = Period(2021, 1)
        reports = 0
        while ids:
            for cluster_id, code in clusters:
                if not ids:
                    break
                when = datetime(period.year, period.month, 20, 2, tzinfo=UTC)
                reports += 1
                report_id = (
                    await session.execute(
                        insert(Report).returning(Report.id),
                        [
                            {
                                "reference": f"BC-{period.year}{period.month:02d}-{reports:05d}",
                                "subject": Subject.cluster(code),
                                "cluster_id": cluster_id,
                                "period": str(period),
                                "form": "operating",
                                "form_version": 1,
                                "version": 1,
                                "answers": {},
                                "submitted_at": when,
                                "submitted_by_person_id": person_id,
                                "channel": "telegram",
                                "deadline_at": when + timedelta(days=5),
                                "on_time": True,
                            }
                        ],
                    )
                ).scalar_one()
                linked, ids = ids[:PHOTOS_PER_REPORT], ids[PHOTOS_PER_REPORT:]
                await session.execute(
                    insert(ReportPhoto),
                    [
                        {
                            "photo_id": i,
                            "report_id": report_id,
                            "cluster_id": cluster_id,
                            "person_id": person_id,
                            "caption": "",
                            "channel": "telegram",
                            "received_at": when,
                        }
                        for i in linked
                    ],
                )
            period = period.next()
    async with app.sessions() as session:
        photos = await session.scalar(select(func.count()).select_from(Photo))
        bands = await session.scalar(select(func.count()).select_from(PhotoHashBand))
    return {"photos": int(photos or 0), "bands": int(bands or 0), "reports": reports}


# --- measuring ---------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 2)}


def prepared_in(data: bytes, folder: Path) -> tuple[float, Prepared]:
    """`prepare_photo` (check, thumbnail, hash, write) timed, in ms."""
    started = time.perf_counter()
    result = prepare_photo(data, folder, MAX_BYTES)
    return (time.perf_counter() - started) * 1000, result


async def scan(app: App, phash: str, target: integrity.Target) -> int:
    """The lookup not taken: every hash of a submitted report's photo read and compared."""
    async with app.sessions() as session:
        rows = await session.execute(
            select(Photo.phash, Report.subject, Report.period)
            .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
            .join(Report, Report.id == ReportPhoto.report_id)
        )
        return sum(
            1
            for other, subject, period in rows
            if other is not None
            and (subject != target.subject or period != target.period)
            and integrity.bits_apart(phash, other) <= integrity.REUSE_BITS
        )


async def measure(app: App, probes: list[tuple[str, bytes]], root: Path) -> dict[str, Any]:
    zone = app.deps().calendar.zone
    rules = integrity.Rules()
    async with app.sessions() as session:
        cluster_id, code = (await session.execute(select(Cluster.id, Cluster.code))).first() or (
            None,
            "",
        )
    target = integrity.Target(Subject.cluster(code), "2026-11", cluster_id)
    pipeline, baseline, lookups, checks, scans, candidates = [], [], [], [], [], []
    found = {"resent": 0, "new": 0}
    lookup = app.sessions()  # the update's session is open when its photos are checked
    await integrity.reuse_of(lookup, "0" * 16, target)  # warm: connection, compiled statement
    for n, (kind, data) in enumerate(probes):
        # the pipeline with and without the hash, each into a folder of its own, in turn
        with mock.patch("imagehash.phash", return_value=_FAKE_HASH):
            plain_ms, plain = prepared_in(data, root / "plain")
        hashed_ms, prepared = prepared_in(data, root / "hashed")
        release_photos([plain], ())
        baseline.append(plain_ms)
        pipeline.append(hashed_ms)
        phash = prepared.phash
        assert phash is not None
        started = time.perf_counter()
        await integrity.reuse_of(lookup, phash, target)
        lookups.append((time.perf_counter() - started) * 1000)
        near = select(PhotoHashBand.photo_id).where(
            PhotoHashBand.key.in_(integrity.probe_keys(phash))
        )
        candidates.append(
            int(await lookup.scalar(select(func.count()).select_from(near.subquery())) or 0)
        )
        await lookup.rollback()  # a fresh snapshot for the next probe
        # what the photo flow adds inside the update's transaction: the row's bands, the check
        # and its record (the Photo row itself is there without hashing too)
        async with unit_of_work(app.sessions) as session:
            photo, _new = await record_photo(session, prepared)
            started = time.perf_counter()
            flags = await integrity.check(session, photo, target, rules, zone)
            await integrity.record(session, photo.id, target, flags, datetime.now(UTC))
            await session.flush()
            checks.append((time.perf_counter() - started) * 1000)
        release_photos([prepared], {prepared.sha256})
        if any(f["kind"] == "reused" for f in flags):
            found[kind] += 1
        if n % 10 == 0:
            started = time.perf_counter()
            await scan(app, phash, target)
            scans.append((time.perf_counter() - started) * 1000)
    await lookup.close()
    hashing = [h - p for h, p in zip(pipeline, baseline, strict=True)]
    added = [h + c for h, c in zip(hashing, checks, strict=True)]
    return {
        "added_per_photo_ms": summary(added),
        "hashing_ms": summary(hashing),
        "check_and_record_ms": summary(checks),
        "reuse_lookup_ms": summary(lookups),
        "candidates_per_lookup": {
            "p50": statistics.median(candidates),
            "max": max(candidates),
        },
        "baseline": {
            "pipeline_without_hash_ms": summary(baseline),
            "pipeline_with_hash_ms": summary(pipeline),
            "lookup_by_reading_every_hash_ms": summary(scans),
        },
        "probes": {"resent": REAL, "new": len(probes) - REAL},
        "flagged_reused": found,
        "load_average_after": list(os.getloadavg()),
    }


async def one_database(
    kind: str, hashes: list[str], real: list[bytes], probes: list[tuple[str, bytes]]
) -> dict[str, Any]:
    with workdir() as root:
        async with database(kind, root) as url:
            settings = load_settings(DATA_DIR=root / "data", DATABASE_URL=url)
            async with open_app(settings) as app:
                progress(f"{kind}: migrating and loading the registry")
                await prepare(app)
                started = time.perf_counter()
                sizes = await fill(app, hashes, real, root / "data")
                progress(f"{kind}: stored {sizes} in {time.perf_counter() - started:.1f} s")
                result = await measure(app, probes, root)
                result["stored"] = sizes
                return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    progress(f"hashing {args.photos - REAL} generated photos")
    started = time.perf_counter()
    with ProcessPoolExecutor() as pool:
        hashes = list(pool.map(_small_hash, range(args.photos - REAL), chunksize=500))
    progress(f"hashed in {time.perf_counter() - started:.1f} s")
    real = [jpeg(site_photo(100_000 + i, PROBE_SIZE), 90) for i in range(REAL)]
    probes = [("resent", resent(data, 0.6, 70)) for data in real]
    probes += [("new", jpeg(site_photo(200_000 + i, PROBE_SIZE), 85)) for i in range(args.new)]
    config = {
        "photos": args.photos,
        "probe_size": list(PROBE_SIZE),
        "reuse_bits": integrity.REUSE_BITS,
        "bands": [w for _s, w in integrity.BANDS],
    }
    result = document("photo_reuse", config)
    for kind in kinds:
        result[kind] = await one_database(kind, hashes, real, probes)
    result["targets_met"] = {
        kind: result[kind]["added_per_photo_ms"]["p95"] < TARGET_MS for kind in kinds
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=150, help="new photos probed (not stored)")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args(argv)
    if args.photos <= REAL:
        parser.error(f"--photos above {REAL}")
    print(json.dumps(asyncio.run(run(args)), ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
