"""Sở Công Thương's questions by message: how is cluster X, who has not reported, this
month's summary (with the workbook and the chart). Each person sees only their part."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from domain import answers, i18n
from domain.calendar import Period
from domain.forms import Form
from domain.roles import ClusterKind, Role
from domain.slots import Rate, Slot, counted
from domain.text import bare_cluster_name, parse_month
from handlers import integrity, later, payloads, review
from handlers.context import Ctx, Deps
from handlers.outbox import Later
from handlers.port import Button, Photo, Reply
from handlers.subjects import answering_for, cluster_subject
from reports import offload, upward
from reports import tasks as late_tasks
from reports.files import person_exports
from reports.missing import missing_rows
from reports.month import REPORTER_NAMES
from reports.progress import latest_answers, next_step, reports_of, sender_names
from reports.summary import Summary, summarise
from store import reviews
from store.cards import cluster_for_card, cluster_steps, latest_photos
from store.clusters import ClusterRef, Match, cluster_refs, search
from store.db import url_of
from store.drafts import has_open_draft
from store.forms import load_forms
from store.models import Cluster
from store.orgs import district_short, lineage
from store.people import clusters_with_steps_of
from store.slots import cluster_places, commune_of, covers, first_day, sees_slot

log = logging.getLogger(__name__)
FIGURE_TYPES = ("percent", "number", "yesno", "choice", "date")
CODE_SHOWN = 60  # characters of an unknown cluster code repeated back
# Short names of the plan's targets for a phone screen (the workbook keeps the plan's words).
TARGET_NAMES = {
    "groundbreakings": i18n.N_("Groundbreakings, whole year"),
    "groundbreakings_q1": i18n.N_("Groundbreakings, Q1"),
    "groundbreakings_q2": i18n.N_("Groundbreakings, Q2"),
    "groundbreakings_q3": i18n.N_("Groundbreakings, Q3"),
    "groundbreakings_q4": i18n.N_("Groundbreakings, Q4"),
    "infrastructure_completed": i18n.N_("Infrastructure finished"),
    "new_clusters": i18n.N_("New clusters founded"),
    "operating_full_infrastructure": i18n.N_("Operating clusters, complete infrastructure"),
    "wastewater_new": i18n.N_("Wastewater plant to standard, new clusters"),
    "wastewater_operating": i18n.N_("Wastewater plant to standard, operating clusters"),
}
KIND_LABELS = {
    ClusterKind.OPERATING_COMPLETE: i18n.N_("operating, infrastructure finished"),
    ClusterKind.OPERATING_INCOMPLETE: i18n.N_("operating, infrastructure unfinished"),
    ClusterKind.FOUNDED_2018_2020: i18n.N_("founded 2018–2020"),
    ClusterKind.FOUNDED_2021: i18n.N_("newly founded"),
}


def cluster_buttons(matches: list[Match[ClusterRef]], locale: str) -> list[list[Button]]:
    """One button per cluster; two clusters of the same name are told apart by their kind."""
    _ = i18n.gettext_for(locale)
    names = Counter(bare_cluster_name(m.cluster.name) for m in matches)
    rows = []
    for m in matches:
        label = m.cluster.name
        if names[bare_cluster_name(label)] > 1:
            label = f"{label} ({_(KIND_LABELS[ClusterKind(m.cluster.kind)])})"
        rows.append([Button(label, payloads.encode(payloads.ClusterCard(m.cluster.code)))])
    return rows


# --- who may see what ---------------------------------------------------------------------


async def visible_clusters(ctx: Ctx) -> list[ClusterRef]:
    """Admins see every cluster; a district's officer their district's (with any it shares
    with another district), a commune's or ward's officer the clusters placed in it; an
    investor their own; a department the clusters where the plan gives it (or one merged into
    it) a step; anyone else none."""
    person = ctx.person
    if person is None or not person.active:
        return []
    clusters = await cluster_refs(ctx.session)
    if person.role == Role.ADMIN:
        return clusters
    if person.role == Role.DISTRICT:
        # a commune's or ward's committee: its own clusters; a district's: its district's
        return [c for c in clusters if covers(person, c.districts, c.commune_id)]
    if person.role == Role.INVESTOR:
        mine = {c.id for c in person.clusters}
        return [c for c in clusters if c.id in mine]
    if person.role == Role.DEPARTMENT and person.organisation is not None:
        # with the steps of the organisations merged into it (or into what it was merged into)
        period = ctx.deps.calendar.period_at(ctx.now)
        org = answering_for(person, period)
        assert org is not None
        owned = await clusters_with_steps_of(
            ctx.session, await lineage(ctx.session, org.id, first_day(period))
        )
        return [c for c in clusters if c.id in owned]
    return []


async def _loaded(ctx: Ctx, found: ClusterRef) -> Cluster:
    """The cluster to show, with the district and investor its card names."""
    cluster = await cluster_for_card(ctx.session, found.id)
    assert cluster is not None  # clusters are never deleted
    return cluster


# --- /tinhhinh ----------------------------------------------------------------------------


async def status(ctx: Ctx, query: str) -> list[Reply]:
    _ = ctx._
    visible = await visible_clusters(ctx)
    query = query.strip()
    pressed = ctx.pressed
    if pressed is not None and pressed.kind is payloads.Kind.CLUSTER:  # a button of a card
        value = pressed.value
        code = value.code if isinstance(value, payloads.ClusterCard) else None
        chosen = [c for c in visible if c.code == code]
        if chosen:
            return await card(ctx, await _loaded(ctx, chosen[0]))
        # a forged code is not echoed in full
        shown = answers.clean_text(pressed.rest)[:CODE_SHOWN]
        return [
            Reply(_("No cluster matches “{query}”. Please check the name.").format(query=shown))
        ]
    if not query:
        late = await late_task_lines(ctx, this_month(ctx))  # the organisation's own
        if len(visible) == 1:
            replies = await card(ctx, await _loaded(ctx, visible[0]))
            return [*replies, Reply("\n".join(late))] if late else replies
        return [Reply("\n".join([*late, _("Type the cluster's name, e.g. /tinhhinh Đại Thắng.")]))]
    matches = search(visible, query)
    if not matches:
        lines = [_("No cluster matches “{query}”. Please check the name.").format(query=query)]
        if ctx.person is not None and await has_open_draft(ctx.session, ctx.person.id):
            lines.append(_("You have a report in progress: send /baocao to continue."))
        lines.append(_("Send /trogiup for help."))
        return [Reply("\n".join(lines))]
    first = matches[0]
    if first.exact and (len(matches) == 1 or not matches[1].exact):
        replies = await card(ctx, await _loaded(ctx, first.cluster))
        others = [m for m in matches[1:] if m.score >= 90]
        if others:
            replies[0] = Reply(
                replies[0].text,
                [*replies[0].buttons, *cluster_buttons(others, ctx.locale)],
                photos=replies[0].photos,
            )
        return replies
    return [Reply(_("Which cluster do you mean?"), cluster_buttons(matches, ctx.locale))]


def _change(question_type: str, new: str | None, old: str | None, locale: str) -> str:
    if old is None or new is None or new == old:
        return ""
    if question_type in ("percent", "number"):
        delta = Decimal(new) - Decimal(old)
        sign = "+" if delta > 0 else "−"
        return f" ({sign}{i18n.number(abs(delta), locale)})"
    return ""


async def card(ctx: Ctx, cluster: Cluster) -> list[Reply]:
    _ = ctx._
    locale = ctx.locale
    calendar = ctx.deps.calendar
    subject = cluster_subject(cluster)
    lines = [cluster.name]
    kind = _(KIND_LABELS[ClusterKind(cluster.kind)])
    district = cluster.district.name if cluster.district else "?"
    lines.append(f"{district} · {kind}")
    if cluster.investor:
        lines.append(_("Investor: {investor}").format(investor=cluster.investor.name))
    plan = []
    if cluster.occupancy_rate is not None:
        plan.append(_("occupancy {rate}").format(rate=i18n.percent(cluster.occupancy_rate, locale)))
    if cluster.planned_groundbreaking:
        plan.append(
            _("groundbreaking {month}").format(
                month=i18n.month(cluster.planned_groundbreaking, locale)
            )
        )
    if cluster.planned_completion:
        plan.append(
            _("infrastructure by {quarter}").format(
                quarter=i18n.quarter(cluster.planned_completion, locale)
            )
        )
    if plan:
        lines.append(_("In the plan: {items}.").format(items="; ".join(plan)))
    reports = await reports_of(ctx.session, subject.subject)
    period = calendar.period_at(ctx.now)
    this_period = [r for r in reports if r.period == str(period)]
    first = counted(this_period)  # the version that counts (domain.slots), if any
    if first is not None:
        lines.append(
            _("Report for {period}: received ({reference}, {day}).").format(
                period=period.label(),
                reference=first.reference,
                day=i18n.day(first.submitted_at.astimezone(calendar.zone).date(), locale),
            )
        )
    if this_period:
        latest_version = this_period[-1]
        if first is None:
            lines.append(
                _("Report for {period}: sent back for changes ({reference}).").format(
                    period=period.label(), reference=latest_version.reference
                )
            )
        decision = await reviews.latest_review(ctx.session, latest_version.id)
        lines.append(review.state_line(ctx, latest_version, decision))
    else:
        lines.append(_("Report for {period}: not yet received.").format(period=period.label()))
    latest = latest_answers(reports)
    if reports:
        newest = max(reports, key=lambda r: (r.period, r.version))
        earlier = [r for r in reports if r.period < newest.period]
        previous = latest_answers(earlier)
        names = await sender_names(ctx.session, reports)
        lines.append(
            _("Latest figures ({period}, sent by {who} on {day}):").format(
                period=Period.parse(newest.period).label(),
                who=names.get(newest.submitted_by_person_id, "?"),
                day=i18n.day(newest.submitted_at.astimezone(calendar.zone).date(), locale),
            )
        )
        for question in load_forms()[subject.form].questions:
            answer = latest.get(question.id)
            if question.type not in FIGURE_TYPES or answer is None or answer.value is None:
                continue
            shown = answers.display(question, answer.value, locale)
            old = previous.get(question.id)
            line = f"• {question.label.get(locale).rstrip('?')}: {shown}"
            line += _change(question.type, answer.value, old.value if old else None, locale)
            if answer.report is not newest:
                line += " " + _("(from {period})").format(
                    period=Period.parse(answer.report.period).label()
                )
            lines.append(line)
    else:
        lines.append(_("No report yet."))
    steps = await cluster_steps(ctx.session, cluster.id)
    step = next_step(cluster, steps, latest, ctx.now.astimezone(calendar.zone))
    if step is not None:
        owner = step.step.owner.name if step.step.owner else "?"
        text = _("Next step: {step} — {owner}.").format(step=step.step.text, owner=owner)
        if step.late:
            text += " " + _("Late against the plan.")
        lines.append(text)
    photos = await _latest_photos(ctx, cluster)
    buttons: list[list[Button]] = []
    if reports:  # the newest report, for a reviewer
        newest = max(reports, key=lambda r: (r.period, r.version))
        if await review.may_review(ctx, newest):
            label = _("Review {reference}").format(reference=newest.reference)
            buttons.append([Button(label, payloads.encode(payloads.ReviewReport(newest.id)))])
    return [Reply("\n".join(lines), buttons, photos=photos)]


async def _latest_photos(ctx: Ctx, cluster: Cluster, limit: int = 3) -> tuple[Photo, ...]:
    rows = await latest_photos(ctx.session, cluster.id, limit)
    zone = ctx.deps.calendar.zone
    flagged = await integrity.noted(ctx, cluster.code, [photo.id for photo, _r in rows])
    return tuple(
        Photo(
            ctx.deps.config.data_dir / photo.path,
            i18n.day((photo.taken_at or received).astimezone(zone).date(), ctx.locale)
            + flagged[photo.id],
        )
        for photo, received in rows
    )


# --- /chuabaocao and /tonghop ----------------------------------------------------------------


def _period_and_rest(ctx: Ctx, args: str) -> tuple[Period, str]:
    words = args.split()
    if words:
        try:
            return Period.parse(parse_month(words[0])), " ".join(words[1:])
        except ValueError:
            pass
    return ctx.deps.calendar.focus(ctx.now), args.strip()


SlotFilter = Callable[[Slot], bool]


async def _slot_scope(ctx: Ctx, asked: str) -> tuple[bool, SlotFilter | None]:
    """(allowed, which slots or None for the whole city): an admin the city or the district
    asked; a district-role officer their area (store.slots.sees_slot: a commune's or ward's
    committee its clusters and itself, not the former district)."""
    person = ctx.person
    assert person is not None
    if person.role == Role.ADMIN:
        if not asked:
            return True, None
        wanted = district_short(asked)
        return True, lambda s: district_short(s.district) == wanted
    if person.role == Role.DISTRICT and (person.district is not None or commune_of(person)):
        places = await cluster_places(ctx.session)
        return True, lambda s: sees_slot(person, s, places)
    return False, None


async def missing(ctx: Ctx, args: str) -> list[Reply]:
    _ = ctx._
    period, rest = _period_and_rest(ctx, args)
    allowed, within = await _slot_scope(ctx, rest)
    if not allowed:
        return [Reply(_("Only Sở Công Thương and district People's Committees can see this."))]
    summary = await summarise(ctx.session, period, ctx.deps.calendar, within=within)
    rows = await missing_rows(ctx.session, period, summary.slots)
    if not rows:
        return [Reply(_("All reports for {period} are in.").format(period=period.label()))]
    lines = [
        _("Not yet reported for {period}: {count}.").format(period=period.label(), count=len(rows))
    ]
    groups: dict[str, list[str]] = {}
    zone = ctx.deps.calendar.zone
    for row in rows:
        when = (
            _("last reminded {at}").format(
                at=row.last_reminded.astimezone(zone).strftime("%d/%m %H:%M")
            )
            if row.last_reminded
            else _("not reminded yet")
        )
        entry = f"  • {row.slot.title} — {', '.join(row.people)} ({when})"
        if row.slot.changes:  # sent, then sent back: not received until corrected
            entry += " — " + _("sent back for changes ({reference})").format(
                reference=row.slot.changes
            )
        groups.setdefault(row.slot.district or _("City departments"), []).append(entry)
    for name in sorted(groups):
        lines.append(f"{name} ({len(groups[name])}):")
        lines.extend(groups[name])
    return [Reply("\n".join(lines))]


def _rate_line(label: str, r: Rate, locale: str) -> str:
    return f"• {label}: {r.received}/{r.expected} ({i18n.percent(round(r.percent, 1), locale)})"


def summary_text(summary: Summary, locale: str, *, targets: bool = True) -> str:
    """The summary as a message; `targets`: the city's plan against actual (Sở Công Thương's
    consolidated figure, not a district's)."""
    _ = i18n.gettext_for(locale)
    t = summary.total
    lines = [
        _("Summary for {period}").format(period=summary.period.label()),
        _(
            "Reports: {received}/{expected} received ({percent}); on time {on_time}, late {late}."
        ).format(
            received=t.received,
            expected=t.expected,
            percent=i18n.percent(round(t.percent, 1), locale),
            on_time=t.on_time,
            late=t.late,
        ),
    ]
    if summary.by_district:
        lines.append(_("By district:"))
        lines += [_rate_line(d or _("City departments"), r, locale) for d, r in summary.by_district]
    if summary.by_reporter:
        lines.append(_("By kind of reporter:"))
        lines += [
            _rate_line(_(REPORTER_NAMES.get(k, k)), r, locale) for k, r in summary.by_reporter
        ]
    if not targets:
        lines.append(_("The city's results against the plan are consolidated by Sở Công Thương."))
        return "\n".join(lines)
    no_plan = summary.no_plan(_)  # a year without a plan: the actual figures alone
    lines.append(
        _("Actual ({no_plan}):").format(no_plan=no_plan) if no_plan else _("Plan and actual:")
    )
    for row in summary.targets:
        if row.actual is None:
            continue
        if row.unit == "percent":  # the denominator is the registry's rows, said so
            actual = f"{i18n.percent(row.actual, locale)} ({row.counted(_)})"
            plan = i18n.percent(row.plan_min or 0, locale)
        else:
            actual = i18n.number(row.actual, locale)
            plan = i18n.number(row.plan_min or 0, locale)
            if row.plan_max is not None and row.plan_max != row.plan_min:
                plan += f"–{i18n.number(row.plan_max, locale)}"
            elif row.plan_max is None:
                plan = f"≥ {plan}"
        mark = " ✓" if row.met else ""
        name = _(TARGET_NAMES[row.code]) if row.code in TARGET_NAMES else row.title(_, locale)
        lines.append(f"• {name}: {actual}" if no_plan else f"• {name}: {actual} / {plan}{mark}")
        if row.basis:
            lines.append(f"  ({_(row.basis)})")
    return "\n".join(lines)


