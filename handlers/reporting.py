"""The report conversation: pick the cluster, answer the form one question at a time, send
photos, review, submit, get a receipt. Everything it remembers is in the store: the draft's
answers in its row, where the chat is in the conversation's state (domain.state, with the
diagram of the steps). What a draft's answers mean — which questions apply, the next one, a
figure that went down, a doubtful one (plausibility: `domain.draft.doubt`), what a submitted
report keeps — is decided by domain.draft; this module reads and writes the rows and talks to
the person.

A doubtful answer is asked back once with the reason it is doubtful (CONFIRM_BACK, its value
`pending`); confirmed, a reason is asked (REASON_BACK: required for a figure that went down,
else it may be skipped), and the answer is kept with its reason and its `flag`, which the
reviewer sees (handlers.review). The doubt is not stored in the conversation's state: it is
worked out again from the pending value, so a stored state stays as it was."""

from __future__ import annotations

import calendar
from datetime import date
from decimal import Decimal

from domain import answers, i18n
from domain.calendar import Period
from domain.draft import ITEMS_KEY as ITEMS_KEY
from domain.draft import LOCATION_KEY as LOCATION_KEY
from domain.draft import REASON_LIMIT, Doubt, Draft, carried, doubt, initial_answers
from domain.draft import STEPS_KEY as STEPS_KEY
from domain.draft import valid_answer as valid_answer
from domain.draft import valid_where as valid_where
from domain.draft import where as where
from domain.forms import Form, Question
from domain.roles import REPORTER_ROLES
from domain.slots import owes
from domain.state import Step
from domain.text import parse_month
from handlers import attachments, payloads
from handlers.context import Ctx
from handlers.payloads import Back, Choose, Done, Edit, Keep, Kind, Payload, Skip, Submit, YesNo
from handlers.port import Button, Reply
from handlers.subjects import Reportable, answering_for, items_of, subjects_of
from store import drafts, submissions
from store.clusters import step_kinds
from store.forms import load_forms
from store.models import ReportDraft

EDIT_BUTTONS_PER_ROW = 4
TYPED = frozenset({"percent", "number", "text", "date"})  # answered by typing, not choosing
FIRST_PERIOD = Period(2021, 1)  # the plan's first month: no report speaks of an earlier one
SUBMIT_WORDS = ("gui", "gui bao cao", "submit")  # typed on the summary, accents ignored


# --- the draft and its questions ------------------------------------------------------------


def form_of(draft: ReportDraft) -> Form:
    return load_forms()[draft.form]


def draft_of(row: ReportDraft) -> Draft:
    """The draft's rules over its row's answers."""
    return Draft(form_of(row), row.answers)


def applicable(draft: ReportDraft) -> list[Question]:
    """The questions that apply given the answers so far (`ask_if`)."""
    return draft_of(draft).applicable()


def next_question(draft: ReportDraft) -> Question | None:
    return draft_of(draft).next_question()


async def _save(ctx: Ctx, row: ReportDraft, draft: Draft) -> None:
    await drafts.save_answers(ctx.session, row, draft.answers)


async def _set(
    ctx: Ctx,
    row: ReportDraft,
    qid: str,
    value: str | None,
    reason: str | None = None,
    flag: Doubt | None = None,
) -> None:
    await _save(ctx, row, draft_of(row).record(qid, value, reason, flag))


async def current_draft(ctx: Ctx) -> ReportDraft | None:
    """The draft the conversation is on, if still open. The first time in an update it is read
    with its subject's last report (`_kept` needs it) in one statement; after that it is in the
    session, and `session.get` finds it there without a statement."""
    if ctx.last_reports:
        return await drafts.open_draft(ctx.session, ctx.state.draft)
    found = await submissions.open_draft_and_last_report(ctx.session, ctx.state.draft)
    if found is None:
        return None
    draft, last = found
    ctx.last_reports[draft.subject] = last
    return draft


