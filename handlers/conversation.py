"""The entry point of every update: dedupe, identify the person, route, save the state."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from domain import answers, i18n
from domain.roles import Role
from domain.subjects import Subject
from handlers import choices, paper, reporting, status
from handlers.context import Ctx, Deps
from handlers.port import Attachment, Button, Incoming, Reply
from store.access import (
    LINK_MINUTES,
    InviteError,
    InviteProblem,
    accept_invitation,
    create_invitation,
    create_link_code,
    is_member,
    list_people,
    person_for,
    revoke_person,
    use_link_code,
)
from store.contacts import lock_chat, normalise_phone
from store.db import unit_of_work
from store.models import Conversation, Person, Photo, ProcessedUpdate
from store.photos import NotPrepared, PhotoRejected, Prepared, prepare_photo, release_photos

log = logging.getLogger(__name__)

# Vietnamese command first, English alias second.
COMMANDS = {
    "/baocao": "report",
    "/report": "report",
    "/huy": "cancel",
    "/cancel": "cancel",
    "/trogiup": "help",
    "/help": "help",
    "/ngonngu": "language",
    "/language": "language",
    "/moi": "invite",
    "/invite": "invite",
    "/nguoidung": "people",
    "/people": "people",
    "/thuhoi": "revoke",
    "/revoke": "revoke",
    "/vanban": "paper",
    "/paper": "paper",
    "/tinhhinh": "status",
    "/status": "status",
    "/chuabaocao": "missing",
    "/missing": "missing",
    "/tonghop": "summary",
    "/summary": "summary",
    "/lienket": "link",
    "/link": "link",
    "/start": "start",
}
ADMIN_ONLY = {"invite", "people", "revoke", "paper"}
FLOW_MODES = {"pick_subject", "ask", "confirm_back", "reason_back", "summary"}
ROLE_NAMES = {
    Role.ADMIN: i18n.N_("Sở Công Thương (administrator)"),
    Role.DEPARTMENT: i18n.N_("department"),
    Role.DISTRICT: i18n.N_("district People's Committee"),
    Role.INVESTOR: i18n.N_("cluster investor"),
}
INVITE_PROBLEMS = {
    "unknown": i18n.N_("This invitation code is not valid."),
    "expired": i18n.N_("This invitation has expired."),
    "used": i18n.N_("This invitation has already been used."),
    "revoked": i18n.N_("This invitation was withdrawn."),
}


async def handle(incoming: Incoming, deps: Deps) -> list[Reply]:
    """Handle one update in one short transaction. Its photos are downloaded, checked and
    written to disk before it (slow work holds no lock); a failure rolls everything back, the
    "processed" mark included, and apologises, so the person's draft is as it was before this
    message and a redelivery is handled afresh. Files of a photo no row refers to afterwards
    (refused, rolled back, not used) are deleted."""
    prepared: list[Prepared] = []
    try:
        if incoming.attachments and await _may_keep_photos(incoming, deps):
            incoming = await _prepare_photos(incoming, deps, prepared)
        try:
            return await _handle_in_transaction(incoming, deps)
        except NotPrepared:  # became someone between the check and the transaction: once more
            incoming = await _prepare_photos(incoming, deps, prepared)
            return await _handle_in_transaction(incoming, deps)
    except _Delivered:
        return []  # delivered twice: handled the first time
    except Exception:
        log.exception(
            "update %s from %s:%s failed", incoming.update_id, incoming.channel, incoming.chat_id
        )
        _ = i18n.gettext_for(deps.config.default_locale)
        return [Reply(_("Sorry, something went wrong. Please send that again in a moment."))]
    finally:
        if prepared:
            await _release_photos(prepared, deps)


class _Delivered(Exception):
    """This update's "processed" mark is already there."""


async def _may_keep_photos(incoming: Incoming, deps: Deps) -> bool:
    """A new update from someone invited (a stranger's photos are never downloaded). A short
    read before the transaction; the transaction itself decides."""
    async with deps.sessions() as session:
        if incoming.update_id is not None:
            seen = await session.scalar(
                select(ProcessedUpdate.id).where(
                    ProcessedUpdate.channel == incoming.channel,
                    ProcessedUpdate.update_id == incoming.update_id,
                )
            )
            if seen is not None:
                return False
        return await is_member(session, incoming.channel, incoming.chat_id)


