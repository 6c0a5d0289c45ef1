"""Loading the registry of Kế hoạch 68 transcribed under store/registry/ into the database."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from domain.roles import ClusterKind, OrgKind
from domain.text import fold
from store.clusters import parse_rows, upsert_clusters
from store.models import (
    AuditLog,
    Base,
    Cluster,
    ClusterStep,
    Duty,
    DutyAssignment,
    Target,
    Task,
    TaskAssignment,
)
from store.orgs import INVESTOR_PLACEHOLDER, Directory
from store.plans import parse_plans, upsert_plans
from store.tables import read_table

REGISTRY = Path(__file__).parent / "registry"
PLAN_HEADER = ("year", "number", "signed", "annual_due_reporters", "annual_due_office")

# Milestones of Phụ lục 3 that are columns of the table, not rows: derived per cluster.
GROUNDBREAKING_TEXT = "Khởi công xây dựng HTKT"
COMPLETION_TEXT = "Hoàn thành xây dựng HTKT"


@dataclass(frozen=True)
class SeedCounts:
    organisations: int
    clusters: int
    steps: int
    tasks: int
    targets: int
    plans: int = 0
    duties: int = 0


def _int(text: str) -> int | None:
    return int(text) if text.strip() else None


def _dec(text: str) -> Decimal | None:
    return Decimal(text) if text.strip() else None


async def registry_loaded(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.count()).select_from(Cluster)))


async def load_registry(session: AsyncSession, folder: Path = REGISTRY) -> SeedCounts:
    """Load (or reload) the whole registry inside the caller's transaction. Idempotent:
    organisations, clusters, tasks and targets are matched by name, code, number and code;
    each cluster's steps and each task's leads are replaced by the file's."""
    directory = await Directory(session).load()

    for _line, row in read_table(folder / "organisations.csv").rows:
        district = await directory.district(row["district"])
        org = await directory.organisation(
            row["name"], OrgKind(row["kind"]), district, row.get("aliases", "")
        )
        org.aliases = row.get("aliases", "")
        if district is not None:
            org.district_id = district.id

    table = read_table(folder / "clusters.csv")
    await upsert_clusters(
        session, parse_rows(table.header, table.rows), actor="system", source="registry"
    )
    clusters = {c.code: c for c in (await session.scalars(select(Cluster))).all()}
    directory = await Directory(session).load()

    await session.execute(delete(ClusterStep))
    steps = 0
    next_seq: dict[str, int] = {}
    for _line, row in read_table(folder / "steps.csv").rows:
        cluster = clusters[row["cluster_code"]]
        owner_name = row["owner"]
        if fold(owner_name) == INVESTOR_PLACEHOLDER:
            owner_id = cluster.investor_id
        else:
            owner_id = (await directory.organisation(owner_name)).id if owner_name else None
        seq = int(row["seq"])
        session.add(
            ClusterStep(
                cluster_id=cluster.id,
                seq=seq,
                kind=row["kind"],
                text=row["text"],
                owner_role=row["owner_role"],
                owner_id=owner_id,
                due=row["due"] or None,
                source_line=_int(row["source_line"]),
            )
        )
        next_seq[cluster.code] = max(next_seq.get(cluster.code, 0), seq)
        steps += 1
    for cluster in clusters.values():
        if cluster.kind != ClusterKind.FOUNDED_2018_2020:
            continue
        for kind, text, due in (
            ("groundbreaking", GROUNDBREAKING_TEXT, cluster.planned_groundbreaking),
            ("infrastructure_complete", COMPLETION_TEXT, cluster.planned_completion),
        ):
            next_seq[cluster.code] = next_seq.get(cluster.code, 0) + 1
            session.add(
                ClusterStep(
                    cluster_id=cluster.id,
                    seq=next_seq[cluster.code],
                    kind=kind,
                    text=text,
                    owner_role="investor",
                    owner_id=cluster.investor_id,
                    due=due,
                    source_line=cluster.source_line,
                )
            )
            steps += 1

    tasks = {t.number: t for t in (await session.scalars(select(Task))).all()}
    await session.execute(delete(TaskAssignment))
    task_count = 0
    for _line, row in read_table(folder / "tasks.csv").rows:
        number = int(row["number"])
        values = {
            "title": row["title"],
            "lead_text": row["lead"],
            "partners_text": row["partners"],
            "due_text": row["due_text"],
            "due_kind": row["due_kind"],
            "due_value": row["due_value"],
            "source_line": _int(row["source_line"]),
        }
        task = tasks.get(number)
        if task is None:
            task = Task(number=number, **values)
            session.add(task)
            await session.flush()
        else:
            for key, value in values.items():
                setattr(task, key, value)
        for name in filter(None, row["lead_orgs"].split("|")):
            org = await directory.organisation(name, OrgKind.DEPARTMENT)
            session.add(TaskAssignment(task_id=task.id, role="lead", organisation_id=org.id))
        for group in filter(None, row["lead_groups"].split("|")):
            session.add(TaskAssignment(task_id=task.id, role="lead", group_code=group))
        task_count += 1

    duties = await load_duties(session, folder, directory)

    targets = {t.code: t for t in (await session.scalars(select(Target))).all()}
    for _line, row in read_table(folder / "targets.csv").rows:
        target = targets.get(row["code"]) or Target(code=row["code"])
        target.label = row["label"]
        target.value_min = _dec(row["value_min"])
        target.value_max = _dec(row["value_max"])
        target.unit = row["unit"]
        target.period = row["period"]
        target.source_line = _int(row["source_line"])
        session.add(target)

    plans = await _load_plans(session, folder)

    session.add(AuditLog(actor="system", action="registry.load", entity="registry"))
    await session.flush()
    counts = SeedCounts(
        organisations=await _count(session, "organisations"),
        clusters=len(clusters),
        steps=steps,
        tasks=task_count,
        targets=await _count(session, "targets"),
        plans=plans,
        duties=duties,
    )
    return counts


