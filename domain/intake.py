"""One matter, one case (DOMAIN.md rule 1): when intake suspects a duplicate,
and when a new complaint is the same matter coming back (rule 9).

A candidate is a case of the same center and category that shares a party's
phone or id number (compared as keyed hashes, never in clear) and lies nearby.
An open candidate received within :data:`DUPLICATE_WINDOW` is flagged on the
new case for staff to merge or keep separate; a candidate closed within
:data:`REPEAT_WINDOW` is re-opened instead, as a repeat complaint against the
unit that resolved it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from domain.values import Place, Status

__all__ = [
    "DUPLICATE_WINDOW",
    "NEARBY_METRES",
    "REPEAT_WINDOW",
    "Candidate",
    "is_nearby",
    "repeat_of",
    "suspected_duplicates",
]

DUPLICATE_WINDOW = timedelta(days=30)
REPEAT_WINDOW = timedelta(days=90)
NEARBY_METRES = 500.0
_EARTH_RADIUS_M = 6_371_000.0


@dataclass(frozen=True)
class Candidate:
    """What intake knows of an earlier case (from the case index)."""

    case_id: UUID
    status: Status
    place: Place
    received_at: datetime  # when its current round began (receipt, or the last re-opening)
    closed_at: datetime | None


def is_nearby(a: Place, b: Place) -> bool:
    """Within :data:`NEARBY_METRES` when both have coordinates, else the same division."""
    if None not in (a.lat, a.lon, b.lat, b.lon):
        return _metres(a, b) <= NEARBY_METRES
    return a.division == b.division


def _metres(a: Place, b: Place) -> float:
    lat1, lon1, lat2, lon2 = (math.radians(float(v or 0)) for v in (a.lat, a.lon, b.lat, b.lon))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * _EARTH_RADIUS_M * math.asin(math.sqrt(h))


def repeat_of(candidates: list[Candidate], place: Place, at: datetime) -> Candidate | None:
    """The most recently closed nearby candidate within the repeat window, if any."""
    closed = [
        c for c in candidates
        if c.status is Status.CLOSED and c.closed_at is not None
        and at - REPEAT_WINDOW <= c.closed_at <= at and is_nearby(c.place, place)
    ]
    return max(closed, key=lambda c: (c.closed_at, c.case_id), default=None)


def suspected_duplicates(candidates: list[Candidate], place: Place, at: datetime) -> list[UUID]:
    """Open nearby candidates received within the duplicate window, oldest first."""
    terminal = {Status.CLOSED, Status.MERGED, Status.WITHDRAWN, Status.RETURNED}
    found = [
        c for c in candidates
        if c.status not in terminal and at - DUPLICATE_WINDOW <= c.received_at <= at
        and is_nearby(c.place, place)
    ]
    return [c.case_id for c in sorted(found, key=lambda c: (c.received_at, c.case_id))]
