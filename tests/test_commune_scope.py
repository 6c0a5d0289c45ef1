"""Who sees and owes what after the 2025 reorganisation: a commune's or ward's officer sees the
clusters placed in it, not the former district's; an organisation merged into another hands
what it owed and saw to its successor from the next month, while the months before keep its
name; a cluster two districts share (Từ Liêm) is seen by both districts' officers and owed
once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import select, text

from bot.app import App
from domain.calendar import Period
from domain.roles import Role
from handlers.context import Deps
from handlers.subjects import items_of
from reminders.policy import Policy
from reminders.sender import plan
from reports import upward
from reports.summary import summarise
from store.access import person_for
from store.clusters import all_clusters
from store.db import make_engine, upgrade
from store.models import Cluster, District
from tests.dialog import Chat, Clock
from tests.test_orgs import ADMIN, at, import_orgs, join, place_cluster, write_csv
from tests.test_status import report

COMMUNE = "UBND xã Phú Xuyên"
DISTRICT = "UBND Huyện Phú Xuyên"
PHU_XUYEN = {  # the registry's clusters of Huyện Phú Xuyên, by code
    "dai-thang": "Đại Thắng",
    "phu-tuc": "Phú Túc",
    "phu-yen": "Phú Yên",
    "van-tu": "Vân Từ",
}
IN_COMMUNE = ("dai-thang", "phu-tuc")


def at_clock(chat: Chat, moment: str) -> Chat:
    """The same person, their clock at `moment`."""
    base = chat.deps
    return Chat(Deps(base.sessions, base.config, Clock(at(moment))), chat.chat_id, chat.channel)


async def cluster_names(app: App) -> dict[str, str]:
    async with app.sessions() as session:
        return {c.code: c.name for c in await all_clusters(session)}


async def sees(chat: Chat, names: dict[str, str]) -> set[str]:
    """The clusters of `names` whose card the person gets from /tinhhinh."""
    seen = set()
    for code, name in names.items():
        answer = await chat.say(f"/tinhhinh {name}")
        if answer.startswith(name):
            seen.add(code)
    return seen


def listed(text: str, names: dict[str, str]) -> set[str]:
    return {code for code, name in names.items() if name in text}


# --- a commune's officer --------------------------------------------------------------------------


async def test_a_communes_officer_sees_its_clusters_not_the_former_district(
    app: App, tmp_path: Path
) -> None:
    names = {c: n for c, n in (await cluster_names(app)).items() if c in PHU_XUYEN}
    district = await join(app, "2025-05-01T09:00", "3003", Role.DISTRICT, district="Phú Xuyên")
    for number, code in enumerate(PHU_XUYEN, start=1):
        await join(app, "2025-05-01T09:00", f"60{number}", Role.INVESTOR, clusters=[code])
    june = at_clock(district, "2025-06-20T09:00")
    before = (await june.say("/chuabaocao 6/2025"), await june.say("/tonghop 6/2025"))
    assert listed(before[0], names) == set(PHU_XUYEN)

    # 1 July 2025: the commune's committee; two of the district's clusters are placed in it
    await import_orgs(
        app,
        write_csv(
            tmp_path / "orgs.csv",
            [
                {"name": "UBND thành phố Hà Nội", "kind": "other"},
                {
                    "name": COMMUNE,
                    "kind": "commune_committee",
                    "district": "Huyện Phú Xuyên",
                    "valid_from": "1/7/2025",
                },
                {"name": DISTRICT, "kind": "district_committee", "valid_to": "30/6/2025"},
            ],
        ),
    )
    for code in IN_COMMUNE:
        await place_cluster(app, tmp_path, code, COMMUNE)
    commune = await join(app, "2025-07-20T09:00", "4004", Role.DISTRICT, district=COMMUNE)

    assert await sees(commune, names) == set(IN_COMMUNE)
    missing = await commune.say("/chuabaocao 7/2025")
    assert listed(missing, names) == set(IN_COMMUNE)
    assert COMMUNE in missing  # its own report
    assert "Chưa báo cáo tháng 07/2025: 3." in missing
    assert "Báo cáo: đã nhận 0/3" in await commune.say("/tonghop 7/2025")
    # one of its clusters reports: its rate moves, the other clusters' reports are not its own
    await report(app, "601", "dai-thang", "2025-07", {"qhct": "yes"}, "2025-07-21T09:00")
    await report(app, "603", "phu-yen", "2025-07", {"qhct": "yes"}, "2025-07-21T09:00")
    assert "Báo cáo: đã nhận 1/3" in await commune.say("/tonghop 7/2025")
    # the digest after the deadline: its own missing reports, named after the commune
    async with app.sessions() as session:
        outgoing, _skipped = await plan(
            session, app.deps().calendar, Policy(), at("2025-07-26T09:00"), frozenset({"telegram"})
        )
    digest = next(o.reply.text for o in outgoing if o.chat_id == "4004" and o.kind == "overdue")
    assert "xã Phú Xuyên" in digest and listed(digest, names) == {"phu-tuc"}
    # the report it sends answers for its clusters' district steps, not the others'
    async with app.sessions() as session:
        officer = await person_for(session, "telegram", "4004")
        assert officer is not None
        items = {i.key for i in await items_of(session, officer, Period(2025, 7))}
    stepped = {i.split("-", 1)[1].rsplit("-", 1)[0] for i in items if i.startswith("s-")}
    assert stepped and stepped <= set(IN_COMMUNE)

    # the district's officer of before: June 2025 as it was, and the district's clusters still
    after = (await june.say("/chuabaocao 6/2025"), await june.say("/tonghop 6/2025"))
    assert after == before
    assert await sees(district, names) == set(PHU_XUYEN)


# --- a merge --------------------------------------------------------------------------------------

OLD, NEW = "Sở Tài nguyên và Môi trường", "Sở Nông nghiệp và Môi trường"
MERGE = [
    {"name": "UBND thành phố Hà Nội", "kind": "other"},
    {"name": NEW, "kind": "department", "valid_from": "1/3/2025"},
    {"name": OLD, "kind": "department", "valid_to": "28/2/2025", "merged_into": NEW},
]


async def test_a_merged_department_hands_its_slot_and_clusters_to_its_successor(
    app: App, tmp_path: Path
) -> None:
    admin = await join(app, "2025-01-05T09:00", ADMIN, Role.ADMIN)
    old = await join(app, "2025-01-05T09:00", "7001", Role.DEPARTMENT, organisation=OLD)
    calendar = app.deps().calendar

    async def february(folder: Path) -> list[list[Any]]:
        async with app.sessions() as session:
            summary = await summarise(session, Period(2025, 2), calendar)
            month = await upward.read(session, summary, calendar, at("2025-02-26T09:00"))
        book = load_workbook(upward.write(month, folder).workbook)
        return [[list(r) for r in ws.iter_rows(values_only=True)] for ws in book.worksheets]

    async def reminded(moment: str) -> dict[str, str]:
        async with app.sessions() as session:
            outgoing, _skipped = await plan(
                session, calendar, Policy(), at(moment), frozenset({"telegram"})
            )
        return {o.chat_id: o.reply.text for o in outgoing if o.kind.startswith("due")}

    before = await february(tmp_path / "before")
    assert OLD in [c for sheet in before for row in sheet for c in row]
    await import_orgs(app, write_csv(tmp_path / "merge.csv", MERGE))
    new = await join(app, "2025-03-02T09:00", "7002", Role.DEPARTMENT, organisation=NEW)

    # February keeps the predecessor: its workbook is as it was, its reminder names it
    assert await february(tmp_path / "after") == before
    assert set(await reminded("2025-02-20T08:00")) == {"7001"}
    assert OLD in (await reminded("2025-02-20T08:00"))["7001"]
    # from March the successor owes it, under its own name, reminded to both officers
    async with app.sessions() as session:
        march = await summarise(session, Period(2025, 3), calendar)
    departments = [s for s in march.slots if s.reporter == "department"]
    assert [s.title for s in departments] == [NEW] and len(departments[0].people) == 2
    missing = await admin.say("/chuabaocao 3/2025")
    assert NEW in missing and OLD not in missing
    reminders = await reminded("2025-03-20T08:00")
    assert set(reminders) == {"7001", "7002"}
    assert NEW in reminders["7002"] and OLD not in reminders["7002"]
    # the predecessor's officer is told the merge once, in the words of /baocao
    merged = f"{OLD} đã hợp nhất vào {NEW}: từ kỳ 03/2025, anh/chị báo cáo cho {NEW}."
    assert reminders["7001"].count(merged) == 1 and reminders["7001"].count(OLD) == 1
    assert merged in (await reminded("2025-04-20T08:00"))["7001"]  # the merge's month

    # the successor sees the clusters where the plan gave its predecessor a step
    names = await cluster_names(app)
    dai_thang = {"dai-thang": names["dai-thang"]}
    assert await sees(at_clock(new, "2025-03-05T09:00"), dai_thang) == {"dai-thang"}
    # the predecessor's officer is told politely, and reports for the successor
    told = await at_clock(old, "2025-03-20T09:00").say("/baocao")
    assert f"{OLD} đã hợp nhất vào {NEW}: từ kỳ 03/2025, anh/chị báo cáo cho {NEW}." in told
    assert f"Báo cáo tháng 03/2025 — {NEW}." in told


# --- a cluster of two districts ------------------------------------------------------------------


async def test_both_tu_liem_districts_see_and_report_on_their_cluster(app: App) -> None:
    async with app.sessions() as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == "tu-liem"))
        assert cluster is not None
        plan_district = await session.get(District, cluster.district_id)
    assert plan_district is not None
    assert plan_district.name == "Quận Nam Từ Liêm - Bắc Từ Liêm"  # the plan's row stays
    name = (await cluster_names(app))["tu-liem"]
    admin = await join(app, "2021-06-01T09:00", ADMIN, Role.ADMIN)
    officers = [
        await join(app, "2021-06-01T09:00", chat, Role.DISTRICT, district=district)
        for chat, district in (("8001", "Quận Bắc Từ Liêm"), ("8002", "Quận Nam Từ Liêm"))
    ]
    await join(app, "2021-06-01T09:00", "8003", Role.INVESTOR, clusters=["tu-liem"])
    for officer in officers:
        assert await sees(officer, {"tu-liem": name}) == {"tu-liem"}
        assert name in await officer.say("/chuabaocao 6/2021")
        async with app.sessions() as session:
            person = await person_for(session, "telegram", officer.chat_id)
            assert person is not None
            items = await items_of(session, person, Period(2021, 6))
        assert any(i.key.startswith("s-tu-liem-") for i in items)  # the plan's district tasks
    assert (await admin.say("/chuabaocao 6/2021")).count(name) == 1

    # the investor's one report fills the one slot, for the city and for both districts
    await report(
        app, "8003", "tu-liem", "2021-06", {"occupancy": "100"}, "2021-06-20T09:00", "operating"
    )
    async with app.sessions() as session:
        june = await summarise(session, Period(2021, 6), app.deps().calendar)
    mine = [s for s in june.slots if s.subject.code == "tu-liem"]
    assert len(mine) == 1 and mine[0].filled
    for officer in officers:
        assert name not in await officer.say("/chuabaocao 6/2021")


async def test_the_migration_shares_a_stored_two_district_cluster(db_url: str) -> None:
    """A database of before (revision 0011) with the plan's Từ Liêm row: after 0012 both
    districts share the cluster, as a registry load would make them."""
    engine = make_engine(db_url)
    try:
        await upgrade(engine, "0011")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO districts (code, name) VALUES "
                    "('nam-tu-liem-bac-tu-liem', 'Quận Nam Từ Liêm - Bắc Từ Liêm'), "
                    "('bac-tu-liem', 'Quận Bắc Từ Liêm')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO clusters (code, appendix, section, number, name, district_id, "
                    "kind, missing, created_at, updated_at) SELECT 'tu-liem', 2, 'A.I', 8, "
                    "'Cụm CN Từ Liêm', id, 'operating_complete', '', :now, :now FROM districts "
                    "WHERE code = 'nam-tu-liem-bac-tu-liem'"
                ),
                {"now": at("2026-11-26T09:00")},
            )
        await upgrade(engine, "0012")
        async with engine.connect() as conn:
            shared = (
                await conn.execute(
                    text(
                        "SELECT d.name FROM cluster_districts c JOIN districts d "
                        "ON d.id = c.district_id JOIN clusters k ON k.id = c.cluster_id "
                        "WHERE k.code = 'tu-liem' ORDER BY d.name"
                    )
                )
            ).scalars()
            assert list(shared) == ["Quận Bắc Từ Liêm", "Quận Nam Từ Liêm"]
    finally:
        await engine.dispose()
