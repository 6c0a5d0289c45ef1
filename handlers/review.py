"""The review of submitted reports. Every report is *new* until a reviewer marks it *accepted*
or *needs changes*; a report sent back goes to its sender with the comment and the answers
concerned (the reminders send it: reminders/sender.py), the sender opens it at those answers
and what they send is a new version, shown to the reviewer as the answers that changed.

Who reviews: Sở Công Thương (admins) every report; a department the reports of the clusters
where the plan gives it a step (the clusters it sees on /tinhhinh: Sở TN&MT those with a land
lease to approve, …), and from the period after a merge those of the departments merged into
it; nobody else. Only a subject's period's latest version is reviewed.

Where from: /duyet (the reports waiting), the button on a cluster's /tinhhinh card, the
notice of a correction; `ccn-bot review` does the same from the command line. "Needs changes"
asks the numbers of the answers concerned, then a comment (domain.state: REVIEW_ANSWERS,
REVIEW_COMMENT); /huy leaves it with nothing changed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from domain import answers, i18n
from domain.calendar import Period
from domain.draft import LOCATION_KEY, Doubt, Draft, flag_of, initial_answers, value_of
from domain.forms import Question
from domain.roles import Role
from domain.slots import Review, review_of
from domain.state import MAX_CONCERNED, Step
from domain.text import parse_month
from handlers import payloads, reporting
from handlers.context import Ctx
from handlers.payloads import FixReport, Payload, ReviewDecision, ReviewReport
from handlers.port import Button, Reply
from handlers.subjects import subjects_of
from store import reviews, submissions
from store.clusters import step_kinds
from store.forms import load_forms
from store.models import Person, Report, ReportReview
from store.orgs import lineage, successor_on
from store.people import clusters_with_steps_of
from store.progress import person_names
from store.slots import first_day

COMMENT_LIMIT = 500  # characters of a reviewer's comment
LABEL_LIMIT = 60  # characters of a button's label
ALL_WORDS = ("tat ca", "all")  # typed for "every answer", accents ignored
_NUMBER = re.compile(r"[0-9]{1,4}")
REVIEWERS = frozenset({Role.ADMIN, Role.DEPARTMENT})
REFUSED = i18n.N_("Only Sở Công Thương and the departments can review reports.")
STATE_NAMES = {
    Review.NEW: i18n.N_("new, not yet reviewed"),
    Review.ACCEPTED: i18n.N_("accepted"),
    Review.NEEDS_CHANGES: i18n.N_("needs changes"),
}
# the flag shown next to an answer the sender confirmed when asked back (domain.draft.doubt)
FLAG_NAMES = {
    Doubt.JUMP: i18n.N_("⚠ big change in one month"),
    Doubt.FUTURE: i18n.N_("⚠ date in the future"),
    Doubt.EARLY: i18n.N_("⚠ before the cluster was founded"),
}


# --- what a report says ----------------------------------------------------------------------


def answered(report: Report) -> list[Question]:
    """The report's answered questions, in its form's order: what a reviewer numbers."""
    form = load_forms().get(report.form)
    if form is None:
        return []
    return [q for q in Draft(form, report.answers).questions() if q.id in report.answers]


def shown(question: Question, value: str | None, locale: str) -> str:
    try:
        return answers.display(question, value, locale)
    except (ArithmeticError, ValueError):  # a value stored before a form changed
        return value or "—"


def answer_line(question: Question, report: Report, locale: str) -> str:
    _ = i18n.gettext_for(locale)
    value = value_of(report.answers, question.id)
    text = f"{question.label.get(locale)} — {shown(question, value, locale)}"
    entry = report.answers.get(question.id)
    reason = entry.get("reason") if isinstance(entry, dict) else None
    if isinstance(reason, str) and reason:
        text += " (" + _("reason: {reason}").format(reason=reason) + ")"
    flag = flag_of(report.answers, question.id)
    if flag is not None and flag in FLAG_NAMES:
        text += " " + _(FLAG_NAMES[flag])
    return text


def concerned_lines(report: Report, questions: Sequence[str], locale: str) -> list[str]:
    """The answers concerned, as the sender reads them: `• label: value`."""
    wanted = set(questions)
    return [
        f"• {q.label.get(locale).rstrip('?')}: {shown(q, value_of(report.answers, q.id), locale)}"
        for q in answered(report)
        if q.id in wanted
    ]


def diff_lines(old: Report, new: Report, locale: str) -> list[str]:
    """The answers that changed from `old` to `new`: `• label: old → new`."""
    _ = i18n.gettext_for(locale)
    form = load_forms().get(new.form)
    if form is None:
        return []
    questions = {q.id: q for q in Draft(form, old.answers).questions()}
    questions.update({q.id: q for q in Draft(form, new.answers).questions()})
    out = []
    for q in questions.values():
        if q.id not in old.answers and q.id not in new.answers:
            continue
        before, after = value_of(old.answers, q.id), value_of(new.answers, q.id)
        if before == after and q.id in old.answers and q.id in new.answers:
            continue
        was = shown(q, before, locale) if q.id in old.answers else _("(not asked)")
        now = shown(q, after, locale) if q.id in new.answers else _("(not asked)")
        out.append(f"• {q.label.get(locale).rstrip('?')}: {was} → {now}")
    if value_of(old.answers, LOCATION_KEY) != value_of(new.answers, LOCATION_KEY):
        out.append("• " + _("Site location changed."))
    return out


def _heading(report: Report, title: str, locale: str) -> str:
    _ = i18n.gettext_for(locale)
    return _("Report {reference} — {title}, {period} (version {version})").format(
        reference=report.reference,
        title=title,
        period=Period.parse(report.period).label(),
        version=report.version,
    )


def decision_buttons(report: Report, locale: str) -> list[list[Button]]:
    _ = i18n.gettext_for(locale)
    return [
        [
            Button(_("Accept"), payloads.encode(ReviewDecision(report.id, True))),
            Button(_("Needs changes"), payloads.encode(ReviewDecision(report.id, False))),
        ]
    ]


# --- the notices the reminders send ---------------------------------------------------------


def changes_notice(
    report: Report, review: ReportReview, title: str, who: str, locale: str
) -> Reply:
    """To the sender: the comment, the answers concerned, and the button that opens the report
    at them."""
    _ = i18n.gettext_for(locale)
    lines = [
        _("{who} asks you to correct report {reference} ({title}, {period}):").format(
            who=who,
            reference=report.reference,
            title=title,
            period=Period.parse(report.period).label(),
        ),
        f"“{review.comment}”",
    ]
    concerned = concerned_lines(report, review.questions, locale)
    if concerned:
        lines.append(_("Answers to check:"))
        lines += concerned
    lines.append(_("Until it is corrected, the report does not count as received."))
    button = Button(_("Correct the report"), payloads.encode(FixReport(report.id)))
    return Reply("\n".join(lines), [[button]])


def fixed_notice(new: Report, old: Report, title: str, sender: str, locale: str) -> Reply:
    """To the reviewer: the correction of a report they sent back, as the answers changed."""
    _ = i18n.gettext_for(locale)
    lines = [
        _("{who} corrected report {reference} ({title}, {period}): version {version}.").format(
            who=sender or "?",
            reference=old.reference,
            title=title,
            period=Period.parse(new.period).label(),
            version=new.version,
        ),
        _("New reference: {reference}.").format(reference=new.reference),
    ]
    changed = diff_lines(old, new, locale)
    if changed:
        lines.append(_("Answers changed:"))
        lines += changed
    else:
        lines.append(_("No answer changed."))
    return Reply("\n".join(lines), decision_buttons(new, locale))


@dataclass(frozen=True)
class Waiting:
    """A report of this person waiting for changes, for the reminders."""

    report: Report
    review: ReportReview
    title: str


def waiting_lines(waiting: Sequence[Waiting], locale: str) -> tuple[list[str], list[Button]]:
    """The reminders' lines for reports waiting for changes, and their buttons."""
    _ = i18n.gettext_for(locale)
    lines = [_("Your report needs changes before it counts as received:")]
    buttons = []
    for w in waiting:
        period = Period.parse(w.report.period).label()
        lines.append(f"• {w.title}, {period} ({w.report.reference}): “{w.review.comment}”")
        label = _("Correct: {title}").format(title=w.title)[:LABEL_LIMIT]
        buttons.append(Button(label, payloads.encode(FixReport(w.report.id))))
    return lines, buttons


