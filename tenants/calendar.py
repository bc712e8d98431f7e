"""China's official working-day calendar: the bundled years plus loaded ones.

``chinesecalendar`` 1.11.0 knows 2004-2026. Each later year's schedule is
loaded by an operator (``zongzhi calendar load FILE``) and recorded in the
registry as a ``CalendarYear`` event; until then the domain counts weekdays
only and says so on each deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from chinese_calendar import constants

from domain import ValidationError, WorkingCalendar
from domain.registry import check_schedule

BUNDLED_YEARS = frozenset(
    {d.year for d in constants.holidays} | {d.year for d in constants.workdays})


@dataclass(frozen=True)
class Schedule:
    """One year's official days off and make-up working days."""

    year: int
    holidays: list[date]
    makeup_workdays: list[date]
    source: str


def bundled_calendar(extra: Iterable[Schedule] = ()) -> WorkingCalendar:
    holidays = set(constants.holidays)
    makeup = set(constants.workdays)
    years = set(BUNDLED_YEARS)
    for schedule in extra:
        holidays = {d for d in holidays if d.year != schedule.year} | set(schedule.holidays)
        makeup = {d for d in makeup if d.year != schedule.year} | set(schedule.makeup_workdays)
        years.add(schedule.year)
    return WorkingCalendar(holidays=frozenset(holidays), makeup_workdays=frozenset(makeup),
                           official_years=frozenset(years))


def read_schedule(path: Path) -> Schedule:
    """A year's schedule file: JSON with ``year``, ``holidays``, ``makeup_workdays``
    (ISO dates) and ``source`` (the State Council notice it comes from)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        year = int(data["year"])
        holidays = [date.fromisoformat(d) for d in data["holidays"]]
        makeup = [date.fromisoformat(d) for d in data.get("makeup_workdays", [])]
        source = str(data.get("source") or "").strip()
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValidationError(f"{path}: not a calendar schedule file ({e})") from e
    if not source:
        raise ValidationError(f"{path}: 'source' must name the official notice")
    check_schedule(year, holidays, makeup)
    return Schedule(year, holidays, makeup, source)