async def _prepare_photos(incoming: Incoming, deps: Deps, prepared: list[Prepared]) -> Incoming:
    """Download each attachment (the channel applies its size limit), then check it and write
    its files off the event loop; one at a time, so one photo's bytes are in memory at once."""
    config = deps.config
    ready: list[Attachment] = []
    for attachment in incoming.attachments:
        if attachment.prepared is not None or attachment.refused:
            ready.append(attachment)
            continue
        try:
            data = await attachment.fetch()
            photo = await asyncio.to_thread(
                prepare_photo, data, config.data_dir, config.max_photo_bytes
            )
        except PhotoRejected as exc:
            ready.append(dataclasses.replace(attachment, refused=exc.reason))
            continue
        prepared.append(photo)
        ready.append(dataclasses.replace(attachment, prepared=photo))
    return dataclasses.replace(incoming, attachments=tuple(ready))


async def _release_photos(prepared: list[Prepared], deps: Deps) -> None:
    """After the transaction: keep the files a Photo row refers to, delete the others."""
    written = {p.sha256 for p in prepared if p.written}
    referenced: set[str] = set(written)  # if the store cannot say, keep them
    if written:
        try:
            async with deps.sessions() as session:
                found = await session.scalars(select(Photo.sha256).where(Photo.sha256.in_(written)))
                referenced = set(found)
        except Exception:
            log.exception("could not check which photo files to keep")
    await asyncio.to_thread(release_photos, prepared, referenced)


async def _handle_in_transaction(incoming: Incoming, deps: Deps) -> list[Reply]:
    async with unit_of_work(deps.sessions) as session:
        await lock_chat(session, incoming.channel, incoming.chat_id)  # one at a time per chat
        if incoming.update_id is not None:
            # The mark is the transaction's first write and shares its fate: no SAVEPOINT, which
            # on pysqlite runs outside a transaction, so its RELEASE committed the mark alone.
            session.add(ProcessedUpdate(channel=incoming.channel, update_id=incoming.update_id))
            try:
                await session.flush()
            except IntegrityError as exc:
                raise _Delivered() from exc
        conversation = await session.scalar(
            select(Conversation).where(
                Conversation.channel == incoming.channel,
                Conversation.chat_id == incoming.chat_id,
            )
        )
        first_contact = conversation is None
        if conversation is None:
            conversation = Conversation(
                channel=incoming.channel, chat_id=incoming.chat_id, state={}
            )
            session.add(conversation)
        person = await person_for(session, incoming.channel, incoming.chat_id)
        state = dict(conversation.state or {})
        incoming = _chosen(_cleaned(incoming), state)
        if person is None and incoming.locale in i18n.SUPPORTED and "locale" not in state:
            state["locale"] = incoming.locale
        ctx = Ctx(session, deps, incoming, conversation, person, state)
        if person is not None:
            await _touch(ctx, person)
        where = (state.get("mode"), state.get("q"))
        replies = await route(ctx, first_contact)
        if incoming.typed_choices:
            replies, offered = choices.for_text_channel(replies, ctx.locale)
            if offered:
                ctx.state[choices.OFFER_KEY] = offered
            elif (ctx.state.get("mode"), ctx.state.get("q")) != where:
                ctx.state.pop(choices.OFFER_KEY, None)  # the choices shown no longer apply
            elif choices.OFFER_KEY in state:  # e.g. /trogiup mid-question: still typeable
                ctx.state[choices.OFFER_KEY] = state[choices.OFFER_KEY]
        conversation.state = dict(ctx.state)
    return replies


def _cleaned(incoming: Incoming) -> Incoming:
    """Typed text without control characters (a NUL cannot reach PostgreSQL) and a shared
    location only if it is a place on Earth; every command and answer reads these."""
    text = answers.clean_text(incoming.text)
    location = incoming.location
    if location is not None and not reporting.valid_where(reporting.where(location)):
        location = None  # the same rule as a stored location: a place on the globe
    if text == incoming.text and location == incoming.location:
        return incoming
    return dataclasses.replace(incoming, text=text, location=location)


