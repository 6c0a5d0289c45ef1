"""What a person reports on: their clusters (investors) or their organisation's items
(districts and departments), and the form that fits each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Period
from domain.forms import Item
from domain.roles import ClusterKind, Role
from domain.subjects import Subject
from store.duties import duties_of
from store.models import Cluster, Organisation, Person
from store.orgs import lineage, successor_on
from store.people import steps_reported, tasks_led
from store.slots import COMMUNES, first_day

ITEM_TITLE_MAX = 90
# The steps of a cluster that a district or department reports on (not milestones, which the
# investor's own report covers).
REPORTED_STEP_KINDS = {
    "qhct_approval",
    "compensation_approval",
    "gpmb",
    "land_allocation",
    "land_lease",
    "rice_land_approval",
    "district_tasks",
    "department_tasks",
    "wastewater_plant",
    "other",
}


@dataclass(frozen=True)
class Reportable:
    """A subject this person reports on, with its title and form."""

    subject: Subject
    title: str
    form: str  # founded | operating | tasks
    cluster_id: int | None = None
    organisation_id: int | None = None


def _short(text: str, limit: int = ITEM_TITLE_MAX) -> str:
    text = " ".join(text.split()).lstrip("- ")
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;.") + "…"


def cluster_subject(cluster: Cluster) -> Reportable:
    form = ClusterKind(cluster.kind).form
    return Reportable(Subject.cluster(cluster.code), cluster.name, form, cluster_id=cluster.id)


def answering_for(person: Person, period: Period | None) -> Organisation | None:
    """The organisation the person reports for in `period`: theirs, or from the period after
    it ended, the one it was merged into, and so on through every merge (store.orgs.successor_on;
    store.slots counts its people among that one's); None without a period, or for a person of
    no organisation, means theirs."""
    org = person.organisation
    if org is None or period is None:
        return org
    return successor_on(org, first_day(period))


def subjects_of(person: Person, period: Period | None = None) -> list[Reportable]:
    if person.role == Role.INVESTOR:
        return [cluster_subject(c) for c in sorted(person.clusters, key=lambda c: c.name)]
    org = answering_for(person, period)
    if org is not None and person.role in (Role.DISTRICT, Role.DEPARTMENT, Role.ADMIN):
        return [Reportable(Subject.org(org.id), org.name, "tasks", organisation_id=org.id)]
    return []


async def items_of(
    session: AsyncSession, person: Person, period: Period | None = None
) -> list[Item]:
    """The city tasks (Phụ lục 1) and cluster steps (Phụ lục 2, 3) this person's organisation
    leads — and, from the period after a merge, those of the organisations merged into it. A
    district's People's Committee also answers for the steps the plan gives to 'UBND huyện'
    of each of its clusters; a commune's or ward's, for those of its own clusters only."""
    org = answering_for(person, period)
    orgs: set[int] = set()
    if org is not None:
        day = first_day(period) if period is not None else None
        orgs = await lineage(session, org.id, day) if day is not None else {org.id}
    group = "all_districts" if person.role == Role.DISTRICT else "all_departments"
    tasks = await tasks_led(session, orgs, group)
    items = [Item(f"t{t.number}", f"NV {t.number}: {_short(t.title)}") for t in tasks]
    # section III's duties beyond those tasks (store/registry/duties.csv), in the plan's words
    duties = await duties_of(session, orgs, group)
    items += [Item(d.code, f"Mục {d.section}: {_short(d.text)}") for d in duties]
    local = person.role == Role.DISTRICT
    commune = org.id if local and org is not None and org.kind in COMMUNES else None
    district_id = person.district_id if local and commune is None else None
    steps = await steps_reported(
        session, orgs, REPORTED_STEP_KINDS, district_id=district_id, commune_id=commune
    )
    for step in steps:
        name = _short(
            step.cluster.name.replace("Cụm công nghiệp", "CCN").replace("Cụm CN", "CCN"), 40
        )
        items.append(Item(f"s-{step.cluster.code}-{step.seq}", f"{name}: {_short(step.text, 60)}"))
    return items
