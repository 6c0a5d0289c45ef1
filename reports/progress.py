"""Where a cluster stands: its latest figures and the next step of the plan's chain, the chain
being the steps its form's answers complete (`completes:` in store/forms/*.yaml)."""

from __future__ import annotations

import calendar as months
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from domain.forms import Form, PlanDate
from domain.roles import ClusterKind
from store.forms import load_forms
from store.models import Report
from store.progress import reports_of, sender_names

__all__ = [
    "Answer",
    "Filing",
    "NextStep",
    "Reported",
    "latest_answers",
    "month_end",
    "next_step",
    "quarter_end",
    "reports_of",
    "sender_names",
]


class Reported(Protocol):
    """What an answer tells of the report it came from: a stored report, or a `Filing`."""

    @property
    def period(self) -> str: ...

    @property
    def version(self) -> int: ...


class Filing(NamedTuple):
    """A report as the summaries read it (reports.summary): its period and version."""

    period: str
    version: int


@dataclass(frozen=True)
class Answer:
    value: str | None
    reason: str | None
    report: Reported
    # the summaries (reports.summary): for an answer given in the period summarised, the
    # question's latest answer from the periods before it, if any (what the month changed)
    earlier: Answer | None = None


class Planned(Protocol):
    """A cluster as its next step needs it (store.models.Cluster, or a plain row of it)."""

    @property
    def kind(self) -> str: ...

    @property
    def planned_groundbreaking(self) -> str | None: ...

    @property
    def planned_completion(self) -> str | None: ...


class Step(Protocol):
    @property
    def kind(self) -> str: ...


S = TypeVar("S", bound=Step)


@dataclass(frozen=True)
class NextStep(Generic[S]):
    step: S  # a store.models.ClusterStep, or a plain row of one
    late: bool


def latest_answers(reports: list[Report]) -> dict[str, Answer]:
    """Each question's most recent answer, from reports newest first (period, then version).
    `reports.summary._latest` applies the same rule to a whole month's history in one pass:
    a change here is made there too (tests/test_summary_reading.py holds them equal)."""
    out: dict[str, Answer] = {}
    for report in sorted(reports, key=lambda r: (r.period, r.version), reverse=True):
        for qid, entry in report.answers.items():
            if (qid.startswith("_") and qid != "_location") or qid in out:
                continue
            if isinstance(entry, dict):
                out[qid] = Answer(entry.get("v"), entry.get("reason"), report)
    return out


def month_end(iso_month: str, zone: Any) -> datetime:
    year, month = (int(x) for x in iso_month.split("-"))
    last = months.monthrange(year, month)[1]
    return datetime(year, month, last, 23, 59, 59, tzinfo=zone)


def quarter_end(iso_quarter: str, zone: Any) -> datetime:
    year, quarter = iso_quarter.split("-Q")
    return month_end(f"{year}-{int(quarter) * 3:02d}", zone)


def _late(cluster: Planned, due: PlanDate | None, now: datetime) -> bool:
    """Whether `now` is past the cluster's planned date the step is due by: the end of the
    planned groundbreaking month, or of the planned completion quarter."""
    if due == "planned_groundbreaking" and cluster.planned_groundbreaking:
        return now > month_end(cluster.planned_groundbreaking, now.tzinfo)
    if due == "planned_completion" and cluster.planned_completion:
        return now > quarter_end(cluster.planned_completion, now.tzinfo)
    return False


def next_step(
    cluster: Planned,
    steps: Sequence[S],
    answers: Mapping[str, Answer],
    now: datetime,
    form: Form | None = None,
) -> NextStep[S] | None:
    """The first step of the chain (the steps the cluster's form completes, in its order) that
    the cluster's plan has and its answers do not show done; late when the planned date the
    form says it is due by has passed. `form`: the cluster's own form unless given."""
    if form is None:
        form = load_forms()[ClusterKind(cluster.kind).form]
    by_kind = {s.kind: s for s in steps}
    for qid, completes in form.chain:
        step = by_kind.get(completes.step)
        if step is None:
            continue
        answer = answers.get(qid)
        if completes.done(answer.value if answer else None):
            continue
        return NextStep(step, _late(cluster, completes.due, now))
    return None