def _chosen(incoming: Incoming, state: dict[str, object]) -> Incoming:
    """On a channel without buttons, a typed key or choice's words becomes that choice."""
    if not incoming.typed_choices or incoming.payload is not None:
        return incoming
    if incoming.text.startswith("/"):
        return incoming
    payload = choices.read(incoming.text, state.get(choices.OFFER_KEY))
    if payload is None:
        return incoming
    return dataclasses.replace(incoming, payload=payload, text="")


async def _touch(ctx: Ctx, person: Person) -> None:
    for identity in person.identities:
        if (
            identity.channel == ctx.incoming.channel
            and identity.external_id == ctx.incoming.chat_id
        ):
            identity.last_seen_at = ctx.now
            identity.reachable = True


def _command(text: str) -> tuple[str | None, str]:
    if not text.startswith("/"):
        return None, text
    word, _sep, args = text.partition(" ")
    name = COMMANDS.get(word.split("@")[0].lower())
    return (name or "unknown"), args.strip()


async def route(ctx: Ctx, first_contact: bool) -> list[Reply]:
    incoming = ctx.incoming
    if incoming.phone is not None:
        return phone_shared(ctx)
    command, args = _command(incoming.text.strip())
    if command == "start" and args:
        return await accept(ctx, args)
    if ctx.person is None:
        word = args if command == "link" else incoming.text.strip()
        if command in (None, "link") and word and " " not in word:
            # a link code from /lienket, or an invitation token pasted as text (Zalo has no
            # deep links)
            joined = (
                await link(ctx, word) if word.isdigit() else await accept(ctx, word, quiet=True)
            )
            if joined:
                return joined
        if first_contact and incoming.asks_contact and incoming.text:  # not on a follow
            return [*stranger(ctx), ask_phone(ctx)]
        return stranger(ctx)
    if command == "language" or (incoming.payload or "").startswith("lang:"):
        return language(ctx)
    if command in ADMIN_ONLY and ctx.person.role != Role.ADMIN:
        return [Reply(ctx._("Only Sở Công Thương can do that."))]
    if command == "report":
        return await reporting.start(ctx, args)
    if command == "cancel":
        return cancel(ctx)
    if command in ("help", "start"):
        return help_for(ctx)
    if command == "invite":
        return await invite(ctx, args)
    if command == "people":
        return await people(ctx)
    if command == "revoke":
        return await revoke(ctx, args)
    if command == "paper":
        return await paper.record(ctx, args)
    if command == "link":
        return await link_code(ctx)
    if command == "status":
        return await status.status(ctx, args)
    if command == "missing":
        return await status.missing(ctx, args)
    if command == "summary":
        return await status.summary(ctx, args)
    if command == "unknown":
        return [Reply(ctx._("I do not know that command. Send /trogiup for help."))]
    mode = ctx.state.get("mode")
    payload = incoming.payload or ""
    # buttons of reminders: they work whatever the conversation is doing
    if payload.startswith("report:"):
        return await reporting.start_from_reminder(ctx, payload)
    if payload.startswith("paper:"):
        return await paper.claim(ctx, payload.removeprefix("paper:"))
    if payload.startswith(("paperok:", "paperno:")):
        return await paper.decide(ctx, payload)
    if payload.startswith("missing:"):
        period = reporting.button_period(ctx, payload.removeprefix("missing:"))
        if period is None:  # the future, before the plan, or not a month
            return await reporting.refuse(ctx)
        return await status.missing(ctx, str(period))
    if mode == "pick_subject" and payload:
        return await reporting.pick_subject(ctx, payload)
    if mode in FLOW_MODES - {"pick_subject"}:
        return await reporting.on_answer(ctx)
    if incoming.attachments:
        return await reporting.photos_while_idle(ctx)
    if incoming.location is not None:
        ctx.state["pending_location"] = reporting.where(incoming.location)
        return [Reply(ctx._("Location kept. Send /baocao and it will be added to your report."))]
    if first_contact:
        return help_for(ctx)
    if payload.startswith(Subject.CLUSTER) or (incoming.text.strip() and not payload):
        return await status.status(ctx, incoming.text)
    if payload:  # a button of a report that is not open, or one never offered
        return await reporting.refuse(ctx)
    return help_for(ctx)


