"""The cluster registry as a table: validate, import (idempotent, all or nothing), export,
search."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Generic, NamedTuple, Protocol, TypeVar

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from domain.roles import ClusterKind, OrgKind
from domain.subjects import MAX_CODE
from domain.text import SLUG_RE, bare_cluster_name, fold, parse_month, parse_percent, parse_quarter
from store.integrity import format_location, parse_location
from store.models import AuditLog, Cluster, ClusterDistrict, ClusterStep
from store.orgs import Directory, district_parts, district_short, local_kind

COLUMNS = (
    "code",
    "appendix",
    "section",
    "number",
    "name",
    "district",
    "kind",
    "investor",
    "investor_type",
    "occupancy_rate",
    "planned_groundbreaking",
    "planned_completion",
    "lead_org",
    "missing",
    "source_line",
    "location",  # latitude,longitude in degrees; optional: a file without it keeps the locations
    # since 1 July 2025, the People's Committee of the cluster's commune or ward (`UBND xã …`,
    # `UBND phường …`); optional like `location`. `district` stays the plan's district.
    "commune",
)
REQUIRED = ("code", "appendix", "number", "name", "kind")
T = TypeVar("T")
INVESTOR_TYPES = {"district_board": OrgKind.DISTRICT_BOARD, "company": OrgKind.COMPANY}


@dataclass(frozen=True)
class RowError:
    """One bad cell. `problem` is a stable code that the CLI turns into words."""

    line: int
    column: str
    problem: str  # missing_column | required | bad_code | duplicate_code | not_integer |
    # bad_appendix | bad_kind | bad_investor_type | bad_percent | bad_month | bad_quarter |
    # bad_location | bad_commune
    value: str = ""


class ImportRejected(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass(frozen=True)
class ClusterRow:
    code: str
    appendix: int
    section: str
    number: int
    name: str
    district: str
    kind: str
    investor: str
    investor_type: str
    occupancy_rate: Decimal | None
    planned_groundbreaking: str | None
    planned_completion: str | None
    lead_org: str
    missing: str
    source_line: int | None
    # the cluster's (latitude, longitude); `location_given`: the file has the column, so an
    # empty cell clears the location (a file without the column leaves it as it is)
    location: tuple[Decimal, Decimal] | None = None
    location_given: bool = False
    commune: str = ""  # `UBND xã …` or `UBND phường …`; `commune_given` as `location_given`
    commune_given: bool = False


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


class TableRow:
    """One table row being validated; collects every bad cell instead of stopping at the first."""

    def __init__(self, line: int, raw: dict[str, str]) -> None:
        self.line, self.raw = line, raw
        self.errors: list[RowError] = []

    def get(self, column: str) -> str:
        return self.raw.get(column, "").strip()

    def fail(self, column: str, problem: str, value: str = "") -> None:
        self.errors.append(RowError(self.line, column, problem, value))

    def parsed(self, column: str, parse: Callable[[str], T], problem: str) -> T | None:
        """The cell read by `parse`, or None when empty; a cell it cannot read is an error."""
        text = self.get(column)
        if not text:
            return None
        try:
            return parse(text)
        except (ValueError, ArithmeticError):
            self.fail(column, problem, text)
            return None


def parse_table(
    header: list[str],
    rows: list[tuple[int, dict[str, str]]],
    required: Sequence[str],
    parse: Callable[[TableRow], T | None],
    no_rows: RowError | None = None,
) -> list[T]:
    """Validate every row: its required cells, then `parse`, which fails each bad cell on the
    TableRow and returns the row's value (None: nothing to keep); raise ImportRejected naming
    every bad cell by line and column. `no_rows`: the error of a table without rows."""
    errors = [RowError(1, c, "missing_column") for c in required if c not in header]
    if errors:
        raise ImportRejected(errors)
    if not rows and no_rows is not None:
        raise ImportRejected([no_rows])
    parsed: list[T] = []
    for line, raw in rows:
        row = TableRow(line, raw)
        for column in required:
            if not row.get(column):
                row.fail(column, "required")
        value = parse(row)
        errors.extend(row.errors)
        if value is not None and not row.errors:
            parsed.append(value)
    if errors:
        raise ImportRejected(errors)
    return parsed


def parse_rows(header: list[str], rows: list[tuple[int, dict[str, str]]]) -> list[ClusterRow]:
    """Validate every row; raise ImportRejected naming every bad cell by line and column."""
    seen: set[str] = set()

    def parse(row: TableRow) -> ClusterRow | None:
        code = row.get("code")
        if code and (not SLUG_RE.match(code) or len(code) > MAX_CODE):
            row.fail("code", "bad_code", code)
        elif code in seen:
            row.fail("code", "duplicate_code", code)
        appendix = row.parsed("appendix", int, "not_integer")
        if appendix is not None and appendix not in (2, 3):
            row.fail("appendix", "bad_appendix", row.get("appendix"))
        number = row.parsed("number", int, "not_integer")
        kind = row.get("kind")
        if kind and kind not in {k.value for k in ClusterKind}:
            row.fail("kind", "bad_kind", kind)
        investor_type = row.get("investor_type") or "company"
        if investor_type not in INVESTOR_TYPES:
            row.fail("investor_type", "bad_investor_type", investor_type)
        rate = row.parsed("occupancy_rate", parse_percent, "bad_percent")
        groundbreaking = row.parsed("planned_groundbreaking", parse_month, "bad_month")
        completion = row.parsed("planned_completion", parse_quarter, "bad_quarter")
        source_line = row.parsed("source_line", int, "not_integer")
        location = row.parsed("location", parse_location, "bad_location")
        commune = " ".join(row.get("commune").split())
        if commune and local_kind(commune) not in (
            OrgKind.COMMUNE_COMMITTEE,
            OrgKind.WARD_COMMITTEE,
        ):
            row.fail("commune", "bad_commune", commune)
        if row.errors:
            return None
        assert appendix is not None and number is not None
        seen.add(code)
        return ClusterRow(
            code=code,
            appendix=appendix,
            section=row.get("section"),
            number=number,
            name=" ".join(row.get("name").split()),
            district=row.get("district"),
            kind=kind,
            investor=row.get("investor"),
            investor_type=investor_type,
            occupancy_rate=rate,
            planned_groundbreaking=groundbreaking,
            planned_completion=completion,
            lead_org=row.get("lead_org"),
            missing=row.get("missing"),
            source_line=source_line,
            location=location,
            location_given="location" in header,
            commune=commune,
            commune_given="commune" in header,
        )

    return parse_table(header, rows, REQUIRED, parse)


async def upsert_clusters(
    session: AsyncSession, rows: list[ClusterRow], *, actor: str, source: str
) -> ImportResult:
    """Create or update clusters by code inside the caller's transaction. Never deletes."""
    directory = await Directory(session).load()
    existing = {
        c.code: c
        for c in (
            await session.scalars(
                select(Cluster).options(
                    selectinload(Cluster.steps), selectinload(Cluster.shared_districts)
                )
            )
        ).all()
    }
    result = ImportResult()
    for row in rows:
        district = await directory.district(row.district)
        # a cell naming two districts (the plan's `Quận Nam Từ Liêm - Bắc Từ Liêm`): both share it
        parts = district_parts(row.district)
        shared = [await directory.district(p) for p in parts] if len(parts) > 1 else []
        investor = (
            await directory.organisation(row.investor, INVESTOR_TYPES[row.investor_type], district)
            if row.investor
            else None
        )
        lead = (
            await directory.organisation(row.lead_org, district=district) if row.lead_org else None
        )
        values = {
            "appendix": row.appendix,
            "section": row.section,
            "number": row.number,
            "name": row.name,
            "district_id": district.id if district else None,
            "kind": row.kind,
            "investor_id": investor.id if investor else None,
            "occupancy_rate": row.occupancy_rate,
            "planned_groundbreaking": row.planned_groundbreaking,
            "planned_completion": row.planned_completion,
            "lead_org_id": lead.id if lead else None,
            "missing": row.missing,
            "source_line": row.source_line,
        }
        if row.location_given:
            values["latitude"], values["longitude"] = row.location or (None, None)
        if row.commune_given:
            commune = (
                await directory.organisation(row.commune, local_kind(row.commune), district)
                if row.commune
                else None
            )
            values["commune_id"] = commune.id if commune else None
        sharing = [d for d in shared if d is not None]
        cluster = existing.get(row.code)
        if cluster is None:
            cluster = Cluster(code=row.code, **values, shared_districts=sharing)
            session.add(cluster)
            existing[row.code] = cluster
            result.created.append(row.code)
            continue
        changed = {k: v for k, v in values.items() if _differs(getattr(cluster, k), v)}
        if {d.id for d in cluster.shared_districts} != {d.id for d in sharing}:
            changed["shared_districts"] = sharing
        if not changed:
            result.unchanged.append(row.code)
            continue
        for key, value in changed.items():
            setattr(cluster, key, value)
        result.updated.append(row.code)
    audit_import(
        session, "clusters", actor, source, result.created, result.updated, len(result.unchanged)
    )
    await session.flush()
    return result


