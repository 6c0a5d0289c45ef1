"""Who may report what: invitations, people and their channel identities."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Select,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from domain.roles import OrgKind, Role
from store.db import insert_now, insert_unless_stored, stored_like
from store.models import (
    AuditLog,
    ChannelIdentity,
    Cluster,
    Conversation,
    District,
    Invitation,
    LinkAttempt,
    LinkCode,
    Organisation,
    Person,
    PersonCluster,
    ProcessedUpdate,
)
from store.orgs import Directory, load_successors

ADMIN_ORG = "Sở Công Thương"


class InviteError(ValueError):
    """`no_cluster` | `unknown_cluster` | `no_district` | `unknown_district` | `no_org` |
    `dissolved` (the organisation no longer exists: `ccn-bot orgs import` ended it)."""

    def __init__(self, problem: str, value: str = "") -> None:
        super().__init__(f"{problem} {value}".strip())
        self.problem = problem
        self.value = value


@dataclass(frozen=True)
class InviteProblem:
    """Why a token cannot be used: `unknown`, `expired`, `used` or `revoked`; for link codes
    also `limited` (this chat typed too many wrong codes lately)."""

    problem: str


async def create_invitation(
    session: AsyncSession,
    *,
    role: Role,
    now: datetime,
    clusters: Sequence[str] = (),
    district: str | None = None,
    organisation: str | None = None,
    expires_days: int = 14,
    created_by: str = "",
) -> Invitation:
    directory = await Directory(session).load()
    found: list[Cluster] = []
    for code in clusters:
        cluster = await session.scalar(select(Cluster).where(Cluster.code == code.strip().lower()))
        if cluster is None:
            raise InviteError("unknown_cluster", code)
        found.append(cluster)
    district_row: District | None = None
    # a commune's or ward's People's Committee reports as a district's did (role `district`)
    local = directory.find_local(district) if district else None
    if local is not None:
        if local.district_id is not None:
            district_row = await session.get(District, local.district_id)
    elif district:
        district_row = directory.find_district(district)
        if district_row is None:
            raise InviteError("unknown_district", district)
    org: Organisation | None = None
    if role == Role.INVESTOR:
        if not found:
            raise InviteError("no_cluster")
        if organisation:
            org = await directory.organisation(organisation, OrgKind.COMPANY)
        elif found[0].investor_id is not None:
            org = await session.get(Organisation, found[0].investor_id)
    elif role == Role.DISTRICT:
        if local is not None:
            org = local
        elif district_row is None:
            raise InviteError("no_district")
        else:
            org = await directory.organisation(
                f"UBND {district_row.name}", OrgKind.DISTRICT_COMMITTEE, district_row
            )
        if org.valid_to is not None and org.valid_to < now.date():
            raise InviteError("dissolved", org.name)
    elif role == Role.DEPARTMENT:
        if not organisation:
            raise InviteError("no_org")
        org = await directory.organisation(organisation, OrgKind.DEPARTMENT)
    else:
        org = await directory.organisation(organisation or ADMIN_ORG, OrgKind.DEPARTMENT)
    invitation = Invitation(
        token=secrets.token_urlsafe(12),
        role=role.value,
        organisation_id=org.id if org else None,
        district_id=district_row.id if district_row else None,
        created_by=created_by,
        created_at=now,
        expires_at=now + timedelta(days=expires_days),
        clusters=found,
    )
    session.add(invitation)
    await session.flush()
    session.add(
        AuditLog(
            actor=created_by,
            action="invitation.create",
            entity="invitation",
            entity_id=str(invitation.id),
            detail={
                "role": role.value,
                "clusters": [c.code for c in found],
                **({"organisation": org.name} if org else {}),
            },
        )
    )
    return invitation


async def _bind(
    session: AsyncSession, person: Person, channel: str, chat_id: str, name: str, now: datetime
) -> ChannelIdentity:
    """This chat is now the person's (a chat that belonged to someone else moves over). A new
    chat's identity is one statement; a known one's is read and changed."""
    new = ChannelIdentity(
        channel=channel,
        external_id=chat_id,
        person_id=person.id,
        username=name,
        last_seen_at=now,
        reachable=True,
    )
    unique = ("channel", "external_id")
    if (stored := await insert_unless_stored(session, new, *unique)) is not None:
        return stored
    identity = await stored_like(session, new, *unique)
    identity.person_id = person.id
    identity.username = name
    identity.last_seen_at = now
    identity.reachable = True
    return identity


_CLAIM = (
    update(Invitation)
    .where(
        Invitation.id == bindparam("row_id"),
        Invitation.used_at.is_(None),
        Invitation.revoked_at.is_(None),
    )
    .values(used_at=bindparam("used_at"), used_by_person_id=bindparam("used_by_person_id"))
    .returning(Invitation.id)
    .execution_options(synchronize_session=False)
)


async def accept_invitation(
    session: AsyncSession,
    token: str,
    *,
    channel: str,
    chat_id: str,
    display_name: str,
    locale: str,
    now: datetime,
) -> Person | InviteProblem:
    """Bind this chat to a new person with the invitation's role and scope; the person comes
    with their scope loaded, as `person_for` reads it (read with the invitation, not again).
    The rows are written by Core statements (store.db.insert_now), not by the ORM's flushes."""
    invitation = (
        (
            await session.scalars(
                select(Invitation).where(Invitation.token == token.strip()).options(*_INVITED_SCOPE)
            )
        )
        .unique()
        .first()
    )
    if invitation is None:
        return InviteProblem("unknown")
    if invitation.revoked_at is not None:
        return InviteProblem("revoked")
    if invitation.used_at is not None:
        return InviteProblem("used")
    if invitation.expires_at <= now:
        return InviteProblem("expired")
    person = await insert_now(
        session,
        Person(
            full_name=display_name,
            role=invitation.role,
            organisation_id=invitation.organisation_id,
            district_id=invitation.district_id,
            locale=locale,
            created_at=now,  # the bot's clock (handlers.reporting: a report missed since)
        ),
    )
    connection = await session.connection()
    # Claim the token for the person in one statement: of chats racing for it, only the one
    # whose update matches wins; a loser's person goes again (a rare second statement).
    claimed = await session.scalar(
        _CLAIM, {"row_id": invitation.id, "used_at": now, "used_by_person_id": person.id}
    )
    if claimed is None:
        await connection.execute(delete(Person).where(Person.id == person.id))
        session.expunge(person)
        return InviteProblem("used")
    set_committed_value(invitation, "used_at", now)
    set_committed_value(invitation, "used_by_person_id", person.id)
    if invitation.clusters:
        await connection.execute(
            insert(PersonCluster),
            [{"person_id": person.id, "cluster_id": c.id} for c in invitation.clusters],
        )
    identity = await _bind(session, person, channel, chat_id, display_name, now)
    set_committed_value(person, "clusters", list(invitation.clusters))
    set_committed_value(person, "organisation", invitation.organisation)
    set_committed_value(person, "district", invitation.district)
    set_committed_value(person, "identities", [identity])
    await connection.execute(
        insert(AuditLog),
        {
            "actor_person_id": person.id,
            "actor": display_name,
            "channel": channel,
            "action": "invitation.accept",
            "entity": "person",
            "entity_id": str(person.id),
            "detail": {"invitation": invitation.id, "role": invitation.role},
        },
    )
    await _with_successors(session, person)
    return person


