"""Organisations and places as data, as Sở Công Thương uses them after the 2025 reorganisation
(no district level since 1 July 2025): `ccn-bot orgs import|export` (all or nothing, a bad row
named by line and column), a cluster's commune through `clusters import`, and what is owed
following the organisations from the period after a change — while a past month's workbook
stays exactly as it was."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.app import App
from domain.calendar import Period
from domain.roles import OrgKind, Role
from domain.slots import owes
from handlers.context import Deps
from reminders.policy import Policy
from reminders.sender import plan
from reports.summary import summarise
from store.access import InviteError, accept_invitation, create_invitation
from store.clusters import COLUMNS as CLUSTER_COLUMNS
from store.clusters import all_clusters, parse_rows, to_row, upsert_clusters
from store.db import unit_of_work
from store.models import Cluster, Organisation, Report
from store.orgs_table import COLUMNS, ImportRejected, parse_orgs, upsert_orgs
from store.tables import read_table
from tests.dialog import Chat, Clock, finish, play
from tests.inprocess import ccn_exits, exported_rows
from tests.records import refusals, workbook_sheets
from tests.test_dialogs import DISTRICT_START

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
ADMIN = "801"
REGISTRY = Path(__file__).parent.parent / "store" / "registry"
HEADER_ROW = 8  # the appendices' table header, under the title block
DISTRICT = "UBND Huyện Phú Xuyên"
COMMUNE = "UBND xã Phú Xuyên"
# Phú Xuyên's committee ends on 30 June 2025; the commune's starts on 1 July 2025
REORGANISATION = [
    {
        "name": COMMUNE,
        "kind": "commune_committee",
        "district": "Huyện Phú Xuyên",
        "parent": "UBND thành phố Hà Nội",
        "valid_from": "1/7/2025",
    },
    {"name": "UBND thành phố Hà Nội", "kind": "other"},
    {
        "name": DISTRICT,
        "kind": "district_committee",
        "district": "Huyện Phú Xuyên",
        "valid_to": "30/6/2025",
        "merged_into": COMMUNE,
    },
]


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment).replace(tzinfo=HANOI)


def write_csv(
    path: Path, rows: Sequence[Mapping[str, object]], header: tuple[str, ...] = COLUMNS
) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header))
        writer.writeheader()
        writer.writerows({h: str(r.get(h, "")) for h in header} for r in rows)
    return path


async def import_orgs(app: App, path: Path) -> None:
    found = read_table(path)
    specs = parse_orgs(found.header, found.rows)
    async with unit_of_work(app.sessions) as session:
        await upsert_orgs(session, specs, actor="test", source=str(path))


async def place_cluster(app: App, tmp_path: Path, code: str, commune: str) -> None:
    """`clusters import` of the registry as exported, with `commune` set for one cluster."""
    async with app.sessions() as session:
        rows = [to_row(c) for c in await all_clusters(session)]
    for row in rows:
        if row["code"] == code:
            row["commune"] = commune
    path = write_csv(tmp_path / "clusters.csv", rows, CLUSTER_COLUMNS)
    table = read_table(path)
    parsed = parse_rows(table.header, table.rows)
    async with unit_of_work(app.sessions) as session:
        await upsert_clusters(session, parsed, actor="test", source=str(path))


async def reorganise(app: App, tmp_path: Path) -> None:
    await import_orgs(app, write_csv(tmp_path / "orgs-2025.csv", REORGANISATION))
    await place_cluster(app, tmp_path, "dai-thang", COMMUNE)


async def join(app: App, when: str, chat_id: str, role: Role, **scope: Any) -> Chat:
    """A person invited and accepted at `when`, chatting at `when`."""
    base = app.deps()
    deps = Deps(base.sessions, base.config, Clock(at(when)))
    async with unit_of_work(app.sessions) as session:
        invitation = await create_invitation(session, now=at(when), role=role, **scope)
        await accept_invitation(
            session,
            invitation.token,
            channel="telegram",
            chat_id=chat_id,
            display_name=f"#{chat_id}",
            locale="vi",
            now=at(when),
        )
    return Chat(deps, chat_id=chat_id, channel="telegram")


# --- the rule ----------------------------------------------------------------------------------


def test_an_organisation_owes_from_the_period_after_it_starts_until_it_ends() -> None:
    july, june = date(2025, 7, 1), date(2025, 6, 30)
    assert owes(Period(2025, 7), july, None) and not owes(Period(2025, 6), july, None)
    assert owes(Period(2025, 6), None, june) and not owes(Period(2025, 7), None, june)
    mid_july = date(2025, 7, 15)  # created during July: owes from August
    assert not owes(Period(2025, 7), mid_july, None) and owes(Period(2025, 8), mid_july, None)
    assert owes(Period(2021, 6), None, None)


# --- the table ---------------------------------------------------------------------------------


def test_every_bad_cell_is_named_by_line_and_column() -> None:
    rows = [
        {"name": COMMUNE, "kind": "commune_committee"},
        {"name": "UBND xã Phú Túc", "kind": "xa", "valid_from": "31/13/2025"},
        {"name": "UBND phường Tây Mỗ", "kind": "ward_committee", "merged_into": "Sở X"},
        {"name": "Sở Y", "kind": "department", "valid_from": "2025-03-01", "valid_to": "1/1/2025"},
        {"name": "ubnd XÃ phú xuyên", "kind": "commune_committee", "parent": "ubnd xa phu xuyen"},
    ]
    assert refusals(parse_orgs, list(COLUMNS), rows) == [
        (3, "kind", "bad_org_kind"),
        (3, "valid_from", "bad_date"),
        (4, "valid_to", "merged_needs_end"),
        (5, "valid_to", "bad_validity"),
        (6, "name", "duplicate_org"),
        (6, "parent", "self_reference"),
    ]
    assert refusals(parse_orgs, ["name"], []) == [(1, "kind", "missing_column")]


async def test_a_bad_row_is_refused_and_nothing_is_stored(
    prepared_url: str, tmp_path: Path
) -> None:
    rows = [dict(r) for r in REORGANISATION]
    rows[2]["valid_to"] = "30/6/2025 sáng"
    bad = write_csv(tmp_path / "orgs.csv", rows)
    done = await ccn_exits(tmp_path, prepared_url, "orgs", "import", str(bad), code=1)
    assert "Dòng 4, cột valid_to: " in done.stderr and "('30/6/2025 sáng')" in done.stderr
    assert "Chưa nhập gì: có 1 lỗi." in done.stderr
    # a name that is neither in the file nor stored, and a kind that would change
    rows = [dict(r) for r in REORGANISATION]
    rows[0]["parent"] = "UBND thành phố Hải Phòng"
    rows[2]["kind"] = "commune_committee"
    bad = write_csv(tmp_path / "orgs.csv", rows)
    done = await ccn_exits(tmp_path, prepared_url, "orgs", "import", str(bad), code=1)
    assert "Dòng 2, cột parent: " in done.stderr
    assert "Dòng 4, cột kind: " in done.stderr
    assert "Chưa nhập gì: có 2 lỗi." in done.stderr
    written = await exported_rows(tmp_path, prepared_url, "orgs")
    assert COMMUNE not in {r["name"] for r in written}
    assert {r["valid_to"] for r in written} == {""}


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
async def test_export_and_import_round_trip(prepared_url: str, tmp_path: Path, suffix: str) -> None:
    source = write_csv(tmp_path / "orgs-2025.csv", REORGANISATION)
    done = await ccn_exits(tmp_path, prepared_url, "orgs", "import", str(source))
    assert "Đã nhập đơn vị: 2 mới, 1 cập nhật, 0 không đổi." in done.stdout
    exported = tmp_path / f"orgs{suffix}"
    await ccn_exits(tmp_path, prepared_url, "orgs", "export", str(exported))
    written = read_table(exported)
    assert written.header == list(COLUMNS)
    again = await ccn_exits(tmp_path, prepared_url, "orgs", "import", str(exported))
    assert f"0 mới, 0 cập nhật, {len(written.rows)} không đổi." in again.stdout
    by_name = {r["name"]: r for _line, r in written.rows}
    assert by_name[DISTRICT]["valid_to"] == "2025-06-30"
    assert by_name[DISTRICT]["merged_into"] == COMMUNE
    assert by_name[COMMUNE]["kind"] == "commune_committee"
    assert by_name[COMMUNE]["valid_from"] == "2025-07-01"
    assert by_name[COMMUNE]["parent"] == "UBND thành phố Hà Nội"
    assert by_name[COMMUNE]["district"] == "Huyện Phú Xuyên"


async def test_the_shipped_example_imports(prepared_url: str, tmp_path: Path) -> None:
    example = REGISTRY / "orgs-2025-example.csv"
    await ccn_exits(tmp_path, prepared_url, "orgs", "import", str(example))


# --- a cluster's place ---------------------------------------------------------------------------


async def test_a_clusters_commune_is_imported_and_a_bad_one_refused(
    app: App, tmp_path: Path
) -> None:
    await reorganise(app, tmp_path)
    async with app.sessions() as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == "dai-thang"))
        assert cluster is not None and cluster.commune_id is not None
        commune = await session.get(Organisation, cluster.commune_id)
        district = await session.get(Organisation, cluster.district_id or 0)
    assert commune is not None and commune.name == COMMUNE
    assert commune.kind == OrgKind.COMMUNE_COMMITTEE
    assert district is None or district.name != COMMUNE  # the plan's district stays
    header = list(CLUSTER_COLUMNS)
    row = {h: "" for h in header} | {
        "code": "dai-thang",
        "appendix": "3",
        "number": "1",
        "name": "Cụm công nghiệp làng nghề Đại Thắng",
        "kind": "founded_2018_2020",
        "commune": "Huyện Phú Xuyên",
    }
    with pytest.raises(ImportRejected) as rejected:
        parse_rows(header, [(7, row)])
    assert [(e.line, e.column, e.problem) for e in rejected.value.errors] == [
        (7, "commune", "bad_commune")
    ]


# --- who owes a report -------------------------------------------------------------------------


async def test_a_commune_replaces_a_district_from_july_2025(app: App, tmp_path: Path) -> None:
    admin = await join(app, "2025-08-01T09:00", ADMIN, Role.ADMIN)
    await join(app, "2025-05-01T09:00", "3003", Role.DISTRICT, district="Huyện Phú Xuyên")
    await reorganise(app, tmp_path)

    # invited by chat: the words follow the organisation's kind
    answer = await admin.say("/moi district xã Phú Xuyên")
    assert f"Lời mời cho {COMMUNE}" in answer
    assert "quận/huyện" not in answer
    commune = await join(app, "2025-07-20T09:00", "4004", Role.DISTRICT, district=COMMUNE)
    # the district's committee ended on 30 June 2025: it can no longer be invited
    async with unit_of_work(app.sessions) as session:
        with pytest.raises(InviteError) as refused:
            await create_invitation(
                session, now=at("2025-08-01T09:00"), role=Role.DISTRICT, district="Phú Xuyên"
            )
    assert refused.value.problem == "dissolved"

    july = await admin.say("/chuabaocao 7/2025")
    assert COMMUNE in july and DISTRICT not in july
    june = await admin.say("/chuabaocao 6/2025")
    assert DISTRICT in june and COMMUNE not in june

    # the commune's officer reports for July, like a district's did
    await play(commune, DISTRICT_START)
    await finish(commune, prefer=("Đã hoàn thành", "Bỏ qua"))
    await play(commune, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    async with app.sessions() as session:
        report = await session.scalar(select(Report).where(Report.form == "tasks"))
        org = await session.scalar(select(Organisation).where(Organisation.name == COMMUNE))
        assert report is not None and org is not None
        assert (report.period, report.organisation_id) == ("2025-07", org.id)
        summary = await summarise(session, Period(2025, 7), app.deps().calendar)
    assert COMMUNE not in await admin.say("/chuabaocao 7/2025")
    mine = [s for s in summary.slots if s.title == COMMUNE]
    assert len(mine) == 1 and mine[0].filled
    assert DISTRICT not in {s.title for s in summary.slots}


async def test_a_report_sent_keeps_its_organisation(app: App, tmp_path: Path) -> None:
    """Sent for July 2025 by the district's committee before the import dated its end in June:
    July keeps that report's slot (received), August does not owe it."""
    district = await join(app, "2025-07-10T09:00", "3003", Role.DISTRICT, district="Phú Xuyên")
    await play(district, DISTRICT_START)
    await finish(district, prefer=("Đã hoàn thành", "Bỏ qua"))
    await play(district, [("[Gửi báo cáo]", "Đã nhận báo cáo")])
    await reorganise(app, tmp_path)
    async with app.sessions() as session:
        calendar = app.deps().calendar
        july = await summarise(session, Period(2025, 7), calendar)
        august = await summarise(session, Period(2025, 8), calendar)
    assert [s.filled for s in july.slots if s.title == DISTRICT] == [True]
    assert DISTRICT not in {s.title for s in august.slots}


