"""Becoming someone the bot knows, and the basics: a stranger is answered politely with their
chat number; an invitation (`/start <token>`, or the token pasted on Zalo, which has no deep
links) or a /lienket code from their other messenger makes the chat a person's; a phone shared
is kept (a stranger's until they are invited). Then help and the language."""

from __future__ import annotations

from typing import TypedDict

from domain import i18n
from domain.roles import OrgKind, Role
from handlers import payloads, reporting
from handlers.context import Ctx
from handlers.port import Button, Reply
from handlers.review import REVIEWERS
from store.access import (
    LINK_MINUTES,
    InviteProblem,
    accept_invitation,
    create_link_code,
    person_for,
    use_link_code,
)
from store.contacts import normalise_phone
from store.models import Person

ROLE_NAMES = {
    Role.ADMIN: i18n.N_("Sở Công Thương (administrator)"),
    Role.DEPARTMENT: i18n.N_("department"),
    Role.DISTRICT: i18n.N_("district People's Committee"),
    Role.INVESTOR: i18n.N_("cluster investor"),
}
# a reporter of the district role whose organisation is a commune's or a ward's (since 7/2025)
LOCAL_COMMITTEE = i18n.N_("commune or ward People's Committee")
INVITE_PROBLEMS = {
    "unknown": i18n.N_("This invitation code is not valid."),
    "expired": i18n.N_("This invitation has expired."),
    "used": i18n.N_("This invitation has already been used."),
    "revoked": i18n.N_("This invitation was withdrawn."),
}


# --- strangers ------------------------------------------------------------------------------


async def stranger_says(
    ctx: Ctx, command: str | None, args: str, first_contact: bool
) -> list[Reply]:
    """Anything from a chat the bot does not know (`command`: the command's name, "unknown", or
    None for plain text): a link code or an invitation token joins; anything else is answered
    with the chat number to pass on."""
    incoming = ctx.incoming
    word = args if command == "link" else incoming.text.strip()
    if command in (None, "link") and word and " " not in word:
        # a link code from /lienket, or an invitation token pasted as text (Zalo has no deep
        # links)
        joined = await link(ctx, word) if word.isdigit() else await accept(ctx, word, quiet=True)
        if joined:
            return joined
    if first_contact and incoming.asks_contact and incoming.text:  # not on a follow
        return [*stranger(ctx), ask_phone(ctx)]
    return stranger(ctx)


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


# --- the phone ------------------------------------------------------------------------------


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
        ctx.state.phone = phone  # kept for when they are invited
    else:
        ctx.person.phone = phone
        if not ctx.person.full_name and ctx.incoming.display_name:
            ctx.person.full_name = ctx.incoming.display_name[:255]
        ctx.audit("person.phone", "person", str(ctx.person.id), {"channel": ctx.incoming.channel})
    return [Reply(_("Thank you. Your phone number is saved."))]


def _take_phone(ctx: Ctx, person: Person) -> list[Reply]:
    """After joining: the phone shared before, or a request for it."""
    kept, ctx.state.phone = ctx.state.phone, None
    if person.phone is None and kept is not None:
        person.phone = kept
    return [] if person.phone or not ctx.incoming.asks_contact else [ask_phone(ctx)]


# --- joining --------------------------------------------------------------------------------


class _Chat(TypedDict):
    """The chat an invitation or a link code binds to a person, and the name it shows."""

    channel: str
    chat_id: str
    display_name: str


def _this_chat(ctx: Ctx) -> _Chat:
    incoming = ctx.incoming
    return _Chat(
        channel=incoming.channel, chat_id=incoming.chat_id, display_name=incoming.display_name
    )


async def accept(ctx: Ctx, token: str, *, quiet: bool = False) -> list[Reply]:
    """An invitation's token (`/start <token>`): the chat becomes the invited person's."""
    _ = ctx._
    result = await accept_invitation(
        ctx.session, token, **_this_chat(ctx), locale=ctx.locale, now=ctx.now
    )
    if isinstance(result, InviteProblem):
        if quiet:
            return []
        problem = _(INVITE_PROBLEMS[result.problem])
        return [Reply(problem + " " + stranger(ctx)[0].text)]
    person = ctx.person = result
    phone = _take_phone(ctx, person)
    ctx.state.reset()
    lines = [_("Welcome! You are registered as {role}.").format(role=_(role_name(person)))]
    if person.clusters:
        lines.append(
            _("Your clusters: {names}.").format(names=", ".join(c.name for c in person.clusters))
        )
    elif person.organisation is not None:
        lines.append(_("Organisation: {name}.").format(name=person.organisation.name))
    return [Reply("\n".join(lines)), *help_for(ctx), *phone]


def role_name(person: Person) -> str:
    """What the person is registered as (a message id): a commune's or ward's committee is
    named as such, though its role is the district's."""
    org = person.organisation
    if org is not None and org.kind in (OrgKind.COMMUNE_COMMITTEE, OrgKind.WARD_COMMITTEE):
        return LOCAL_COMMITTEE
    return ROLE_NAMES[Role(person.role or Role.INVESTOR)]


async def link_code(ctx: Ctx, _args: str = "") -> list[Reply]:
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
    result = await use_link_code(ctx.session, code, **_this_chat(ctx), now=ctx.now)
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
    ctx.state.reset()
    return [
        Reply(ctx._("Linked: this chat now works for you as well.")),
        *help_for(ctx),
        *phone,
    ]


# --- help and the language ------------------------------------------------------------------


async def help_command(ctx: Ctx, _args: str = "") -> list[Reply]:
    """/trogiup, and /start with no invitation."""
    return help_for(ctx)


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
    if ctx.person.role in REVIEWERS:
        lines.append(_("/duyet — review the reports received"))
    if ctx.person.role in (Role.ADMIN, Role.DISTRICT):
        lines += [
            _("/chuabaocao [month] — who has not reported"),
            _("/tonghop [month] — the month's summary"),
        ]
    lines.append(_("/lienket — use the bot on both Telegram and Zalo"))
    lines.append(_("/ngonngu — Tiếng Việt / English"))
    return [Reply("\n".join(lines))]


async def language(ctx: Ctx, _args: str = "") -> list[Reply]:
    """/ngonngu, or a language button (`lang:<vi|en>`): the person's language."""
    assert ctx.person is not None
    pressed = ctx.pressed
    if pressed is not None and isinstance(pressed.value, payloads.Language):
        ctx.person.locale = pressed.value.locale
        return [
            Reply(
                ctx._("Language: English.")
                if ctx.locale == "en"
                else ctx._("Language: Vietnamese.")
            )
        ]
    refused = (
        [reporting.refusal(ctx)]
        if pressed is not None and pressed.kind is payloads.Kind.LANGUAGE
        else []
    )
    encode = payloads.encode
    return [
        *refused,
        Reply(
            "Chọn ngôn ngữ / Choose a language",
            [
                [
                    Button("Tiếng Việt", encode(payloads.Language("vi"))),
                    Button("English", encode(payloads.Language("en"))),
                ]
            ],
        ),
    ]
