"""The reads behind a cluster's card (/tinhhinh): the cluster with the names it shows, its
steps with their owners, its latest photos."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from store.models import Cluster, ClusterStep, Photo, ReportPhoto


async def cluster_for_card(session: AsyncSession, cluster_id: int) -> Cluster | None:
    """The cluster, with its district and investor."""
    return await session.scalar(
        select(Cluster)
        .where(Cluster.id == cluster_id)
        .options(selectinload(Cluster.district), selectinload(Cluster.investor))
    )


async def cluster_steps(session: AsyncSession, cluster_id: int) -> list[ClusterStep]:
    """The cluster's steps in the plan's order, with their owners."""
    return list(
        (
            await session.scalars(
                select(ClusterStep)
                .where(ClusterStep.cluster_id == cluster_id)
                .options(selectinload(ClusterStep.owner))
                .order_by(ClusterStep.seq)
            )
        ).all()
    )


async def latest_photos(
    session: AsyncSession, cluster_id: int, limit: int = 3
) -> list[tuple[Photo, datetime]]:
    """The latest photos of the cluster's submitted reports, with when each was received."""
    rows = await session.execute(
        select(Photo, ReportPhoto.received_at)
        .join(ReportPhoto, ReportPhoto.photo_id == Photo.id)
        .where(ReportPhoto.cluster_id == cluster_id, ReportPhoto.report_id.is_not(None))
        .order_by(ReportPhoto.received_at.desc())
        .limit(limit)
    )
    return [(photo, received) for photo, received in rows.all()]