def audit_import(
    session: AsyncSession,
    entity: str,
    actor: str,
    source: str,
    created: Sequence[object],
    updated: Sequence[object],
    unchanged: object,
) -> None:
    """The audit row of a table import (clusters, plans, organisations): from which file, what
    it created and updated, and how much it left as it was."""
    session.add(
        AuditLog(
            actor=actor,
            action=f"{entity}.import",
            entity=entity,
            detail={
                "source": source,
                "created": list(created),
                "updated": list(updated),
                "unchanged": unchanged,
            },
        )
    )


def _differs(old: object, new: object) -> bool:
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        if old is None or new is None:
            return old is not new
        return Decimal(str(old)) != Decimal(str(new))
    return old != new


REGISTRY_ORDER = (Cluster.appendix, Cluster.section, Cluster.number, Cluster.code)


async def all_clusters(session: AsyncSession, district: str | None = None) -> list[Cluster]:
    query = (
        select(Cluster)
        .options(
            selectinload(Cluster.district),
            selectinload(Cluster.investor),
            selectinload(Cluster.lead_org),
            selectinload(Cluster.commune),
            selectinload(Cluster.shared_districts),
        )
        .order_by(*REGISTRY_ORDER)
    )
    clusters = list((await session.scalars(query)).all())
    if district:
        wanted = district_short(district)
        clusters = [
            c
            for c in clusters
            if any(
                district_short(d.name) == wanted
                for d in [*([c.district] if c.district else []), *c.shared_districts]
            )
        ]
    return clusters


