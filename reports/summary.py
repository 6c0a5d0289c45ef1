"""The numbers Sở Công Thương sends upward for a period: the reporting rate, and plan versus
actual for the targets of the plan of the period's own year, from the latest report of each
cluster up to that period; for a year without a plan, the actual figures alone. Which answer
counts toward which target is the forms' data (`counts_toward:` in store/forms/*.yaml); a
cluster that has never answered the operating form's question on complete infrastructure counts
by the registry's group instead (`FALLBACKS`), and the figure says how many clusters each way."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from domain import i18n
from domain.calendar import Calendar, Period
from domain.forms import Form, Question
from domain.i18n import Gettext
from domain.roles import ClusterKind
from domain.slots import Rate, Slot, rate
from reports.plan import NO_PLAN, Goal, Plan, figures_without_plan, plan_of
from reports.progress import Answer, Filing
from store import summaries
from store.forms import load_forms
from store.slots import slots_for
from store.summaries import Registered

# The targets not counted from answers, but from the registry: clusters newly founded under
# the plan (Sở Công Thương adds them by import); and, where the forms have no question feeding
# it, operating clusters with complete infrastructure, by the registry's group of each
# operating cluster, Phụ lục 2 A (finished) against A and B.
NEW_CLUSTERS = "new_clusters"
FULL_INFRASTRUCTURE = "operating_full_infrastructure"
OPERATING = (ClusterKind.OPERATING_COMPLETE, ClusterKind.OPERATING_INCOMPLETE)
# How a figure not counted from reports is counted, said beside it (a message id).
BASES = {
    FULL_INFRASTRUCTURE: i18n.N_(
        "counted from the registry, not from reports: operating clusters listed with their "
        "infrastructure finished (Phụ lục 2 A); no report question says so"
    ),
}
# A target counted from answers where a cluster that has never answered its question (up to
# the period) counts by the registry's group instead: the kinds that count, and the note said
# beside the figure while any cluster is counted so (a message id).
FALLBACKS = {
    FULL_INFRASTRUCTURE: (
        frozenset({ClusterKind.OPERATING_COMPLETE.value}),
        i18n.N_(
            "a cluster that has not yet said in a report whether its infrastructure is complete "
            "is counted from the registry: complete if listed with its infrastructure finished "
            "(Phụ lục 2 A)"
        ),
    ),
}
# A percentage's denominator is the registry's rows, not the plan's 70 or 43 clusters.
OF_REGISTRY = i18n.N_("{count} of {of} clusters in the registry")
# ... and, for a target with a fallback, how many clusters were counted from reports and how
# many from the registry's groups.
OF_REGISTRY_SOURCES = i18n.N_(
    "{count} of {of} clusters in the registry; {reported} clusters from reports, "
    "{listed} from the registry"
)
_QUARTER = re.compile(r"^\d{4}-Q[1-4]$")
# Reading the clusters' answers gives the event loop back after this many clusters (about a
# tenth of a second at 1,200 clusters and two years of reports).
GIVE_BACK = 200


@dataclass(frozen=True)
class TargetRow:
    code: str
    label: str
    plan_min: Decimal | None
    plan_max: Decimal | None
    unit: str  # cluster | percent
    actual: Decimal | None  # None: the bot has no figure for it
    count: int | None = None  # for percentages: how many clusters meet it
    of: int | None = None  # ... out of how many
    period: str = ""  # the target's period: a year, a quarter (2021-Q2), or none
    measure: str = ""  # a year without a plan: the figure's name (a message id), no label
    basis: str = ""  # how a figure not counted from reports is counted (a message id, BASES)
    reported: int | None = None  # a target with a fallback: clusters counted from reports
    listed: int | None = None  # ... and from the registry's groups (never answered)

    def title(self, _: Gettext, locale: str = "vi") -> str:
        """The plan's words; for a figure without a plan its name, a quarter's with the
        quarter and its year (`Quý II/2026: …`)."""
        if not self.measure:
            return self.label
        if self.quarterly:
            return _("{quarter}: {measure}").format(
                quarter=i18n.quarter(self.period, locale), measure=_(self.measure)
            )
        return _(self.measure)

    def counted(self, _: Gettext) -> str | None:
        """`8 trên 22 cụm trong danh mục`: how many clusters of how many (a percentage's), the
        registry's rows said to be its denominator, and for a target with a fallback how many
        were counted from reports and how many from the registry (`…; 1 cụm theo báo cáo, 34
        theo danh mục`); None for a count."""
        if self.count is None or self.of is None:
            return None
        if self.reported is not None and self.listed is not None:
            return _(OF_REGISTRY_SOURCES).format(
                count=self.count, of=self.of, reported=self.reported, listed=self.listed
            )
        return _(OF_REGISTRY).format(count=self.count, of=self.of)

    @property
    def met(self) -> bool | None:
        if self.actual is None or self.plan_min is None:
            return None
        return self.actual >= self.plan_min

    @property
    def quarterly(self) -> bool:
        return bool(_QUARTER.match(self.period))


@dataclass
class Summary:
    period: Period
    slots: list[Slot]
    total: Rate
    by_district: list[tuple[str, Rate]]
    by_reporter: list[tuple[str, Rate]]
    targets: list[TargetRow]
    answers: dict[str, dict[str, Answer]] = field(default_factory=dict)  # cluster code → answers
    forms: Mapping[str, Form] = field(default_factory=load_forms)  # the forms it was counted by
    plan: Plan | None = None  # the plan of the period's year; None: the year has none

    @property
    def missing(self) -> list[Slot]:
        return [s for s in self.slots if not s.filled]

    def no_plan(self, _: Gettext) -> str | None:
        """`chưa có kế hoạch năm 2026` when the period's year has no plan, else None."""
        return None if self.plan else _(NO_PLAN).format(year=self.period.year)


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _feeds(target: str, code: str) -> bool:
    """A question counting toward `target` counts toward it and its quarterly parts."""
    return code == target or bool(re.fullmatch(rf"{re.escape(target)}_q[1-4]", code))


async def cluster_answers(
    session: AsyncSession, period: Period, clusters: Iterable[Registered]
) -> dict[str, dict[str, Answer]]:
    """The latest answers of every cluster, from its reports up to and including `period`
    (reports.progress.latest_answers' rule), each read once; an answer given in `period`
    carries the question's latest answer before it (`Answer.earlier`)."""
    up_to = str(period)
    found: dict[str, dict[str, Answer]] = {}
    for code, rows in groupby(await summaries.cluster_history(session, up_to), key=itemgetter(0)):
        found[code] = _latest(rows, up_to)
        if len(found) % GIVE_BACK == 0:
            await asyncio.sleep(0)  # let the bot answer others while a long history is read
    return {c.code: found.get(c.code, {}) for c in clusters}


def _latest(rows: Iterable[tuple[str, str, int, dict[str, Any]]], up_to: str) -> dict[str, Answer]:
    """One cluster's latest answers from its reports newest first (period, then version), as
    `reports.progress.latest_answers` finds them (a change there is made here too), with the
    earlier answer of those given in period `up_to`."""
    out: dict[str, Answer] = {}
    waiting: set[str] = set()  # answered in `up_to`: the earlier answer still to find
    seen: set[str] = set()  # the keys that no older report can change (found, or never used)
    for _code, when, version, answers in rows:
        if not waiting and answers.keys() <= seen:
            continue  # nothing new in it: most of a cluster's history
        filing = Filing(when, version)
        current = when == up_to
        for qid, entry in answers.items():
            if qid in seen:
                if qid in waiting and not current and isinstance(entry, dict):
                    waiting.discard(qid)
                    latest = out[qid]
                    earlier = Answer(entry.get("v"), entry.get("reason"), filing)
                    out[qid] = Answer(latest.value, latest.reason, latest.report, earlier)
                continue
            if qid[:1] == "_" and qid != "_location":
                seen.add(qid)
                continue
            if not isinstance(entry, dict):
                continue
            out[qid] = Answer(entry.get("v"), entry.get("reason"), filing)
            seen.add(qid)
            if current:
                waiting.add(qid)
    return out


def _counted(question: Question, answers: dict[str, Answer], target: Goal) -> bool:
    """Whether a cluster with these answers counts toward the target through the question: a
    dated answer (a groundbreaking) toward its quarter's target, or its year's, only."""
    counts = question.counts_toward
    assert counts is not None
    answer = answers.get(question.id)
    if answer is None or not counts.counted(answer.value):
        return False
    if counts.dated_by is None:
        return True
    dated = answers.get(counts.dated_by)
    if dated is None or not dated.value:
        return False
    day = date.fromisoformat(dated.value)
    if _QUARTER.match(target.period):
        return _quarter(day) == target.period
    return not target.period.isdigit() or str(day.year) == target.period


def _percent(count: int, total: int) -> Decimal:
    return (Decimal(100) * count / total).quantize(Decimal("0.1")) if total else Decimal(0)


def _answered(question: Question, answers: dict[str, Answer]) -> bool:
    answer = answers.get(question.id)
    return answer is not None and answer.value not in (None, "")


def _targets(
    targets: tuple[Goal, ...],
    clusters: Sequence[Registered],
    answers: dict[str, dict[str, Answer]],
    forms: Mapping[str, Form],
) -> list[TargetRow]:
    counters = [(form, q) for form in forms.values() for q in form.counters]
    rows: list[TargetRow] = []
    for target in targets:
        actual: Decimal | None = None
        count = of = reported = listed = None
        basis = ""
        feeding = [
            (form, q)
            for form, q in counters
            if q.counts_toward is not None and _feeds(q.counts_toward.target, target.code)
        ]
        fallback = FALLBACKS.get(target.code)
        if feeding:
            counted = whole = by_registry = 0
            for form, question in feeding:
                assert question.counts_toward is not None
                kinds = set(question.counts_toward.among) or {
                    k.value for k in ClusterKind if k.form == form.form
                }
                among = [c for c in clusters if c.kind in kinds]
                whole += len(among)
                for c in among:
                    mine = answers.get(c.code, {})
                    if fallback is not None and not _answered(question, mine):
                        by_registry += 1  # never answered: the registry's group says
                        counted += c.kind in fallback[0]
                    else:
                        counted += _counted(question, mine, target)
            if target.unit == "percent" or fallback is not None:
                count, of = counted, whole
            if fallback is not None:
                reported, listed = whole - by_registry, by_registry
                basis = fallback[1] if by_registry else ""
            actual = _percent(counted, whole) if target.unit == "percent" else Decimal(counted)
        elif target.code == NEW_CLUSTERS:
            actual = Decimal(sum(1 for c in clusters if c.kind == ClusterKind.FOUNDED_2021))
        elif target.code == FULL_INFRASTRUCTURE:
            operating = [c for c in clusters if c.kind in OPERATING]
            count, of = (
                sum(1 for c in operating if c.kind == ClusterKind.OPERATING_COMPLETE),
                len(operating),
            )
            actual = _percent(count, of) if target.unit == "percent" else Decimal(count)
            basis = BASES[FULL_INFRASTRUCTURE]
        rows.append(
            TargetRow(
                target.code,
                target.label,
                target.value_min,
                target.value_max,
                target.unit,
                actual,
                count,
                of,
                target.period or "",
                target.measure,
                basis,
                reported,
                listed,
            )
        )
    return rows


async def summarise(
    session: AsyncSession,
    period: Period,
    calendar: Calendar,
    *,
    within: Callable[[Slot], bool] | None = None,
    forms: Mapping[str, Form] | None = None,
) -> Summary:
    """The period's summary; `within` narrows the reporting rate to the slots a person sees
    (a district's or a commune's: store.slots.sees_slot); `forms`: the forms whose answers
    count (those of store/forms unless given)."""
    forms = load_forms() if forms is None else forms
    slots = await slots_for(session, period, calendar)
    if within is not None:
        slots = [s for s in slots if within(s)]
    by_district: dict[str, list[Slot]] = defaultdict(list)
    by_reporter: dict[str, list[Slot]] = defaultdict(list)
    for slot in slots:
        by_district[slot.district].append(slot)
        by_reporter[slot.reporter].append(slot)
    clusters = await summaries.clusters(session)
    answers = await cluster_answers(session, period, clusters)
    plan = await plan_of(session, period.year)
    goals = plan.goals if plan else await figures_without_plan(session, period.year)
    return Summary(
        period=period,
        slots=slots,
        total=rate(slots),
        by_district=[(d, rate(s)) for d, s in sorted(by_district.items())],
        by_reporter=[(r, rate(s)) for r, s in sorted(by_reporter.items())],
        targets=_targets(goals, clusters, answers, forms),
        answers=answers,
        forms=forms,
        plan=plan,
    )
