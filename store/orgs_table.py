"""Organisations as a table: validate, import (all or nothing; adds and updates, never deletes
or renames), export. Since 1 July 2025 Hà Nội has no district level and several departments
were merged: Sở Công Thương enters today's organisations here, with no code release.

An organisation is known by its name (or one of its aliases). Its name and kind never change
through an import — a new name is a new organisation — so a report keeps meaning the
organisation it was sent for; what changes is when it exists (`valid_from`, `valid_to` its
last day), the one above it (`parent`), the one it became (`merged_into`), its district (an
empty cell keeps it) and its other spellings (added to those it has). Who owes a report
follows the dates (domain.slots.owes). Errors are `store.clusters.RowError`s, named by line and
column as the cluster import names them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.roles import OrgKind
from domain.text import fold
from store.clusters import ImportRejected, RowError, TableRow, audit_import, parse_table
from store.models import Organisation
from store.orgs import Directory
from store.plans import parse_day

__all__ = [
    "COLUMNS",
    "ImportRejected",
    "OrgImportResult",
    "OrgSpec",
    "RowError",
    "all_organisations",
    "parse_orgs",
    "to_row",
    "upsert_orgs",
]

COLUMNS = (
    "name",
    "kind",
    "district",
    "parent",
    "valid_from",
    "valid_to",
    "merged_into",
    "aliases",
)
REQUIRED = ("name", "kind")
MAX_NAME = 255
KINDS = frozenset(k.value for k in OrgKind)


@dataclass(frozen=True)
class OrgSpec:
    line: int
    name: str
    kind: OrgKind
    district: str
    parent: str
    valid_from: date | None
    valid_to: date | None
    merged_into: str
    aliases: tuple[str, ...]


@dataclass
class OrgImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _name(text: str) -> str:
    return " ".join(text.split())


def parse_orgs(header: list[str], rows: list[tuple[int, dict[str, str]]]) -> list[OrgSpec]:
    """Validate every row on its own; raise ImportRejected naming every bad cell by line and
    column. What needs the database (names referred to, kinds kept) `upsert_orgs` checks."""
    seen: set[str] = set()

    def parse(row: TableRow) -> OrgSpec | None:
        name = _name(row.get("name"))
        if len(name) > MAX_NAME:
            row.fail("name", "too_long", name[:40] + "…")
        elif name and fold(name) in seen:
            row.fail("name", "duplicate_org", name)
        kind = row.get("kind")
        if kind and kind not in KINDS:
            row.fail("kind", "bad_org_kind", kind)
        valid_from = row.parsed("valid_from", parse_day, "bad_date")
        valid_to = row.parsed("valid_to", parse_day, "bad_date")
        if valid_from and valid_to and valid_to < valid_from:
            row.fail("valid_to", "bad_validity", row.get("valid_to"))
        merged_into = _name(row.get("merged_into"))
        if merged_into and not row.get("valid_to"):
            row.fail("valid_to", "merged_needs_end")
        parent = _name(row.get("parent"))
        for column, other in (("parent", parent), ("merged_into", merged_into)):
            if other and name and fold(other) == fold(name):
                row.fail(column, "self_reference", other)
        aliases = tuple(_name(a) for a in row.get("aliases").split("|") if a.strip())
        if row.errors:
            return None
        seen.add(fold(name))
        return OrgSpec(
            line=row.line,
            name=name,
            kind=OrgKind(kind),
            district=_name(row.get("district")),
            parent=parent,
            valid_from=valid_from,
            valid_to=valid_to,
            merged_into=merged_into,
            aliases=aliases,
        )

    return parse_table(header, rows, REQUIRED, parse, RowError(2, "name", "no_rows"))


async def upsert_orgs(
    session: AsyncSession, specs: list[OrgSpec], *, actor: str, source: str
) -> OrgImportResult:
    """Add the file's new organisations and update the others' dates, parent, successor,
    district and aliases, inside the caller's transaction; refuse the whole file (ImportRejected,
    nothing written) when a name it refers to is unknown or an organisation's kind would
    change. Never deletes nor renames."""
    directory = await Directory(session).load()
    in_file = {fold(s.name) for s in specs}
    errors: list[RowError] = []
    for spec in specs:
        existing = directory.find(spec.name)
        if existing is not None and existing.kind != spec.kind:
            errors.append(RowError(spec.line, "kind", "kind_fixed", spec.kind.value))
        for column, other in (("parent", spec.parent), ("merged_into", spec.merged_into)):
            if other and fold(other) not in in_file and directory.find(other) is None:
                errors.append(RowError(spec.line, column, "unknown_org", other))
        if spec.district and directory.find_district(spec.district) is None:
            errors.append(RowError(spec.line, "district", "unknown_district", spec.district))
    if errors:
        raise ImportRejected(errors)
    result = OrgImportResult()
    found: dict[int, tuple[OrgSpec, Organisation]] = {}
    for spec in specs:
        org = directory.find(spec.name)
        if org is None:
            org = await directory.organisation(spec.name, spec.kind)
            result.created.append(org.name)
        found[spec.line] = (spec, org)
    for spec, org in found.values():
        district = directory.find_district(spec.district) if spec.district else None
        parent = directory.find(spec.parent) if spec.parent else None
        merged = directory.find(spec.merged_into) if spec.merged_into else None
        aliases = [a for a in org.aliases.split("|") if a]
        aliases += [a for a in spec.aliases if a not in aliases and fold(a) != fold(org.name)]
        values: dict[str, object] = {
            "district_id": district.id if district else org.district_id,  # empty: kept
            "parent_id": parent.id if parent else None,
            "valid_from": spec.valid_from,
            "valid_to": spec.valid_to,
            "merged_into_id": merged.id if merged else None,
            "aliases": "|".join(aliases),
        }
        changed = {k: v for k, v in values.items() if getattr(org, k) != v}
        for key, value in changed.items():
            setattr(org, key, value)
        if org.name in result.created:
            continue
        (result.updated if changed else result.unchanged).append(org.name)
    audit_import(
        session,
        "organisations",
        actor,
        source,
        result.created,
        result.updated,
        len(result.unchanged),
    )
    await session.flush()
    return result


async def all_organisations(session: AsyncSession) -> list[Organisation]:
    query = (
        select(Organisation)
        .options(
            selectinload(Organisation.district),
            selectinload(Organisation.parent),
            selectinload(Organisation.merged_into),
        )
        .order_by(Organisation.id)
    )
    return list((await session.scalars(query)).all())


def to_row(org: Organisation) -> dict[str, str | int | float]:
    return {
        "name": org.name,
        "kind": org.kind,
        "district": org.district.name if org.district else "",
        "parent": org.parent.name if org.parent else "",
        "valid_from": org.valid_from.isoformat() if org.valid_from else "",
        "valid_to": org.valid_to.isoformat() if org.valid_to else "",
        "merged_into": org.merged_into.name if org.merged_into else "",
        "aliases": org.aliases,
    }