async def summary(ctx: Ctx, args: str) -> list[Reply]:
    _ = ctx._
    assert ctx.person is not None
    period, _rest = _period_and_rest(ctx, args)
    allowed, within = await _slot_scope(ctx, "")
    if not allowed:
        return [Reply(_("Only Sở Công Thương and district People's Committees can see this."))]
    if ctx.person.role == Role.ADMIN:
        # the whole city's month, its files and chart: read and written after this update's
        # transaction, in the files' child (seconds for which no other update waits)
        ctx.later.append(
            Later(
                MONTH_JOB,
                {
                    "period": str(period),
                    "person": str(ctx.person.id),
                    "locale": ctx.locale,
                    "now": ctx.now.isoformat(),
                },
            )
        )
        return []
    result = await summarise(ctx.session, period, ctx.deps.calendar, within=within)
    # a district sees its own reporting rate; the city's plan against actual is Sở Công
    # Thương's consolidated figure, sent upward by them (trust issue, row 14)
    text = summary_text(result, ctx.locale, targets=False)
    return [Reply("\n".join([text, *await late_task_lines(ctx, period)]))]


MONTH_JOB = "month"


@later.job(MONTH_JOB)
async def month_answer(deps: Deps, args: dict[str, str]) -> list[Reply]:
    """Sở Công Thương's `/tonghop`: the summary with the city's plan against actual and its
    late tasks, the chart, the report to sign (DOCX, a type Zalo takes) and its appendices
    (XLSX), all from one snapshot of the month read in the files' child (reports.upward)."""
    period = Period.parse(args["period"])
    locale = args["locale"]
    now = datetime.fromisoformat(args["now"])
    exports = person_exports(deps.config.data_dir, int(args["person"]))
    url = url_of(deps.sessions)
    if url is not None:
        found = await offload.run(upward.answer, url, period, deps.calendar, exports, now, locale)
        log.info("month %s: %s", period, {k: round(v, 2) for k, v in found.seconds.items()})
        figures, tasks, files, picture = found.summary, found.tasks, found.files, found.chart
    else:  # a database only this process sees (in memory): read here, write in the child
        async with deps.sessions() as session:
            figures = await summarise(session, period, deps.calendar)
            month = await upward.read(session, figures, deps.calendar, now)
        tasks = month.tasks
        files = await offload.run(upward.write, month, exports, locale)
        picture = await upward.chart(figures, exports / f"tong-hop-{period}.png", locale)
    _ = i18n.gettext_for(locale)
    text = "\n".join([summary_text(figures, locale), *late_tasks.city_lines(tasks, period, locale)])
    return [
        Reply(text),
        Reply("", photos=(Photo(picture, _("Chart")),), file=files.document),
        Reply("", file=files.workbook),
    ]