# --- who may review what ---------------------------------------------------------------------


async def reviewable_clusters(
    session: AsyncSession, person: Person | None, day: date | None = None
) -> set[int] | None:
    """None: every report (an admin); else the ids of the clusters whose reports the person
    may review (a department: where the plan gives it a step; anyone else: none). On `day`
    (the first day of the current period), a department reviews as well what the departments
    merged into it before that day could (store.orgs.lineage), and the people of a department
    that has ended review for its successor (handlers.subjects.answering_for), as /tinhhinh
    shows them; without `day`, its own steps only."""
    if person is None or not person.active:
        return set()
    if person.role == Role.ADMIN:
        return None
    if person.role != Role.DEPARTMENT or person.organisation_id is None:
        return set()
    if day is None or person.organisation is None:
        return await clusters_with_steps_of(session, person.organisation_id)
    org = successor_on(person.organisation, day)
    return await clusters_with_steps_of(session, await lineage(session, org.id, day))


def _today(ctx: Ctx) -> date:
    """The first day of the period reviews are decided in: merges count from the next one."""
    return first_day(ctx.deps.calendar.period_at(ctx.now))


async def may_review(ctx: Ctx, report: Report) -> bool:
    clusters = await reviewable_clusters(ctx.session, ctx.person, _today(ctx))
    return clusters is None or (report.cluster_id is not None and report.cluster_id in clusters)