class ClusterRef(NamedTuple):
    """What finding a cluster and telling namesakes apart needs: no ORM objects, no relations.
    Loading every cluster with its district and organisations for each message was most of
    /tinhhinh's time."""

    id: int
    code: str
    name: str
    kind: str
    district_id: int | None
    # its place, for who sees it: the districts it belongs to (the plan's and any sharing it)
    # and the People's Committee of its commune or ward
    districts: tuple[int, ...] = ()
    commune_id: int | None = None


@lru_cache(maxsize=16384)
def _ref(values: tuple[int, str, str, str, int | None, tuple[int, ...], int | None]) -> ClusterRef:
    """One ClusterRef per distinct row, kept across messages. Besides saving the work, this
    keeps a thousand new objects per message from living through it, which is what brought on
    the garbage collector's full collections (80–95 ms each in benchmarks/status_scale.py)."""
    return ClusterRef(*values)


async def cluster_refs(session: AsyncSession) -> list[ClusterRef]:
    """Every cluster as a ClusterRef, in the order of `all_clusters`."""
    shared: dict[int, tuple[int, ...]] = {}
    for cluster_id, district_id in await session.execute(
        select(ClusterDistrict.cluster_id, ClusterDistrict.district_id).order_by(
            ClusterDistrict.cluster_id, ClusterDistrict.district_id
        )
    ):
        shared[cluster_id] = (*shared.get(cluster_id, ()), district_id)
    result = await session.execute(
        select(
            Cluster.id,
            Cluster.code,
            Cluster.name,
            Cluster.kind,
            Cluster.district_id,
            Cluster.commune_id,
        ).order_by(*REGISTRY_ORDER)
    )
    return [  # row by row: no list of Row objects
        _ref(
            (
                id_,
                code,
                name,
                kind,
                district_id,
                (*((district_id,) if district_id is not None else ()), *shared.get(id_, ())),
                commune_id,
            )
        )
        for id_, code, name, kind, district_id, commune_id in result
    ]