# what accept_invitation gives the new person: person_for's _SCOPE, read with the invitation
_INVITED_SCOPE = (
    joinedload(Invitation.clusters).joinedload(Cluster.district),
    joinedload(Invitation.organisation),
    joinedload(Invitation.district),
)

_Row = TypeVar("_Row")


def _of_chat(query: Select[_Row], channel: str, chat_id: str) -> Select[_Row]:
    """`query` narrowed to the active person behind this chat."""
    return query.join(ChannelIdentity, ChannelIdentity.person_id == Person.id).where(
        ChannelIdentity.channel == channel,
        ChannelIdentity.external_id == chat_id,
        Person.active.is_(True),
    )


async def is_member(
    session: AsyncSession, channel: str, chat_id: str, *, new_update: str | None = None
) -> bool:
    """Whether an active person is behind this chat (one light query); with `new_update`, also
    that this update of the channel has not been handled yet (a read; the mark decides)."""
    query = _of_chat(select(Person.id), channel, chat_id)
    if new_update is not None:
        query = query.where(
            ~exists().where(
                ProcessedUpdate.channel == channel, ProcessedUpdate.update_id == new_update
            )
        )
    return await session.scalar(query) is not None


# A person, with what every update reads of them, in one statement: their organisation and
# district. Not what their organisation was merged into: that is read only for the rare person
# whose organisation has a successor, all of the chain at once (_with_successors). Not their
# identities: chat_of reads the one of this chat with the row (joined, a person's few
# identities made a row each to load and fold into one).
_PERSON = (joinedload(Person.organisation), joinedload(Person.district))
# … and their clusters, in a statement of their own (joined, SQLite built the whole
# person_clusters ⋈ clusters join for every update: 31 ms at 5,000 people)
_CLUSTERS = selectinload(Person.clusters).joinedload(Cluster.district)
# person_for (a first contact): all of it, their identities too
_SCOPE = (*_PERSON, joinedload(Person.identities), _CLUSTERS)


