"""The month's facts behind the report Sở Công Thương sends upward: read once, in one short
pass over the store (async), into plain data that the document and the workbook are drawn from
in a worker thread, off the event loop and outside any transaction.

What an answer means is the forms' data: the groundbreaking is the question counting toward
the plan's groundbreakings, clearance the one completing the `gpmb` step, occupancy the one the
form says the report tells as such (`upward: occupancy`), and so on (`TOPICS`); the remarks are
the answers to the questions saying `upward: difficulty` or `upward: proposal`.
"What moved this month" compares each cluster's latest answers up to the month with those up to
the month before, for the answers given in the month's own reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from domain.calendar import Calendar, Period
from domain.forms import REMARKS, Form, Question, RemarkKind, Upward
from domain.i18n import N_
from domain.roles import ClusterKind, OrgKind
from domain.slots import Rate, Slot
from domain.subjects import Subject
from reports.missing import MissingRow, missing_rows
from reports.plan import Plan
from reports.progress import next_step
from reports.summary import Summary, TargetRow
from reports.tasks import DutyFacts, TaskFacts, city, tasks_form
from store import summaries
from store.models import Report
from store.orgs import place_of
from store.progress import person_names

FiledState = Literal["unassigned", "missing", "received", "paper"]
# The groups of clusters of the plan, in its order (Phụ lục 2 A and B, Phụ lục 3, new ones).
KIND_ORDER = (
    ClusterKind.OPERATING_COMPLETE,
    ClusterKind.OPERATING_INCOMPLETE,
    ClusterKind.FOUNDED_2018_2020,
    ClusterKind.FOUNDED_2021,
)
GROUP_NAMES = {
    ClusterKind.OPERATING_COMPLETE: N_("Operating clusters with finished infrastructure"),
    ClusterKind.OPERATING_INCOMPLETE: N_("Operating clusters with unfinished infrastructure"),
    ClusterKind.FOUNDED_2018_2020: N_("Clusters founded 2018–2020"),
    ClusterKind.FOUNDED_2021: N_("Clusters newly founded under the plan"),
}
REPORTER_NAMES = {
    "investor": N_("Cluster investors"),
    "district": N_("District People's Committees"),
    "department": N_("Departments"),
}


@dataclass(frozen=True)
class Filed:
    """The cluster's report for the month: no one to send it, missing, received or on paper."""

    state: FiledState
    submitted: datetime | None = None  # local time, without zone (as a spreadsheet shows it)
    on_time: bool | None = None


@dataclass(frozen=True)
class ClusterFacts:
    code: str  # to look answers up by; never printed
    name: str
    kind: ClusterKind
    district: str
    investor: str
    run_by_district: bool  # the investor is a district's project board (Phụ lục 2, A.I)
    occupancy_plan: Decimal | None
    planned_groundbreaking: str | None  # YYYY-MM
    planned_completion: str | None  # YYYY-Qn
    now: Mapping[str, str | None]  # the latest answer to each question, up to the month
    before: Mapping[str, str | None]  # ... up to the month before (the TOPICS' questions)
    fresh: frozenset[str]  # the questions answered in the month's own reports
    next_step: str | None
    next_owner: str | None
    late: bool
    filed: Filed
    commune: str = ""  # its commune or ward since 1 July 2025 (`Xã Phú Xuyên`), if entered

    @property
    def form(self) -> str:
        return self.kind.form

    def moved(self, question: str) -> bool:
        """Whether the month's reports changed the answer (a first answer counts)."""
        return (
            question in self.fresh
            and self.now.get(question) not in (None, "")
            and not _same(self.now.get(question), self.before.get(question))
        )


@dataclass(frozen=True)
class Remark:
    """A difficulty or a proposal a reporter wrote in the month's report."""

    kind: RemarkKind  # what its question says it is (`upward:`)
    text: str
    subject: str  # the cluster's or the organisation's name
    person: str
    district: str


@dataclass(frozen=True)
class LateStep:
    owner: str
    step: str
    cluster: str
    district: str
    planned_groundbreaking: str | None


