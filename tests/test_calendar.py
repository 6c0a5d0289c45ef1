"""The reporting calendar of section IV, with properties checked over many moments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from domain.calendar import Calendar, Period
from reminders.policy import Policy, due

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = Calendar(HANOI)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
periods = st.builds(Period, st.integers(2020, 2030), st.integers(1, 12))


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=HANOI)


def test_the_plan_s_deadlines() -> None:
    june = Period(2021, 6)
    assert CAL.deadline(june) == local("2021-06-25T00:00")
    assert CAL.office_deadline(june) == local("2021-06-28T00:00")
    december = Period(2021, 12)
    assert CAL.deadline(december) == local("2021-12-20T00:00")  # the annual report
    assert CAL.office_deadline(december) == local("2021-12-25T00:00")
    assert Period(2021, 6).is_quarter_end and not Period(2021, 5).is_quarter_end


def test_windows_around_the_deadline() -> None:
    assert CAL.period_at(local("2021-06-24T23:59:59")) == Period(2021, 6)
    assert CAL.period_at(local("2021-06-25T00:00")) == Period(2021, 7)  # June's window closed
    assert CAL.period_at(local("2021-05-25T00:00")) == Period(2021, 6)  # June's window opens
    assert CAL.period_at(local("2021-12-19T23:59")) == Period(2021, 12)
    assert CAL.period_at(local("2021-12-20T00:00")) == Period(2022, 1)  # across the year
    # 17:00 UTC on the 24th is already midnight on the 25th in Hanoi
    assert CAL.period_at(datetime(2021, 6, 24, 17, 0, tzinfo=UTC)) == Period(2021, 7)
    assert CAL.period_at(datetime(2021, 6, 24, 16, 59, tzinfo=UTC)) == Period(2021, 6)


def test_leap_february() -> None:
    assert CAL.deadline(Period(2024, 2)) == local("2024-02-25T00:00")
    assert CAL.period_at(local("2024-02-29T12:00")) == Period(2024, 3)


def test_deadline_days_are_settings() -> None:
    cal = Calendar(HANOI, reporter_day=20, reporter_day_december=15)
    assert cal.deadline(Period(2021, 6)) == local("2021-06-20T00:00")
    assert cal.period_at(local("2021-12-16T08:00")) == Period(2022, 1)


@given(moments)
def test_a_moment_falls_in_exactly_one_window(moment: datetime) -> None:
    period = CAL.period_at(moment)
    assert CAL.deadline(period.previous()) <= moment < CAL.deadline(period)


@given(periods)
def test_windows_follow_each_other_without_gaps(period: Period) -> None:
    assert CAL.deadline(period.previous()) < CAL.deadline(period)
    assert CAL.period_at(CAL.deadline(period)) == period.next()
    assert CAL.period_at(CAL.deadline(period) - timedelta(microseconds=1)) == period
    assert CAL.office_deadline(period) > CAL.deadline(period)
    assert Period.parse(str(period)) == period
    assert period.next().previous() == period


@given(moments)
def test_nothing_is_due_in_quiet_hours(moment: datetime) -> None:
    policy = Policy()
    if policy.quiet(moment.astimezone(HANOI)):
        assert due(CAL, policy, moment) == []


@given(moments)
def test_reporter_reminders_only_before_their_deadline(moment: datetime) -> None:
    for item in due(CAL, Policy(), moment):
        assert item.at <= moment
        if item.audience == "reporters":
            assert moment < CAL.deadline(item.period)
        else:
            assert CAL.deadline(item.period) <= moment < CAL.office_deadline(item.period)


def test_quiet_hours_move_a_reminder_to_seven() -> None:
    policy = Policy(remind_at=datetime(2021, 1, 1, 22, 0).time())  # set inside quiet hours
    items = due(CAL, policy, local("2021-06-21T07:00"))
    assert [(i.kind, i.at) for i in items] == [("due-5", local("2021-06-21T07:00"))]
    assert due(CAL, policy, local("2021-06-20T22:30")) == []
