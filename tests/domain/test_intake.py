"""Intake's policy (DOMAIN.md rules 1 and 9), pure: which earlier cases are the
same place, which open ones are suspected duplicates, which closed one a new
complaint repeats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from domain import Place, Status
from domain.intake import Candidate, is_nearby, repeat_of, suspected_duplicates

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=CST)
VILLAGE, OTHER_VILLAGE = "330782001001", "330782001002"
LAT, LON = 29.3069, 120.0753  # Yiwu
#: metres per degree of latitude on the sphere intake uses (R = 6,371 km)
M_PER_DEG = 6_371_000.0 * 3.141592653589793 / 180


def here(lat: float | None = LAT, lon: float | None = LON, division: str = VILLAGE) -> Place:
    return Place(division, "某路1号", lat, lon)


def north(metres: float, division: str = VILLAGE) -> Place:
    return here(LAT + metres / M_PER_DEG, LON, division)


def candidate(n: int, status: Status = Status.TRIAGED, *, place: Place | None = None,
              received: timedelta = timedelta(days=1),
              closed: timedelta | None = None) -> Candidate:
    """Case ``n``, received ``received`` before NOW and closed ``closed`` before NOW."""
    return Candidate(UUID(int=n), status, place or here(), NOW - received,
                     None if closed is None else NOW - closed)


# -- is_nearby -----------------------------------------------------------------

@pytest.mark.parametrize(("metres", "nearby"), [(0, True), (120, True), (490, True),
                                                 (510, False), (2_000, False)])
def test_with_coordinates_nearby_means_within_500_metres(metres: float, nearby: bool) -> None:
    assert is_nearby(here(), north(metres)) is nearby
    assert is_nearby(north(metres), here()) is nearby  # symmetric


def test_distance_is_measured_on_the_ground_not_in_degrees() -> None:
    # 0.005° of longitude is ~556 m at the equator but ~485 m at Yiwu's latitude.
    assert is_nearby(here(), here(LAT, LON + 0.005))
    assert not is_nearby(here(0.0, 120.0), here(0.0, 120.005))


def test_with_coordinates_the_division_does_not_decide() -> None:
    assert is_nearby(here(), north(100, OTHER_VILLAGE))  # across a village boundary
    assert not is_nearby(here(), north(3_000, VILLAGE))  # same village, far apart


@pytest.mark.parametrize("other", [
    here(None, None), here(LAT, None), here(None, LON)], ids=["none", "no-lon", "no-lat"])
def test_without_both_coordinates_nearby_means_the_same_division(other: Place) -> None:
    assert is_nearby(here(), other)
    assert is_nearby(other, here())
    moved = Place(OTHER_VILLAGE, other.address, other.lat, other.lon)
    assert not is_nearby(here(), moved)
    assert not is_nearby(here(None, None, VILLAGE), here(None, None, OTHER_VILLAGE))


# -- suspected_duplicates --------------------------------------------------------

def test_an_open_nearby_case_received_within_30_days_is_a_suspected_duplicate() -> None:
    earlier = candidate(1, received=timedelta(days=3))
    assert suspected_duplicates([earlier], north(100), NOW) == [earlier.case_id]


@pytest.mark.parametrize(("received", "flagged"), [
    (timedelta(days=30), True),
    (timedelta(days=30, minutes=1), False),
    (timedelta(days=200), False),
    (timedelta(0), True),
    (-timedelta(minutes=1), False),  # received after this intake: not an earlier case
])
def test_only_cases_received_within_the_duplicate_window_are_flagged(
        received: timedelta, flagged: bool) -> None:
    found = suspected_duplicates([candidate(1, received=received)], here(), NOW)
    assert found == ([UUID(int=1)] if flagged else [])


@pytest.mark.parametrize("status", [Status.CLOSED, Status.MERGED, Status.WITHDRAWN,
                                    Status.RETURNED])
def test_a_finished_case_is_never_a_suspected_duplicate(status: Status) -> None:
    closed = timedelta(days=1) if status is Status.CLOSED else None
    assert suspected_duplicates([candidate(1, status, closed=closed)], here(), NOW) == []


@pytest.mark.parametrize("status", [Status.RECEIVED, Status.TRIAGED, Status.DISPATCHED,
                                    Status.ACCEPTED, Status.ESCALATED, Status.RESOLVED,
                                    Status.FEEDBACK_GIVEN, Status.CONFIRMED])
def test_a_case_still_in_the_loop_is_a_suspected_duplicate(status: Status) -> None:
    assert suspected_duplicates([candidate(1, status)], here(), NOW) == [UUID(int=1)]


def test_a_case_somewhere_else_is_not_a_suspected_duplicate() -> None:
    far = candidate(1, place=north(800))
    other_village = candidate(2, place=here(None, None, OTHER_VILLAGE))
    assert suspected_duplicates([far, other_village], here(), NOW) == []


def test_suspected_duplicates_are_listed_oldest_first_and_ties_by_case_id() -> None:
    newest = candidate(1, received=timedelta(days=1))
    oldest = candidate(9, received=timedelta(days=20))
    tie_b = candidate(7, received=timedelta(days=5))
    tie_a = candidate(3, received=timedelta(days=5))
    closed = candidate(5, Status.CLOSED, received=timedelta(days=10), closed=timedelta(days=2))
    found = suspected_duplicates([newest, tie_b, closed, oldest, tie_a], here(), NOW)
    assert found == [UUID(int=9), UUID(int=3), UUID(int=7), UUID(int=1)]


def test_no_candidates_no_duplicates() -> None:
    assert suspected_duplicates([], here(), NOW) == []
    assert repeat_of([], here(), NOW) is None


# -- repeat_of -------------------------------------------------------------------

def test_a_nearby_case_closed_within_90_days_is_what_a_new_complaint_repeats() -> None:
    closed = candidate(1, Status.CLOSED, received=timedelta(days=60), closed=timedelta(days=50))
    assert repeat_of([closed], north(200), NOW) == closed


@pytest.mark.parametrize(("closed", "repeats"), [
    (timedelta(days=90), True),
    (timedelta(days=90, minutes=1), False),
    (timedelta(days=400), False),
    (-timedelta(minutes=1), False),  # closed after this intake
])
def test_only_a_case_closed_within_the_repeat_window_is_repeated(
        closed: timedelta, repeats: bool) -> None:
    c = candidate(1, Status.CLOSED, received=timedelta(days=500), closed=closed)
    assert (repeat_of([c], here(), NOW) == c) is repeats


def test_the_most_recently_closed_case_is_the_one_repeated() -> None:
    older = candidate(1, Status.CLOSED, received=timedelta(days=80), closed=timedelta(days=70))
    recent = candidate(2, Status.CLOSED, received=timedelta(days=40), closed=timedelta(days=5))
    middle = candidate(3, Status.CLOSED, received=timedelta(days=60), closed=timedelta(days=30))
    assert repeat_of([older, recent, middle], here(), NOW) == recent


def test_a_closed_case_somewhere_else_is_not_repeated_even_if_more_recent() -> None:
    nearby = candidate(1, Status.CLOSED, received=timedelta(days=80), closed=timedelta(days=60))
    far = candidate(2, Status.CLOSED, received=timedelta(days=20), closed=timedelta(days=2),
                    place=north(1_500))
    elsewhere = candidate(3, Status.CLOSED, received=timedelta(days=20),
                          closed=timedelta(days=1), place=here(None, None, OTHER_VILLAGE))
    assert repeat_of([far, nearby, elsewhere], here(), NOW) == nearby
    assert repeat_of([far, elsewhere], here(), NOW) is None


@pytest.mark.parametrize("status", [Status.TRIAGED, Status.CONFIRMED, Status.MERGED,
                                    Status.WITHDRAWN])
def test_only_a_closed_case_is_repeated(status: Status) -> None:
    # A merged or withdrawn matter never had a result to complain about again; an
    # open one is a duplicate, not a repeat.
    c = candidate(1, status, received=timedelta(days=10), closed=timedelta(days=2))
    assert repeat_of([c], here(), NOW) is None


def test_an_open_case_is_flagged_while_a_closed_one_is_repeated() -> None:
    open_case = candidate(1, Status.ACCEPTED, received=timedelta(days=3))
    closed = candidate(2, Status.CLOSED, received=timedelta(days=20), closed=timedelta(days=4))
    assert repeat_of([open_case, closed], here(), NOW) == closed
    assert suspected_duplicates([open_case, closed], here(), NOW) == [open_case.case_id]
