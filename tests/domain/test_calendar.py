"""China's working days: official holidays and make-up days, and the honest fallback."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from case_builders import CALENDAR_2026, CST
from hypothesis import given, settings
from hypothesis import strategies as st

from domain import CalendarBasis, ValidationError, WorkingCalendar


def test_the_national_day_holiday_is_not_a_working_day_and_its_makeup_days_are() -> None:
    assert not any(CALENDAR_2026.is_workday(date(2026, 10, d)) for d in range(1, 8))
    assert CALENDAR_2026.is_workday(date(2026, 9, 20))  # Sunday, made up
    assert CALENDAR_2026.is_workday(date(2026, 10, 10))  # Saturday, made up
    assert not CALENDAR_2026.is_workday(date(2026, 10, 11))  # an ordinary Sunday


def test_the_spring_festival_2026_schedule() -> None:
    assert not any(CALENDAR_2026.is_workday(date(2026, 2, d)) for d in range(15, 24))
    assert CALENDAR_2026.is_workday(date(2026, 2, 14))
    assert CALENDAR_2026.is_workday(date(2026, 2, 28))


def test_three_working_days_from_the_eve_of_national_day_end_on_the_makeup_saturday() -> None:
    # Given a matter received on Wednesday 30 September 2026
    start = datetime(2026, 9, 30, 16, 30, tzinfo=CST)
    # When three working days are counted
    deadline = CALENDAR_2026.add_working_days(start, 3)
    # Then they are Oct 8, Oct 9 and the make-up Saturday Oct 10: due by 00:00 on the 11th
    assert deadline.by == datetime(2026, 10, 11, tzinfo=CST)
    assert deadline.basis is CalendarBasis.OFFICIAL and deadline.note == ""


def test_a_deadline_running_into_an_unloaded_year_falls_back_to_weekdays_and_says_so() -> None:
    # Given a matter received on Wednesday 30 December 2026, 2027 not yet published
    start = datetime(2026, 12, 30, 9, 0, tzinfo=CST)
    # When seven working days are counted, then no exception: Dec 31, then Jan 1, 4-8 2027
    deadline = CALENDAR_2026.add_working_days(start, 7)
    assert deadline.by == datetime(2027, 1, 9, tzinfo=CST)
    assert deadline.basis is CalendarBasis.WEEKDAYS_FALLBACK
    assert "2027" in deadline.note and "Monday–Friday" in deadline.note


def test_the_end_of_the_working_day_skips_to_the_next_working_day() -> None:
    friday = datetime(2026, 10, 9, 18, 0, tzinfo=CST)
    assert CALENDAR_2026.end_of_working_day(friday).by == datetime(2026, 10, 10, tzinfo=CST)
    holiday = datetime(2026, 10, 3, 11, 0, tzinfo=CST)
    assert CALENDAR_2026.end_of_working_day(holiday).by == datetime(2026, 10, 9, tzinfo=CST)


def test_an_empty_calendar_counts_weekdays_and_names_the_years() -> None:
    deadline = WorkingCalendar().add_working_days(datetime(2030, 5, 3, 9, tzinfo=CST), 1)
    assert deadline.by == datetime(2030, 5, 7, tzinfo=CST)  # Friday → Monday 6th
    assert deadline.note == "2030 official schedule not loaded: counted Monday–Friday only"


def test_a_naive_start_or_a_negative_count_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        CALENDAR_2026.add_working_days(datetime(2026, 1, 5, 9), 3)
    with pytest.raises(ValidationError, match="0 or more"):
        CALENDAR_2026.add_working_days(datetime(2026, 1, 5, 9, tzinfo=CST), -1)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(CST)
    ),
    n=st.integers(min_value=0, max_value=30),
)
def test_n_working_days_end_on_a_working_day_with_exactly_n_working_days_counted(
    start: datetime, n: int
) -> None:
    deadline = CALENDAR_2026.add_working_days(start, n)
    last = deadline.by.date().toordinal() - 1
    days = [date.fromordinal(d) for d in range(start.date().toordinal() + 1, last + 1)]
    assert sum(CALENDAR_2026.is_workday(d) for d in days) == n
    assert n == 0 or CALENDAR_2026.is_workday(date.fromordinal(last))
    official = all(CALENDAR_2026.covers(d) for d in days)
    assert (deadline.basis is CalendarBasis.OFFICIAL) == official
