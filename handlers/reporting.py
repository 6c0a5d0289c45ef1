"""The report conversation: pick the cluster, answer the form one question at a time, send
photos, review, submit, get a receipt. Everything it remembers is in the store."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from domain import answers, i18n
from domain.calendar import Period
from domain.forms import Form, Item, Question, expand
from domain.subjects import Subject
from domain.text import parse_month
from handlers.context import Ctx
from handlers.port import Button, Reply
from handlers.subjects import Reportable, items_of, subjects_of
from store.clusters import step_kinds
from store.forms import load_forms
from store.models import Report, ReportDraft, ReportPhoto, ReportValue
from store.photos import NotPrepared, record_photo

ITEMS_KEY = "_items"
STEPS_KEY = "_steps"  # the kinds of step the cluster's plan has (conditions may depend on them)
LOCATION_KEY = "_location"  # a location shared at any point of the report
EDIT_BUTTONS_PER_ROW = 4
REASON_LIMIT = 500  # characters of the reason a figure went down
TYPED = frozenset({"percent", "number", "text", "date"})  # answered by typing, not choosing
FIRST_PERIOD = Period(2021, 1)  # the plan's first month: no report speaks of an earlier one
_PERIOD_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}")
_INDEX = re.compile(r"[0-9]{1,3}")  # a button's number in ASCII (int() also takes ' +1', '٣')
_WHERE = re.compile(r"(-?[0-9]{1,3}\.[0-9]{6}),(-?[0-9]{1,3}\.[0-9]{6})")


# --- the draft and its questions ------------------------------------------------------------


def _items(draft: ReportDraft) -> list[Item]:
    return [Item(k, t) for k, t in draft.answers.get(ITEMS_KEY, [])]


def form_of(draft: ReportDraft) -> Form:
    return load_forms()[draft.form]


def questions_of(draft: ReportDraft) -> list[Question]:
    return expand(form_of(draft), _items(draft))


def _value(draft: ReportDraft, qid: str) -> str | None:
    entry = draft.answers.get(qid)
    return entry.get("v") if isinstance(entry, dict) else None


def applicable(draft: ReportDraft) -> list[Question]:
    """The questions that apply given the answers so far (`ask_if`)."""
    steps = frozenset(draft.answers.get(STEPS_KEY) or [])
    out = []
    for q in questions_of(draft):
        if q.ask_if is None or q.ask_if.holds(_value(draft, q.ask_if.question), steps):
            out.append(q)
    return out


def next_question(draft: ReportDraft) -> Question | None:
    for q in applicable(draft):
        if q.id not in draft.answers:
            return q
    return None


def _set(draft: ReportDraft, qid: str, value: str | None, reason: str | None = None) -> None:
    entry: dict[str, Any] = {"v": value}
    if reason:
        entry["reason"] = reason
    draft.answers = {**draft.answers, qid: entry}  # a new dict, so the JSON column is saved


def _unset(draft: ReportDraft, qid: str) -> None:
    draft.answers = {k: v for k, v in draft.answers.items() if k != qid}


async def current_draft(ctx: Ctx) -> ReportDraft | None:
    draft_id = ctx.state.get("draft")
    if draft_id is None:
        return None
    draft = await ctx.session.get(ReportDraft, draft_id)
    if draft is None or draft.status != "open":
        return None
    return draft


async def last_report(ctx: Ctx, subject: Subject) -> Report | None:
    return await ctx.session.scalar(
        select(Report)
        .where(Report.subject == subject)
        .order_by(Report.period.desc(), Report.version.desc())
        .limit(1)
    )


def _previous(report: Report | None, qid: str) -> str | None:
    if report is None:
        return None
    entry = report.answers.get(qid)
    return entry.get("v") if isinstance(entry, dict) else None


# --- what an answer and a button may be -----------------------------------------------------


def _today(ctx: Ctx) -> date:
    return ctx.now.astimezone(ctx.deps.config.zone).date()


def valid_answer(question: Question, value: object, today: date) -> bool:
    """Whether `value` is an answer `question` takes, in its stored form: what parsing the same
    text would store (yes/no only `yes`|`no`, a choice's value, a plain number in range …)."""
    if value is None:
        return not question.required
    if not isinstance(value, str):
        return False
    if question.type == "photos":
        return _INDEX.fullmatch(value) is not None
    if question.type == "location":
        return valid_where(value)
    try:
        return answers.parse(question, value, today) == value
    except answers.Unreadable:
        return False


def valid_where(value: object) -> bool:
    """A location as `where` writes it, on the globe."""
    m = _WHERE.fullmatch(value) if isinstance(value, str) else None
    return m is not None and abs(float(m[1])) <= 90 and abs(float(m[2])) <= 180


async def _kept(ctx: Ctx, draft: ReportDraft, question: Question) -> str | None:
    """The last report's answer to `question`, if the question still takes it."""
    if question.type == "photos":
        return None
    previous = _previous(await last_report(ctx, draft.subject), question.id)
    if previous is None or not valid_answer(question, previous, _today(ctx)):
        return None
    return previous


def button_period(ctx: Ctx, text: str) -> Period | None:
    """The period a button names (`2021-06`): well-formed, not before the plan, not one whose
    reporting has not opened yet."""
    if not _PERIOD_TEXT.fullmatch(text):
        return None
    try:
        period = Period.parse(text)
    except ValueError:
        return None
    if not FIRST_PERIOD <= period <= ctx.deps.calendar.period_at(ctx.now):
        return None
    return period


def refusal(ctx: Ctx) -> Reply:
    return Reply(ctx._("Sorry, that choice is not available here."))


async def refuse(ctx: Ctx) -> list[Reply]:
    """A payload that was never offered here: say so politely and show the current step again;
    nothing changes."""
    return [refusal(ctx), *await again(ctx)]


async def again(ctx: Ctx) -> list[Reply]:
    """The conversation's current step, shown again as it was; outside a report, the way to
    help."""
    assert ctx.person is not None
    mode = ctx.state.get("mode")
    if mode == "pick_subject":
        buttons = [[Button(s.title, f"subject:{i}")] for i, s in enumerate(subjects_of(ctx.person))]
        return [Reply(ctx._("Which cluster are you reporting on?"), buttons)]
    draft = await current_draft(ctx) if mode else None
    if draft is None:
        return [Reply(ctx._("Please send /trogiup for help."))]
    if mode == "summary":
        return await summary(ctx, draft)
    question = {q.id: q for q in applicable(draft)}.get(ctx.state.get("q", ""))
    if question is None:
        return await ask_next(ctx, draft)
    if mode == "reason_back":
        return [Reply(ctx._("Please write the reason in a few words."))]
    pending = ctx.state.get("pending")
    if mode == "confirm_back" and valid_answer(question, pending, _today(ctx)):
        previous = await _kept(ctx, draft, question)
        if previous is not None and isinstance(pending, str):
            return [_going_down(ctx, question, previous, pending)]
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
    subjects = subjects_of(ctx.person)
    if not subjects:
        return [Reply(_("You have nothing to report on. Please contact Sở Công Thương."))]
    if len(subjects) == 1:
        return await open_subject(ctx, subjects[0], period)
    ctx.state.update(mode="pick_subject", period=str(period))
    buttons = [[Button(s.title, f"subject:{i}")] for i, s in enumerate(subjects)]
    return [Reply(_("Which cluster are you reporting on?"), buttons)]


async def start_from_reminder(ctx: Ctx, payload: str) -> list[Reply]:
    """A reminder's button `report:<subject>:<period>`: straight to that report."""
    assert ctx.person is not None
    subject_text, _sep, period_text = payload.removeprefix("report:").rpartition(":")
    subject = next((s for s in subjects_of(ctx.person) if str(s.subject) == subject_text), None)
    period = button_period(ctx, period_text)
    if subject is None or period is None:  # someone else's, the future, before the plan
        return await refuse(ctx)
    return await open_subject(ctx, subject, period)


async def pick_subject(ctx: Ctx, payload: str) -> list[Reply]:
    assert ctx.person is not None
    subjects = subjects_of(ctx.person)
    index = payload.removeprefix("subject:")
    if not payload.startswith("subject:") or not _INDEX.fullmatch(index):
        return await refuse(ctx)
    if int(index) >= len(subjects):
        return await refuse(ctx)
    subject = subjects[int(index)]
    period = Period.parse(ctx.state.get("period") or str(ctx.deps.calendar.period_at(ctx.now)))
    return await open_subject(ctx, subject, period)


async def open_subject(ctx: Ctx, subject: Reportable, period: Period) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    draft = await ctx.session.scalar(
        select(ReportDraft).where(
            ReportDraft.person_id == ctx.person.id,
            ReportDraft.subject == subject.subject,
            ReportDraft.period == str(period),
            ReportDraft.status == "open",
        )
    )
    replies: list[Reply] = []
    if draft is None:
        initial: dict[str, Any] = {}
        if subject.form == "tasks":
            items = await items_of(ctx.session, ctx.person)
            initial[ITEMS_KEY] = [[i.key, i.title] for i in items]
        if subject.cluster_id is not None:
            initial[STEPS_KEY] = await step_kinds(ctx.session, subject.cluster_id)
        draft = ReportDraft(
            person_id=ctx.person.id,
            subject=subject.subject,
            cluster_id=subject.cluster_id,
            organisation_id=subject.organisation_id,
            period=str(period),
            form=subject.form,
            answers=initial,
        )
        ctx.session.add(draft)
        await ctx.session.flush()
        deadline = ctx.deps.calendar.deadline(period)
        replies.append(
            Reply(
                _("Report for {period} — {subject}. Due before {day}. Send /huy to pause.").format(
                    period=period.label(),
                    subject=subject.title,
                    day=i18n.day(deadline.date(), ctx.locale),
                )
            )
        )
    else:
        replies.append(
            Reply(
                _("Continuing your draft for {period} — {subject}.").format(
                    period=period.label(), subject=subject.title
                )
            )
        )
    ctx.state.update(draft=draft.id, period=str(period))
    replies.extend(await _attach_pending_photos(ctx, draft))
    return replies + await ask_next(ctx, draft)


# --- asking ---------------------------------------------------------------------------------


async def ask_next(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    question = next_question(draft)
    if question is None:
        return await summary(ctx, draft)
    return await ask(ctx, draft, question)


async def ask(ctx: Ctx, draft: ReportDraft, question: Question) -> list[Reply]:
    _ = ctx._
    locale = ctx.locale
    ctx.state.update(mode="ask", q=question.id)
    total = len(applicable(draft))
    position = [q.id for q in applicable(draft)].index(question.id) + 1
    lines = [f"({position}/{total}) {question.label.get(locale)}"]
    buttons: list[list[Button]] = []
    if question.type == "yesno":
        buttons.append(
            [Button(_("Yes"), f"a:{question.id}:yes"), Button(_("No"), f"a:{question.id}:no")]
        )
    elif question.type == "choice":
        buttons.extend(
            [Button(c.label(locale), f"a:{question.id}:{i}")]
            for i, c in enumerate(question.choices)
        )
    elif question.type == "photos":
        count = await _photo_count(ctx, draft)
        lines.append(
            _("Send site photos (up to {cap}), then tap Done.").format(
                cap=_photo_cap(ctx, question)
            )
        )
        if count:
            lines.append(_("Photos received so far: {count}.").format(count=count))
        buttons.append([Button(_("Done"), f"done:{question.id}")])
    elif question.type == "location":
        lines.append(_("Share the site's location from the attachment menu, or skip."))
    previous = await _kept(ctx, draft, question)
    if previous is not None:
        lines.append(
            _("Last report: {value}").format(value=answers.display(question, previous, locale))
        )
        buttons.append([Button(_("Unchanged"), f"keep:{question.id}")])
    if not question.required and question.type != "photos":
        buttons.append([Button(_("Skip"), f"skip:{question.id}")])
    return [Reply("\n".join(lines), buttons, free_input=question.type in TYPED)]


def _photo_cap(ctx: Ctx, question: Question | None) -> int:
    cap = ctx.deps.config.max_photos
    return min(cap, question.max_photos) if question is not None else cap


async def _photo_count(ctx: Ctx, draft: ReportDraft) -> int:
    return int(
        await ctx.session.scalar(
            select(func.count()).select_from(ReportPhoto).where(ReportPhoto.draft_id == draft.id)
        )
        or 0
    )


# --- answering ------------------------------------------------------------------------------


async def on_answer(ctx: Ctx) -> list[Reply]:
    """A text, a tapped button, a location or photos while a question is open."""
    _ = ctx._
    draft = await current_draft(ctx)
    if draft is None:
        ctx.state.clear()
        return [Reply(_("That report is closed. Send /baocao to start again."))]
    incoming = ctx.incoming
    mode = ctx.state.get("mode")
    if incoming.attachments:
        return await on_photos(ctx, draft)
    questions = {q.id: q for q in applicable(draft)}
    question = questions.get(ctx.state.get("q", ""))
    if incoming.location is not None and (question is None or question.type != "location"):
        _set(draft, LOCATION_KEY, where(incoming.location))
        saved = [Reply(_("Site location saved."))]
        if mode == "summary" or question is None:
            return saved + await summary(ctx, draft)
        return saved + await ask(ctx, draft, question)
    if mode == "summary":
        return await on_summary(ctx, draft)
    if question is None:
        return await ask_next(ctx, draft)
    payload = incoming.payload or ""
    if mode == "confirm_back":
        return await on_confirm_back(ctx, draft, question, payload)
    if mode == "reason_back":
        if payload:
            return await refuse(ctx)
        reason = answers.clean_text(incoming.text).strip()[:REASON_LIMIT]
        if not reason:
            return [Reply(_("Please write the reason in a few words."))]
        _set(draft, question.id, ctx.state.pop("pending"), reason)
        return await after_answer(ctx, draft)
    if payload:
        return await on_button(ctx, draft, question, payload)
    if question.type == "location":
        if incoming.location is None:
            return [Reply(answers.hint(question, ctx.locale))]
        return await accept(ctx, draft, question, where(incoming.location))
    if question.type == "photos":
        if answers.fold_word(incoming.text) in ("xong", "done", "ok"):
            _set(draft, question.id, str(await _photo_count(ctx, draft)))
            return await after_answer(ctx, draft)
        return [Reply(answers.hint(question, ctx.locale))]
    try:
        value = answers.parse(
            question, incoming.text, ctx.now.astimezone(ctx.deps.config.zone).date()
        )
    except answers.Unreadable:
        return [Reply(answers.hint(question, ctx.locale))] + await ask(ctx, draft, question)
    return await accept(ctx, draft, question, value)


def where(location: tuple[float, float]) -> str:
    return f"{location[0]:.6f},{location[1]:.6f}"


async def on_button(ctx: Ctx, draft: ReportDraft, question: Question, payload: str) -> list[Reply]:
    """A payload while `question` is open, read like typed text: only what its buttons offer
    (`a:<q>:<yes|no|choice number>`, `keep:<q>`, `skip:<q>`, `done:<q>`) is taken; anything
    else, an earlier question's button included, is refused and the question asked again."""
    action, _sep, rest = payload.partition(":")
    qid, sep, value = rest.partition(":")
    if qid != question.id:
        return await refuse(ctx)
    if action == "keep" and not sep:
        previous = await _kept(ctx, draft, question)
        if previous is not None:
            _set(draft, question.id, previous)
            return await after_answer(ctx, draft)
    elif action == "skip" and not sep and not question.required and question.type != "photos":
        _set(draft, question.id, None)
        return await after_answer(ctx, draft)
    elif action == "done" and not sep and question.type == "photos":
        _set(draft, question.id, str(await _photo_count(ctx, draft)))
        return await after_answer(ctx, draft)
    elif action == "a" and question.type == "yesno" and value in ("yes", "no"):
        return await accept(ctx, draft, question, value)
    elif action == "a" and question.type == "choice" and _INDEX.fullmatch(value):
        index = int(value)
        if index < len(question.choices):
            return await accept(ctx, draft, question, question.choices[index].value)
    return await refuse(ctx)


async def accept(ctx: Ctx, draft: ReportDraft, question: Question, value: str) -> list[Reply]:
    """Store an answer the question takes; a figure that went down since the last report needs
    confirming."""
    if not valid_answer(question, value, _today(ctx)):
        return await refuse(ctx)
    if question.monotonic and question.type in ("percent", "number"):
        previous = await _kept(ctx, draft, question)
        if previous is not None and Decimal(value) < Decimal(previous):
            ctx.state.update(mode="confirm_back", pending=value)
            return [_going_down(ctx, question, previous, value)]
    _set(draft, question.id, value)
    return await after_answer(ctx, draft)


def _going_down(ctx: Ctx, question: Question, previous: str, value: str) -> Reply:
    _ = ctx._
    return Reply(
        _("{label} went down from {old} to {new}. Is that right?").format(
            label=question.label.get(ctx.locale).rstrip("?"),
            old=answers.display(question, previous, ctx.locale),
            new=answers.display(question, value, ctx.locale),
        ),
        [
            [
                Button(_("Yes, it went down"), f"back:{question.id}:yes"),
                Button(_("Re-enter"), f"back:{question.id}:no"),
            ]
        ],
        free_input=True,  # a new figure may be typed instead
    )


async def on_confirm_back(
    ctx: Ctx, draft: ReportDraft, question: Question, payload: str
) -> list[Reply]:
    _ = ctx._
    if payload == f"back:{question.id}:yes":
        ctx.state["mode"] = "reason_back"
        return [Reply(_("Please write the reason in a few words."))]
    if payload.startswith("back:") and payload != f"back:{question.id}:no":
        return await refuse(ctx)  # the confirmation is asked again
    ctx.state.pop("pending", None)
    if payload == f"back:{question.id}:no":
        return await ask(ctx, draft, question)
    # typed a new figure instead of tapping: treat it as the answer
    ctx.state["mode"] = "ask"
    return await on_answer(ctx)


async def after_answer(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    ctx.state.pop("pending", None)
    if ctx.state.get("editing"):
        nxt = next_question(draft)
        if nxt is None:
            ctx.state.pop("editing", None)
            return await summary(ctx, draft)
        return await ask(ctx, draft, nxt)
    return await ask_next(ctx, draft)


# --- photos ---------------------------------------------------------------------------------


async def store_photos(ctx: Ctx) -> tuple[list[int], list[str]]:
    """Record the incoming photos, already checked and written to disk before the transaction
    (conversation.handle); the ids stored and the reasons of those refused."""
    assert ctx.person is not None
    stored: list[int] = []
    refused: list[str] = []
    for attachment in ctx.incoming.attachments:
        if attachment.refused:
            refused.append(attachment.refused)
            continue
        if attachment.prepared is None:
            raise NotPrepared()  # handle() prepares the photos and tries again
        photo, _new = await record_photo(ctx.session, attachment.prepared)
        stored.append(photo.id)
    return stored, refused


def _refusals(ctx: Ctx, refused: list[str]) -> list[Reply]:
    _ = ctx._
    out = []
    if "not_image" in refused:
        out.append(Reply(_("That file is not a photo (JPEG, PNG or WebP); it was not saved.")))
    if "too_many_pixels" in refused:
        out.append(
            Reply(_("That picture has too many pixels to be a site photo; it was not saved."))
        )
    if "too_large" in refused:
        out.append(
            Reply(
                _("That photo is larger than {mb} MB; please send a smaller one.").format(
                    mb=ctx.deps.config.max_photo_bytes // (1024 * 1024)
                )
            )
        )
    return out


async def link_photos(ctx: Ctx, draft: ReportDraft, photo_ids: list[int]) -> tuple[int, int]:
    """Link photos to the draft up to the cap; (linked, over the cap)."""
    assert ctx.person is not None
    cap = _photo_cap(ctx, None)
    count = await _photo_count(ctx, draft)
    already = set(
        (
            await ctx.session.scalars(
                select(ReportPhoto.photo_id).where(ReportPhoto.draft_id == draft.id)
            )
        ).all()
    )
    linked = over = 0
    for photo_id in photo_ids:
        if photo_id in already:
            continue
        if count >= cap:
            over += 1
            continue
        ctx.session.add(
            ReportPhoto(
                photo_id=photo_id,
                draft_id=draft.id,
                cluster_id=draft.cluster_id,
                person_id=ctx.person.id,
                caption=ctx.incoming.attachments[0].caption if ctx.incoming.attachments else "",
                channel=ctx.incoming.channel,
                received_at=ctx.now,
            )
        )
        already.add(photo_id)
        count += 1
        linked += 1
    await ctx.session.flush()
    return linked, over


async def on_photos(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    stored, refused = await store_photos(ctx)
    replies = _refusals(ctx, refused)
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
    asking_photos = (
        question is not None and question.type == "photos" and ctx.state.get("q") == question.id
    )
    if asking_photos and question is not None:
        text = (
            _("Photos received: {count}.").format(count=count) + " " + _("Send more or tap Done.")
        )
        replies.append(Reply(text, [[Button(_("Done"), f"done:{question.id}")]]))
    elif stored and not over:
        replies.append(Reply(_("Photos received: {count}.").format(count=count)))
    return replies


async def photos_while_idle(ctx: Ctx) -> list[Reply]:
    """Photos sent with no report open: keep them, and attach them to the next report opened."""
    _ = ctx._
    stored, refused = await store_photos(ctx)
    replies = _refusals(ctx, refused)
    if stored:
        pending = list(dict.fromkeys([*ctx.state.get("pending_photos", []), *stored]))
        ctx.state["pending_photos"] = pending
        replies.append(
            Reply(
                _(
                    "Photos kept ({count}). Send /baocao and they will be added to your report."
                ).format(count=len(pending))
            )
        )
    return replies


async def _attach_pending_photos(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    location = ctx.state.pop("pending_location", None)
    if location:
        _set(draft, LOCATION_KEY, location)
    pending = ctx.state.pop("pending_photos", [])
    if not pending:
        return []
    linked, _over = await link_photos(ctx, draft, pending)
    return [Reply(ctx._("{count} photo(s) you sent earlier were added.").format(count=linked))]


# --- review and submit ----------------------------------------------------------------------


async def summary(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    ctx.state.update(mode="summary")
    ctx.state.pop("q", None)
    questions = applicable(draft)
    lines = [
        _("Please check your report for {period}:").format(
            period=Period.parse(draft.period).label()
        )
    ]
    edit: list[Button] = []
    for index, q in enumerate(questions, start=1):
        value = _value(draft, q.id)
        shown = answers.display(q, value, ctx.locale)
        if q.type == "photos":
            shown = answers.display(q, str(await _photo_count(ctx, draft)), ctx.locale)
        reason = draft.answers.get(q.id, {}).get("reason")
        suffix = " (" + _("reason: {reason}").format(reason=reason) + ")" if reason else ""
        lines.append(f"{index}. {q.label.get(ctx.locale)} — {shown}{suffix}")
        edit.append(Button(f"✏️ {index}", f"edit:{index}", key=str(index), listed=False))
    if LOCATION_KEY in draft.answers:
        lines.append(_("Site location: {where}").format(where=draft.answers[LOCATION_KEY]["v"]))
    rows = [edit[i : i + EDIT_BUTTONS_PER_ROW] for i in range(0, len(edit), EDIT_BUTTONS_PER_ROW)]
    rows.append([Button(_("Submit report"), "submit")])
    if ctx.incoming.typed_choices:
        lines.append(_("To change an answer, type its number."))
    else:
        lines.append(_("Tap ✏️ and a number to change an answer."))
    return [Reply("\n".join(lines), rows, free_input=True)]


async def on_summary(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    payload = ctx.incoming.payload or ""
    text = "" if payload else answers.fold_word(ctx.incoming.text)
    if payload == "submit" or text in ("gui", "gui bao cao", "submit"):
        return await checked_submit(ctx, draft)
    questions = applicable(draft)
    number = payload.removeprefix("edit:") if payload.startswith("edit:") else text
    if _INDEX.fullmatch(number) and 1 <= int(number) <= len(questions):
        question = questions[int(number) - 1]
        _unset(draft, question.id)
        ctx.state["editing"] = True
        return await ask(ctx, draft, question)
    if payload:
        return await refuse(ctx)
    return [Reply(_("Tap Submit report to send it, or ✏️ to change an answer."))] + await summary(
        ctx, draft
    )


async def checked_submit(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    """Submit, unless an answer stored earlier (a forged button before this was checked, a form
    changed since) is not one its question takes: those are asked again."""
    today = _today(ctx)
    spoiled = [
        q
        for q in applicable(draft)
        if q.id in draft.answers
        and q.type != "photos"  # the count is taken at submission
        and (
            not isinstance(draft.answers[q.id], dict)
            or not valid_answer(q, _value(draft, q.id), today)
        )
    ]
    if not spoiled:
        return await submit(ctx, draft)
    for q in spoiled:
        _unset(draft, q.id)
    ctx.state.pop("editing", None)
    reply = Reply(ctx._("Some answers are not valid; please answer them again."))
    return [reply, *await ask_next(ctx, draft)]


async def submit(ctx: Ctx, draft: ReportDraft) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    if next_question(draft) is not None:
        return await ask_next(ctx, draft)
    period = Period.parse(draft.period)
    calendar = ctx.deps.calendar
    deadline = calendar.deadline(period)
    now = ctx.now
    previous = await ctx.session.scalar(
        select(Report)
        .where(Report.subject == draft.subject, Report.period == draft.period)
        .order_by(Report.version.desc())
        .limit(1)
    )
    questions = applicable(draft)
    kept = {q.id: draft.answers[q.id] for q in questions}
    photo_count = await _photo_count(ctx, draft)
    for q in questions:
        if q.type == "photos":
            kept[q.id] = {"v": str(photo_count)}
    if LOCATION_KEY in draft.answers:
        kept[LOCATION_KEY] = draft.answers[LOCATION_KEY]
    report = Report(
        reference="",
        subject=draft.subject,
        cluster_id=draft.cluster_id,
        organisation_id=draft.organisation_id,
        period=draft.period,
        form=draft.form,
        form_version=form_of(draft).version,
        version=(previous.version + 1) if previous else 1,
        answers={
            **kept,
            **({ITEMS_KEY: draft.answers[ITEMS_KEY]} if ITEMS_KEY in draft.answers else {}),
        },
        submitted_at=now,
        submitted_by_person_id=ctx.person.id,
        channel=ctx.incoming.channel,
        deadline_at=deadline,
        on_time=now < deadline,
        supersedes_id=previous.id if previous else None,
        draft_id=draft.id,
    )
    ctx.session.add(report)
    await ctx.session.flush()
    report.reference = f"BC-{period.year:04d}{period.month:02d}-{report.id:05d}"
    kinds = {q.id: q.type for q in questions}
    for qid, entry in kept.items():
        value = entry.get("v")
        numeric = kinds.get(qid) in ("percent", "number")
        number = Decimal(value) if value is not None and numeric else None
        ctx.session.add(
            ReportValue(
                report_id=report.id,
                question_id=qid,
                value_text=value,
                value_number=number,
                reason=entry.get("reason"),
            )
        )
    photos = (
        await ctx.session.scalars(select(ReportPhoto).where(ReportPhoto.draft_id == draft.id))
    ).all()
    for link in photos:
        link.report_id = report.id
    draft.status = "submitted"
    ctx.audit(
        "report.submit",
        "report",
        report.reference,
        {
            "subject": str(draft.subject),
            "period": draft.period,
            "version": report.version,
            "on_time": report.on_time,
            "photos": len(photos),
        },
    )
    ctx.state.clear()
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
        lines.append(_("Photos: {count}.").format(count=len(photos)))
    lines.append(_("Thank you!"))
    return [Reply("\n".join(lines))]
