"""Photos that prove what they show (issue 15, item 2), on real images: the same site photo
re-encoded and resized is caught as used before, another is not (the false-positive rate over
240 distinct generated photos is measured and printed), and the capture time and place from
EXIF are flagged with exact distances."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from datetime import datetime
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import ExifTags, Image
from sqlalchemy import delete, select

from benchmarks.photo_reuse import jpeg, resent, site_photo
from bot.app import App
from domain.subjects import Subject
from handlers import integrity as told
from handlers.context import Deps
from handlers.port import Attachment
from store import integrity
from store.clusters import COLUMNS, parse_rows
from store.db import unit_of_work
from store.images import inspect
from store.integrity import REUSE_BITS, Rules, Target, bits_apart, metres_between
from store.models import Cluster, Person, Photo, PhotoCheck, PhotoHashBand, Report
from store.photos import prepare_photo, release_photos, save_photo
from tests import inprocess
from tests.dialog import file_may_report
from tests.records import attach_photo
from tests.test_dialogs import investor

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_BYTES = 20 * 1024 * 1024
SITE = (Decimal("21.000000"), Decimal("105.800000"))  # where the test cluster is


def with_exif(
    image: Image.Image, taken: str | None = None, at: tuple[float, float] | None = None
) -> bytes:
    """The photo as the camera wrote it: capture time `YYYY:MM:DD HH:MM:SS`, GPS in degrees."""
    exif = Image.Exif()
    if taken is not None:
        exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    if at is not None:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        for value, ref, tag, letters in (
            (at[0], ExifTags.GPS.GPSLatitudeRef, ExifTags.GPS.GPSLatitude, "NS"),
            (at[1], ExifTags.GPS.GPSLongitudeRef, ExifTags.GPS.GPSLongitude, "EW"),
        ):
            degrees = abs(value)
            minutes = (degrees - int(degrees)) * 60
            seconds = round((minutes - int(minutes)) * 60, 4)
            gps[ref] = letters[0] if value >= 0 else letters[1]
            gps[tag] = (float(int(degrees)), float(int(minutes)), seconds)
    return jpeg(image, 92, exif)


def phash(data: bytes) -> str:
    return inspect(data, MAX_BYTES).phash


# --- the hash ---------------------------------------------------------------------------------


def test_the_same_photo_reencoded_and_resized_is_within_reach() -> None:
    for seed in range(12):
        original = jpeg(site_photo(seed), 92)
        mine = phash(original)
        for scale, quality in ((0.5, 60), (0.3, 40), (0.75, 85), (1.0, 30), (2.0, 70)):
            again = phash(resent(original, scale, quality))
            assert bits_apart(mine, again) <= REUSE_BITS, (seed, scale, quality)


def test_a_photo_turned_by_its_exif_orientation_hashes_as_shown() -> None:
    picture = site_photo(3)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored sideways; shown turned 90° clockwise
    sideways = jpeg(picture.transpose(Image.Transpose.ROTATE_90), 92, exif)
    assert bits_apart(phash(sideways), phash(jpeg(picture, 92))) <= REUSE_BITS


def test_false_positive_rate_over_240_distinct_photos() -> None:
    hashes = [phash(jpeg(site_photo(1000 + seed), 85)) for seed in range(240)]
    pairs = list(itertools.combinations(hashes, 2))
    distances = [bits_apart(a, b) for a, b in pairs]
    false = sum(1 for d in distances if d <= REUSE_BITS)
    rate = false / len(pairs)
    print(
        f"\nphoto reuse: {false} false positives in {len(pairs)} pairs of 240 distinct photos "
        f"(rate {rate:.6f}); nearest pair {min(distances)} bits, threshold {REUSE_BITS}"
    )
    assert rate == 0


def test_a_hash_within_nine_bits_shares_a_probed_band() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        value = rng.getrandbits(64)
        flipped = value
        for bit in rng.sample(range(64), rng.randint(0, 9)):
            flipped ^= 1 << bit
        filed = set(integrity.band_keys(f"{flipped:016x}"))
        assert filed & set(integrity.probe_keys(f"{value:016x}"))


def test_haversine_to_the_metre() -> None:
    # one thousandth of a degree of latitude is 111.195 m on the mean sphere (R = 6,371,008.8 m)
    assert round(metres_between((21.0, 105.8), (21.001, 105.8))) == 111
    assert round(metres_between((21.0, 105.8), (21.027, 105.8))) == 3002
    assert round(metres_between((21.0, 105.8), (21.0, 105.85))) == 5190  # cos(21°) shrinks it
    assert round(metres_between((21.0285, 105.8542), (10.7769, 106.7009))) == 1_143_506


def test_the_registry_reads_a_location_column() -> None:
    header = [*COLUMNS]
    base = {c: "" for c in header} | {
        "code": "x",
        "appendix": "2",
        "number": "1",
        "name": "X",
        "kind": "operating_complete",
    }
    [row] = parse_rows(header, [(2, base | {"location": "21.0285, 105.8542"})])
    assert row.location == (Decimal("21.028500"), Decimal("105.854200")) and row.location_given
    [row] = parse_rows([c for c in header if c != "location"], [(2, base)])
    assert row.location is None and not row.location_given
    with pytest.raises(Exception) as bad:
        parse_rows(header, [(2, base | {"location": "91,105"})])
    assert [e.problem for e in bad.value.errors] == ["bad_location"]  # type: ignore[attr-defined]


# --- flagged in the store ---------------------------------------------------------------------


async def _cluster(app: App, code: str) -> Cluster:
    async with app.sessions() as session:
        found = await session.scalar(select(Cluster).where(Cluster.code == code))
        assert found is not None
        return found


async def _file(
    app: App, code: str, period: str, photos: list[bytes], data_dir: Path, reference: str
) -> Report:
    """A submitted report of `code` for `period` with these photos."""
    year, month = (int(p) for p in period.split("-"))
    when = datetime(year, month, 20, 9, 0, tzinfo=HANOI)
    async with unit_of_work(app.sessions) as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == code))
        person = Person(full_name="Chủ đầu tư", role="investor")
        session.add(person)
        await session.flush()
        assert cluster is not None
        report = Report(
            reference=reference,
            subject=Subject.cluster(code),
            cluster_id=cluster.id,
            period=period,
            form="operating",
            form_version=1,
            version=1,
            answers={},
            submitted_at=when,
            submitted_by_person_id=person.id,
            channel="telegram",
            deadline_at=when,
            on_time=True,
        )
        session.add(report)
        await session.flush()
        for data in photos:
            await attach_photo(session, report, data, data_dir, MAX_BYTES)
        return report


async def _check(
    app: App, data: bytes, data_dir: Path, code: str, period: str, **target: object
) -> list[dict[str, object]]:
    async with unit_of_work(app.sessions) as session:
        photo, _new = await save_photo(session, data, data_dir, MAX_BYTES)
        cluster = await session.scalar(select(Cluster.id).where(Cluster.code == code))
        aim = Target(Subject.cluster(code), period, cluster, **target)  # type: ignore[arg-type]
        flags = await integrity.check(session, photo, aim, Rules(), HANOI)
        await integrity.record(session, photo.id, aim, flags, datetime.now(HANOI))
        return flags


async def test_a_photo_sent_again_next_month_is_flagged_with_the_earlier_report(
    app: App, tmp_path: Path
) -> None:
    march = jpeg(site_photo(7), 92)
    await _file(app, "dai-thang", "2026-03", [march], tmp_path, "BC-202603-00001")
    again = resent(march, 0.5, 60)
    [flag] = await _check(app, again, tmp_path, "dai-thang", "2026-04")
    assert flag["kind"] == "reused" and flag["reference"] == "BC-202603-00001"
    assert flag["period"] == "2026-03" and int(str(flag["bits"])) <= REUSE_BITS
    # the very same file is the same stored photo: used before all the same
    [same] = await _check(app, march, tmp_path, "dai-thang", "2026-05")
    assert same["reference"] == "BC-202603-00001" and same["bits"] == 0
    # for another cluster, even in the same month
    [other] = await _check(app, again, tmp_path, "phu-tuc", "2026-03")
    assert other["subject"] == "cluster:dai-thang"
    # the same report's month (a correction sends its photos again): nothing to say
    assert await _check(app, again, tmp_path, "dai-thang", "2026-03") == []
    # a different photo of a site: nothing either
    assert await _check(app, jpeg(site_photo(8), 92), tmp_path, "dai-thang", "2026-04") == []
    async with app.sessions() as session:
        photo = await session.scalar(select(Photo).where(Photo.sha256 == sha256(again).hexdigest()))
        assert photo is not None
        kept = await integrity.flags_by_photo(session, Subject.cluster("dai-thang"), [photo.id])
        assert kept[photo.id] == []  # the latest check of it for dai-thang: 2026-03's
        checks = (await session.scalars(select(PhotoCheck))).all()
        assert len(checks) == 5


async def test_capture_time_and_place_from_exif(app: App, tmp_path: Path) -> None:
    async with unit_of_work(app.sessions) as session:
        await integrity.set_location(session, "dai-thang", *SITE, actor="test", source="test")
    picture = site_photo(21)
    # April 2026 begins on 1/4; 60 days before is 31/1: a photo of 15/1 is old, of 15/2 not
    old = with_exif(picture, taken="2026:01:15 10:00:00")
    [flag] = await _check(app, old, tmp_path, "dai-thang", "2026-04")
    assert flag == {"kind": "old", "taken": "2026-01-15"}
    assert (
        await _check(
            app, with_exif(site_photo(22), "2026:02:15 10:00:00"), tmp_path, "dai-thang", "2026-04"
        )
        == []
    )
    # 0.027° north of the site: 3,002 m, over the 3 km of the setting; 0.026°: 2,891 m, within
    far = with_exif(site_photo(23), at=(21.027, 105.8))
    assert await _check(app, far, tmp_path, "dai-thang", "2026-04") == [
        {"kind": "far", "metres": 3002, "source": "photo"}
    ]
    near = with_exif(site_photo(24), at=(21.026, 105.8))
    assert await _check(app, near, tmp_path, "dai-thang", "2026-04") == []
    # no GPS in the photo: the location shared in the report counts
    plain = jpeg(site_photo(25), 90)
    assert await _check(app, plain, tmp_path, "dai-thang", "2026-04", shared=(21.0, 105.85)) == [
        {"kind": "far", "metres": 5190, "source": "shared"}
    ]
    # a cluster without a location: no distance to speak of
    assert await _check(app, far, tmp_path, "phu-tuc", "2026-04") == []


async def test_a_location_is_proposed_from_the_first_located_reports_and_confirmed(
    app: App, tmp_path: Path
) -> None:
    places = [(21.0101, 105.8001), (21.0103, 105.8003), (21.0102, 105.8009)]
    for month, place in enumerate(places, start=1):
        data = with_exif(site_photo(40 + month), at=place)
        await _file(app, "phu-tuc", f"2026-0{month}", [data], tmp_path, f"BC-2026-{month}")
    async with app.sessions() as session:
        [proposal] = [p for p in await integrity.proposals(session) if p.code == "phu-tuc"]
    assert (proposal.latitude, proposal.longitude) == (Decimal("21.010200"), Decimal("105.800300"))
    assert proposal.references == ("BC-2026-1", "BC-2026-2", "BC-2026-3")
    assert proposal.spread_m == 62
    async with unit_of_work(app.sessions) as session:
        await integrity.set_location(
            session, "phu-tuc", proposal.latitude, proposal.longitude, actor="t", source="t"
        )
    async with app.sessions() as session:
        assert [p.code for p in await integrity.proposals(session) if p.code == "phu-tuc"] == []


async def test_the_reviewer_sees_the_flags_of_a_report(app: App, tmp_path: Path) -> None:
    march = jpeg(site_photo(30), 92)
    await _file(app, "dai-thang", "2026-03", [march], tmp_path, "BC-202603-00009")
    # sent for April with no check at the time (e.g. several clusters, no report open)
    april = await _file(
        app, "dai-thang", "2026-04", [resent(march, 0.6, 70)], tmp_path, "BC-202604-00009"
    )
    async with app.sessions() as session:
        report = await session.get(Report, april.id)
        assert report is not None
        [(_photo, flags)] = await integrity.report_flags(session, report, Rules(), HANOI)
    assert flags[0]["reference"] == "BC-202603-00009"
    assert told.described(flags, "vi") == "ảnh đã dùng: BC-202603-00009, tháng 03/2026"


# --- told to the sender -----------------------------------------------------------------------


async def test_the_sender_is_told_and_the_photo_is_kept(deps: Deps, app: App) -> None:
    may = jpeg(site_photo(50), 92)
    chat = await investor(deps)
    await file_may_report(deps, {})
    async with unit_of_work(app.sessions) as session:
        report = await session.scalar(select(Report).where(Report.reference == "BC-202105-00001"))
        assert report is not None
        await attach_photo(session, report, may, deps.config.data_dir, MAX_BYTES)
    again = resent(may, 0.5, 70)

    async def fetch() -> bytes:
        return again

    await chat.say("/baocao")
    answer = await chat.send(
        chat.incoming(attachments=(Attachment("photo", fetch, file_name="a.jpg"),))
    )
    assert "Ảnh này giống ảnh đã gửi tháng 05/2021 (báo cáo BC-202105-00001)" in answer
    assert "Ảnh vẫn được giữ" in answer
    async with app.sessions() as session:
        [check] = (await session.scalars(select(PhotoCheck))).all()
    assert check.period == "2021-06" and check.flags[0]["kind"] == "reused"


async def test_photos_stored_before_hashing_get_their_hash_from_the_cli(
    app: App, tmp_path: Path
) -> None:
    """A photo stored before the checks came in has no hash, so its reuse goes unseen until
    `ccn-bot photos rehash` gives it one from its file."""
    data_dir = tmp_path / "data"
    march = jpeg(site_photo(61), 92)
    await _file(app, "dai-thang", "2026-03", [march], data_dir, "BC-202603-00061")
    async with unit_of_work(app.sessions) as session:  # as stored before migration 0010
        photo = await session.scalar(select(Photo))
        assert photo is not None
        photo.phash = None
        await session.execute(delete(PhotoHashBand))
    again = resent(march, 0.5, 60)
    assert await _check(app, again, data_dir, "dai-thang", "2026-04") == []  # unseen
    url = app.settings.database_url
    rehash = ("photos", "rehash")
    done = await asyncio.to_thread(inprocess.ccn_at, tmp_path, url, *rehash, data_dir=data_dir)
    assert done.returncode == 0, done.stderr
    # the March photo (April's has its own hash already)
    assert "Đã tính mã nhận dạng cho 1 ảnh." in done.stdout
    [flag] = await _check(app, again, data_dir, "dai-thang", "2026-05")
    assert flag["kind"] == "reused" and flag["reference"] == "BC-202603-00061"
    again_run = await asyncio.to_thread(inprocess.ccn_at, tmp_path, url, *rehash, data_dir=data_dir)
    assert "cho 0 ảnh" in again_run.stdout  # nothing left to do


def test_a_prepared_photo_is_on_disk_before_its_row_is_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update's transaction commits (and syncs) the photo's row after prepare_photo: the
    photo, its thumbnail and their names in their folders are synced before it returns, so
    that a power cut cannot leave a row whose file is gone."""
    synced: list[Path] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    prepared = prepare_photo(jpeg(site_photo(7), 90), tmp_path, 10 * 1024 * 1024)
    photo, thumb = tmp_path / prepared.path, tmp_path / prepared.thumb_path
    assert photo.exists() and thumb.exists()
    for path in (photo, thumb):
        written = path.with_suffix(path.suffix + ".part")  # synced, then renamed
        assert written in synced and path.parent in synced
        assert synced.index(written) < synced.index(path.parent)
    release_photos([prepared], {prepared.sha256})
