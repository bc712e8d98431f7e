"""Severity → response deadline, handling class → handling deadline (DOMAIN.md rule 4)."""

from __future__ import annotations

import calendar as _months
from datetime import datetime, timedelta
from enum import StrEnum

from domain.calendar import CalendarBasis, Deadline, WorkingCalendar
from domain.checks import require_aware, require_member

__all__ = [
    "HandlingClass",
    "Severity",
    "handling_deadline",
    "response_deadline",
]


class Severity(StrEnum):
    """The four severity levels: 重大 red, 较大 orange, 一般 yellow, 轻微 blue."""

    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    BLUE = "blue"


class HandlingClass(StrEnum):
    """How hard a matter is to handle: simple, complex, difficult."""

    SIMPLE = "simple"
    COMPLEX = "complex"
    DIFFICULT = "difficult"


RESPONSE_CLOCK_TIME = {
    Severity.RED: timedelta(hours=2),
    Severity.ORANGE: timedelta(hours=24),
}
RESPONSE_WORKING_DAYS = {Severity.YELLOW: 3, Severity.BLUE: 7}
PROGRESS_WORKING_DAYS = 5


def response_deadline(
    severity: Severity, received_at: datetime, calendar: WorkingCalendar
) -> Deadline:
    """DOMAIN.md rule 4: respond within red 2 hours, orange 24 hours (clock time),
    yellow 3 working days, blue 7 working days (China's official working days).
    """
    severity = require_member(Severity, severity, "severity")
    require_aware(received_at, "the time a case was received")
    if severity in RESPONSE_CLOCK_TIME:
        return Deadline(received_at + RESPONSE_CLOCK_TIME[severity], CalendarBasis.OFFICIAL)
    return calendar.add_working_days(received_at, RESPONSE_WORKING_DAYS[severity])


def handling_deadline(
    handling: HandlingClass, received_at: datetime, calendar: WorkingCalendar
) -> Deadline:
    """DOMAIN.md rule 4: a simple matter is handled the same (working) day; a complex
    one reports progress within 5 working days; a difficult one gets a solution
    within 1 calendar month (the same day and time next month, clamped to the
    month's last day).
    """
    handling = require_member(HandlingClass, handling, "handling class")
    require_aware(received_at, "the time a case was received")
    if handling is HandlingClass.SIMPLE:
        return calendar.end_of_working_day(received_at)
    if handling is HandlingClass.COMPLEX:
        return calendar.add_working_days(received_at, PROGRESS_WORKING_DAYS)
    return Deadline(one_month_after(received_at), CalendarBasis.OFFICIAL)


def one_month_after(at: datetime) -> datetime:
    """The same day and time next month; Jan 31 → Feb 28 (or 29)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    day = min(at.day, _months.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)
