"""China's working-day calendar, with an honest fallback where it runs out.

The State Council publishes each year's holidays and make-up working days (调休)
late in the year before. Inside ``official_years`` the official schedule rules;
outside them the calendar counts Monday–Friday only and says so on every
``Deadline`` it produces (``basis`` and ``note``). It never raises for a year it
does not cover: a case received in late December already has deadlines next year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum

from domain.checks import require_aware
from domain.errors import ValidationError

__all__ = ["CHINA", "CalendarBasis", "Deadline", "WorkingCalendar"]

#: China Standard Time: working days are China's dates, whatever zone a time is given in.
CHINA = timezone(timedelta(hours=8), "CST")
_ONE_DAY = timedelta(days=1)
_SATURDAY = 5


class CalendarBasis(StrEnum):
    """What a deadline was counted with."""

    OFFICIAL = "official"
    WEEKDAYS_FALLBACK = "weekdays-fallback"


@dataclass(frozen=True)
class Deadline:
    """An instant by which something is due, and how it was counted.

    ``note`` is human text for the UI; empty when there is nothing to say.
    """

    by: datetime
    basis: CalendarBasis = CalendarBasis.OFFICIAL
    note: str = ""

    def __post_init__(self) -> None:
        # A StrEnum comes back from JSON as a plain str: restore the member.
        object.__setattr__(self, "basis", CalendarBasis(self.basis))


def _fallback_note(years: set[int]) -> str:
    listed = ", ".join(str(year) for year in sorted(years))
    schedules = "schedule" if len(years) == 1 else "schedules"
    return f"{listed} official {schedules} not loaded: counted Monday–Friday only"


@dataclass(frozen=True)
class WorkingCalendar:
    """Official days off and make-up working days for the years it knows.

    - ``holidays``: official days off (on weekdays, or any day of a holiday span);
    - ``makeup_workdays``: weekend days that are official working days;
    - ``official_years``: the years whose official schedule is loaded.
    """

    holidays: frozenset[date] = field(default_factory=frozenset)
    makeup_workdays: frozenset[date] = field(default_factory=frozenset)
    official_years: frozenset[int] = field(default_factory=frozenset)

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls in a year whose official schedule is loaded."""
        return day.year in self.official_years

    def is_workday(self, day: date) -> bool:
        """Official rule inside the covered years; Monday–Friday outside them."""
        if not self.covers(day):
            return day.weekday() < _SATURDAY
        if day in self.makeup_workdays:
            return True
        return day.weekday() < _SATURDAY and day not in self.holidays

    def add_working_days(self, start: datetime, n: int) -> Deadline:
        """The end of the ``n``-th working day after ``start``'s date.

        The deadline instant is the start (00:00) of the day after that working
        day, in ``start``'s timezone. ``start``'s own date is never counted.
        The basis is the weekdays fallback if any day stepped over lies outside
        the official years.
        """
        require_aware(start, "the start of a deadline")
        start = start.astimezone(CHINA)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            msg = f"working days to add must be a whole number of 0 or more; got {n!r}"
            raise ValidationError(msg)
        day = start.date()
        uncovered: set[int] = set()
        counted = 0
        while counted < n:
            day += _ONE_DAY
            if not self.covers(day):
                uncovered.add(day.year)
            if self.is_workday(day):
                counted += 1
        return self._deadline_after(day, start, uncovered)

    def end_of_working_day(self, start: datetime) -> Deadline:
        """The end of ``start``'s day if it is a working day, else of the next one."""
        require_aware(start, "the start of a deadline")
        start = start.astimezone(CHINA)
        day = start.date()
        uncovered: set[int] = set()
        while True:
            if not self.covers(day):
                uncovered.add(day.year)
            if self.is_workday(day):
                return self._deadline_after(day, start, uncovered)
            day += _ONE_DAY

    @staticmethod
    def _deadline_after(day: date, start: datetime, uncovered: set[int]) -> Deadline:
        by = datetime.combine(day + _ONE_DAY, time(0), tzinfo=start.tzinfo)
        if uncovered:
            return Deadline(by, CalendarBasis.WEEKDAYS_FALLBACK, _fallback_note(uncovered))
        return Deadline(by, CalendarBasis.OFFICIAL, "")