@dataclass(frozen=True)
class Month:
    period: Period
    office_deadline: date  # the day Sở Công Thương's report is due upward
    total: Rate
    by_district: list[tuple[str, Rate]]
    by_reporter: list[tuple[str, Rate]]
    targets: list[TargetRow]
    slots: list[Slot]
    forms: Mapping[str, Form]
    clusters: list[ClusterFacts]
    tasks: list[TaskFacts]
    missing: list[MissingRow]
    remarks: list[Remark] = field(default_factory=list)
    plan: Plan | None = None  # the plan of the period's year; None: the year has none
    duties: list[DutyFacts] = field(default_factory=list)  # section III's, beyond Phụ lục 1

    def of_kind(self, kind: ClusterKind) -> list[ClusterFacts]:
        return [c for c in self.clusters if c.kind == kind]

    @property
    def late_reports(self) -> list[Slot]:
        return [s for s in self.slots if s.filled and s.on_time is False]

    @property
    def late_steps(self) -> list[LateStep]:
        return [
            LateStep(c.next_owner or "", c.next_step, c.name, c.district, c.planned_groundbreaking)
            for c in self.clusters
            if c.late and c.next_step
        ]


# --- what an answer means ------------------------------------------------------------------


@dataclass(frozen=True)
class Topic:
    """What the report tells per group of clusters: a question found by its meaning."""

    key: str
    title: str  # a message id
    find: Callable[[Form], Question | None]


def _completing(step: str) -> Callable[[Form], Question | None]:
    def find(form: Form) -> Question | None:
        return next((q for q in form.questions if any(c.step == step for c in q.completes)), None)

    return find


def _counting(prefix: str) -> Callable[[Form], Question | None]:
    def find(form: Form) -> Question | None:
        return next(
            (
                q
                for q in form.counters
                if q.counts_toward is not None and q.counts_toward.target.startswith(prefix)
            ),
            None,
        )

    return find


def _told(upward: Upward) -> Callable[[Form], Question | None]:
    def find(form: Form) -> Question | None:
        return form.upward(upward)

    return find


TOPICS = (
    Topic("groundbreaking", N_("Groundbreakings"), _counting("groundbreakings")),
    Topic("clearance", N_("Site clearance (GPMB)"), _completing("gpmb")),
    Topic("infrastructure", N_("Infrastructure (HTKT)"), _completing("infrastructure_complete")),
    Topic("wastewater", N_("Central wastewater plant"), _counting("wastewater")),
    # no step or target of the plan: the question the form says is one (`upward: occupancy`)
    Topic("occupancy", N_("Occupancy rate"), _told("occupancy")),
)


def done(question: Question, value: str | None) -> bool:
    """Whether the answer is the one the question's step or target waits for (100 % cleared,
    an operating plant up to standard, …)."""
    if value in (None, ""):
        return False
    if question.counts_toward is not None and question.counts_toward.counted(value):
        return True
    return any(c.done(value) for c in question.completes)


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return Decimal(a) == Decimal(b)
    except (InvalidOperation, ValueError):
        return a == b


def assessment(t: TargetRow, month: Month) -> str:
    """Met; not yet due (a later quarter); under way (its quarter or year still running); not
    met; or not assessed (no figure). A message id."""
    if t.met is None:
        return N_("Not assessed")
    if t.met:
        return N_("Met")
    first, last = _span(t.period)
    current = str(month.period)
    if first and current < first:
        return N_("Not yet due")
    if last and current <= last:
        return N_("Under way")
    return N_("Not met")


def _span(period: str) -> tuple[str, str]:
    """A target's period as its first and last month: `2021-Q2` → 2021-04, 2021-06."""
    if "-Q" in period:
        year, quarter = period.split("-Q")
        return f"{year}-{int(quarter) * 3 - 2:02d}", f"{year}-{int(quarter) * 3:02d}"
    if period.isdigit():
        return f"{period}-01", f"{period}-12"
    return "", ""


# --- reading the month ---------------------------------------------------------------------


def _local(moment: datetime | None, calendar: Calendar) -> datetime | None:
    return moment.astimezone(calendar.zone).replace(tzinfo=None) if moment else None


def _filed(slot: Slot | None, calendar: Calendar) -> Filed:
    if slot is None:
        return Filed("unassigned")
    if not slot.filled:
        return Filed("missing")
    return Filed(
        "paper" if slot.report is None else "received",
        _local(slot.submitted_at, calendar),
        slot.on_time,
    )


def _place(committee: str) -> str:
    """`UBND xã Phú Xuyên` → `Xã Phú Xuyên`: the place a commune's or ward's committee is of."""
    place = place_of(committee)
    return place[:1].upper() + place[1:]


def _latest_per_subject(reports: Iterable[Report]) -> dict[Subject, Report]:
    latest: dict[Subject, Report] = {}
    for report in sorted(reports, key=lambda r: r.version):
        latest[report.subject] = report
    return latest


@dataclass(frozen=True)
class _Sent:
    """A report of the month, as the remarks need it."""

    answers: Mapping[str, object]
    person: int
    subject: str  # the cluster's or organisation's name
    district: str
    form: Form | None  # the form it answers (None: one the bot no longer has)