async def load_clusters(session: AsyncSession, person: Person) -> None:
    """The person's clusters (an investor's scope), unless loaded already: chat_of leaves them
    out, for the answer to an open question (most updates) needs none."""
    if "clusters" not in inspect(person).unloaded:
        return
    found = await session.scalars(
        select(Cluster)
        .join(PersonCluster, PersonCluster.cluster_id == Cluster.id)
        .where(PersonCluster.person_id == person.id)
        .options(joinedload(Cluster.district))
        .order_by(Cluster.id)
    )
    set_committed_value(person, "clusters", list(found.unique()))


async def _with_successors(session: AsyncSession, person: Person | None) -> Person | None:
    """The person, with the organisations theirs was merged into (store.orgs.load_successors:
    one more statement, only for a person whose organisation has a successor), so that
    store.orgs.successor_on follows the whole chain."""
    if person is not None and person.organisation is not None:
        await load_successors(session, person.organisation)
    return person


async def person_for(session: AsyncSession, channel: str, chat_id: str) -> Person | None:
    """The active person behind this chat, with their scope loaded."""
    result = await session.scalars(_of_chat(select(Person), channel, chat_id).options(*_SCOPE))
    return await _with_successors(session, result.unique().first())


def _chat_with_person() -> Select[Conversation, Person, ChannelIdentity]:
    return (
        select(Conversation, Person, ChannelIdentity)
        .outerjoin(
            ChannelIdentity,
            and_(
                ChannelIdentity.channel == Conversation.channel,
                ChannelIdentity.external_id == Conversation.chat_id,
            ),
        )
        .outerjoin(Person, and_(Person.id == ChannelIdentity.person_id, Person.active.is_(True)))
        .where(
            Conversation.channel == bindparam("channel"),
            Conversation.chat_id == bindparam("chat_id"),
        )
        .options(*_PERSON)
    )


_CHAT_WITH_PERSON = _chat_with_person()  # built once: every update runs it
# … and holding the chat: on PostgreSQL the conversation row is locked by the same statement
_CHAT_HELD = _chat_with_person().with_for_update(of=Conversation)


class ChatRow(NamedTuple):
    """A chat's conversation row, the active person behind it, and the identity by which they
    wrote (None without a person)."""

    conversation: Conversation
    person: Person | None
    identity: ChannelIdentity | None


async def chat_of(
    session: AsyncSession, channel: str, chat_id: str, *, hold: bool = False
) -> ChatRow | None:
    """This chat's conversation row and the active person behind it (as `person_for`, but for
    their clusters, load_clusters, and their other identities, which are not loaded), in one
    statement; None if the chat has no conversation row yet (then the person was not looked
    up). With `hold`, on PostgreSQL, the conversation row is locked for the rest of the
    transaction by the same statement (FOR UPDATE): another transaction holding it is waited
    for, and the row is read as that one committed it."""
    params = {"channel": channel, "chat_id": chat_id}
    row = (await session.execute(_CHAT_HELD if hold else _CHAT_WITH_PERSON, params)).first()
    if row is None:
        return None
    person = await _with_successors(session, row[1])
    return ChatRow(row[0], person, row[2] if person is not None else None)


async def is_active_person(session: AsyncSession, person_id: int) -> bool:
    """The person exists and their access was not withdrawn."""
    active = await session.scalar(select(Person.active).where(Person.id == person_id))
    return bool(active)


async def set_phone(session: AsyncSession, person_id: int, phone: str) -> bool:
    """Record an active person's phone (ZNS reminders reach it); False if no such person."""
    person = await session.get(Person, person_id)
    if person is None or not person.active:
        return False
    person.phone = phone
    return True


async def list_people(session: AsyncSession, *, include_revoked: bool = False) -> list[Person]:
    query = (
        select(Person)
        .options(
            selectinload(Person.clusters),
            selectinload(Person.organisation),
            selectinload(Person.district),
            selectinload(Person.identities),
        )
        .order_by(Person.id)
    )
    if not include_revoked:
        query = query.where(Person.active.is_(True))
    return list((await session.scalars(query)).all())


