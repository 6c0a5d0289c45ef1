"""Finding organisations and districts by the names people and the plan print for them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from domain.orgs import Merge, answering
from domain.roles import OrgKind
from domain.text import fold, slug
from store.models import District, Organisation

_DISTRICT_PREFIXES = ("huyen ", "thi xa ", "quan ")
GENERIC_BOARD = "bql du an dau tu xay dung"
_GENERIC_BOARDS = {GENERIC_BOARD, *(GENERIC_BOARD + " " + p.strip() for p in _DISTRICT_PREFIXES)}
INVESTOR_PLACEHOLDER = "chu dau tu"


def district_short(name: str) -> str:
    """`Huyện Phú Xuyên` → `phu xuyen` (folded, prefix dropped)."""
    folded = fold(name)
    for prefix in _DISTRICT_PREFIXES:
        if folded.startswith(prefix):
            return folded[len(prefix) :]
    return folded


def district_parts(name: str) -> list[str]:
    """The districts a district cell names: the plan prints a cluster two districts share as
    one district, `Quận Nam Từ Liêm - Bắc Từ Liêm` → `Quận Nam Từ Liêm`, `Quận Bắc Từ Liêm`
    (the first one's `Quận`, `Huyện` or `Thị xã` carried over); one district → itself."""
    name = " ".join(name.split())
    parts = [p.strip() for p in name.split(" - ") if p.strip()]
    if len(parts) < 2:
        return [name] if name else []
    folded = fold(parts[0])
    prefix = next((p for p in _DISTRICT_PREFIXES if folded.startswith(p)), None)
    if prefix is None:
        return [name]  # not a district's name with a hyphen: one name
    carried = parts[0][: len(prefix)]
    out = [parts[0]]
    for part in parts[1:]:
        out.append(part if fold(part).startswith(_DISTRICT_PREFIXES) else carried + part)
    return out


def is_generic_board(name: str) -> bool:
    """ "BQL dự án đầu tư xây dựng huyện" names no district: every district prints it so."""
    return fold(name) in _GENERIC_BOARDS


_COMMITTEE_PREFIXES = ("ubnd ", "uy ban nhan dan ")


def place_of(name: str) -> str:
    """`UBND xã Phú Xuyên` → `xã Phú Xuyên`: a People's Committee's place, as printed."""
    words = " ".join(name.split())
    for prefix in _COMMITTEE_PREFIXES:
        if fold(words).startswith(prefix):
            return words[len(prefix) :]
    return words


def local_kind(name: str) -> OrgKind | None:
    """The kind of People's Committee a name says: `UBND xã …` a commune's, `UBND phường …` a
    ward's, `UBND huyện|quận|thị xã …` a district's; None when it names none."""
    folded = fold(name)
    for prefix in _COMMITTEE_PREFIXES:
        if folded.startswith(prefix):
            place = folded[len(prefix) :]
            if place.startswith("xa "):
                return OrgKind.COMMUNE_COMMITTEE
            if place.startswith("phuong "):
                return OrgKind.WARD_COMMITTEE
            return OrgKind.DISTRICT_COMMITTEE
    return None


def guess_kind(name: str) -> OrgKind:
    folded = fold(name)
    if (local := local_kind(name)) is not None:
        return local
    if folded.startswith("ubnd"):
        return OrgKind.DISTRICT_COMMITTEE
    if folded.startswith(("so ", "ban qlda")):
        return OrgKind.DEPARTMENT
    if folded.startswith(("bql", "ban quan ly")):
        return OrgKind.DISTRICT_BOARD
    return OrgKind.COMPANY


class Directory:
    """An in-session cache of districts and organisations, keyed by folded name and alias."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._orgs: dict[str, Organisation] = {}
        self._districts: dict[str, District] = {}

    async def load(self) -> Directory:
        for district in (await self.session.scalars(select(District))).all():
            self._districts[district_short(district.name)] = district
        for org in (await self.session.scalars(select(Organisation))).all():
            self._index(org)
        return self

    def _index(self, org: Organisation) -> None:
        self._orgs[fold(org.name)] = org
        for alias in filter(None, org.aliases.split("|")):
            if not is_generic_board(alias):  # shared by every district's board
                self._orgs.setdefault(fold(alias), org)

    def find_district(self, name: str) -> District | None:
        return self._districts.get(district_short(name)) if name.strip() else None

    async def district(self, name: str) -> District | None:
        """The district with this name, created on first sight; None for an empty name."""
        if not name.strip():
            return None
        found = self.find_district(name)
        if found is None:
            found = District(name=" ".join(name.split()), code=slug(district_short(name)))
            self.session.add(found)
            await self.session.flush()
            self._districts[district_short(name)] = found
        return found

    def find(self, name: str) -> Organisation | None:
        return self._orgs.get(fold(name))

    def find_local(self, name: str) -> Organisation | None:
        """A commune's or ward's People's Committee by its name or its place's (`xã Phú
        Xuyên`, `UBND xã Phú Xuyên`); None for anything else."""
        if not name.strip():
            return None
        for candidate in (name, f"UBND {name}"):
            found = self.find(candidate)
            if found is not None and found.kind in (
                OrgKind.COMMUNE_COMMITTEE,
                OrgKind.WARD_COMMITTEE,
            ):
                return found
        return None

    def organisations(self) -> list[Organisation]:
        """Every organisation loaded, once each."""
        return list({id(o): o for o in self._orgs.values()}.values())

    async def organisation(
        self,
        name: str,
        kind: OrgKind | None = None,
        district: District | None = None,
        aliases: str = "",
    ) -> Organisation:
        """The organisation with this name or alias, created on first sight.

        A district board printed generically ("BQL dự án đầu tư xây dựng huyện") is the board of
        `district`, so each district's board stays its own organisation."""
        if is_generic_board(name) and district is not None:
            specific = f"BQL dự án đầu tư xây dựng {district.name}"
            if (found := self.find(specific)) is not None:
                return found
            generic_alias = name
            name, kind, aliases = specific, OrgKind.DISTRICT_BOARD, generic_alias
        found = self.find(name)
        if found is not None:
            return found
        org = Organisation(
            name=" ".join(name.split()),
            kind=(kind or guess_kind(name)).value,
            district_id=district.id if district else None,
            aliases=aliases,
        )
        self.session.add(org)
        await self.session.flush()
        self._index(org)
        return org


# --- merges --------------------------------------------------------------------------------


def successor_on(org: Organisation, day: date) -> Organisation:
    """Who answers for `org` on `day` (domain.orgs.answering: itself while it exists, else the
    organisation it was merged into, and so on), over the organisations its loaded
    `merged_into` leads to. A person read by store.access carries the whole chain when their
    organisation has a successor (load_successors); LookupError if the rule needs an
    organisation that was not loaded."""
    chain = {org.id: org}
    link = org
    while "merged_into" not in inspect(link).unloaded:
        successor = link.merged_into
        if successor is None or successor.id in chain:
            break
        chain[successor.id] = link = successor
    heir = answering(org.id, day, chain)
    if heir not in chain:
        raise LookupError(f"organisation {heir}, which answers for {org.id}, is not loaded")
    return chain[heir]


async def load_successors(session: AsyncSession, org: Organisation) -> None:
    """Load the organisation `org` was merged into, the one that was merged into, and so on
    (however many, in one statement), and link each to its successor (`merged_into`), so that
    successor_on follows the whole chain with no further read; nothing for one that was never
    merged."""
    if org.merged_into_id is None:
        return
    step = select(Organisation.id, Organisation.merged_into_id)
    chain = step.where(Organisation.id == org.merged_into_id).cte("chain", recursive=True)
    # UNION, not UNION ALL: a cycle of merges (bad data) adds no new row, so it ends
    chain = chain.union(step.join(chain, Organisation.id == chain.c.merged_into_id))
    found = await session.scalars(select(Organisation).join(chain, Organisation.id == chain.c.id))
    by_id = {o.id: o for o in (org, *found.all())}
    for each in by_id.values():
        into = each.merged_into_id
        if into is None or into in by_id:
            set_committed_value(each, "merged_into", by_id[into] if into is not None else None)


async def merges(session: AsyncSession) -> dict[int, Merge]:
    """Every organisation merged into another, with its last day and its successor: the
    mapping domain.orgs.answering follows."""
    rows = await session.execute(
        select(Organisation.id, Organisation.valid_to, Organisation.merged_into_id).where(
            Organisation.merged_into_id.is_not(None)
        )
    )
    return {id_: Merge(valid_to, into) for id_, valid_to, into in rows.all()}


async def lineage(session: AsyncSession, org_id: int, day: date) -> set[int]:
    """The organisation and every organisation merged into it (and into those, …) that ended
    before `day`: what it owes and sees on that day, its own and its predecessors'."""
    found = {org_id}
    frontier = {org_id}
    while frontier:
        rows = await session.scalars(
            select(Organisation.id).where(
                Organisation.merged_into_id.in_(frontier),
                Organisation.valid_to.is_not(None),
                Organisation.valid_to < day,
            )
        )
        frontier = set(rows.all()) - found
        found |= frontier
    return found