async def _reviewable(ctx: Ctx, report_id: int | None) -> Report | None:
    """The report of that id if this person may review it; None for an unknown one too (a
    forged id learns nothing)."""
    if report_id is None:
        return None
    found = await reviews.report(ctx.session, report_id)
    if found is None or not await may_review(ctx, found):
        return None
    return found


async def _title(ctx: Ctx, report: Report) -> str:
    return (await reviews.titles(ctx.session, [report.subject]))[report.subject]


def _prompt(ctx: Ctx) -> Reply:
    if ctx.state.step is Step.REVIEW_COMMENT:
        return Reply(ctx._("Please write your comment for the sender: what to change, and why."))
    return Reply(
        ctx._("Which answers need changes? Type their numbers, e.g. 2 5 (or “tất cả” for all).")
    )


async def refuse(ctx: Ctx) -> list[Reply]:
    """A review payload that does not apply here: the polite refusal, and where the chat is."""
    if ctx.state.step.in_review:
        return [reporting.refusal(ctx), _prompt(ctx)]
    return await reporting.refuse(ctx)


# --- /duyet and the review of one report ------------------------------------------------------


async def waiting_list(ctx: Ctx, args: str) -> list[Reply]:
    """/duyet [month]: the reports waiting for review, oldest first, each a button."""
    _ = ctx._
    period: str | None = None
    if args.strip():
        try:
            period = str(Period.parse(parse_month(args.split()[0])))
        except ValueError:
            return [Reply(_("Please give the month as month/year, e.g. /duyet 6/2021."))]
    clusters = await reviewable_clusters(ctx.session, ctx.person, _today(ctx))
    if clusters is not None and not clusters:
        return [Reply(_(REFUSED))]
    found, total = await reviews.waiting(ctx.session, clusters=clusters, period=period)
    if not found:
        return [Reply(_("No report is waiting for review."))]
    names = await reviews.titles(ctx.session, (r.subject for r in found))
    zone = ctx.deps.calendar.zone
    lines = [_("Reports waiting for review: {count}.").format(count=total)]
    buttons = []
    for report in found:
        title = names[report.subject]
        day = i18n.day(report.submitted_at.astimezone(zone).date(), ctx.locale)
        period_label = Period.parse(report.period).label()
        lines.append(f"• {report.reference} — {title} ({period_label}, {day})")
        label = f"{report.reference} · {title}"[:LABEL_LIMIT]
        buttons.append([Button(label, payloads.encode(ReviewReport(report.id)))])
    if total > len(found):
        lines.append(
            _("The oldest {shown} are listed; review them to see the others.").format(
                shown=len(found)
            )
        )
    lines.append(_("Choose a report to review it."))
    return [Reply("\n".join(lines), buttons)]


