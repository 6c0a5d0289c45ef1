"""Where each update goes, declared: the commands (Vietnamese first, the English alias after),
who may use each and the handler; the buttons of reminders, by payload kind; then the step of
the conversation. `route` reads the tables in this order, which is the order of precedence:

1. a phone shared (Zalo's user-info form), whoever sends it;
2. `/start <token>`: an invitation, whoever sends it;
3. a chat the bot does not know: a link code, a token pasted, else the polite stranger's answer;
4. the language: /ngonngu or a `lang:` button;
5. a command (COMMANDS); one the person's role may not use is refused; an unknown one too;
6. a reminder's button (REMINDER_BUTTONS), a review's (REVIEW_BUTTONS), whatever the
   conversation is doing;
7. the conversation's step: a button while picking the subject; anything during a report;
   anything while a reviewer says why a report needs changes;
8. otherwise (IDLE): photos and a location are kept for the next report, a first message gets
   the help, typed text or a card's cluster button asks how a cluster is doing, another
   button is refused, and anything else gets the help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from domain import i18n
from domain.roles import Role
from domain.state import Step
from handlers import admin, attachments, onboarding, paper, reporting, review, status
from handlers.context import Ctx
from handlers.payloads import Kind, Missing, Payload
from handlers.port import Incoming, Reply
from store.access import load_clusters

CommandHandler = Callable[[Ctx, str], Awaitable[list[Reply]]]
ButtonHandler = Callable[[Ctx, Payload | None], Awaitable[list[Reply]]]

ADMINS = frozenset({Role.ADMIN})
OFFICE = frozenset({Role.ADMIN, Role.DISTRICT})  # who sees reporting rates
REVIEWERS = review.REVIEWERS  # who reviews reports (a department: its clusters' only)


@dataclass(frozen=True)
class Command:
    name: str
    words: tuple[str, ...]  # as typed: the Vietnamese command first, then the English alias
    run: CommandHandler  # with the words after the command
    roles: frozenset[Role] | None = None  # who may use it; None: everyone invited
    refused: str = i18n.N_("Only Sở Công Thương can do that.")  # what the others are told

    def allows(self, role: str | None) -> bool:
        return self.roles is None or role in self.roles


async def _cancel(ctx: Ctx, args: str) -> list[Reply]:
    """/huy: leave a review being written, else pause the report."""
    if ctx.state.step.in_review:
        return await review.cancel(ctx)
    return await reporting.cancel(ctx, args)


COMMANDS: tuple[Command, ...] = (
    Command("report", ("/baocao", "/report"), reporting.start),
    Command("cancel", ("/huy", "/cancel"), _cancel),
    Command("help", ("/trogiup", "/help"), onboarding.help_command),
    Command("language", ("/ngonngu", "/language"), onboarding.language),
    Command("invite", ("/moi", "/invite"), admin.invite, ADMINS),
    Command("people", ("/nguoidung", "/people"), admin.people, ADMINS),
    Command("revoke", ("/thuhoi", "/revoke"), admin.revoke, ADMINS),
    Command("paper", ("/vanban", "/paper"), paper.record, ADMINS),
    Command("status", ("/tinhhinh", "/status"), status.status),
    Command(
        "missing",
        ("/chuabaocao", "/missing"),
        status.missing,
        OFFICE,
        i18n.N_("Only Sở Công Thương and district People's Committees can see this."),
    ),
    Command(
        "summary",
        ("/tonghop", "/summary"),
        status.summary,
        OFFICE,
        i18n.N_("Only Sở Công Thương and district People's Committees can see this."),
    ),
    Command("review", ("/duyet", "/review"), review.waiting_list, REVIEWERS, review.REFUSED),
    Command("link", ("/lienket", "/link"), onboarding.link_code),
    # with a token it is an invitation, taken before anything else (route, step 2)
    Command("start", ("/start",), onboarding.help_command),
)
BY_WORD: dict[str, Command] = {word: c for c in COMMANDS for word in c.words}
BY_NAME: dict[str, Command] = {c.name: c for c in COMMANDS}
UNKNOWN = "unknown"


async def _missing(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """The digest's button: who has not reported for a period already open."""
    period = reporting.button_period(ctx, value.period if isinstance(value, Missing) else None)
    if period is None:  # the future, before the plan, or not a month
        return await reporting.refuse(ctx)
    return await status.missing(ctx, str(period))