def to_row(cluster: Cluster) -> dict[str, str | int | float]:
    rate = cluster.occupancy_rate
    return {
        "code": cluster.code,
        "appendix": cluster.appendix,
        "section": cluster.section,
        "number": cluster.number,
        "name": cluster.name,
        "district": cluster.district.name if cluster.district else "",
        "kind": cluster.kind,
        "investor": cluster.investor.name if cluster.investor else "",
        "investor_type": (
            "district_board"
            if cluster.investor and cluster.investor.kind == OrgKind.DISTRICT_BOARD
            else "company"
        ),
        "occupancy_rate": _plain(rate) if rate is not None else "",
        "planned_groundbreaking": cluster.planned_groundbreaking or "",
        "planned_completion": cluster.planned_completion or "",
        "lead_org": cluster.lead_org.name if cluster.lead_org else "",
        "missing": cluster.missing,
        "source_line": cluster.source_line if cluster.source_line is not None else "",
        "location": format_location(cluster.latitude, cluster.longitude),
        "commune": cluster.commune.name if cluster.commune else "",
    }


def _plain(value: Decimal) -> int | float:
    normal = Decimal(str(value)).normalize()
    return int(normal) if normal == normal.to_integral_value() else float(normal)


# --- search -------------------------------------------------------------------------------

_NOISE = {"cum", "cong", "nghiep", "cn", "ccn", "lang", "nghe"}


def _search_key(text: str) -> str:
    words = [w for w in fold(text).replace("-", " ").split() if w not in _NOISE]
    return " ".join(words)


@lru_cache(maxsize=16384)
def _name_key(name: str) -> tuple[str, tuple[str, ...]]:
    """A cluster name's search key and its words sorted. A pure function of the name, kept
    across searches: folding every name twice per message was most of a search's time."""
    key = _search_key(bare_cluster_name(name))
    return key, tuple(sorted(key.split()))


class Named(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def name(self) -> str: ...


C = TypeVar("C", bound=Named)


@dataclass(frozen=True)
class Match(Generic[C]):
    cluster: C
    score: float
    exact: bool


def search(
    clusters: Sequence[C], query: str, *, limit: int = 5, cutoff: float = 70
) -> list[Match[C]]:
    """Find clusters by name ignoring accents, case, word order and the 'Cụm công nghiệp' prefix.

    An exact name (or code) comes first, then names containing every word typed, then near
    misses (`dai thnag`) by similarity."""
    key = _search_key(query)
    if not key:
        return []
    typed = query.strip().lower()
    words = tuple(sorted(key.split()))
    keys = {c.code: _name_key(c.name) for c in clusters}
    matches: list[Match[C]] = []
    for cluster in clusters:
        name_key, name_words = keys[cluster.code]
        exact = name_words == words or cluster.code == typed
        score = max(
            float(fuzz.token_sort_ratio(key, name_key)),
            float(fuzz.token_set_ratio(key, name_key)) - 1,  # every typed word present
        )
        if exact:
            score = 100.0
        if score >= cutoff:
            matches.append(Match(cluster, score, exact))
    matches.sort(key=lambda m: (not m.exact, -m.score, keys[m.cluster.code][0]))
    return matches[:limit]


async def step_kinds(session: AsyncSession, cluster_id: int) -> list[str]:
    """The kinds of step the plan gives a cluster (gpmb, land_allocation, …), sorted."""
    kinds = await session.scalars(
        select(ClusterStep.kind).where(ClusterStep.cluster_id == cluster_id).distinct()
    )
    return sorted(kinds)