async def load_duties(
    session: AsyncSession, folder: Path = REGISTRY, directory: Directory | None = None
) -> int:
    """The duties of section III that are asked (duties.csv rows with no `covered_by`): added
    or updated by code, their organisations matched as tasks' `lead_orgs` are; a duty no longer
    asked is removed (answers keep their item keys, so no report changes)."""
    directory = directory or await Directory(session).load()
    existing = {d.code: d for d in (await session.scalars(select(Duty))).all()}
    await session.execute(delete(DutyAssignment))
    asked = [row for _line, row in read_table(folder / "duties.csv").rows if not row["covered_by"]]
    for row in asked:
        values = {
            "section": row["section"],
            "who": row["who"],
            "text": row["text"],
            "source_line": _int(row["source_line"]),
        }
        duty = existing.pop(row["code"], None)
        if duty is None:
            duty = Duty(code=row["code"], **values)
            session.add(duty)
            await session.flush()
        else:
            for key, value in values.items():
                setattr(duty, key, value)
        for name in filter(None, row["orgs"].split("|")):
            org = await directory.organisation(name, OrgKind.DEPARTMENT)
            session.add(DutyAssignment(duty_id=duty.id, organisation_id=org.id))
        for group in filter(None, row["groups"].split("|")):
            session.add(DutyAssignment(duty_id=duty.id, group_code=group))
    for gone in existing.values():
        await session.delete(gone)
    return len(asked)


async def _load_plans(session: AsyncSession, folder: Path) -> int:
    """The plans the registry transcribes (plans.csv: Kế hoạch 68/KH-UBND for 2021) with
    their targets (targets.csv, by the year of their period), read as `ccn-bot plan import`
    reads a file: a reload puts a plan back as the registry has it."""
    targets = read_table(folder / "targets.csv")
    rows: list[tuple[int, dict[str, str]]] = []
    for _line, plan in read_table(folder / "plans.csv").rows:
        rows += [
            (line, {**plan, **target, "period": target["period"] or plan["year"]})
            for line, target in targets.rows
            if (target["period"] or plan["year"]).startswith(plan["year"])
        ]
    specs = parse_plans([*PLAN_HEADER, *targets.header], rows)
    await upsert_plans(session, specs, actor="system", source="registry")
    return len(specs)


async def _count(session: AsyncSession, table: str) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(Base.metadata.tables[table])) or 0
    )