async def open_review(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """`review:<id>`: the report's answers, numbered, with Accept and Needs changes."""
    if not isinstance(value, ReviewReport):
        return await refuse(ctx)
    report = await _reviewable(ctx, value.report)
    if report is None:
        return await refuse(ctx)
    return [await view(ctx, report)]


async def view(ctx: Ctx, report: Report) -> Reply:
    _ = ctx._
    locale = ctx.locale
    zone = ctx.deps.calendar.zone
    title = await _title(ctx, report)
    names = await person_names(ctx.session, [report.submitted_by_person_id])
    lines = [
        _heading(report, title, locale),
        _("Sent by {who} on {day}.").format(
            who=names.get(report.submitted_by_person_id, "?"),
            day=i18n.day(report.submitted_at.astimezone(zone).date(), locale),
        ),
        state_line(ctx, report, await reviews.latest_review(ctx.session, report.id)),
    ]
    previous = await reviews.previous_version(ctx.session, report)
    if previous is not None:
        changed = diff_lines(previous, report, locale)
        lines.append(
            _("Changed since version {version}:").format(version=previous.version)
            if changed
            else _("No answer changed since version {version}.").format(version=previous.version)
        )
        lines += changed
    lines += [f"{n}. {answer_line(q, report, locale)}" for n, q in enumerate(answered(report), 1)]
    newer = await reviews.newer_version(ctx.session, report)
    if newer is not None:
        lines.append(_("A newer version has come: {reference}.").format(reference=newer.reference))
        more = [[Button(newer.reference, payloads.encode(ReviewReport(newer.id)))]]
        return Reply("\n".join(lines), more)
    # on a channel without buttons the choices take letters: a number typed is an answer's
    return Reply("\n".join(lines), decision_buttons(report, locale), free_input=True)


def state_line(ctx: Ctx, report: Report, review: ReportReview | None) -> str:
    _ = ctx._
    state = review_of(report.review_state)
    line = _("Review: {state}.").format(state=_(STATE_NAMES[state]))
    if review is not None and state is not Review.NEW:
        day = i18n.day(review.at.astimezone(ctx.deps.calendar.zone).date(), ctx.locale)
        line += " " + _("({who}, {day})").format(who=review.actor or "?", day=day)
        if state is Review.NEEDS_CHANGES and review.comment:
            line += f" “{review.comment}”"
    return line


async def decide(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """`accept:<id>` or `changes:<id>`."""
    _ = ctx._
    if not isinstance(value, ReviewDecision):
        return await refuse(ctx)
    report = await _reviewable(ctx, value.report)
    if report is None:
        return await refuse(ctx)
    newer = await reviews.newer_version(ctx.session, report)
    if newer is not None:
        return [
            Reply(_("A newer version has come: {reference}.").format(reference=newer.reference)),
            await view(ctx, newer),
        ]
    state = review_of(report.review_state)
    if value.accepted:
        if state is Review.ACCEPTED:
            return [Reply(_("Already accepted: {reference}.").format(reference=report.reference))]
        record(ctx, report, Review.ACCEPTED)
        if ctx.state.review == report.id:
            ctx.state.reset(keep_photos=True)
        return [Reply(_("Accepted: {reference}. Thank you.").format(reference=report.reference))]
    questions = answered(report)
    ctx.state.reset(keep_photos=True)  # a draft of one's own stays in the store (/baocao)
    ctx.state.step = Step.REVIEW_ANSWERS
    ctx.state.review = report.id
    lines = [_heading(report, await _title(ctx, report), ctx.locale)]
    lines += [f"{n}. {answer_line(q, report, ctx.locale)}" for n, q in enumerate(questions, 1)]
    return [Reply("\n".join(lines)), _prompt(ctx)]


def record(
    ctx: Ctx,
    report: Report,
    state: Review,
    comment: str = "",
    questions: Sequence[str] = (),
) -> ReportReview:
    """The decision in the store and the audit log: who, when, over which channel."""
    assert ctx.person is not None
    decision = reviews.decide(
        ctx.session,
        report,
        state,
        comment=comment,
        questions=questions,
        person_id=ctx.person.id,
        actor=ctx.person.full_name or f"#{ctx.person.id}",
        channel=ctx.incoming.channel,
        now=ctx.now,
    )
    ctx.audit(
        f"review.{state.value}",
        "report",
        report.reference,
        {
            "subject": str(report.subject),
            "period": report.period,
            "version": report.version,
            "state": state.value,
            "comment": comment,
            "questions": list(questions),
        },
    )
    return decision


async def on_text(ctx: Ctx) -> list[Reply]:
    """What a reviewer sends while saying why a report needs changes."""
    _ = ctx._
    report = await _reviewable(ctx, ctx.state.review)
    if report is None or await reviews.newer_version(ctx.session, report) is not None:
        ctx.state.reset(keep_photos=True)
        return [Reply(_("That report can no longer be sent back. Send /duyet for the list."))]
    if ctx.pressed is not None or ctx.incoming.attachments or ctx.incoming.location:
        return [reporting.refusal(ctx), _prompt(ctx)]
    text = answers.clean_text(ctx.incoming.text).strip()
    questions = answered(report)
    if ctx.state.step is Step.REVIEW_ANSWERS:
        chosen = _chosen(text, questions)
        if not chosen:
            return [
                Reply(
                    _("Please type numbers from 1 to {count}, e.g. 2 5.").format(
                        count=len(questions)
                    )
                )
            ]
        ctx.state.concerned = tuple(q.id for q in chosen)
        ctx.state.step = Step.REVIEW_COMMENT
        lines = [_("Answers to check:")]
        lines += concerned_lines(report, ctx.state.concerned, ctx.locale)
        return [Reply("\n".join(lines)), _prompt(ctx)]
    comment = text[:COMMENT_LIMIT]
    if not comment:
        return [_prompt(ctx)]
    concerned = [q.id for q in questions if q.id in ctx.state.concerned]
    record(ctx, report, Review.NEEDS_CHANGES, comment, concerned)
    names = await person_names(ctx.session, [report.submitted_by_person_id])
    ctx.state.reset(keep_photos=True)
    return [
        Reply(
            _(
                "Sent back for changes: {reference}. {who} will get your comment and the answers "
                "to check, and the report counts as received only once corrected."
            ).format(reference=report.reference, who=names.get(report.submitted_by_person_id, "?"))
        )
    ]


def _chosen(text: str, questions: list[Question]) -> list[Question]:
    """The questions whose numbers are typed (`2 5`, `2, 5`, `2 và 5`), or all of them for
    "tất cả"; none if a number is out of range or nothing is named."""
    if answers.fold_word(text) in ALL_WORDS:
        return list(questions)
    numbers = _NUMBER.findall(text)
    if not numbers or len(numbers) > MAX_CONCERNED:
        return []
    picked = sorted({int(n) for n in numbers})
    if picked[0] < 1 or picked[-1] > len(questions):
        return []
    return [questions[n - 1] for n in picked]


async def cancel(ctx: Ctx) -> list[Reply]:
    """/huy while saying why a report needs changes: nothing is recorded."""
    ctx.state.reset(keep_photos=True)
    return [Reply(ctx._("Review cancelled; nothing was changed."))]


# --- the sender corrects ----------------------------------------------------------------------


async def fix(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """`fix:<id>`: the sender (or whoever reports on the subject) opens the report sent back,
    at the answers concerned; the rest of its answers (and its photos, unless they are
    concerned) are kept, and what is submitted is a new version."""
    _ = ctx._
    assert ctx.person is not None
    if not isinstance(value, FixReport):
        return await reporting.refuse(ctx)
    report = await reviews.report(ctx.session, value.report)
    mine = (
        next((s for s in subjects_of(ctx.person) if s.subject == report.subject), None)
        if report is not None
        else None
    )
    if report is None or mine is None:  # unknown, or someone else's
        return await reporting.refuse(ctx)
    newer = await reviews.newer_version(ctx.session, report)
    if newer is not None:
        return [
            Reply(
                _("This report has already been corrected: {reference}.").format(
                    reference=newer.reference
                )
            )
        ]
    review = await reviews.latest_review(ctx.session, report.id)
    if review_of(report.review_state) is not Review.NEEDS_CHANGES or review is None:
        return [Reply(_("This report does not need changes now. Thank you."))]
    concerned = [q for q in answered(report) if q.id in set(review.questions)]
    steps = await step_kinds(ctx.session, report.cluster_id) if report.cluster_id else None
    base = {**initial_answers(None, steps), **report.answers}
    for q in concerned:
        base.pop(q.id, None)
    draft = await submissions.reopen(
        ctx.session,
        report,
        base,
        person_id=ctx.person.id,
        carry_photos=not any(q.type == "photos" for q in concerned),
    )
    ctx.audit(
        "review.reopen",
        "report",
        report.reference,
        {"draft": draft.id, "questions": [q.id for q in concerned]},
    )
    lines = [
        _("Correcting report {reference} ({title}, {period}).").format(
            reference=report.reference, title=mine.title, period=Period.parse(report.period).label()
        ),
        f"“{review.comment}”",
    ]
    if concerned:
        lines.append(_("Please answer these again; your other answers are kept."))
    else:
        lines.append(_("Your answers are kept: change what is needed, then submit."))
    return await reporting.reopened(ctx, draft, Reply("\n".join(lines)))
