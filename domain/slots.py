"""What each reporter owes for a period (a slot), whether it has been filled by a report or a
confirmed paper copy, and the reporting rate over slots (DHIS2's expected, received, on time,
late)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from domain.subjects import Subject


@dataclass
class Slot:
    subject: Subject
    title: str
    reporter: str  # investor | district | department
    district: str  # the district's name, "" for city departments
    people: list[int] = field(default_factory=list)
    report: str | None = None  # reference of the first report filed for the period
    submitted_at: datetime | None = None
    on_time: bool | None = None
    paper: bool = False

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