# --- Phụ lục 1's tasks past their due time (reports/tasks.py) ---------------------------------


def this_month(ctx: Ctx) -> Period:
    """The calendar month of today, Hanoi time (a task due in Quý II is late from July 1)."""
    local = ctx.now.astimezone(ctx.deps.calendar.zone)
    return Period(local.year, local.month)


def _status_words(form: Form, locale: str) -> dict[str, str]:
    """A task's progress as the tasks form words it (Đang triển khai …)."""
    asked = form.progress
    return {c.value: c.label(locale) for c in asked.choices} if asked is not None else {}


async def late_task_lines(ctx: Ctx, period: Period) -> list[str]:
    """The tasks late at the end of `period`: for an admin, the city's (as the workbook says
    them); for a district's or
    department's officer, those its organisation leads — with, from the period after a merge,
    those of the organisations merged into it — and what it last reported; nothing for anyone
    else or when none is late."""
    _ = ctx._
    person = ctx.person
    if person is None or not person.active:
        return []
    if person.role == Role.ADMIN:
        city_tasks, _duties = await late_tasks.city(ctx.session, period)
        return late_tasks.city_lines(city_tasks, period, ctx.locale)
    org = answering_for(person, period)
    if org is None or person.role not in (Role.DISTRICT, Role.DEPARTMENT):
        return []
    form = late_tasks.tasks_form()
    found = await late_tasks.late_of(
        ctx.session, period, [(org.id, late_tasks.lead_group(person.role))], form
    )
    if org.id not in found:
        return []
    return [
        _("Tasks of Appendix 1 that {organisation} leads, late:").format(organisation=org.name),
        *late_tasks.own_lines(found[org.id], ctx.locale, _status_words(form, ctx.locale)),
    ]
