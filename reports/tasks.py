"""Phụ lục 1's tasks and section III's duties as the month knows them: how many organisations
last reported each done, in progress or not started, and which tasks are late.

A task is due by the end of its due month, quarter or year (`due_kind` month | quarter | year
in store/registry/tasks.csv); the recurring ones (monthly, annually, from a quarter on) and
those due with each cluster's groundbreaking (whose steps are late or not on their own, in
Phụ lục 3) have no single due time and are never late here. What an organisation reported is
its latest answer up to the month (a task reported done in May is still done in June, whether
or not June's report is in yet):

- for one organisation (its reminder, its `/tinhhinh`), a task it leads is late once the
  month is past its due time and its latest report does not say done;
- for the city (the workbook, the report sent upward, `/tonghop`), a task is late once the
  month is past its due time and no organisation reports it done, or one still reports it not
  done.

From the period after a merge (store.orgs.lineage), an organisation merged into another is
part of it here too: its tasks are the successor's, and of the two the later answer on an item
is the successor's answer (the predecessor's last report no longer counts on its own).

Which answers say how far an item is, and what each choice counts as, is the tasks form's data
(`means:` in store/forms/tasks.yaml): no question id or choice value is known here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.calendar import Period
from domain.forms import Form, Stage
from domain.orgs import answering
from domain.roles import Role
from store import duties as store
from store.forms import load_forms
from store.models import Duty, Task
from store.orgs import lineage, merges
from store.slots import first_day

TITLE_MAX = 90
# The group a person's organisation leads tasks with, besides those led by name (as the
# report's items are chosen: handlers/subjects.py).
DISTRICT_GROUP = "all_districts"
DEPARTMENT_GROUP = "all_departments"


def lead_group(role: str | None) -> str:
    return DISTRICT_GROUP if role == Role.DISTRICT else DEPARTMENT_GROUP


def due_end(kind: str, value: str) -> str | None:
    """The last month (`YYYY-MM`) of a fixed due time: `2021-Q2` → `2021-06`; None for a
    task without one."""
    if not value:
        return None
    if kind == "month":
        return value
    if kind == "year" and value.isdigit():
        return f"{value}-12"
    if kind == "quarter" and "-Q" in value:
        year, quarter = value.split("-Q")
        return f"{year}-{int(quarter) * 3:02d}"
    return None


def due_label(kind: str, value: str, locale: str) -> str:
    """A fixed due time as people say it: `tháng 04/2021`, `Quý II/2021`, `năm 2021`."""
    _ = i18n.gettext_for(locale)
    if kind == "quarter":
        return i18n.quarter(value, locale)
    if kind == "month":
        return _("month {month}").format(month=i18n.month(value, locale))
    return _("year {year}").format(year=value)


def past_due(kind: str, value: str, period: Period) -> bool:
    end = due_end(kind, value)
    return end is not None and str(period) > end


def late_since(kind: str, value: str, locale: str) -> str:
    """`Quá hạn từ Quý II/2021`."""
    _ = i18n.gettext_for(locale)
    return _("Late since {due}").format(due=due_label(kind, value, locale))


def short(text: str, limit: int = TITLE_MAX) -> str:
    text = " ".join(text.split()).lstrip("- ")
    return text if len(text) <= limit else text[: limit - 1].rstrip(" ,;.") + "…"


def tasks_form(forms: Mapping[str, Form] | None = None) -> Form:
    """The form districts and departments report their items by (store/forms/tasks.yaml), from
    `forms` when given."""
    found = forms.get("tasks") if forms is not None else None
    return found if found is not None else load_forms()["tasks"]


Answers = dict[str, store.Latest]


async def successors(session: AsyncSession, period: Period) -> dict[int, int]:
    """Organisation id → the one that answers for it in `period` (domain.orgs.answering,
    through each merge in turn), for those merged into another before the period."""
    merged = await merges(session)
    day = first_day(period)
    return {org: heir for org in merged if (heir := answering(org, day, merged)) != org}


def _fold(
    latest: Mapping[int, Mapping[str, store.Latest]], heir: Mapping[int, int], form: Form
) -> dict[int, Answers]:
    """Each organisation's latest answers with those of the organisations merged into it
    (`heir`: predecessor → successor): per item, the answers of the one whose progress answer
    is the latest (the successor's own on the same month)."""
    asked = form.progress
    if asked is None:
        return {}
    suffix = f".{asked.id}"
    best: dict[tuple[int, str], tuple[str, bool, int]] = {}
    for org, answers in latest.items():
        into = heir.get(org, org)
        for qid, entry in answers.items():
            if not qid.endswith(suffix):
                continue
            rank = (entry.period, org == into, org)
            key = (into, qid[: -len(suffix)])
            if key not in best or rank > best[key]:
                best[key] = rank
    out: dict[int, Answers] = defaultdict(dict)
    for (into, item), (_period, _own, org) in best.items():
        prefix = f"{item}."
        mine = out[into]
        for qid, entry in latest[org].items():
            if qid.startswith(prefix):
                mine[qid] = entry
    return dict(out)


# --- the city's view -------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """The organisations' latest statuses of one item: how many say each, and the mean of the
    percentages of those in progress (0–100)."""

    done: int = 0
    in_progress: int = 0
    not_started: int = 0
    average: float | None = None


@dataclass(frozen=True)
class TaskFacts:
    number: int
    title: str
    lead: str
    partners: str
    due_text: str
    due_kind: str
    due_value: str
    done: int
    in_progress: int
    not_started: int
    average: float | None  # the reported percentages' mean, 0–100

    def overdue(self, period: Period) -> bool:
        """Past its due month, quarter or year at the end of `period`, and not reported done
        by every organisation reporting on it (none at all, or one still not done)."""
        if not past_due(self.due_kind, self.due_value, period):
            return False
        return self.done == 0 or self.in_progress + self.not_started > 0

    def late_text(self, period: Period, locale: str) -> str | None:
        """`Quá hạn từ Quý II/2021`, or None when it is not late."""
        return late_since(self.due_kind, self.due_value, locale) if self.overdue(period) else None


@dataclass(frozen=True)
class DutyFacts:
    """A section III duty with its organisations' latest statuses."""

    code: str  # the report's item key; never printed
    section: str  # III.5
    who: str
    text: str
    done: int
    in_progress: int
    not_started: int
    average: float | None


def _number(value: str | None) -> float | None:
    try:
        return float(Decimal(value)) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def progress(latest: Mapping[int, Mapping[str, store.Latest]], form: Form) -> dict[str, Progress]:
    """Item key (`t9`, `d5-1`) → the organisations' latest statuses of it, as the form's
    progress question and share done say them."""
    asked, share = form.progress, form.share_done
    if asked is None:
        return {}
    counts: dict[str, dict[Stage, int]] = defaultdict(lambda: defaultdict(int))
    percents: dict[str, list[float]] = defaultdict(list)
    for answers in latest.values():
        for qid, entry in answers.items():
            item, _sep, sub = qid.partition(".")
            stage = asked.stage(entry.value) if sub == asked.id else None
            if stage is None:
                continue
            counts[item][stage] += 1
            if stage == "under_way" and share is not None:
                percent = answers.get(f"{item}.{share.id}")
                value = _number(percent.value) if percent is not None else None
                if value is not None:
                    percents[item].append(value)
    out = {}
    for item, by_stage in counts.items():
        values = percents[item]
        out[item] = Progress(
            by_stage.get("done", 0),
            by_stage.get("under_way", 0),
            by_stage.get("not_started", 0),
            sum(values) / len(values) if values else None,
        )
    return out


def task_facts(tasks: Iterable[Task], items: Mapping[str, Progress]) -> list[TaskFacts]:
    out = []
    for task in tasks:
        p = items.get(f"t{task.number}", Progress())
        out.append(
            TaskFacts(
                task.number,
                task.title,
                task.lead_text,
                task.partners_text,
                task.due_text,
                task.due_kind,
                task.due_value,
                p.done,
                p.in_progress,
                p.not_started,
                p.average,
            )
        )
    return out


def duty_facts(duties: Iterable[Duty], items: Mapping[str, Progress]) -> list[DutyFacts]:
    out = []
    for duty in duties:
        p = items.get(duty.code, Progress())
        out.append(
            DutyFacts(
                duty.code,
                duty.section,
                duty.who,
                duty.text,
                p.done,
                p.in_progress,
                p.not_started,
                p.average,
            )
        )
    return out


async def city(
    session: AsyncSession, period: Period, form: Form | None = None
) -> tuple[list[TaskFacts], list[DutyFacts]]:
    """Every task and duty with the organisations' latest statuses up to `period` (an
    organisation merged into another before the period counted as part of it), as `form` (the
    bot's tasks form unless given) says them."""
    form = form or tasks_form()
    heir = await successors(session, period)
    latest = _fold(await store.latest_org_answers(session, str(period)), heir, form)
    items = progress(latest, form)
    tasks = await store.tasks_with_leads(session)
    return task_facts(tasks, items), duty_facts(await store.all_duties(session), items)


def city_lines(tasks: Sequence[TaskFacts], period: Period, locale: str) -> list[str]:
    """The late tasks for a message: a heading and one line each; nothing when none is."""
    _ = i18n.gettext_for(locale)
    late = [t for t in tasks if t.overdue(period)]
    if not late:
        return []
    lines = [_("Tasks of Appendix 1 that are late ({count}):").format(count=len(late))]
    lines += [
        "• "
        + _("Task {number} ({lead}) — late since {due}: {title}").format(
            number=t.number,
            lead=t.lead,
            due=due_label(t.due_kind, t.due_value, locale),
            title=short(t.title),
        )
        for t in late
    ]
    return lines


# --- one organisation's view -------------------------------------------------------------------


@dataclass(frozen=True)
class OwnTask:
    """A task an organisation leads, as its own latest report left it."""

    number: int
    title: str
    due_kind: str
    due_value: str
    status: str | None  # the progress answer (a choice's value); None: never reported
    stage: Stage | None  # what that answer counts as
    percent: str | None  # the share done, when under way
    reported: str | None  # the month of that report, YYYY-MM

    def late(self, period: Period) -> bool:
        return self.stage != "done" and past_due(self.due_kind, self.due_value, period)


def _leads(task: Task, organisations: Collection[int], group: str) -> bool:
    return any(
        a.role == "lead" and (a.organisation_id in organisations or a.group_code == group)
        for a in task.assignments
    )


def _own(task: Task, answers: Mapping[str, store.Latest], form: Form) -> OwnTask:
    asked, share = form.progress, form.share_done
    status = answers.get(f"t{task.number}.{asked.id}") if asked is not None else None
    stage = asked.stage(status.value) if asked is not None and status is not None else None
    percent = answers.get(f"t{task.number}.{share.id}") if share is not None else None
    return OwnTask(
        task.number,
        task.title,
        task.due_kind,
        task.due_value,
        status.value if status else None,
        stage,
        percent.value if percent and stage == "under_way" else None,
        status.period if status else None,
    )


async def late_of(
    session: AsyncSession,
    period: Period,
    leads: Collection[tuple[int, str]],
    form: Form | None = None,
) -> dict[int, list[OwnTask]]:
    """For each (organisation id, its lead group), the tasks it leads — itself, or from the
    period after a merge, an organisation merged into it — that are late at the end of
    `period`, by number; organisations with none are left out. `form`: the bot's tasks form
    unless given."""
    if not leads:
        return {}
    form = form or tasks_form()
    day = first_day(period)
    lines = {org: await lineage(session, org, day) for org, _group in leads}
    tasks = [t for t in await store.tasks_with_leads(session) if due_end(t.due_kind, t.due_value)]
    latest = await store.latest_org_answers(session, str(period), set().union(*lines.values()))
    out: dict[int, list[OwnTask]] = {}
    for organisation_id, group in leads:
        line = lines[organisation_id]
        answers = _fold(
            {o: latest[o] for o in line if o in latest},
            {o: organisation_id for o in line},
            form,
        ).get(organisation_id, {})
        mine = [
            own
            for task in tasks
            if _leads(task, line, group) and (own := _own(task, answers, form)).late(period)
        ]
        if mine:
            out[organisation_id] = mine
    return out


def own_lines(
    tasks: Sequence[OwnTask], locale: str, status_label: Mapping[str, str] | None = None
) -> list[str]:
    """One line per late task: `• NV 9 — quá hạn từ tháng 04/2021: <title>`, and with
    `status_label` (a status's words) what the organisation last reported."""
    _ = i18n.gettext_for(locale)
    lines = []
    for t in tasks:
        line = "• " + _("Task {number} — late since {due}: {title}").format(
            number=t.number, due=due_label(t.due_kind, t.due_value, locale), title=short(t.title)
        )
        if status_label is not None:
            if t.status is None or t.reported is None:
                line += " " + _("(not reported yet)")
            else:
                said = status_label.get(t.status, t.status)
                if t.percent:
                    said += f", {i18n.percent(Decimal(t.percent), locale)}"
                line += " " + _("(last reported {period}: {status})").format(
                    period=Period.parse(t.reported).label(), status=said
                )
        lines.append(line)
    return lines
