"""Reports sent on paper: the reporter says so from a reminder, Sở Công Thương confirms."""

from __future__ import annotations

from domain import answers
from domain.calendar import Period
from domain.roles import Role
from domain.subjects import Subject
from domain.text import parse_month
from handlers import payloads, reporting
from handlers.context import Ctx
from handlers.port import Reply
from handlers.subjects import subjects_of
from store import papers
from store.slots import slots_for

NOTE_LIMIT = 500  # characters of an admin's note on a paper copy


async def claim(ctx: Ctx, value: payloads.Payload | None) -> list[Reply]:
    """ "Đã gửi bằng văn bản" (`paper:<period>`): every open slot of this person for the period
    is claimed."""
    _ = ctx._
    assert ctx.person is not None
    asked = value.period if isinstance(value, payloads.PaperClaim) else None
    period = reporting.button_period(ctx, asked)
    if period is None:  # the future, before the plan, or not a month
        return await reporting.refuse(ctx)
    mine = {s.subject for s in subjects_of(ctx.person, period)}
    slots = await slots_for(ctx.session, period, ctx.deps.calendar)
    open_subjects = [s.subject for s in slots if s.subject in mine and not s.filled]
    if not open_subjects:
        return [Reply(_("Your reports for {period} are already in.").format(period=period.label()))]
    await papers.claim(ctx.session, open_subjects, str(period), ctx.person.id, ctx.now)
    ctx.audit("paper.claim", "period", str(period), {"subjects": [str(s) for s in open_subjects]})
    return [
        Reply(
            _(
                "Noted: sent on paper. Sở Công Thương will confirm when it has the document; "
                "until then the report counts as missing."
            )
        )
    ]


async def decide(ctx: Ctx, value: payloads.Payload | None) -> list[Reply]:
    """An admin's answer to a claim: `paperok:<id>` or `paperno:<id>`."""
    _ = ctx._
    assert ctx.person is not None
    if ctx.person.role != Role.ADMIN:
        return [Reply(_("Only Sở Công Thương can do that."))]
    if not isinstance(value, payloads.PaperDecision):  # not a number of ours
        return [Reply(_("That request no longer exists."))]
    receipt = await papers.receipt(ctx.session, value.receipt)
    if receipt is None:
        return [Reply(_("That request no longer exists."))]
    if receipt.status != papers.CLAIMED:
        return [Reply(_("Already decided."))]
    papers.decide(receipt, value.received, ctx.person.id, ctx.now)
    ctx.audit(
        f"paper.{receipt.status}",
        "paper_receipt",
        str(receipt.id),
        {"subject": str(receipt.subject), "period": receipt.period},
    )
    if receipt.status == papers.CONFIRMED:
        return [Reply(_("Confirmed: received on paper."))]
    return [Reply(_("Marked as not received; the report is still missing."))]


async def record(ctx: Ctx, args: str) -> list[Reply]:
    """/vanban <cluster code> <month> [note]: an admin records a paper report directly."""
    _ = ctx._
    assert ctx.person is not None
    words = args.split()
    if len(words) < 2:
        return [Reply(_("Usage: /vanban <cluster code> <month/year> [note]"))]
    try:
        period = Period.parse(parse_month(words[1]))
    except ValueError:
        return [Reply(_("Usage: /vanban <cluster code> <month/year> [note]"))]
    if period > ctx.deps.calendar.period_at(ctx.now):
        return [
            Reply(
                _("The reporting period {period} has not opened yet.").format(period=period.label())
            )
        ]
    if period < reporting.FIRST_PERIOD:
        return [
            Reply(
                _("Reports under the plan start from {period}.").format(
                    period=reporting.FIRST_PERIOD.label()
                )
            )
        ]
    try:  # a cluster's code, or a subject as written: cluster:<code>, org:<id>
        subject = Subject.parse(words[0]) if ":" in words[0] else Subject.cluster(words[0].lower())
    except ValueError:
        subject = None
    slots = {s.subject: s for s in await slots_for(ctx.session, period, ctx.deps.calendar)}
    if subject is None or subject not in slots:
        return [
            Reply(
                _("Nobody reports on {subject} for {period}.").format(
                    subject=answers.clean_text(words[0])[:60], period=period.label()
                )
            )
        ]
    # typed text: no NUL (PostgreSQL refuses it) nor other control characters, and not a book
    note = answers.clean_text(" ".join(words[2:]))[:NOTE_LIMIT]
    receipt = await papers.record(ctx.session, subject, str(period), note, ctx.person.id, ctx.now)
    detail = {"subject": str(subject), "note": receipt.note}
    ctx.audit("paper.record", "period", str(period), detail)
    return [
        Reply(
            _("Recorded: {title}, {period}, received on paper.").format(
                title=slots[subject].title, period=period.label()
            )
        )
    ]
