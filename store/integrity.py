"""Whether a site photo proves what it shows. Three things are noticed about a photo sent for a
subject's report of a period, each a flag (a JSON object) kept in `photo_checks`:

- `reused`: its perceptual hash is within REUSE_BITS of a photo of a submitted report of
  another period of the same subject, or of another subject — {"kind": "reused", "reference",
  "period", "subject", "bits"}, the earliest such report;
- `old`: its EXIF capture time is more than `max_age_days` before the period's first day —
  {"kind": "old", "taken": "YYYY-MM-DD"} (the camera's local date);
- `far`: where it was taken (EXIF GPS; else the location the person shared in the report) is
  more than `max_distance_m` from the cluster's location — {"kind": "far", "metres",
  "source": "photo" | "shared"}.

The reuse lookup finds near hashes through an index, not by reading every photo: the 64 bits
are cut into 5 bands (13, 13, 13, 13, 12 bits) and each band is a row of `photo_hash_bands`.
Two hashes at most 9 bits apart have a band at most one bit apart (if all 5 differed by 2 or
more, they would be 10 apart), so looking up each band's value and its one-bit neighbours
(5 × 14 keys) finds every hash within REUSE_BITS = 8: a few hundred candidates at 20,000
photos, compared in Python, and only the near ones are looked up in the reports
(benchmarks/photo_reuse.py measures it against reading every hash).

A cluster's location comes from the registry (its `location` column) or, where that is empty,
from its first located reports: `proposals` offers the median of their places and
`set_location` records what an admin confirms (`ccn-bot clusters locate`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Period
from domain.draft import LOCATION_KEY, valid_where, value_of
from domain.subjects import Subject
from store.models import (
    AuditLog,
    Cluster,
    Photo,
    PhotoCheck,
    PhotoHashBand,
    Report,
    ReportPhoto,
)

# Measured on 300 generated site photos (tests/test_photo_integrity.py): the same photo
# re-encoded (JPEG quality 30–85) and resized (30–100 %) is 0–6 bits from the original; two
# different photos were never closer than 12 (44,850 pairs).
REUSE_BITS = 8
BANDS = ((51, 13), (38, 13), (25, 13), (12, 13), (0, 12))  # (shift, width) of each band
EARTH_RADIUS_M = 6_371_008.8  # the mean radius (IUGG)
PROPOSE_FROM = 3  # a cluster's location is proposed from its first located reports


@dataclass(frozen=True)
class Rules:
    """The settings the checks follow (PHOTO_MAX_AGE_DAYS, PHOTO_MAX_DISTANCE_KM)."""

    max_age_days: int = 60
    max_distance_m: int = 3000


@dataclass(frozen=True)
class Target:
    """What a photo is sent for: a subject's report of a period; the cluster it is about (its
    location) and the location the person shared in the report, if any."""

    subject: Subject
    period: str  # YYYY-MM
    cluster_id: int | None
    shared: tuple[float, float] | None = None


# --- the hash and its bands -------------------------------------------------------------------


def bits_apart(a: str, b: str) -> int:
    """The Hamming distance of two hashes in hex."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def band_keys(phash: str) -> list[int]:
    """The keys a hash is filed under: one per band, `band << 16 | bits`."""
    value = int(phash, 16)
    return [
        i << 16 | (value >> shift) & ((1 << width) - 1) for i, (shift, width) in enumerate(BANDS)
    ]


def probe_keys(phash: str) -> list[int]:
    """The keys of every hash that has a band equal to this one's or one bit from it."""
    keys = []
    for key, (_shift, width) in zip(band_keys(phash), BANDS, strict=True):
        keys.append(key)
        keys.extend(key ^ (1 << bit) for bit in range(width))
    return keys


async def index_hash(session: AsyncSession, photo_id: int, phash: str) -> None:
    """File a stored photo's hash under its bands."""
    await session.execute(
        insert(PhotoHashBand), [{"key": k, "photo_id": photo_id} for k in band_keys(phash)]
    )


# --- the checks -----------------------------------------------------------------------------


async def unhashed(session: AsyncSession, after: int = 0, limit: int = 200) -> list[Photo]:
    """Photos stored before hashing (no pHash), by id after `after`: for `photos rehash`."""
    query = (
        select(Photo).where(Photo.phash.is_(None), Photo.id > after).order_by(Photo.id).limit(limit)
    )
    return list((await session.scalars(query)).all())


async def set_hash(session: AsyncSession, photo: Photo, phash: str) -> None:
    """A hash computed after the fact, indexed for the reuse lookup."""
    photo.phash = phash
    await index_hash(session, photo.id, phash)


