"""The demo database: the registry plus one person of each role, reachable from the terminal."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from domain.roles import Role
from store.access import accept_invitation, create_invitation, is_member
from store.models import utcnow as now


@dataclass(frozen=True)
class DemoPerson:
    name: str
    clusters: tuple[str, ...] = ()
    district: str | None = None
    organisation: str | None = None


DEMO_PEOPLE = {
    Role.INVESTOR: DemoPerson("Chủ đầu tư CCN Đại Thắng (demo)", clusters=("dai-thang",)),
    Role.DISTRICT: DemoPerson("UBND huyện Phú Xuyên (demo)", district="Huyện Phú Xuyên"),
    Role.DEPARTMENT: DemoPerson("Sở TN&MT (demo)", organisation="Sở Tài nguyên và Môi trường"),
    Role.ADMIN: DemoPerson("Sở Công Thương (demo)", organisation="Sở Công Thương"),
}


def demo_chat(role: Role) -> str:
    return f"demo-{role.value}"


async def ensure_demo_people(session: AsyncSession) -> None:
    """Invite and register the demo people once; later runs find them there."""
    for role, spec in DEMO_PEOPLE.items():
        if await is_member(session, "terminal", demo_chat(role)):
            continue
        invitation = await create_invitation(
            session,
            role=role,
            now=now(),
            clusters=spec.clusters,
            district=spec.district,
            organisation=spec.organisation,
            created_by="demo",
        )
        await accept_invitation(
            session,
            invitation.token,
            channel="terminal",
            chat_id=demo_chat(role),
            display_name=spec.name,
            locale="vi",
            now=now(),
        )
