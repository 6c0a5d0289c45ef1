"""What a person is responsible for, beyond their own clusters: the city tasks and cluster
steps their organisation leads, and the clusters where it has a step."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store.models import Cluster, ClusterDistrict, ClusterStep, Task, TaskAssignment

# An organisation, or it and the organisations merged into it (store.orgs.lineage).
Orgs = int | None | Collection[int]


def _ids(orgs: Orgs) -> list[int]:
    if orgs is None:
        return []
    return [orgs] if isinstance(orgs, int) else list(orgs)


def in_district(district_id: int) -> ColumnElement[bool]:
    """A cluster of this district: filed under it, or shared with it (cluster_districts)."""
    return or_(
        Cluster.district_id == district_id,
        Cluster.id.in_(
            select(ClusterDistrict.cluster_id).where(ClusterDistrict.district_id == district_id)
        ),
    )


async def tasks_led(session: AsyncSession, organisation_id: Orgs, group: str) -> list[Task]:
    """The city tasks (Phụ lục 1) the organisation leads (or one merged into it, given its
    lineage), itself or as one of `group` (`all_districts`, `all_departments`), by number."""
    return list(
        (
            await session.scalars(
                select(Task)
                .join(TaskAssignment, TaskAssignment.task_id == Task.id)
                .where(
                    TaskAssignment.role == "lead",
                    or_(
                        TaskAssignment.organisation_id.in_(_ids(organisation_id)),
                        TaskAssignment.group_code == group,
                    ),
                )
                .distinct()
                .order_by(Task.number)
            )
        ).all()
    )


async def steps_reported(
    session: AsyncSession,
    organisation_id: Orgs,
    kinds: Collection[str],
    district_id: int | None = None,
    commune_id: int | None = None,
) -> list[ClusterStep]:
    """The cluster steps (Phụ lục 2, 3) of these kinds the organisation owns (or one merged
    into it, given its lineage), and with `district_id` those the plan gives to 'UBND huyện'
    of that district's clusters (those it shares with another district too); with
    `commune_id` (a commune's or ward's committee) those of the clusters of that commune only;
    with their cluster, in the plan's order."""
    owned: ColumnElement[bool] = ClusterStep.owner_id.in_(_ids(organisation_id))
    if commune_id is not None:
        owned = or_(owned, ClusterStep.owner_role == "district") & (
            Cluster.commune_id == commune_id
        )
    elif district_id is not None:
        owned = or_(owned, (ClusterStep.owner_role == "district") & in_district(district_id))
    return list(
        (
            await session.scalars(
                select(ClusterStep)
                .join(Cluster, Cluster.id == ClusterStep.cluster_id)
                .where(owned, ClusterStep.kind.in_(list(kinds)))
                .options(selectinload(ClusterStep.cluster))
                .order_by(Cluster.appendix, Cluster.number, ClusterStep.seq)
            )
        ).all()
    )


async def clusters_with_steps_of(session: AsyncSession, organisation_id: Orgs) -> set[int]:
    """The ids of the clusters where the plan gives the organisation a step (or one merged
    into it, given its lineage)."""
    return set(
        (
            await session.scalars(
                select(ClusterStep.cluster_id).where(
                    ClusterStep.owner_id.in_(_ids(organisation_id))
                )
            )
        ).all()
    )
