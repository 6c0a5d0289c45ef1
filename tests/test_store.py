"""The store on SQLite and PostgreSQL: migrations, the registry, import/export."""

from __future__ import annotations

import asyncio
import contextlib
import csv
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from openpyxl import load_workbook
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from bot.app import App, open_app, prepare
from bot.settings import load_settings
from store.access import chat_of
from store.clusters import (
    COLUMNS,
    ImportRejected,
    all_clusters,
    parse_rows,
    to_row,
    upsert_clusters,
)
from store.conversations import (
    new_conversation,
    save_and_mark,
    save_state,
    state_of,
    was_processed,
)
from store.db import alembic_config, current_revision, unit_of_work
from store.models import (
    AuditLog,
    Cluster,
    ClusterStep,
    Conversation,
    Organisation,
    Target,
    Task,
)
from store.seed import load_registry
from store.tables import read_table, write_table

REGISTRY = Path(__file__).parent.parent / "store" / "registry"


def registry_rows(name: str) -> list[dict[str, str]]:
    with (REGISTRY / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


async def count(app: App, model: type) -> int:
    async with app.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def snapshot(app: App) -> list[dict[str, str | int | float]]:
    async with app.sessions() as session:
        return [to_row(c) for c in await all_clusters(session)]


async def test_migrated_and_loaded(app: App) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and await current_revision(app.engine) == head
    assert await count(app, Cluster) == len(registry_rows("clusters.csv"))
    assert await count(app, Task) == 26
    assert await count(app, Target) == len(registry_rows("targets.csv"))
    founded = [r for r in registry_rows("clusters.csv") if r["kind"] == "founded_2018_2020"]
    # the file's steps plus two milestones (groundbreaking, HTKT finished) per founded cluster
    assert await count(app, ClusterStep) == len(registry_rows("steps.csv")) + 2 * len(founded)


async def test_dai_thang_steps_have_their_owners(app: App) -> None:
    async with app.sessions() as session:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == "dai-thang"))
        assert cluster is not None
        rows = (
            await session.execute(
                select(ClusterStep.kind, Organisation.name)
                .join(Organisation, ClusterStep.owner_id == Organisation.id)
                .where(ClusterStep.cluster_id == cluster.id)
                .order_by(ClusterStep.seq)
            )
        ).all()
    owners = dict(rows)
    assert owners["funds_transfer"] == "Công ty cổ phần Hanel Mirolin"
    assert "Phú Xuyên" in owners["gpmb"]
    assert owners["land_lease"] == "Sở Tài nguyên và Môi trường"
    assert owners["groundbreaking"] == "Công ty cổ phần Hanel Mirolin"


async def test_second_upgrade_and_reload_change_nothing(app: App) -> None:
    before = await snapshot(app)
    orgs = await count(app, Organisation)
    steps = await count(app, ClusterStep)
    assert await prepare(app) is None  # registry already there: not loaded again
    async with unit_of_work(app.sessions) as session:
        await load_registry(session)
    assert await snapshot(app) == before
    assert await count(app, Organisation) == orgs
    assert await count(app, ClusterStep) == steps


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
async def test_export_import_round_trip(app: App, tmp_path: Path, suffix: str) -> None:
    before = await snapshot(app)
    path = tmp_path / f"clusters{suffix}"
    write_table(path, COLUMNS, before)
    table = read_table(path)
    assert table.header == list(COLUMNS)
    async with unit_of_work(app.sessions) as session:
        result = await upsert_clusters(
            session, parse_rows(table.header, table.rows), actor="test", source=str(path)
        )
    assert result.created == [] and result.updated == []
    assert len(result.unchanged) == len(before)
    assert await snapshot(app) == before