def _today(ctx: Ctx) -> date:
    return ctx.now.astimezone(ctx.deps.config.zone).date()


def _latest(ctx: Ctx, draft: ReportDraft) -> date:
    """The last day a date that has happened may be: the later of the period's last day and
    today (a late report may tell what happened since)."""
    period = Period.parse(draft.period)
    end = date(period.year, period.month, calendar.monthrange(period.year, period.month)[1])
    return max(end, _today(ctx))


async def _doubt(
    ctx: Ctx, draft: ReportDraft, question: Question, value: str | None
) -> Doubt | None:
    """What makes `value` doubtful (None: nothing, or a value the question does not take)."""
    if value is None or not valid_answer(question, value, _today(ctx)):
        return None
    previous = (
        await _kept(ctx, draft, question)
        if question.type in ("percent", "number", "choice")
        else None
    )
    return doubt(question, previous, value, _latest(ctx, draft))


async def _kept(ctx: Ctx, draft: ReportDraft, question: Question) -> str | None:
    """The last report's answer to `question`, if the question still takes it."""
    if question.type == "photos":
        return None
    if draft.subject not in ctx.last_reports:
        ctx.last_reports[draft.subject] = await submissions.last_report(ctx.session, draft.subject)
    last = ctx.last_reports[draft.subject]
    return carried(question, last.answers if last is not None else None, _today(ctx))


async def _photo_count(ctx: Ctx, draft: ReportDraft) -> int:
    """How many photos are linked to the draft (counted once per update)."""
    if draft.id not in ctx.photo_counts:
        ctx.photo_counts[draft.id] = await drafts.photo_count(ctx.session, draft.id)
    return ctx.photo_counts[draft.id]


def button_period(ctx: Ctx, period: Period | None) -> Period | None:
    """The period a button names, if it is not before the plan nor one whose reporting has not
    opened yet."""
    if period is None or not FIRST_PERIOD <= period <= ctx.deps.calendar.period_at(ctx.now):
        return None
    return period


def refusal(ctx: Ctx) -> Reply:
    return Reply(ctx._("Sorry, that choice is not available here."))


async def refuse(ctx: Ctx) -> list[Reply]:
    """A payload that was never offered here: say so politely and show the current step again;
    nothing changes."""
    return [refusal(ctx), *await again(ctx)]


def _subject_buttons(subjects: list[Reportable]) -> list[list[Button]]:
    return [
        [Button(s.title, payloads.encode(payloads.PickSubject(i)))] for i, s in enumerate(subjects)
    ]


async def again(ctx: Ctx) -> list[Reply]:
    """The conversation's current step, shown again as it was; outside a report, the way to
    help."""
    assert ctx.person is not None
    state = ctx.state
    if state.step is Step.PICK_SUBJECT:
        subjects = subjects_of(ctx.person, state.period)
        return [Reply(ctx._("Which cluster are you reporting on?"), _subject_buttons(subjects))]
    draft = await current_draft(ctx) if state.step is not Step.IDLE else None
    if draft is None:
        return [Reply(ctx._("Please send /trogiup for help."))]
    if state.step is Step.SUMMARY:
        return await summary(ctx, draft)
    question = draft_of(draft).question(state.question)
    if question is None:
        return await ask_next(ctx, draft)
    if state.step is Step.REASON_BACK:
        return [_reason_prompt(ctx, question, await _doubt(ctx, draft, question, state.pending))]
    pending = state.pending
    if state.step is Step.CONFIRM_BACK and pending is not None:
        kind = await _doubt(ctx, draft, question, pending)
        if kind is not None:
            return [await _doubtful(ctx, draft, question, kind, pending)]
    return await ask(ctx, draft, question)


# --- starting -------------------------------------------------------------------------------


