"""What a person reports on: their clusters (investors) or their organisation's items
(districts and departments), and the form that fits each."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.forms import Item
from domain.roles import ClusterKind, Role
from domain.subjects import Subject
from store.models import Cluster, Person
from store.people import steps_reported, tasks_led

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


def subjects_of(person: Person) -> list[Reportable]:
    if person.role == Role.INVESTOR:
        return [cluster_subject(c) for c in sorted(person.clusters, key=lambda c: c.name)]
    if person.organisation_id is not None and person.role in (
        Role.DISTRICT,
        Role.DEPARTMENT,
        Role.ADMIN,
    ):
        assert person.organisation is not None
        return [
            Reportable(
                Subject.org(person.organisation_id),
                person.organisation.name,
                "tasks",
                organisation_id=person.organisation_id,
            )
        ]
    return []


async def items_of(session: AsyncSession, person: Person) -> list[Item]:
    """The city tasks (Phụ lục 1) and cluster steps (Phụ lục 2, 3) this person's organisation
    leads. A district's People's Committee also answers for the steps the plan gives to
    'UBND huyện' of each of its clusters."""
    group = "all_districts" if person.role == Role.DISTRICT else "all_departments"
    tasks = await tasks_led(session, person.organisation_id, group)
    items = [Item(f"t{t.number}", f"NV {t.number}: {_short(t.title)}") for t in tasks]
    district_id = person.district_id if person.role == Role.DISTRICT else None
    steps = await steps_reported(
        session, person.organisation_id, REPORTED_STEP_KINDS, district_id=district_id
    )
    for step in steps:
        name = _short(
            step.cluster.name.replace("Cụm công nghiệp", "CCN").replace("Cụm CN", "CCN"), 40
        )
        items.append(Item(f"s-{step.cluster.code}-{step.seq}", f"{name}: {_short(step.text, 60)}"))
    return items
