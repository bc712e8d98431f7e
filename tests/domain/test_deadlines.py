"""Severity and handling deadlines (DOMAIN.md rule 4)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from case_builders import CALENDAR_2026, CST

from domain import (
    CalendarBasis,
    HandlingClass,
    Severity,
    ValidationError,
    handling_deadline,
    response_deadline,
)

EVE_OF_NATIONAL_DAY = datetime(2026, 9, 30, 10, 0, tzinfo=CST)


@pytest.mark.parametrize(
    ("severity", "due"),
    [
        (Severity.RED, EVE_OF_NATIONAL_DAY + timedelta(hours=2)),
        (Severity.ORANGE, EVE_OF_NATIONAL_DAY + timedelta(hours=24)),
        # Oct 8, 9, make-up Saturday 10
        (Severity.YELLOW, datetime(2026, 10, 11, tzinfo=CST)),
        # Oct 8, 9, 10, 12, 13, 14, 15
        (Severity.BLUE, datetime(2026, 10, 16, tzinfo=CST)),
    ],
)
def test_red_and_orange_count_clock_hours_yellow_and_blue_count_working_days(
    severity: Severity, due: datetime
) -> None:
    deadline = response_deadline(severity, EVE_OF_NATIONAL_DAY, CALENDAR_2026)
    assert deadline.by == due
    assert deadline.basis is CalendarBasis.OFFICIAL


def test_a_simple_matter_is_handled_the_same_working_day() -> None:
    deadline = handling_deadline(HandlingClass.SIMPLE, EVE_OF_NATIONAL_DAY, CALENDAR_2026)
    assert deadline.by == datetime(2026, 10, 1, tzinfo=CST)


def test_a_simple_matter_received_on_a_holiday_is_handled_on_the_next_working_day() -> None:
    holiday = datetime(2026, 10, 2, 10, 0, tzinfo=CST)
    deadline = handling_deadline(HandlingClass.SIMPLE, holiday, CALENDAR_2026)
    assert deadline.by == datetime(2026, 10, 9, tzinfo=CST)


def test_a_complex_matter_reports_progress_within_five_working_days() -> None:
    deadline = handling_deadline(HandlingClass.COMPLEX, EVE_OF_NATIONAL_DAY, CALENDAR_2026)
    assert deadline.by == datetime(2026, 10, 14, tzinfo=CST)  # Oct 8, 9, 10, 12, 13


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (datetime(2026, 9, 30, 10, tzinfo=CST), datetime(2026, 10, 30, 10, tzinfo=CST)),
        (datetime(2026, 1, 31, 10, tzinfo=CST), datetime(2026, 2, 28, 10, tzinfo=CST)),
        (datetime(2026, 12, 15, 10, tzinfo=CST), datetime(2027, 1, 15, 10, tzinfo=CST)),
    ],
)
def test_a_difficult_matter_gets_a_solution_within_one_calendar_month(
    received: datetime, due: datetime
) -> None:
    assert handling_deadline(HandlingClass.DIFFICULT, received, CALENDAR_2026).by == due


def test_a_blue_case_received_late_in_december_falls_back_to_weekdays_in_2027() -> None:
    received = datetime(2026, 12, 30, 9, 0, tzinfo=CST)
    deadline = response_deadline(Severity.BLUE, received, CALENDAR_2026)
    assert deadline.by == datetime(2027, 1, 9, tzinfo=CST)
    assert deadline.basis is CalendarBasis.WEEKDAYS_FALLBACK
    assert "2027 official schedule not loaded" in deadline.note


def test_an_unknown_severity_is_refused_naming_the_levels() -> None:
    with pytest.raises(ValidationError, match="red, orange, yellow, blue"):
        response_deadline("purple", EVE_OF_NATIONAL_DAY, CALENDAR_2026)  # type: ignore[arg-type]