def _remarks(reports: Iterable[_Sent], people: Mapping[int, str]) -> list[Remark]:
    out = []
    for sent in reports:
        for kind in REMARKS:
            question = sent.form.upward(kind) if sent.form is not None else None
            if question is None:
                continue
            entry = sent.answers.get(question.id)
            text = entry.get("v") if isinstance(entry, dict) else None
            if isinstance(text, str) and text.strip():
                person = people.get(sent.person, "")
                out.append(
                    Remark(kind, " ".join(text.split()), sent.subject, person, sent.district)
                )
    return out


def _topic_questions(forms: Mapping[str, Form]) -> dict[str, tuple[str, ...]]:
    """Per form, the ids of the questions the topics are about."""
    out = {}
    for name, form in forms.items():
        found = (topic.find(form) for topic in TOPICS)
        out[name] = tuple(q.id for q in found if q is not None)
    return out


async def gather(
    session: AsyncSession, summary: Summary, calendar: Calendar, now: datetime
) -> Month:
    """The month's facts, from the summary and a few reads. No file is written here."""
    period = str(summary.period)
    local_now = now.astimezone(calendar.zone)
    clusters = await summaries.clusters_with_plan(session)
    forms = {c.code: ClusterKind(c.kind).form for c in clusters}
    wanted = _topic_questions(summary.forms)
    # the month's own report of each cluster (its last version); each topic question's latest
    # answer before the month is the summary's (`Answer.earlier` for one given in the month)
    this_month = await summaries.month_cluster_reports(session, period)
    before: dict[str, dict[str, str | None]] = {}
    for code, latest in summary.answers.items():
        known: dict[str, str | None] = {}
        for qid in wanted.get(forms.get(code, ""), ()):
            answer = latest.get(qid)
            if answer is not None and answer.report.period == period:
                answer = answer.earlier
            if answer is not None:
                known[qid] = answer.value
        if known:
            before[code] = known
    slots = {s.subject: s for s in summary.slots}
    facts: list[ClusterFacts] = []
    sent: list[_Sent] = []
    for c in clusters:
        kind = ClusterKind(c.kind)
        form = summary.forms[kind.form]
        answers = summary.answers.get(c.code, {})
        district = c.district or ""
        if c.code in this_month:
            mine, person = this_month[c.code]
            sent.append(_Sent(mine, person, c.name, district, form))
        step = next_step(c, c.steps, answers, local_now, form)
        facts.append(
            ClusterFacts(
                code=c.code,
                name=c.name,
                kind=kind,
                district=district,
                investor=c.investor or "",
                run_by_district=c.investor is not None
                and c.investor_kind == OrgKind.DISTRICT_BOARD,
                occupancy_plan=c.occupancy_rate,
                planned_groundbreaking=c.planned_groundbreaking,
                planned_completion=c.planned_completion,
                now={q: a.value for q, a in answers.items()},
                before=before.get(c.code, {}),
                fresh=frozenset(q for q, a in answers.items() if a.report.period == period),
                next_step=step.step.text if step else None,
                next_owner=step.step.owner if step else None,
                late=bool(step and step.late),
                filed=_filed(slots.get(Subject.cluster(c.code)), calendar),
                commune=_place(c.commune) if c.commune is not None else "",
            )
        )
    organisations = _latest_per_subject(await summaries.organisation_reports(session, period))
    org_names = await summaries.organisation_names(
        session, (s.org_id for s in organisations if s.org_id is not None)
    )
    org_districts = {s.subject: s.district for s in summary.slots}
    sent += [
        _Sent(
            r.answers,
            r.submitted_by_person_id,
            org_names.get(s.org_id or 0, ""),
            org_districts.get(s, ""),
            summary.forms.get(r.form),
        )
        for s, r in organisations.items()
    ]
    people = await person_names(session, (s.person for s in sent))
    tasks, duties = await city(session, summary.period, tasks_form(summary.forms))
    return Month(
        period=summary.period,
        office_deadline=calendar.office_deadline(summary.period).date(),
        total=summary.total,
        by_district=summary.by_district,
        by_reporter=summary.by_reporter,
        targets=summary.targets,
        slots=summary.slots,
        forms=summary.forms,
        clusters=facts,
        tasks=tasks,
        missing=[
            MissingRow(m.slot, m.people, _local(m.last_reminded, calendar))
            for m in await missing_rows(session, summary.period, summary.slots)
        ],
        remarks=_remarks(sent, people),
        plan=summary.plan,
        duties=duties,
    )
