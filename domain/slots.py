"""What each reporter owes for a period (a slot), whether it has been filled by a report or a
confirmed paper copy, and the reporting rate over slots (DHIS2's expected, received, on time,
late).

A report's review (handlers/review.py): every submitted report is *new* until a reviewer marks
it *accepted* or *needs changes*. The rule of the rate: a report counts as received while it is
new or accepted; one sent back for changes does not, until a new version fixes it — and then
that new version's date decides whether it came on time (`counted`)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol, TypeVar

from domain.calendar import Period
from domain.subjects import Subject


class Review(enum.StrEnum):
    """A submitted report's review state (reports.review_state)."""

    NEW = "new"
    ACCEPTED = "accepted"
    NEEDS_CHANGES = "needs_changes"

    @property
    def received(self) -> bool:
        """Whether a report in this state counts as received (the rule above)."""
        return self is not Review.NEEDS_CHANGES


def review_of(value: object) -> Review:
    """A stored state; anything unknown reads as new (never raises)."""
    try:
        return Review(str(value))
    except ValueError:
        return Review.NEW


class Versioned(Protocol):
    @property
    def review_state(self) -> str: ...


V = TypeVar("V", bound=Versioned)


def counted(versions: Sequence[V]) -> V | None:
    """Of a subject's versions for one period, oldest first, the one that makes the slot
    received: the first version after the last one sent back for changes; None while the
    latest waits for changes (or there is none)."""
    if not versions or not review_of(versions[-1].review_state).received:
        return None
    first = len(versions) - 1
    while first > 0 and review_of(versions[first - 1].review_state).received:
        first -= 1
    return versions[first]


def owes(period: Period, valid_from: date | None, valid_to: date | None) -> bool:
    """Whether an organisation that exists from `valid_from` to `valid_to` (its last day; None:
    since always, still) owes a report for `period`: it must exist on the period's first day.
    An organisation created or dissolved during a period changes what is owed from the next
    period on, and the periods before its dates stay as they were."""
    first = date(period.year, period.month, 1)
    return (valid_from is None or valid_from <= first) and (valid_to is None or first <= valid_to)


@dataclass
class Slot:
    subject: Subject
    title: str
    reporter: str  # investor | district | department
    district: str  # the district's name, "" for city departments
    people: list[int] = field(default_factory=list)
    report: str | None = None  # reference of the report that counts for the period
    submitted_at: datetime | None = None
    on_time: bool | None = None
    paper: bool = False
    review: Review | None = None  # the review state of the period's latest version
    changes: str | None = None  # reference of the latest version, while it waits for changes

    @property
    def filled(self) -> bool:
        return self.report is not None or self.paper


@dataclass(frozen=True)
class Rate:
    expected: int
    received: int
    on_time: int
    late: int

    @property
    def percent(self) -> float:
        return 100.0 * self.received / self.expected if self.expected else 0.0


def rate(slots: list[Slot]) -> Rate:
    received = [s for s in slots if s.filled]
    on_time = sum(1 for s in received if s.on_time)
    return Rate(len(slots), len(received), on_time, len(received) - on_time)