async def revoke_person(
    session: AsyncSession, person_id: int, *, actor: str, now: datetime
) -> Person | None:
    person = await session.get(Person, person_id)
    if person is None or not person.active:
        return None
    person.active = False
    person.revoked_at = now
    session.add(
        AuditLog(actor=actor, action="person.revoke", entity="person", entity_id=str(person_id))
    )
    await session.flush()
    return person


LINK_MINUTES = 15
LINK_DIGITS = 8
CHAT_FAILURES = 5  # wrong codes a chat may type within LINK_MINUTES
CODE_FAILURES = 10  # wrong codes city-wide during a code's life that burn it
_LINK_CODE = re.compile(rf"[0-9]{{{LINK_DIGITS}}}")


async def create_link_code(session: AsyncSession, person_id: int, now: datetime) -> str:
    """An 8-digit code, valid for a few minutes, that binds another messenger to this person."""
    while True:
        code = f"{secrets.randbelow(10**LINK_DIGITS):0{LINK_DIGITS}d}"
        if await session.scalar(select(LinkCode).where(LinkCode.code == code)) is None:
            break
    session.add(
        LinkCode(code=code, person_id=person_id, expires_at=now + timedelta(minutes=LINK_MINUTES))
    )
    await session.flush()
    return code


async def _wrong_codes(session: AsyncSession, *conditions: Any) -> int:
    found = await session.scalar(select(func.count()).select_from(LinkAttempt).where(*conditions))
    return int(found or 0)


async def use_link_code(
    session: AsyncSession,
    code: str,
    *,
    channel: str,
    chat_id: str,
    display_name: str,
    now: datetime,
) -> Person | InviteProblem:
    """Bind this chat to the person of a /lienket code. Wrong codes are counted in the store:
    a chat that typed too many lately is refused (`limited`), and a code is burnt once too many
    wrong codes were typed anywhere while it lived, so guessing cannot win."""
    code = code.strip()
    if not _LINK_CODE.fullmatch(code):
        return InviteProblem("unknown")  # not shaped like a code: ordinary text, not a guess
    window = timedelta(minutes=LINK_MINUTES)
    recent = await _wrong_codes(
        session,
        LinkAttempt.channel == channel,
        LinkAttempt.chat_id == chat_id,
        LinkAttempt.at > now - window,
    )
    if recent >= CHAT_FAILURES:
        return InviteProblem("limited")
    link = await session.scalar(select(LinkCode).where(LinkCode.code == code))
    person = await session.get(Person, link.person_id) if link is not None else None
    problem: str | None = None
    if link is None:
        problem = "unknown"
    elif link.used_at is not None:
        problem = "used"
    elif link.expires_at <= now:
        problem = "expired"
    elif await _wrong_codes(session, LinkAttempt.at >= link.expires_at - window) >= CODE_FAILURES:
        problem = "expired"  # burnt: too many wrong codes were tried while it lived
    elif person is None or not person.active:
        problem = "revoked"
    if problem is not None or link is None or person is None:
        session.add(LinkAttempt(channel=channel, chat_id=chat_id, at=now))
        # attempts older than any live code or chat window count for nothing any more
        await session.execute(delete(LinkAttempt).where(LinkAttempt.at < now - 2 * window))
        await session.flush()
        return InviteProblem(problem or "unknown")
    await _bind(session, person, channel, chat_id, display_name, now)
    link.used_at = now
    session.add(
        AuditLog(
            actor_person_id=person.id,
            actor=display_name,
            channel=channel,
            action="person.link",
            entity="person",
            entity_id=str(person.id),
            detail={"channel": channel},
        )
    )
    await session.flush()
    return person


async def mark_unreachable(session: AsyncSession, channel: str, chat_id: str) -> None:
    identity = await session.scalar(
        select(ChannelIdentity).where(
            ChannelIdentity.channel == channel, ChannelIdentity.external_id == chat_id
        )
    )
    if identity is not None:
        identity.reachable = False


async def chat_roles(
    session: AsyncSession, channel: str, chat_id: str | None = None
) -> dict[str, tuple[str, str] | None]:
    """Each chat of `channel` bound to a person (only `chat_id` if given): the person's role and
    locale, or None once the person's access was withdrawn."""
    query = (
        select(ChannelIdentity.external_id, Person.role, Person.locale, Person.active)
        .join(Person, ChannelIdentity.person_id == Person.id)
        .where(ChannelIdentity.channel == channel)
    )
    if chat_id is not None:
        query = query.where(ChannelIdentity.external_id == chat_id)
    return {
        external_id: (role or "", locale) if active else None
        for external_id, role, locale, active in (await session.execute(query)).all()
    }