def metres_between(a: tuple[float, float], b: tuple[float, float]) -> float:
    """The great-circle distance (haversine) between two (latitude, longitude) in degrees."""
    lat1, lon1, lat2, lon2 = (math.radians(v) for v in (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


def shared_location(answers: dict[str, Any]) -> tuple[float, float] | None:
    """The location shared in a draft's or report's answers, if any."""
    text = value_of(answers, LOCATION_KEY)
    if text is None or not valid_where(text):
        return None
    lat, lon = text.split(",")
    return float(lat), float(lon)


async def reuse_of(
    session: AsyncSession, phash: str, target: Target, before: datetime | None = None
) -> dict[str, Any] | None:
    """The earliest submitted report of another period or another subject with a photo within
    REUSE_BITS of `phash` (sent before `before`, if given), as a `reused` flag."""
    candidates = await session.execute(
        select(Photo.id, Photo.phash)
        .join(PhotoHashBand, PhotoHashBand.photo_id == Photo.id)
        .where(PhotoHashBand.key.in_(probe_keys(phash)))
    )
    near = {i for i, other in candidates if other and bits_apart(phash, other) <= REUSE_BITS}
    if not near:  # most photos: one indexed read of a few hundred short rows
        return None
    query = (
        select(Photo.phash, Report.reference, Report.period, Report.subject, Report.submitted_at)
        .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
        .join(Report, Report.id == ReportPhoto.report_id)
        .where(Photo.id.in_(near))
        .where(or_(Report.subject != str(target.subject), Report.period != target.period))
    )
    if before is not None:
        query = query.where(ReportPhoto.received_at < before)
    best: tuple[str, datetime, int, str, Subject] | None = None
    for other, reference, period, subject, submitted in await session.execute(query):
        if other is None:
            continue
        bits = bits_apart(phash, other)
        if bits > REUSE_BITS:
            continue
        found = (period, submitted, bits, reference, subject)
        if best is None or found[:3] < best[:3]:
            best = found
    if best is None:
        return None
    period, _submitted, bits, reference, subject = best
    return {
        "kind": "reused",
        "reference": reference,
        "period": period,
        "subject": str(subject),
        "bits": bits,
    }


def taken_long_before(photo: Photo, period: str, rules: Rules, zone: ZoneInfo) -> date | None:
    """The day the photo was taken (camera's date), if more than max_age_days before the
    period's first day in `zone`."""
    if photo.taken_at is None:
        return None
    p = Period.parse(period)
    start = datetime(p.year, p.month, 1, tzinfo=zone)
    if photo.taken_at >= start - timedelta(days=rules.max_age_days):
        return None
    return photo.taken_at.astimezone(zone).date()


async def check(
    session: AsyncSession,
    photo: Photo,
    target: Target,
    rules: Rules,
    zone: ZoneInfo,
    *,
    before: datetime | None = None,
) -> list[dict[str, Any]]:
    """The flags of `photo` sent for `target` (see the module's note); [] if nothing is
    noticed. `before`: only photos sent before this moment count as earlier (a photo checked
    again later is not compared with those sent after it)."""
    flags: list[dict[str, Any]] = []
    if photo.phash is not None:
        reused = await reuse_of(session, photo.phash, target, before)
        if reused is not None:
            flags.append(reused)
    taken = taken_long_before(photo, target.period, rules, zone)
    if taken is not None:
        flags.append({"kind": "old", "taken": taken.isoformat()})
    cluster = await session.get(Cluster, target.cluster_id) if target.cluster_id else None
    if cluster is not None and cluster.latitude is not None and cluster.longitude is not None:
        site = (float(cluster.latitude), float(cluster.longitude))
        where: tuple[float, float] | None = target.shared
        source = "shared"
        if photo.latitude is not None and photo.longitude is not None:
            where, source = (float(photo.latitude), float(photo.longitude)), "photo"
        if where is not None:
            metres = metres_between(site, where)
            if metres > rules.max_distance_m:
                flags.append({"kind": "far", "metres": round(metres), "source": source})
    return flags


async def record(
    session: AsyncSession,
    photo_id: int,
    target: Target,
    flags: list[dict[str, Any]],
    at: datetime,
    *,
    new_photo: bool = False,
) -> None:
    """Keep the flags of a photo sent for `target` (replacing those of the same photo sent for
    the same report before; a photo this transaction stored, `new_photo`, has none). The
    caller holds the photo's row (store.photos.record_photo)."""
    found = (
        None
        if new_photo
        else await session.scalar(
            select(PhotoCheck).where(
                PhotoCheck.photo_id == photo_id,
                PhotoCheck.subject == str(target.subject),
                PhotoCheck.period == target.period,
            )
        )
    )
    if found is None:
        session.add(
            PhotoCheck(
                photo_id=photo_id,
                subject=target.subject,
                period=target.period,
                flags=flags,
                checked_at=at,
            )
        )
    elif found.flags != flags:
        found.flags, found.checked_at = flags, at


# --- what the reviewer sees -----------------------------------------------------------------


async def flags_by_photo(
    session: AsyncSession, subject: Subject, photo_ids: Iterable[int], period: str | None = None
) -> dict[int, list[dict[str, Any]]]:
    """The flags kept for these photos sent for `subject` (for `period`, or the latest)."""
    ids = list(photo_ids)
    if not ids:
        return {}
    query = select(PhotoCheck).where(
        PhotoCheck.subject == str(subject), PhotoCheck.photo_id.in_(ids)
    )
    if period is not None:
        query = query.where(PhotoCheck.period == period)
    out: dict[int, list[dict[str, Any]]] = {}
    for found in (await session.scalars(query.order_by(PhotoCheck.checked_at))).all():
        out[found.photo_id] = list(found.flags)
    return out


async def report_flags(
    session: AsyncSession, report: Report, rules: Rules, zone: ZoneInfo
) -> list[tuple[Photo, list[dict[str, Any]]]]:
    """A submitted report's photos with their flags: those kept when each was sent, or, for a
    photo not checked then (sent before the subject was known), checked now as of when it was
    sent."""
    rows = (
        await session.execute(
            select(Photo, ReportPhoto.received_at)
            .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
            .where(ReportPhoto.report_id == report.id)
            .order_by(ReportPhoto.received_at, ReportPhoto.id)
        )
    ).all()
    kept = await flags_by_photo(session, report.subject, [p.id for p, _r in rows], report.period)
    target = Target(
        report.subject, report.period, report.cluster_id, shared_location(report.answers)
    )
    out = []
    for photo, received in rows:
        flags = kept.get(photo.id)
        if flags is None:
            flags = await check(session, photo, target, rules, zone, before=received)
        out.append((photo, flags))
    return out


# --- a cluster's location -------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    """A location for a cluster that has none: the median of where its first located reports
    were made (a location shared in the report, else its photos' GPS), with those reports."""

    code: str
    name: str
    latitude: Decimal
    longitude: Decimal
    references: tuple[str, ...]
    spread_m: int  # the farthest of those places from the proposal


async def proposals(session: AsyncSession, first: int = PROPOSE_FROM) -> list[Proposal]:
    """A proposal for each cluster without a location whose reports have located one."""
    clusters = (
        await session.scalars(
            select(Cluster).where(Cluster.latitude.is_(None)).order_by(Cluster.code)
        )
    ).all()
    out = []
    for cluster in clusters:
        places: list[tuple[float, float]] = []
        references: list[str] = []
        reports = await session.scalars(
            select(Report)
            .where(Report.cluster_id == cluster.id)
            .order_by(Report.submitted_at, Report.id)
        )
        for report in reports:
            where = shared_location(report.answers) or await _photo_place(session, report.id)
            if where is None:
                continue
            places.append(where)
            references.append(report.reference)
            if len(places) == first:
                break
        if not places:
            continue
        lat = median(p[0] for p in places)
        lon = median(p[1] for p in places)
        spread = max(metres_between((lat, lon), p) for p in places)
        out.append(
            Proposal(
                cluster.code,
                cluster.name,
                Decimal(f"{lat:.6f}"),
                Decimal(f"{lon:.6f}"),
                tuple(references),
                round(spread),
            )
        )
    return out


async def _photo_place(session: AsyncSession, report_id: int) -> tuple[float, float] | None:
    """Where the first of a report's photos with GPS was taken."""
    found = (
        await session.execute(
            select(Photo.latitude, Photo.longitude)
            .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
            .where(ReportPhoto.report_id == report_id, Photo.latitude.is_not(None))
            .where(Photo.longitude.is_not(None))
            .order_by(ReportPhoto.received_at, ReportPhoto.id)
            .limit(1)
        )
    ).first()
    if found is None or found[0] is None or found[1] is None:
        return None
    return float(found[0]), float(found[1])


class UnknownCluster(LookupError):
    pass


async def set_location(
    session: AsyncSession,
    code: str,
    latitude: Decimal,
    longitude: Decimal,
    *,
    actor: str,
    source: str,
) -> Cluster:
    """Record a cluster's location (an admin confirming a proposal, or typing it)."""
    cluster = await session.scalar(select(Cluster).where(Cluster.code == code))
    if cluster is None:
        raise UnknownCluster(code)
    before = (cluster.latitude, cluster.longitude)
    cluster.latitude, cluster.longitude = latitude, longitude
    session.add(
        AuditLog(
            actor=actor,
            action="clusters.locate",
            entity="cluster",
            entity_id=code,
            detail={
                "source": source,
                "location": f"{latitude},{longitude}",
                "before": None if before[0] is None else f"{before[0]},{before[1]}",
            },
        )
    )
    await session.flush()
    return cluster


def parse_location(text: str) -> tuple[Decimal, Decimal]:
    """`21.0285, 105.8542` (latitude, longitude in degrees) as two Decimals of 6 places;
    ValueError if it is not a place on the globe."""
    parts = text.replace(";", ",").split(",")
    if len(parts) != 2:
        raise ValueError(text)
    try:
        lat, lon = (Decimal(p.strip()).quantize(Decimal("0.000001")) for p in parts)
    except ArithmeticError as exc:
        raise ValueError(text) from exc
    if not (lat.is_finite() and lon.is_finite() and abs(lat) <= 90 and abs(lon) <= 180):
        raise ValueError(text)
    return lat, lon


def format_location(latitude: Decimal | None, longitude: Decimal | None) -> str:
    """`21.028500,105.854200`, or "" for none (the registry's `location` column)."""
    if latitude is None or longitude is None:
        return ""
    return f"{Decimal(latitude):.6f},{Decimal(longitude):.6f}"
