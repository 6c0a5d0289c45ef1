"""What a person is responsible for, beyond their own clusters: the city tasks and cluster
steps their organisation leads, and the clusters where it has a step."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store.models import Cluster, ClusterStep, Task, TaskAssignment


async def tasks_led(session: AsyncSession, organisation_id: int | None, group: str) -> list[Task]:
    """The city tasks (Phụ lục 1) the organisation leads, itself or as one of `group`
    (`all_districts`, `all_departments`), by number."""
    return list(
        (
            await session.scalars(
                select(Task)
                .join(TaskAssignment, TaskAssignment.task_id == Task.id)
                .where(
                    TaskAssignment.role == "lead",
                    or_(
                        TaskAssignment.organisation_id == organisation_id,
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
    organisation_id: int | None,
    kinds: Collection[str],
    district_id: int | None = None,
) -> list[ClusterStep]:
    """The cluster steps (Phụ lục 2, 3) of these kinds the organisation owns, and with
    `district_id` those the plan gives to 'UBND huyện' of that district's clusters; with their
    cluster, in the plan's order."""
    owned = [ClusterStep.owner_id == organisation_id]
    if district_id is not None:
        owned.append((ClusterStep.owner_role == "district") & (Cluster.district_id == district_id))
    return list(
        (
            await session.scalars(
                select(ClusterStep)
                .join(Cluster, Cluster.id == ClusterStep.cluster_id)
                .where(or_(*owned), ClusterStep.kind.in_(list(kinds)))
                .options(selectinload(ClusterStep.cluster))
                .order_by(Cluster.appendix, Cluster.number, ClusterStep.seq)
            )
        ).all()
    )


async def clusters_with_steps_of(session: AsyncSession, organisation_id: int) -> set[int]:
    """The ids of the clusters where the plan gives the organisation a step."""
    return set(
        (
            await session.scalars(
                select(ClusterStep.cluster_id).where(ClusterStep.owner_id == organisation_id)
            )
        ).all()
    )