PHONE_KEY = "phone"  # a phone a stranger shared, kept for when they are invited


def ask_phone(ctx: Ctx) -> Reply:
    """Ask for the phone with the channel's own form (Zalo's user-info form); reminders reach
    it by Zalo's notification service when the chat has been quiet for a week."""
    return Reply(
        ctx._("Please share your phone number so that reminders reach you on time."),
        ask_contact=True,
    )


def phone_shared(ctx: Ctx) -> list[Reply]:
    _ = ctx._
    phone = normalise_phone(ctx.incoming.phone or "")
    if phone is None:
        return [Reply(_("That phone number could not be read; it was not saved."))]
    if ctx.person is None:
        ctx.state[PHONE_KEY] = phone
    else:
        ctx.person.phone = phone
        if not ctx.person.full_name and ctx.incoming.display_name:
            ctx.person.full_name = ctx.incoming.display_name[:255]
        ctx.audit("person.phone", "person", str(ctx.person.id), {"channel": ctx.incoming.channel})
    return [Reply(_("Thank you. Your phone number is saved."))]


def _take_phone(ctx: Ctx, person: Person) -> list[Reply]:
    """After joining: the phone shared before, or a request for it."""
    kept = ctx.state.pop(PHONE_KEY, None)
    if person.phone is None and isinstance(kept, str):
        person.phone = kept
    return [] if person.phone or not ctx.incoming.asks_contact else [ask_phone(ctx)]


def stranger(ctx: Ctx) -> list[Reply]:
    _ = ctx._
    return [
        Reply(
            _(
                "Hello! This bot is for the monthly reports of Hanoi's industrial clusters "
                "(Kế hoạch 68/KH-UBND). You have not been invited yet. Please send this chat "
                "number to Sở Công Thương to get an invitation: {chat_id}"
            ).format(chat_id=ctx.incoming.chat_id)
        )
    ]


async def accept(ctx: Ctx, token: str, *, quiet: bool = False) -> list[Reply]:
    _ = ctx._
    result = await accept_invitation(
        ctx.session,
        token,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        display_name=ctx.incoming.display_name,
        locale=ctx.locale,
        now=ctx.now,
    )
    if isinstance(result, InviteProblem):
        if quiet:
            return []
        problem = _(INVITE_PROBLEMS[result.problem])
        return [Reply(problem + " " + stranger(ctx)[0].text)]
    person = await person_for(ctx.session, ctx.incoming.channel, ctx.incoming.chat_id)
    assert person is not None
    ctx.person = person
    phone = _take_phone(ctx, person)
    ctx.state.clear()
    lines = [
        _("Welcome! You are registered as {role}.").format(
            role=_(ROLE_NAMES[Role(person.role or Role.INVESTOR)])
        )
    ]
    if person.clusters:
        lines.append(
            _("Your clusters: {names}.").format(names=", ".join(c.name for c in person.clusters))
        )
    elif person.organisation is not None:
        lines.append(_("Organisation: {name}.").format(name=person.organisation.name))
    return [Reply("\n".join(lines)), *help_for(ctx), *phone]


async def link_code(ctx: Ctx) -> list[Reply]:
    """/lienket: a code to type on the other messenger."""
    assert ctx.person is not None
    code = await create_link_code(ctx.session, ctx.person.id, ctx.now)
    return [
        Reply(
            ctx._(
                "To use this bot on your other messenger (Telegram or Zalo), send it this code "
                "within {minutes} minutes: {code}"
            ).format(minutes=LINK_MINUTES, code=code)
        )
    ]