# The buttons of reminders and digests: they work whatever the conversation is doing. Each
# handler gets the payload's value, or None when it is malformed (and refuses it).
REMINDER_BUTTONS: dict[Kind, ButtonHandler] = {
    Kind.REPORT: reporting.start_from_reminder,
    Kind.PAPER: paper.claim,
    Kind.PAPER_OK: paper.decide,
    Kind.PAPER_NO: paper.decide,
    Kind.MISSING: _missing,
}

# The buttons of a report's review: on /duyet's list, a /tinhhinh card, a notice to a reviewer
# (review:, accept:, changes:) or to the sender of a report sent back (fix:). They too work
# whatever the conversation is doing; each handler checks who may use it on which report.
REVIEW_BUTTONS: dict[Kind, ButtonHandler] = {
    Kind.REVIEW: review.open_review,
    Kind.ACCEPT: review.decide,
    Kind.CHANGES: review.decide,
    Kind.FIX: review.fix,
}


def command_of(text: str) -> tuple[str | None, str]:
    """(the command's name, or "unknown", or None for text that is no command; its words)."""
    if not text.startswith("/"):
        return None, text
    word, _sep, args = text.partition(" ")
    command = BY_WORD.get(word.lower())
    return (command.name if command else UNKNOWN), args.strip()


def invitation_token(incoming: Incoming) -> str | None:
    """The token of `/start <token>`, an invitation's link, which `route` answers by binding
    the chat to a new person (onboarding.accept); None for any other update."""
    if incoming.phone is not None:
        return None
    name, args = command_of(incoming.text.strip())
    return args if name == "start" and args else None


async def route(ctx: Ctx, first_contact: bool) -> list[Reply]:
    incoming = ctx.incoming
    if incoming.phone is not None:
        return onboarding.phone_shared(ctx)
    token = invitation_token(incoming)
    if token is not None:
        return await onboarding.accept(ctx, token)
    name, args = command_of(incoming.text.strip())
    if ctx.person is None:
        return await onboarding.stranger_says(ctx, name, args, first_contact)
    if _answers_open_question(ctx, name):
        return await reporting.on_answer(ctx)  # most updates; needs none of the clusters
    await load_clusters(ctx.session, ctx.person)
    pressed = ctx.pressed
    if name == "language" or (pressed is not None and pressed.kind is Kind.LANGUAGE):
        return await onboarding.language(ctx)
    if name == UNKNOWN:
        return [Reply(ctx._("I do not know that command. Send /trogiup for help."))]
    if name is not None:
        command = BY_NAME[name]
        if not command.allows(ctx.person.role):
            return [Reply(ctx._(command.refused))]
        return await command.run(ctx, args)
    if pressed is not None and pressed.kind in REMINDER_BUTTONS:
        return await REMINDER_BUTTONS[pressed.kind](ctx, pressed.value)
    if pressed is not None and pressed.kind in REVIEW_BUTTONS:
        return await REVIEW_BUTTONS[pressed.kind](ctx, pressed.value)
    step = ctx.state.step
    if step.in_review:
        return await review.on_text(ctx)
    if step is Step.PICK_SUBJECT and pressed is not None:
        return await reporting.pick_subject(ctx, pressed.value)
    return await idle(ctx, first_contact)


def _answers_open_question(ctx: Ctx, name: str | None) -> bool:
    """Whether the update answers the report's open question (reporting.on_answer): a report
    is open and it is no command, nor a button that means the same wherever it is tapped (the
    language, a reminder's or a review's), nor the choice of what to report on."""
    pressed = ctx.pressed
    if name is not None or ctx.state.step.in_review or not ctx.state.step.in_report:
        return False
    if pressed is None:
        return True
    if ctx.state.step is Step.PICK_SUBJECT:
        return False
    return pressed.kind not in (Kind.LANGUAGE, *REMINDER_BUTTONS, *REVIEW_BUTTONS)


async def idle(ctx: Ctx, first_contact: bool) -> list[Reply]:
    """No report open (or picking the subject, and something else than a button came)."""
    incoming, pressed = ctx.incoming, ctx.pressed
    if incoming.attachments:
        return await attachments.photos_while_idle(ctx)
    if incoming.location is not None:
        return attachments.location_while_idle(ctx)
    if first_contact:
        return onboarding.help_for(ctx)
    if pressed is not None and pressed.kind is Kind.CLUSTER:
        return await status.status(ctx, incoming.text)
    if pressed is None and incoming.text.strip():
        return await status.status(ctx, incoming.text)
    if pressed is not None:  # a button of a report that is not open, or one never offered
        return await reporting.refuse(ctx)
    return onboarding.help_for(ctx)