async def start(ctx: Ctx, args: str) -> list[Reply]:
    """/baocao [month]: choose the subject, then resume or open the draft for the period."""
    _ = ctx._
    assert ctx.person is not None
    current = ctx.deps.calendar.period_at(ctx.now)
    period = current
    if args.strip():
        try:
            period = Period.parse(parse_month(args))
        except ValueError:
            return [Reply(_("Please give the month as month/year, e.g. /baocao 5/2021."))]
        if period > current:
            return [
                Reply(
                    _("The reporting period {period} has not opened yet.").format(
                        period=period.label()
                    )
                )
            ]
        if period < FIRST_PERIOD:
            return [
                Reply(
                    _("Reports under the plan start from {period}.").format(
                        period=FIRST_PERIOD.label()
                    )
                )
            ]
    subjects = subjects_of(ctx.person, period)
    if not subjects:
        return [Reply(_("You have nothing to report on. Please contact Sở Công Thương."))]
    if len(subjects) == 1:
        return await open_subject(ctx, subjects[0], period)
    ctx.state.step = Step.PICK_SUBJECT
    ctx.state.period = period
    return [Reply(_("Which cluster are you reporting on?"), _subject_buttons(subjects))]


async def start_from_reminder(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """A reminder's button `report:<subject>:<period>`: straight to that report."""
    assert ctx.person is not None
    if not isinstance(value, payloads.OpenReport):
        return await refuse(ctx)
    period = button_period(ctx, value.period)
    subject = next((s for s in subjects_of(ctx.person, period) if s.subject == value.subject), None)
    if subject is None or period is None:  # someone else's, the future, before the plan
        return await refuse(ctx)
    return await open_subject(ctx, subject, period)


async def pick_subject(ctx: Ctx, value: Payload | None) -> list[Reply]:
    """A button while picking the subject: only one of the subjects offered is taken."""
    assert ctx.person is not None
    period = ctx.state.period or ctx.deps.calendar.period_at(ctx.now)
    subjects = subjects_of(ctx.person, period)
    if not isinstance(value, payloads.PickSubject) or value.index >= len(subjects):
        return await refuse(ctx)
    return await open_subject(ctx, subjects[value.index], period)


async def open_subject(ctx: Ctx, subject: Reportable, period: Period) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    draft = await drafts.open_draft_for(ctx.session, ctx.person.id, subject.subject, str(period))
    replies: list[Reply] = []
    if draft is None:
        items = await items_of(ctx.session, ctx.person, period) if subject.form == "tasks" else None
        steps = (
            await step_kinds(ctx.session, subject.cluster_id)
            if subject.cluster_id is not None
            else None
        )
        draft = await drafts.new_draft(
            ctx.session,
            person_id=ctx.person.id,
            subject=subject.subject,
            cluster_id=subject.cluster_id,
            organisation_id=subject.organisation_id,
            period=str(period),
            form=subject.form,
            answers=initial_answers(items, steps),
        )
        deadline = ctx.deps.calendar.deadline(period)
        opening = _("Report for {period} — {subject}. Due before {day}. Send /huy to pause.")
        text = opening.format(
            period=period.label(), subject=subject.title, day=i18n.day(deadline.date(), ctx.locale)
        )
        missed = await _missed(ctx, subject, period)
        if missed is not None:
            text += "\n" + _(
                "Note: the report for {period} has not been sent (due before {day}). "
                "Send /baocao {period} to send it late."
            ).format(
                period=missed.label(),
                day=i18n.day(ctx.deps.calendar.deadline(missed).date(), ctx.locale),
            )
        replies.append(Reply(text))
    else:
        replies.append(
            Reply(
                _("Continuing your draft for {period} — {subject}.").format(
                    period=period.label(), subject=subject.title
                )
            )
        )
    ctx.state.draft = draft.id
    ctx.state.period = period
    merged = ctx.person.organisation
    if merged is not None and subject.organisation_id not in (None, merged.id):
        # the person's organisation was merged into the one they now report for (store.slots)
        replies.insert(
            0,
            Reply(
                _(
                    "{old} has been merged into {new}: from {period} you report for {new}. "
                    "If that is not right, please tell Sở Công Thương."
                ).format(old=merged.name, new=subject.title, period=period.label())
            ),
        )
    replies.extend(await _attach_pending(ctx, draft))
    return replies + await ask_next(ctx, draft)


async def _missed(ctx: Ctx, subject: Reportable, period: Period) -> Period | None:
    """The month before `period`, when opening the current month's report, if this person was
    with the bot before that month's deadline and its report (the same subject's) was not
    sent: after the 25th /baocao opens the next month, and a late report is filed only by
    naming its month. Nothing is read for anyone who joined since."""
    assert ctx.person is not None
    calendar = ctx.deps.calendar
    previous = period.previous()
    if (
        ctx.person.role not in REPORTER_ROLES
        or period != calendar.period_at(ctx.now)
        or previous < FIRST_PERIOD
        or ctx.person.created_at >= calendar.deadline(previous)
    ):
        return None
    owing = any(s.subject == subject.subject for s in subjects_of(ctx.person, previous))
    org = answering_for(ctx.person, previous) if subject.organisation_id is not None else None
    if not owing or (org is not None and not owes(previous, org.valid_from, org.valid_to)):
        return None
    return None if await submissions.sent(ctx.session, subject.subject, previous) else previous


async def reopened(ctx: Ctx, draft: ReportDraft, intro: Reply) -> list[Reply]:
    """A draft opened to correct a report sent back for changes (handlers.review.fix), holding
    the report's answers less those to answer again: these are asked one after the other, then
    the summary; what is submitted is a new version."""
    ctx.state.reset(keep_photos=True)
    ctx.state.draft = draft.id
    ctx.state.period = Period.parse(draft.period)
    ctx.state.editing = True
    ctx.photo_counts.pop(draft.id, None)  # its photos were just linked
    return [intro, *await ask_next(ctx, draft)]


# --- asking ---------------------------------------------------------------------------------


async def ask_next(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    question = next_question(draft)
    if question is None:
        return await summary(ctx, draft)
    return await ask(ctx, draft, question)


async def ask(ctx: Ctx, draft: ReportDraft, question: Question) -> list[Reply]:
    _ = ctx._
    locale = ctx.locale
    ctx.state.step = Step.ASK
    ctx.state.question = question.id
    position, total = draft_of(draft).position(question)
    lines = [f"({position}/{total}) {question.label.get(locale)}"]
    buttons: list[list[Button]] = []
    encode = payloads.encode
    if question.type == "yesno":
        buttons.append(
            [
                Button(_("Yes"), encode(YesNo(question.id, True))),
                Button(_("No"), encode(YesNo(question.id, False))),
            ]
        )
    elif question.type == "choice":
        buttons.extend(
            [Button(c.label(locale), encode(Choose(question.id, i)))]
            for i, c in enumerate(question.choices)
        )
    elif question.type == "photos":
        count = await _photo_count(ctx, draft)
        lines.append(
            _("Send site photos (up to {cap}), then tap Done.").format(
                cap=attachments.photo_cap(ctx, question)
            )
        )
        if count:
            lines.append(_("Photos received so far: {count}.").format(count=count))
        buttons.append([Button(_("Done"), encode(Done(question.id)))])
    elif question.type == "location":
        lines.append(_("Share the site's location from the attachment menu, or skip."))
    previous = await _kept(ctx, draft, question)
    if previous is not None:
        lines.append(
            _("Last report: {value}").format(value=answers.display(question, previous, locale))
        )
        buttons.append([Button(_("Unchanged"), encode(Keep(question.id)))])
    if not question.required and question.type != "photos":
        buttons.append([Button(_("Skip"), encode(Skip(question.id)))])
    return [Reply("\n".join(lines), buttons, free_input=question.type in TYPED)]


# --- answering ------------------------------------------------------------------------------


async def on_answer(ctx: Ctx) -> list[Reply]:
    """A text, a tapped button, a location or photos while a question is open."""
    _ = ctx._
    draft = await current_draft(ctx)
    if draft is None:
        ctx.state.reset()
        return [Reply(_("That report is closed. Send /baocao to start again."))]
    incoming = ctx.incoming
    step = ctx.state.step
    if incoming.attachments:
        return await on_photos(ctx, draft)
    question = draft_of(draft).question(ctx.state.question)
    if incoming.location is not None and (question is None or question.type != "location"):
        await _save(ctx, draft, draft_of(draft).located(where(incoming.location)))
        saved = [Reply(_("Site location saved."))]
        if step is Step.SUMMARY or question is None:
            return saved + await summary(ctx, draft)
        return saved + await ask(ctx, draft, question)
    if step is Step.SUMMARY:
        return await on_summary(ctx, draft)
    if question is None:
        return await ask_next(ctx, draft)
    pressed = ctx.pressed
    if step is Step.CONFIRM_BACK:
        return await on_confirm_back(ctx, draft, question, pressed)
    if step is Step.REASON_BACK:
        return await on_reason(ctx, draft, question, pressed)
    if pressed is not None:
        return await on_button(ctx, draft, question, pressed.value)
    if question.type == "location":
        if incoming.location is None:
            return [Reply(answers.hint(question, ctx.locale))]
        return await accept(ctx, draft, question, where(incoming.location))
    if question.type == "photos":
        if answers.fold_word(incoming.text) in ("xong", "done", "ok"):
            await _set(ctx, draft, question.id, str(await _photo_count(ctx, draft)))
            return await after_answer(ctx, draft)
        return [Reply(answers.hint(question, ctx.locale))]
    try:
        value = answers.parse(question, incoming.text, _today(ctx))
    except answers.Unreadable:
        return [Reply(answers.hint(question, ctx.locale))] + await ask(ctx, draft, question)
    return await accept(ctx, draft, question, value)


async def on_button(
    ctx: Ctx, draft: ReportDraft, question: Question, value: Payload | None
) -> list[Reply]:
    """A payload while `question` is open, read like typed text: only what its buttons offer
    (yes/no or a choice, unchanged, skip, done) is taken; anything else, an earlier question's
    button included, is refused and the question asked again."""
    qid = question.id
    match value:
        case Keep(question=q) if q == qid:
            previous = await _kept(ctx, draft, question)
            if previous is not None:
                await _set(ctx, draft, qid, previous)
                return await after_answer(ctx, draft)
        case Skip(question=q) if q == qid and not question.required and question.type != "photos":
            await _set(ctx, draft, qid, None)
            return await after_answer(ctx, draft)
        case Done(question=q) if q == qid and question.type == "photos":
            await _set(ctx, draft, qid, str(await _photo_count(ctx, draft)))
            return await after_answer(ctx, draft)
        case YesNo(question=q, yes=yes) if q == qid and question.type == "yesno":
            return await accept(ctx, draft, question, "yes" if yes else "no")
        case Choose(question=q, index=i) if q == qid and question.type == "choice":
            if i < len(question.choices):
                return await accept(ctx, draft, question, question.choices[i].value)
    return await refuse(ctx)


async def accept(ctx: Ctx, draft: ReportDraft, question: Question, value: str) -> list[Reply]:
    """Store an answer the question takes; a doubtful one (a figure that went down or jumped
    since the last report, an unlikely date) needs confirming."""
    if not valid_answer(question, value, _today(ctx)):
        return await refuse(ctx)
    kind = await _doubt(ctx, draft, question, value)
    if kind is not None:
        ctx.state.step = Step.CONFIRM_BACK
        ctx.state.pending = value
        return [await _doubtful(ctx, draft, question, kind, value)]
    await _set(ctx, draft, question.id, value)
    return await after_answer(ctx, draft)


async def _doubtful(
    ctx: Ctx, draft: ReportDraft, question: Question, kind: Doubt, value: str
) -> Reply:
    """The question asked back: why the answer is doubtful, is it right?"""
    _ = ctx._
    locale = ctx.locale
    label = question.label.get(locale).rstrip("?")
    new = answers.display(question, value, locale)
    previous = await _kept(ctx, draft, question) if kind in (Doubt.DOWN, Doubt.JUMP) else None
    old = answers.display(question, previous, locale) if previous is not None else ""
    yes = _("Yes, that is right")
    if kind is Doubt.DOWN and question.type == "choice":  # a stage before last time's
        text = _("{label}: last report {old}, now {new}, an earlier stage. Is that right?")
        yes = _("Yes, it went back")
    elif kind is Doubt.DOWN:
        text = _("{label} went down from {old} to {new}. Is that right?")
        yes = _("Yes, it went down")
    elif kind is Doubt.JUMP and previous is not None and Decimal(value) < Decimal(previous):
        text = _("{label} went down from {old} to {new} in one month. Is that right?")
    elif kind is Doubt.JUMP:
        text = _("{label} went up from {old} to {new} in one month. Is that right?")
    elif kind is Doubt.FUTURE:
        text = _("{label}: {new} is in the future. Is that right?")
    else:
        text = _("{label}: {new} is before the cluster was founded. Is that right?")
    return Reply(
        text.format(label=label, old=old, new=new),
        [
            [
                Button(yes, payloads.encode(Back(question.id, True))),
                Button(_("Re-enter"), payloads.encode(Back(question.id, False))),
            ]
        ],
        free_input=True,  # a new answer may be typed instead
    )


def _reason_prompt(ctx: Ctx, question: Question, kind: Doubt | None) -> Reply:
    """The reason asked for a confirmed doubtful answer: required for a figure that went down
    (or a doubt that no longer holds), else it may be skipped."""
    _ = ctx._
    if kind is None or kind.needs_reason:
        return Reply(_("Please write the reason in a few words."))
    return Reply(
        _("If you wish, write the reason in a few words; or tap Skip."),
        [[Button(_("Skip"), payloads.encode(Skip(question.id)))]],
        free_input=True,
    )


async def on_reason(
    ctx: Ctx, draft: ReportDraft, question: Question, pressed: payloads.Pressed | None
) -> list[Reply]:
    """The reason of a confirmed doubtful answer, or Skip where it is optional."""
    pending = ctx.state.pending
    kind = await _doubt(ctx, draft, question, pending)
    if pressed is not None:
        value = pressed.value
        skippable = kind is not None and not kind.needs_reason
        if not (skippable and isinstance(value, Skip) and value.question == question.id):
            return await refuse(ctx)
        reason = ""
    else:
        reason = answers.clean_text(ctx.incoming.text).strip()[:REASON_LIMIT]
        if not reason and (kind is None or kind.needs_reason):
            return [_reason_prompt(ctx, question, kind)]
    ctx.state.pending = None
    if pending is None:  # no answer waits for its reason: ask for it again
        return await ask(ctx, draft, question)
    await _set(ctx, draft, question.id, pending, reason or None, kind)
    return await after_answer(ctx, draft)


async def on_confirm_back(
    ctx: Ctx, draft: ReportDraft, question: Question, pressed: payloads.Pressed | None
) -> list[Reply]:
    _ = ctx._
    value = pressed.value if pressed is not None else None
    if isinstance(value, Back) and value.question == question.id and value.confirmed:
        ctx.state.step = Step.REASON_BACK
        kind = await _doubt(ctx, draft, question, ctx.state.pending)
        return [_reason_prompt(ctx, question, kind)]
    if pressed is not None and pressed.kind is Kind.BACK and not isinstance(value, Back):
        return await refuse(ctx)  # the confirmation is asked again
    if isinstance(value, Back) and value.question != question.id:
        return await refuse(ctx)
    ctx.state.pending = None
    if isinstance(value, Back):  # "Re-enter"
        return await ask(ctx, draft, question)
    # typed a new figure instead of tapping (or sent another button): read it as an answer
    ctx.state.step = Step.ASK
    return await on_answer(ctx)


async def after_answer(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    ctx.state.pending = None
    if ctx.state.editing:
        nxt = next_question(draft)
        if nxt is None:
            ctx.state.editing = False
            return await summary(ctx, draft)
        return await ask(ctx, draft, nxt)
    return await ask_next(ctx, draft)


# --- photos ---------------------------------------------------------------------------------


async def link_photos(ctx: Ctx, draft: ReportDraft, photo_ids: list[int]) -> tuple[int, int]:
    """Link photos to the draft up to the cap; (linked, over the cap)."""
    assert ctx.person is not None
    incoming = ctx.incoming
    linked = await drafts.link_photos(
        ctx.session,
        draft,
        photo_ids,
        attachments.photo_cap(ctx, None),
        person_id=ctx.person.id,
        caption=incoming.attachments[0].caption if incoming.attachments else "",
        channel=incoming.channel,
        received_at=ctx.now,
    )
    ctx.photo_counts[draft.id] = linked.total
    return linked.linked, linked.over


async def on_photos(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    """Photos while a report is open: linked to its draft, up to the cap."""
    _ = ctx._
    stored, refused = await attachments.store_photos(ctx)
    replies = attachments.refusals(ctx, refused)
    _linked, over = await link_photos(ctx, draft, stored)
    count = await _photo_count(ctx, draft)
    if over:
        replies.append(
            Reply(
                _("This report already has {cap} photos; the rest were not added.").format(
                    cap=count
                )
            )
        )
    question = next_question(draft)
    if question is not None and question.type == "photos" and ctx.state.question == question.id:
        text = (
            _("Photos received: {count}.").format(count=count) + " " + _("Send more or tap Done.")
        )
        done = payloads.encode(Done(question.id))
        replies.append(Reply(text, [[Button(_("Done"), done)]]))
    elif stored and not over:
        replies.append(Reply(_("Photos received: {count}.").format(count=count)))
    return replies


async def _attach_pending(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    """What was sent while no report was open, added to the draft just opened: the location,
    the photos."""
    location, ctx.state.pending_location = ctx.state.pending_location, None
    if location:
        await _save(ctx, draft, draft_of(draft).located(location))
    pending = list(ctx.state.pending_photos)
    ctx.state.pending_photos = ()
    if not pending:
        return []
    linked, _over = await link_photos(ctx, draft, pending)
    return [Reply(ctx._("{count} photo(s) you sent earlier were added.").format(count=linked))]


# --- review and submit ----------------------------------------------------------------------


async def summary(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    ctx.state.step = Step.SUMMARY
    ctx.state.question = None
    rules = draft_of(draft)
    lines = [
        _("Please check your report for {period}:").format(
            period=Period.parse(draft.period).label()
        )
    ]
    edit: list[Button] = []
    for index, q in enumerate(rules.applicable(), start=1):
        value = rules.value(q.id)
        if q.type == "photos":
            value = str(await _photo_count(ctx, draft))
        shown = answers.display(q, value, ctx.locale)
        reason = rules.reason(q.id)
        suffix = " (" + _("reason: {reason}").format(reason=reason) + ")" if reason else ""
        lines.append(f"{index}. {q.label.get(ctx.locale)} — {shown}{suffix}")
        payload = payloads.encode(Edit(index))
        edit.append(Button(f"✏️ {index}", payload, key=str(index), listed=False))
    if rules.location is not None:
        lines.append(_("Site location: {where}").format(where=rules.location))
    rows = [edit[i : i + EDIT_BUTTONS_PER_ROW] for i in range(0, len(edit), EDIT_BUTTONS_PER_ROW)]
    rows.append([Button(_("Submit report"), payloads.encode(Submit()))])
    if ctx.incoming.typed_choices:
        lines.append(_("To change an answer, type its number."))
    else:
        lines.append(_("Tap ✏️ and a number to change an answer."))
    return [Reply("\n".join(lines), rows, free_input=True)]


async def on_summary(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    pressed = ctx.pressed
    value = pressed.value if pressed is not None else None
    text = "" if pressed is not None else answers.fold_word(ctx.incoming.text)
    if isinstance(value, Submit) or text in SUBMIT_WORDS:
        return await checked_submit(ctx, draft)
    questions = applicable(draft)
    number = value.number if isinstance(value, Edit) else _number(text)
    if number is not None and 1 <= number <= len(questions):
        question = questions[number - 1]
        await _save(ctx, draft, draft_of(draft).forget(question.id))
        ctx.state.editing = True
        return await ask(ctx, draft, question)
    if pressed is not None:
        return await refuse(ctx)
    return [Reply(_("Tap Submit report to send it, or ✏️ to change an answer."))] + await summary(
        ctx, draft
    )


def _number(text: str) -> int | None:
    """An answer's number typed on the summary, in ASCII digits."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 3 else None


async def checked_submit(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    """Submit, unless an answer stored earlier (a forged button before this was checked, a form
    changed since) is not one its question takes: those are asked again."""
    rules = draft_of(draft)
    spoiled = rules.spoiled(_today(ctx))
    if not spoiled:
        return await submit(ctx, draft)
    for q in spoiled:
        rules = rules.forget(q.id)
    await _save(ctx, draft, rules)
    ctx.state.editing = False
    reply = Reply(ctx._("Some answers are not valid; please answer them again."))
    return [reply, *await ask_next(ctx, draft)]


async def submit(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    rules = draft_of(draft)
    if rules.next_question() is not None:
        return await ask_next(ctx, draft)
    period = Period.parse(draft.period)
    deadline = ctx.deps.calendar.deadline(period)
    kept = rules.submitted(await _photo_count(ctx, draft))
    report, photos = await submissions.file_report(
        ctx.session,
        draft,
        kept,
        form_version=rules.form.version,
        person_id=ctx.person.id,
        channel=ctx.incoming.channel,
        now=ctx.now,
        deadline=deadline,
    )
    ctx.last_reports.pop(draft.subject, None)  # this one is the last now
    ctx.audit(
        "report.submit",
        "report",
        report.reference,
        {
            "subject": str(draft.subject),
            "period": draft.period,
            "version": report.version,
            "on_time": report.on_time,
            "photos": photos,
        },
    )
    ctx.state.reset()
    lines = [
        _("Report received. Reference: {reference}.").format(reference=report.reference),
        _("Period: {period}.").format(period=period.label()),
    ]
    due = i18n.day(deadline.date(), ctx.locale)
    if report.on_time:
        lines.append(_("On time (due before {day}).").format(day=due))
    else:
        lines.append(_("Late (was due before {day}).").format(day=due))
    if report.version > 1:
        lines.append(
            _("This is correction no. {version}; the earlier version is kept.").format(
                version=report.version
            )
        )
    if photos:
        lines.append(_("Photos: {count}.").format(count=photos))
    lines.append(_("Thank you!"))
    return [Reply("\n".join(lines))]


# --- pausing --------------------------------------------------------------------------------


async def cancel(ctx: Ctx, _args: str = "") -> list[Reply]:
    """/huy: pause. The draft stays in the store (/baocao resumes it); photos kept for the next
    report stay kept."""
    _ = ctx._
    had_draft = ctx.state.draft is not None
    ctx.state.reset(keep_photos=True)
    if had_draft:
        return [Reply(_("Paused. Your answers are kept; send /baocao to continue."))]
    return [Reply(_("Nothing to cancel."))]
