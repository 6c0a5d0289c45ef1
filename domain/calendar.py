"""The reporting calendar of Kế hoạch 68, section IV: the one place that knows periods and
deadlines. Reporters are due before the 25th (December: before the 20th); Sở Công Thương
before the 28th (December: before the 25th). "Before the 25th" means received before 00:00 on
the 25th, local time. The window for a month opens when the previous month's closes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.match(text)
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise ValueError(text)
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def label(self) -> str:
        """`06/2021`."""
        return f"{self.month:02d}/{self.year}"

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def next(self) -> Period:
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    @property
    def is_quarter_end(self) -> bool:
        return self.month % 3 == 0

    @property
    def is_year_end(self) -> bool:
        return self.month == 12


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    reporter_day: int = 25
    reporter_day_december: int = 20
    office_day: int = 28
    office_day_december: int = 25

    def _midnight(self, period: Period, day: int) -> datetime:
        return datetime.combine(
            datetime(period.year, period.month, day).date(), time(0), tzinfo=self.zone
        )

    def deadline(self, period: Period) -> datetime:
        """The moment a reporter's report for `period` becomes late."""
        day = self.reporter_day_december if period.is_year_end else self.reporter_day
        return self._midnight(period, day)

    def office_deadline(self, period: Period) -> datetime:
        """The moment Sở Công Thương's consolidated report for `period` becomes late."""
        day = self.office_day_december if period.is_year_end else self.office_day
        return self._midnight(period, day)

    def period_at(self, moment: datetime) -> Period:
        """The period whose reporting window holds `moment` (aware)."""
        local = moment.astimezone(self.zone)
        period = Period(local.year, local.month)
        return period.next() if local >= self.deadline(period) else period

    def focus(self, moment: datetime) -> Period:
        """The period Sở Công Thương is working on: the one whose reports just closed, until its
        own deadline; otherwise the one being reported."""
        current = self.period_at(moment)
        previous = current.previous()
        return previous if moment < self.office_deadline(previous) else current