async def test_reminders_follow_the_organisations(app: App, tmp_path: Path) -> None:
    await join(app, "2025-05-01T09:00", "3003", Role.DISTRICT, district="Huyện Phú Xuyên")
    await reorganise(app, tmp_path)
    await join(app, "2025-07-01T09:00", "4004", Role.DISTRICT, district=COMMUNE)
    channels = frozenset({"telegram"})

    async def reminded(moment: str) -> set[str]:
        async with app.sessions() as session:
            outgoing, _skipped = await plan(
                session, app.deps().calendar, Policy(), at(moment), channels
            )
        return {o.chat_id for o in outgoing if o.kind.startswith("due")}

    assert await reminded("2025-06-20T08:00") == {"3003"}
    # the district's committee was merged into the commune's: from July its officer is counted
    # among the commune's and reminded of the commune's report, with the commune's officer
    assert await reminded("2025-07-20T08:00") == {"3003", "4004"}


# --- the reports of the past stay as they were ---------------------------------------------------


async def test_the_2021_workbook_of_a_past_month_is_unchanged(app: App, tmp_path: Path) -> None:
    await join(app, "2021-05-01T09:00", ADMIN, Role.ADMIN)
    district = await join(app, "2021-06-10T09:00", "3003", Role.DISTRICT, district="Phú Xuyên")
    await play(district, DISTRICT_START)
    await finish(district, prefer=("Đã hoàn thành", "Bỏ qua"))
    await play(district, [("[Gửi báo cáo]", "Đã nhận báo cáo")])

    async def june_2021(folder: Path) -> list[list[list[Any]]]:
        sheets = await workbook_sheets(app, Period(2021, 6), at("2021-06-26T09:00"), folder)
        return list(sheets.values())

    before = await june_2021(tmp_path / "before")
    await reorganise(app, tmp_path)
    await join(app, "2025-08-01T09:00", "4004", Role.DISTRICT, district=COMMUNE)
    after = await june_2021(tmp_path / "after")
    assert after == before
    cells = [c for sheet in before for row in sheet for c in row]
    assert any(isinstance(c, str) and DISTRICT in c for c in cells)
    assert not any(isinstance(c, str) and COMMUNE in c for c in cells)


