"""Sở Công Thương's administration by chat: invite someone (/moi), list the people (/nguoidung),
withdraw someone's access (/thuhoi). Only an admin gets here (handlers.routes)."""

from __future__ import annotations

from domain import i18n
from domain.roles import Role
from handlers.context import Ctx
from handlers.onboarding import ROLE_NAMES
from handlers.port import Reply
from store.access import InviteError, create_invitation, list_people, revoke_person
from store.models import Organisation, Person


async def invite(ctx: Ctx, args: str) -> list[Reply]:
    """/moi <role> [cluster codes | district, commune or ward | organisation]"""
    _ = ctx._
    words = args.split()
    roles = {r.value: r for r in Role}
    if not words or words[0] not in roles:
        return [
            Reply(
                _(
                    "Usage: /moi investor <cluster code> …, /moi district <district, "
                    "commune or ward>, /moi department <organisation>, /moi admin"
                )
            )
        ]
    role, rest = roles[words[0]], words[1:]
    try:
        invitation = await create_invitation(
            ctx.session,
            role=role,
            now=ctx.now,
            clusters=rest if role == Role.INVESTOR else [],
            district=" ".join(rest) if role == Role.DISTRICT else None,
            organisation=" ".join(rest) if role == Role.DEPARTMENT and rest else None,
            expires_days=ctx.deps.config.invite_days,
            created_by=f"person:{ctx.person.id if ctx.person else '?'}",
        )
    except InviteError as exc:
        return [Reply(_("Cannot invite: {problem}").format(problem=_(invite_problem(exc))))]
    link = ctx.deps.config.invite_link(invitation.token)
    role_name, days = _(ROLE_NAMES[role]), ctx.deps.config.invite_days
    org = (
        await ctx.session.get(Organisation, invitation.organisation_id)
        if invitation.organisation_id is not None
        else None
    )
    if role == Role.DISTRICT and org is not None:
        # the words follow the organisation: "UBND xã Phú Xuyên", not "UBND quận/huyện"
        role_name = org.name
    if link is None:
        text = _(
            "Invitation for {role}, valid {days} days. Send the person this code to type in "
            "a chat with the bot: {token}"
        )
    else:
        text = _(
            "Invitation for {role}, valid {days} days. Send this link to the person:\n"
            "{link}\nor the code: {token}"
        )
    return [Reply(text.format(role=role_name, days=days, link=link, token=invitation.token))]


def invite_problem(exc: InviteError) -> str:
    return {
        "no_cluster": i18n.N_("an investor needs at least one cluster code"),
        "unknown_cluster": i18n.N_("unknown cluster code"),
        "no_district": i18n.N_("name the district"),
        "unknown_district": i18n.N_("unknown district"),
        "no_org": i18n.N_("name the organisation"),
        "dissolved": i18n.N_(
            "this organisation no longer exists (see ccn-bot orgs export): invite its successor"
        ),
    }[exc.problem]


async def people(ctx: Ctx, _args: str = "") -> list[Reply]:
    _ = ctx._
    rows = await list_people(ctx.session)
    if not rows:
        return [Reply(_("Nobody yet."))]
    return [Reply("\n".join(describe_person(p, ctx.locale) for p in rows))]


def describe_person(person: Person, locale: str) -> str:
    _ = i18n.gettext_for(locale)
    scope = ", ".join(c.code for c in person.clusters) or (
        person.organisation.name if person.organisation else ""
    )
    channels = ", ".join(f"{i.channel}:{i.external_id}" for i in person.identities)
    role = _(ROLE_NAMES[Role(person.role)]) if person.role else "?"
    return f"#{person.id} {person.full_name or '?'} — {role} — {scope} — {channels}"


async def revoke(ctx: Ctx, args: str) -> list[Reply]:
    _ = ctx._
    number = args.lstrip("#").strip()
    if not (number.isascii() and number.isdigit() and len(number) <= 9):
        return [Reply(_("Usage: /thuhoi <number from /nguoidung>"))]
    revoked = await revoke_person(
        ctx.session,
        int(number),
        actor=f"person:{ctx.person.id if ctx.person else '?'}",
        now=ctx.now,
    )
    if revoked is None:
        return [Reply(_("No active person #{number}.").format(number=number))]
    return [Reply(_("Access withdrawn for #{number}.").format(number=number))]
