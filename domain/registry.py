"""The tenant registry's aggregates: centers, and loaded calendar years.

A center (one tenant) is registered from the official division data; a later
import that finds it renamed or gone records that as an event, never as an
overwrite. The working-day schedule of a year the bundled calendar does not
know is loaded by an operator and recorded here too.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.checks import require_aware
from domain.codes import Tier, parent_of, stream_id, tier_of
from domain.errors import IllegalTransition, ValidationError

__all__ = ["CalendarYear", "Center", "check_schedule"]


class Center(Aggregate):
    """A governance center: one tenant, keyed by its division code."""

    @staticmethod
    def create_id(code: str) -> UUID:
        return stream_id(code, "center")

    @classmethod
    def register(cls, code: str, name: str, by: str, at: datetime) -> Center:
        tier = tier_of(code)
        if not name.strip():
            raise ValidationError(f"center {code} needs a name")
        require_aware(at, "the time")
        return cls(code=code, name=name.strip(), tier=tier, parent=parent_of(code), by=by, at=at)

    @event("Registered")
    def __init__(self, code: str, name: str, tier: Tier, parent: str | None, by: str,
                 at: datetime) -> None:
        self.code, self.name, self.tier, self.parent = code, name, Tier(tier), parent
        self.retired = False
        self.key_shredded = False

    def rename(self, name: str, by: str, at: datetime) -> None:
        if not name.strip():
            raise ValidationError(f"center {self.code} needs a name")
        if name.strip() == self.name:
            raise ValidationError(f"center {self.code} is already named {self.name}")
        self._renamed(name.strip(), self.name, by, at)

    @event("Renamed")
    def _renamed(self, name: str, previous: str, by: str, at: datetime) -> None:
        self.name = name

    def retire(self, reason: str, by: str, at: datetime) -> None:
        if self.retired:
            raise IllegalTransition(f"center {self.code} is already retired")
        self._retired(reason, by, at)

    @event("Retired")
    def _retired(self, reason: str, by: str, at: datetime) -> None:
        self.retired = True

    def reinstate(self, by: str, at: datetime) -> None:
        if not self.retired:
            raise IllegalTransition(
                f"only a retired center can be reinstated; {self.code} is active")
        self._reinstated(by, at)

    @event("Reinstated")
    def _reinstated(self, by: str, at: datetime) -> None:
        self.retired = False

    def record_key_shredded(self, reason: str, by: str, at: datetime) -> None:
        if not reason.strip():
            raise ValidationError("shredding a center's data key needs a reason")
        if self.key_shredded:
            raise IllegalTransition(f"center {self.code}'s data key is already shredded")
        self._key_shredded(reason, by, at)

    @event("KeyShredded")
    def _key_shredded(self, reason: str, by: str, at: datetime) -> None:
        self.key_shredded = True


def check_schedule(year: int, holidays: list[date], makeup_workdays: list[date]) -> None:
    """An official schedule's shape: its own year, weekday holidays, weekend make-up days."""
    wrong = [d for d in [*holidays, *makeup_workdays] if d.year != year]
    if wrong:
        raise ValidationError(f"{wrong[0].isoformat()} does not belong to {year}")
    if not any(d.weekday() < 5 for d in holidays):
        raise ValidationError(
            f"the {year} schedule lists no weekday holiday: not an official schedule")
    if any(d.weekday() < 5 for d in makeup_workdays):
        raise ValidationError("make-up working days must fall on a Saturday or Sunday")
    if set(holidays) & set(makeup_workdays):
        raise ValidationError("a day cannot be both a holiday and a make-up working day")


class CalendarYear(Aggregate):
    """One year's official schedule of days off and make-up working days."""

    @staticmethod
    def create_id(year: int) -> UUID:
        return stream_id("3300", f"calendar-year:{year}")

    @classmethod
    def load(cls, year: int, holidays: list[date], makeup_workdays: list[date], source: str,
             by: str, at: datetime) -> CalendarYear:
        require_aware(at, "the time")
        check_schedule(year, holidays, makeup_workdays)
        return cls(year=year, holidays=sorted(holidays), makeup_workdays=sorted(makeup_workdays),
                   source=source, by=by, at=at)

    @event("Loaded")
    def __init__(self, year: int, holidays: list[date], makeup_workdays: list[date], source: str,
                 by: str, at: datetime) -> None:
        self.year = year
        self.holidays = list(holidays)
        self.makeup_workdays = list(makeup_workdays)
        self.source = source

    def revise(self, holidays: list[date], makeup_workdays: list[date], source: str, by: str,
               at: datetime) -> None:
        require_aware(at, "the time")
        check_schedule(self.year, holidays, makeup_workdays)
        self._revised(sorted(holidays), sorted(makeup_workdays), source, by, at)

    @event("Revised")
    def _revised(self, holidays: list[date], makeup_workdays: list[date], source: str, by: str,
                 at: datetime) -> None:
        self.holidays = list(holidays)
        self.makeup_workdays = list(makeup_workdays)
        self.source = source
