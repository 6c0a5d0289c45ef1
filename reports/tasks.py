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
  done."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.calendar import Period
from domain.roles import Role
from store import duties as store
from store.models import Duty, Task

DONE = "done"
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


def progress(latest: Mapping[int, Mapping[str, store.Latest]]) -> dict[str, Progress]:
    """Item key (`t9`, `d5-1`) → the organisations' latest statuses of it."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    percents: dict[str, list[float]] = defaultdict(list)
    for answers in latest.values():
        for qid, entry in answers.items():
            item, _sep, sub = qid.partition(".")
            if sub != "status" or not entry.value:
                continue
            counts[item][entry.value] += 1
            if entry.value == "in_progress":
                percent = answers.get(f"{item}.percent")
                value = _number(percent.value) if percent is not None else None
                if value is not None:
                    percents[item].append(value)
    out = {}
    for item, by_status in counts.items():
        values = percents[item]
        out[item] = Progress(
            by_status.get(DONE, 0),
            by_status.get("in_progress", 0),
            by_status.get("not_started", 0),
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


async def city(session: AsyncSession, period: Period) -> tuple[list[TaskFacts], list[DutyFacts]]:
    """Every task and duty with the organisations' latest statuses up to `period`."""
    items = progress(await store.latest_org_answers(session, str(period)))
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
    status: str | None  # not_started | in_progress | done; None: never reported
    percent: str | None
    reported: str | None  # the month of that report, YYYY-MM

    def late(self, period: Period) -> bool:
        return self.status != DONE and past_due(self.due_kind, self.due_value, period)


def _leads(task: Task, organisation_id: int, group: str) -> bool:
    return any(
        a.role == "lead" and (a.organisation_id == organisation_id or a.group_code == group)
        for a in task.assignments
    )


async def late_of(
    session: AsyncSession, period: Period, leads: Collection[tuple[int, str]]
) -> dict[int, list[OwnTask]]:
    """For each (organisation id, its lead group), the tasks it leads that are late at the end
    of `period`, by number; organisations with none are left out."""
    if not leads:
        return {}
    tasks = [t for t in await store.tasks_with_leads(session) if due_end(t.due_kind, t.due_value)]
    latest = await store.latest_org_answers(session, str(period), [o for o, _g in leads])
    out: dict[int, list[OwnTask]] = {}
    for organisation_id, group in leads:
        answers = latest.get(organisation_id, {})
        mine = []
        for task in tasks:
            if not _leads(task, organisation_id, group):
                continue
            status = answers.get(f"t{task.number}.status")
            percent = answers.get(f"t{task.number}.percent")
            own = OwnTask(
                task.number,
                task.title,
                task.due_kind,
                task.due_value,
                status.value if status else None,
                percent.value if percent and status and status.value == "in_progress" else None,
                status.period if status else None,
            )
            if own.late(period):
                mine.append(own)
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