async def link(ctx: Ctx, code: str) -> list[Reply]:
    """A stranger's chat sends a /lienket code: it becomes that person's other messenger."""
    result = await use_link_code(
        ctx.session,
        code,
        channel=ctx.incoming.channel,
        chat_id=ctx.incoming.chat_id,
        display_name=ctx.incoming.display_name,
        now=ctx.now,
    )
    if isinstance(result, InviteProblem) and result.problem == "limited":
        return [
            Reply(
                ctx._(
                    "You have typed a wrong code too many times. Please try again in {minutes} "
                    "minutes."
                ).format(minutes=LINK_MINUTES)
            )
        ]
    if isinstance(result, InviteProblem):
        return []
    person = await person_for(ctx.session, ctx.incoming.channel, ctx.incoming.chat_id)
    assert person is not None
    ctx.person = person
    phone = _take_phone(ctx, person)
    ctx.state.clear()
    return [
        Reply(ctx._("Linked: this chat now works for you as well.")),
        *help_for(ctx),
        *phone,
    ]


def help_for(ctx: Ctx) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    lines = [
        _("/baocao — send this month's report (photos too)"),
        _("/huy — pause; your answers are kept"),
    ]
    if ctx.person.role == Role.ADMIN:
        lines += [
            _("/moi — invite someone, e.g. /moi investor dai-thang"),
            _("/nguoidung — list people; /thuhoi <number> — withdraw access"),
            _("/vanban <cluster code> <month> — record a report received on paper"),
        ]
    lines.append(_("/tinhhinh <cluster> — how a cluster is doing (or just type its name)"))
    if ctx.person.role in (Role.ADMIN, Role.DISTRICT):
        lines += [
            _("/chuabaocao [month] — who has not reported"),
            _("/tonghop [month] — the month's summary"),
        ]
    lines.append(_("/lienket — use the bot on both Telegram and Zalo"))
    lines.append(_("/ngonngu — Tiếng Việt / English"))
    return [Reply("\n".join(lines))]


def cancel(ctx: Ctx) -> list[Reply]:
    _ = ctx._
    had_draft = "draft" in ctx.state
    pending = ctx.state.get("pending_photos")
    ctx.state.clear()
    if pending:
        ctx.state["pending_photos"] = pending
    if had_draft:
        return [Reply(_("Paused. Your answers are kept; send /baocao to continue."))]
    return [Reply(_("Nothing to cancel."))]


def language(ctx: Ctx) -> list[Reply]:
    assert ctx.person is not None
    payload = ctx.incoming.payload or ""
    if payload.startswith("lang:") and payload[5:] in i18n.SUPPORTED:
        ctx.person.locale = payload[5:]
        return [
            Reply(
                ctx._("Language: English.")
                if ctx.locale == "en"
                else ctx._("Language: Vietnamese.")
            )
        ]
    refused = [reporting.refusal(ctx)] if payload.startswith("lang:") else []
    return [
        *refused,
        Reply(
            "Chọn ngôn ngữ / Choose a language",
            [[Button("Tiếng Việt", "lang:vi"), Button("English", "lang:en")]],
        ),
    ]


async def invite(ctx: Ctx, args: str) -> list[Reply]:
    """/moi <role> [cluster codes | district | organisation]"""
    _ = ctx._
    words = args.split()
    roles = {r.value: r for r in Role}
    if not words or words[0] not in roles:
        return [
            Reply(
                _(
                    "Usage: /moi investor <cluster code> …, /moi district <district>, "
                    "/moi department <organisation>, /moi admin"
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
    link = deep_link(ctx.deps.config.bot_username, invitation.token)
    return [
        Reply(
            _(
                "Invitation for {role}, valid {days} days. Send this link to the person:\n"
                "{link}\nor the code: {token}"
            ).format(
                role=_(ROLE_NAMES[role]),
                days=ctx.deps.config.invite_days,
                link=link,
                token=invitation.token,
            )
        )
    ]


def invite_problem(exc: InviteError) -> str:
    return {
        "no_cluster": i18n.N_("an investor needs at least one cluster code"),
        "unknown_cluster": i18n.N_("unknown cluster code"),
        "no_district": i18n.N_("name the district"),
        "unknown_district": i18n.N_("unknown district"),
        "no_org": i18n.N_("name the organisation"),
    }[exc.problem]


def deep_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username or '<bot>'}?start={token}"


async def people(ctx: Ctx) -> list[Reply]:
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