async def test_xlsx_keeps_numbers_as_numbers(app: App, tmp_path: Path) -> None:
    path = tmp_path / "clusters.xlsx"
    write_table(path, COLUMNS, await snapshot(app))
    sheet = load_workbook(path).worksheets[0]
    header = [c.value for c in sheet[1]]
    rates = [
        row[header.index("occupancy_rate")] for row in sheet.iter_rows(min_row=2, values_only=True)
    ]
    assert 68.45 in rates  # Bình Phú, typed as a number so Excel can sum it


async def test_edited_sheet_updates_by_code_and_adds_new(app: App, tmp_path: Path) -> None:
    rows = await snapshot(app)
    edited = [dict(r) for r in rows]
    target = next(r for r in edited if r["code"] == "binh-phu")
    target["occupancy_rate"] = "70,5%"  # typed the Vietnamese way in Excel
    edited.append(
        {**edited[0], "code": "cum-moi", "name": "Cụm CN Mới", "number": 99, "source_line": ""}
    )
    path = tmp_path / "edited.xlsx"
    write_table(path, COLUMNS, edited)
    table = read_table(path)
    async with unit_of_work(app.sessions) as session:
        result = await upsert_clusters(
            session, parse_rows(table.header, table.rows), actor="test", source="edited"
        )
    assert result.updated == ["binh-phu"]
    assert result.created == ["cum-moi"]
    after = {r["code"]: r for r in await snapshot(app)}
    assert after["binh-phu"]["occupancy_rate"] == 70.5
    assert len(after) == len(rows) + 1
    async with app.sessions() as session:
        audit = await session.scalar(
            select(AuditLog).where(AuditLog.action == "clusters.import", AuditLog.actor == "test")
        )
    assert audit is not None and audit.detail["updated"] == ["binh-phu"]


async def test_bad_file_rejected_with_line_numbers_and_nothing_changed(
    app: App, tmp_path: Path
) -> None:
    before = await snapshot(app)
    rows = [dict(r) for r in before[:4]]
    rows[0]["occupancy_rate"] = "lots"  # file line 2
    rows[2]["kind"] = "factory"  # file line 4
    rows[3]["code"] = rows[1]["code"]  # file line 5: duplicate
    rows[1]["name"] = "Cụm CN đã đổi tên"  # a good edit that must not land either
    path = tmp_path / "bad.csv"
    write_table(path, COLUMNS, rows)
    table = read_table(path)
    with pytest.raises(ImportRejected) as caught:
        parse_rows(table.header, table.rows)
    found = {(e.line, e.column, e.problem) for e in caught.value.errors}
    assert found == {
        (2, "occupancy_rate", "bad_percent"),
        (4, "kind", "bad_kind"),
        (5, "code", "duplicate_code"),
    }
    assert await snapshot(app) == before


async def test_sqlite_and_postgres_enforce_foreign_keys(app: App) -> None:
    with pytest.raises(IntegrityError):
        async with unit_of_work(app.sessions) as session:
            session.add(
                ClusterStep(cluster_id=999_999, seq=1, kind="gpmb", text="x", owner_role="district")
            )


async def test_a_row_written_at_once_is_stored_once_and_its_later_changes_too(app: App) -> None:
    """store.db.insert_now (a first contact's conversation): written by its own statement, the
    row takes its columns' defaults, is not written again by the flush, takes the changes made
    after it, and goes with a rolled-back transaction."""
    async with unit_of_work(app.sessions) as session:
        conversation = await new_conversation(session, "telegram", "4242")
        assert conversation is not None
        assert conversation.id is not None and conversation.updated_at is not None
        conversation.state = {"locale": "en"}
    with pytest.raises(RuntimeError):
        async with unit_of_work(app.sessions) as session:
            await new_conversation(session, "telegram", "4343")
            raise RuntimeError
    async with app.sessions() as session:
        rows = (
            await session.scalars(
                select(Conversation).where(Conversation.chat_id.in_(["4242", "4343"]))
            )
        ).all()
    assert [(r.chat_id, r.state) for r in rows] == [("4242", {"locale": "en"})]