async def test_from_july_2025_the_clusters_sheets_say_the_commune(app: App, tmp_path: Path) -> None:
    """From July 2025 PL2 and PL3 say where each cluster is today (its commune or ward, empty
    where not entered), grouped still by the plan's district; June 2025 stays as it was."""
    await join(app, "2025-05-01T09:00", ADMIN, Role.ADMIN)
    header = "Xã/phường (từ 1/7/2025)"

    async def sheets(period: Period, folder: Path) -> dict[str, list[list[Any]]]:
        return await workbook_sheets(app, period, at(f"{period}-26T09:00"), folder)

    june = await sheets(Period(2025, 6), tmp_path / "june-before")
    await reorganise(app, tmp_path)  # Đại Thắng placed in xã Phú Xuyên
    assert await sheets(Period(2025, 6), tmp_path / "june-after") == june
    assert header not in june["PL2 CCN hoạt động"][HEADER_ROW - 1]
    july = await sheets(Period(2025, 7), tmp_path / "july")
    names = {c.code: c.name for c in await clusters_of(app)}
    for title in ("PL2 CCN hoạt động", "PL3 CCN thành lập mới"):
        assert july[title][HEADER_ROW - 1][1:3] == ["Cụm công nghiệp", header]
    founded = july["PL3 CCN thành lập mới"][HEADER_ROW:]
    row = next(i for i, r in enumerate(founded) if r[1] == names["dai-thang"])
    assert founded[row][2] == "Xã Phú Xuyên"
    assert next(r for r in founded if r[1] == names["phu-tuc"])[2] is None  # not entered
    group = next(r for r in reversed(founded[:row]) if r[0] is None)
    assert group[1] == "Huyện Phú Xuyên"  # the plan's district, as before


async def clusters_of(app: App) -> list[Cluster]:
    async with app.sessions() as session:
        return await all_clusters(session)


async def test_a_communes_officer_is_welcomed_as_the_communes_committee(
    app: App, tmp_path: Path
) -> None:
    await reorganise(app, tmp_path)
    async with unit_of_work(app.sessions) as session:
        invitation = await create_invitation(
            session, now=at("2025-08-01T09:00"), role=Role.DISTRICT, district=COMMUNE
        )
    base = app.deps()
    officer = Chat(Deps(base.sessions, base.config, Clock(at("2025-08-01T09:00"))), chat_id="5005")
    welcome = await officer.say(f"/start {invitation.token}")
    assert "UBND xã/phường" in welcome and "quận/huyện" not in welcome
    assert COMMUNE in welcome