async def test_an_updates_state_and_mark_are_written_together_and_a_second_delivery_changes_nothing(
    app: App,
) -> None:
    """The chat's new state and the update's mark (one statement on PostgreSQL): stored
    together; the same update marked again is refused, and its state is rolled back with it."""

    class Again(Exception):
        pass

    async with unit_of_work(app.sessions) as session:
        created = await new_conversation(session, "telegram", "902")
        assert created is not None
        row_id, created_at = created.id, created.updated_at
    for locale, expected in (("en", True), ("vi", False)):
        with contextlib.suppress(Again):
            async with unit_of_work(app.sessions) as session:
                conversation = await session.get_one(Conversation, row_id)
                state = state_of(conversation)
                state.locale = locale
                marked = await save_and_mark(session, conversation, state, "u-902", [])
                assert marked is expected
                if not marked:
                    raise Again  # as handlers.conversation does: the delivery's writes go
    async with app.sessions() as session:
        stored = await session.get_one(Conversation, row_id)
        assert state_of(stored).locale == "en"
        assert await was_processed(session, "telegram", "u-902")
        assert stored.updated_at > created_at


@pytest.mark.parametrize("prepared_url", ["postgresql"], indirect=True)
async def test_a_held_chat_waits_for_the_transaction_holding_it_and_reads_what_it_wrote(
    app: App,
) -> None:
    """Two workers' updates of one chat (PostgreSQL): the second waits for the first, then
    reads the conversation as the first left it — with a row (held by the read itself) and
    before the chat has one (its insert waits for the first one's, then the row is read)."""

    async def second_reads(chat_id: str) -> str | None:
        async with unit_of_work(app.sessions) as session:
            chat = await chat_of(session, "telegram", chat_id, hold=True)
            if chat is None:
                assert await new_conversation(session, "telegram", chat_id) is None
                chat = await chat_of(session, "telegram", chat_id, hold=True)
            assert chat is not None
            return state_of(chat.conversation).locale

    async with unit_of_work(app.sessions) as session:
        await new_conversation(session, "telegram", "900")
    for chat_id in ("900", "901"):  # "901" has no conversation row yet
        async with unit_of_work(app.sessions) as session:
            chat = await chat_of(session, "telegram", chat_id, hold=True)
            conversation = (
                chat.conversation
                if chat is not None
                else await new_conversation(session, "telegram", chat_id)
            )
            assert conversation is not None
            second = asyncio.create_task(second_reads(chat_id))
            await asyncio.sleep(0.5)
            assert not second.done(), chat_id  # it waits for this transaction
            state = state_of(conversation)
            state.locale = "en"
            await save_state(session, conversation, state)
        assert await asyncio.wait_for(second, 10) == "en", chat_id


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    settings = load_settings(DATA_DIR=tmp_path / "data")  # the embedded default: a SQLite file
    async with open_app(settings) as opened:
        await prepare(opened)
        async with opened.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    assert (tmp_path / "data" / "ccn.db").exists()


def test_a_cluster_code_longer_than_a_button_can_carry_is_refused() -> None:
    """A code that would not fit in a reminder's button would break every reminder run."""
    from domain.calendar import Period
    from domain.subjects import MAX_CODE, Subject
    from handlers.payloads import OpenReport, encode

    header = list(registry_rows("clusters.csv")[0])
    longest = registry_rows("clusters.csv")[0] | {"code": "a" * MAX_CODE}
    too_long = registry_rows("clusters.csv")[1] | {"code": "b" * (MAX_CODE + 1)}
    with pytest.raises(ImportRejected) as caught:
        parse_rows(header, [(2, longest), (3, too_long)])
    assert {(e.line, e.problem) for e in caught.value.errors} == {(3, "bad_code")}
    button = encode(OpenReport(Subject.cluster("a" * MAX_CODE), Period(2026, 12)))
    assert len(button.encode()) <= 64
