"""Builders shared by the domain tests: a 2026 calendar and cases in any status.

The calendar is written by hand from the State Council's 2026 schedule
(国办发明电〔2025〕号 notice on the 2026 holidays), not from a library.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Transcoding,
    UUIDAsHex,
)

from domain import (
    TRANSCODED_TYPES,
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    Direction,
    HandlingClass,
    Instrument,
    Link,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
    WorkingCalendar,
)

CST = timezone(timedelta(hours=8), "CST")


def span(first: date, last: date) -> set[date]:
    days = (last - first).days
    return {first + timedelta(days=i) for i in range(days + 1)}


HOLIDAYS_2026 = (
    span(date(2026, 1, 1), date(2026, 1, 3))  # New Year
    | span(date(2026, 2, 15), date(2026, 2, 23))  # Spring Festival
    | span(date(2026, 4, 4), date(2026, 4, 6))  # Qingming
    | span(date(2026, 5, 1), date(2026, 5, 5))  # Labour Day
    | span(date(2026, 6, 19), date(2026, 6, 21))  # Dragon Boat
    | span(date(2026, 9, 25), date(2026, 9, 27))  # Mid-Autumn
    | span(date(2026, 10, 1), date(2026, 10, 7))  # National Day
)
MAKEUP_WORKDAYS_2026 = {
    date(2026, 1, 4),  # Sunday
    date(2026, 2, 14),  # Saturday
    date(2026, 2, 28),  # Saturday
    date(2026, 5, 9),  # Saturday
    date(2026, 9, 20),  # Sunday
    date(2026, 10, 10),  # Saturday
}
CALENDAR_2026 = WorkingCalendar(
    holidays=frozenset(HOLIDAYS_2026),
    makeup_workdays=frozenset(MAKEUP_WORKDAYS_2026),
    official_years=frozenset({2026}),
)

CITY = "3307"  # 金华市
COUNTY = "330782"  # 义乌市
TOWNSHIP = "330782101"  # a township (街道) of 义乌
VILLAGE = "330782101203"  # a community in it
VILLAGE_2 = "330782101204"  # two more communities of the same township
VILLAGE_3 = "330782101205"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday

LEAD = "justice-office"
CO_UNIT = "police"
EARLIER_NUMBER = "ZZ-2026-000000"


class Clock:
    """Business time that moves forward one hour per command."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now


def applicant() -> Party:
    return Party(
        name=Personal("张三丰"),
        phone=Personal("13812341234"),
        id_number=Personal("330782198001011234"),
        address=Personal("义乌市稠城街道某某小区3幢"),
        role="applicant",
    )


def earlier_case(tenant: str = TOWNSHIP) -> UUID:
    """An open case of the same center that intake suspects this one duplicates."""
    return Case.create_id(tenant, EARLIER_NUMBER)


def receive(
    channel: Channel = Channel.WINDOW,
    tenant: str = TOWNSHIP,
    case_number: str = "ZZ-2026-000001",
    category: str = "neighbour-dispute",
    at: datetime = T0,
    suspected_duplicates: list[UUID] | None = None,
) -> Case:
    return Case.receive(
        tenant=tenant,
        case_number=case_number,
        channel=channel,
        category=category,
        summary="楼上漏水，邻居拒绝维修",
        parties=[applicant(), Party(Personal("李四"), role="respondent")],
        place=Place(
            division=VILLAGE if VILLAGE.startswith(tenant) else tenant,
            address="稠城街道某某小区",
            lat=29.31,
            lon=120.07,
        ),
        received_at=at,
        received_by="clerk-1",
        match_keys=["phone:5f2c9a", "id-number:81d07e"],
        suspected_duplicates=(
            [earlier_case(tenant)] if suspected_duplicates is None else suspected_duplicates
        ),
    )


def joint_dispatch() -> list[Assignee]:
    return [
        Assignee(AssigneeKind.UNIT, LEAD, lead=True),
        Assignee(AssigneeKind.UNIT, CO_UNIT, lead=False),
    ]


def centers(lead: str, *co_centers: str) -> list[Assignee]:
    """A dispatch to lower centers: the first leads."""
    return [
        Assignee(AssigneeKind.CENTER, lead, lead=True),
        *(Assignee(AssigneeKind.CENTER, c, lead=False) for c in co_centers),
    ]


def dispatched_down(*villages: str, severity: Severity = Severity.YELLOW) -> tuple[Case, Clock]:
    """A township case dispatched to village centers (the first leads)."""
    clock = Clock()
    case = receive(at=clock.now)
    case.triage(severity, HandlingClass.COMPLEX, CALENDAR_2026, "dispatcher-1", clock())
    case.dispatch(centers(*(villages or (VILLAGE,))), "dispatcher-1", clock())
    return case, clock


def take_over(
    source: Case, link: Link, clock: Clock, at: datetime | None = None, number: str = "HO-1"
) -> Case:
    """The case ``link`` of ``source`` names, opened in its center (the router's part)."""
    back = Direction.UP if link.direction is Direction.DOWN else Direction.DOWN
    return Case.take_over(
        case_id=link.case_id,
        case_number=number,
        origin=Link(source.id, source.tenant, back),
        origin_case_number=source.case_number,
        reason="handed over by " + source.tenant,
        source=source,
        calendar=CALENDAR_2026,
        by="router",
        at=at or clock(),
    )


def handed_down() -> tuple[Case, Case, Clock]:
    """A township case dispatched to one village, and the village's own case for it."""
    origin, clock = dispatched_down(VILLAGE)
    return origin, take_over(origin, origin.links[0], clock), clock


def escalated_up() -> tuple[Case, Case, Clock]:
    """A village case escalated to its township, and the township's own case for it."""
    clock = Clock()
    source = receive(tenant=VILLAGE, at=clock.now)
    source.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
    source.escalate(TOWNSHIP, "two villages involved", "director-1", clock())
    return source, take_over(source, source.links[-1], clock), clock


Step = Callable[[Case, Clock], None]

# The canonical way to reach each status, as steps after the previous status.
PATH: dict[Status, tuple[Status | None, Step]] = {
    Status.TRIAGED: (
        Status.RECEIVED,
        lambda c, t: c.triage(
            Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "dispatcher-1", t()
        ),
    ),
    Status.DISPATCHED: (
        Status.TRIAGED,
        lambda c, t: c.dispatch(joint_dispatch(), "dispatcher-1", t()),
    ),
    Status.ACCEPTED: (Status.DISPATCHED, lambda c, t: c.accept(LEAD, "officer-1", t())),
    Status.ESCALATED: (
        Status.ACCEPTED,
        lambda c, t: c.escalate(COUNTY, "turned into a group conflict", "director-1", t()),
    ),
    Status.RESOLVED: (
        Status.ACCEPTED,
        lambda c, t: c.resolve(Outcome.MEDIATED, "调解成功，签订协议", "officer-1", t()),
    ),
    Status.FEEDBACK_GIVEN: (
        Status.RESOLVED,
        lambda c, t: c.give_feedback("已调解，协议见附件", "clerk-1", t()),
    ),
    Status.CONFIRMED: (Status.FEEDBACK_GIVEN, lambda c, t: c.confirm("party-1", t())),
    Status.CLOSED: (Status.CONFIRMED, lambda c, t: c.close("clerk-1", t())),
    Status.MERGED: (
        Status.TRIAGED,
        lambda c, t: c.merge_into(Case.create_id(TOWNSHIP, "ZZ-2026-000000"), "clerk-1", t()),
    ),
    Status.WITHDRAWN: (
        Status.TRIAGED,
        lambda c, t: c.withdraw("the neighbours settled it themselves", "clerk-1", t()),
    ),
}

# The way a handed-over case (escalated up from a village) reaches each status.
HANDED_OVER_PATH: dict[Status, tuple[Status | None, Step]] = {
    **{s: PATH[s] for s in (Status.DISPATCHED, Status.ACCEPTED, Status.ESCALATED)},
    Status.RESOLVED: PATH[Status.RESOLVED],
    Status.CLOSED: (Status.RESOLVED, lambda c, t: c.close_with_origin("router", t())),
    Status.WITHDRAWN: (
        Status.TRIAGED,
        lambda c, t: c.withdraw_with_origin("the village case was withdrawn", "router", t()),
    ),
}


def _dispatch_with_two_co_centers(case: Case, clock: Clock) -> None:
    """The justice office leads; village 2 accepts its part at once, village 3 has not answered."""
    co_centers = [Assignee(AssigneeKind.CENTER, v) for v in (VILLAGE_2, VILLAGE_3)]
    case.dispatch([joint_dispatch()[0], *co_centers], "dispatcher-1", clock())
    case.note_linked_acceptance(case.links[0].case_id, "router", clock())


def _close_after_every_co_center_reports(case: Case, clock: Clock) -> None:
    """Village 3 accepts while it still can, both villages report, then the loop closes."""
    accepted, unanswered = case.links
    case.note_linked_acceptance(unanswered.case_id, "router", clock())
    for link in (accepted, unanswered):
        case.note_linked_outcome(link.case_id, Outcome.HANDLED, "done", "router", clock())
    for status in (Status.RESOLVED, Status.FEEDBACK_GIVEN, Status.CONFIRMED, Status.CLOSED):
        PATH[status][1](case, clock)


# The way a case with two lower co-centers reaches each status: the first accepted,
# the last (its last link) has not answered; closed, both answered and reported.
LINKED_PATH: dict[Status, tuple[Status | None, Step]] = {
    **PATH,
    Status.DISPATCHED: (Status.TRIAGED, _dispatch_with_two_co_centers),
    Status.CLOSED: (Status.ACCEPTED, _close_after_every_co_center_reports),
}


def _walk(
    case: Case,
    clock: Clock,
    path: dict[Status, tuple[Status | None, Step]],
    status: Status,
    start: Status,
) -> None:
    steps: list[Step] = []
    current: Status | None = status
    while current is not None and current is not start:
        previous, step = path[current]
        steps.append(step)
        current = previous
    for step in reversed(steps):
        step(case, clock)
    assert case.status is status


def case_in(status: Status, channel: Channel = Channel.WINDOW) -> tuple[Case, Clock]:
    """A case brought to ``status`` along the canonical path, and its clock.

    Returned is reached only by a handed-down case whose center refuses the order.
    """
    if status is Status.RETURNED:
        _, case, clock = handed_down()
        case.refuse(case.tenant, "not a matter for this village", "director-1", clock())
        return case, clock
    clock = Clock()
    case = receive(channel=channel, at=clock.now)
    _walk(case, clock, PATH, status, Status.RECEIVED)
    return case, clock


def handed_over_in(status: Status) -> tuple[Case, Clock]:
    """A township's case for a village's escalation, brought to ``status``.

    A status no handed-over case reaches on its own path gives a plain case
    (every command checks the status first).
    """
    if status not in HANDED_OVER_PATH and status is not Status.TRIAGED:
        return case_in(status)
    _, case, clock = escalated_up()
    _walk(case, clock, HANDED_OVER_PATH, status, Status.TRIAGED)
    return case, clock


def linked_case_in(status: Status) -> tuple[Case, Clock]:
    """A case with lower co-centers, one accepted and its last link not answered
    (escalated: the upper center).

    Triaged: the co-village accepted, then the lead village returned the order,
    which ended the dispatch (the co-village's order went back too).
    Received and the terminal statuses other than closed give a plain case.
    """
    if status is Status.TRIAGED:
        case, clock = dispatched_down(VILLAGE, VILLAGE_2)
        returned, co = case.links
        case.note_linked_acceptance(co.case_id, "router", clock())
        case.note_linked_refusal(returned.case_id, "not a matter for this village", "router",
                                 clock())
        return case, clock
    if status not in LINKED_PATH or status is Status.ESCALATED:
        return case_in(status)
    clock = Clock()
    case = receive(at=clock.now)
    _walk(case, clock, LINKED_PATH, status, Status.RECEIVED)
    return case, clock


def last_link(case: Case) -> UUID:
    """The case the latest hand-over went to (an unlinked id when there is none)."""
    return case.links[-1].case_id if case.links else earlier_case(case.tenant)


def reporting_link(case: Case) -> UUID:
    """The latest linked case that may report an outcome: the upper center, or a lower
    one that accepted the order or whose order ended (an unlinked id when there is none)."""
    for link in reversed(case.links):
        answer = case.assignment(link.tenant)
        if link.direction is Direction.UP or answer is None or answer.accepted_at is not None:
            return link.case_id
    return last_link(case)


# Commands called with valid arguments, so that only the status decides.
COMMANDS: dict[str, Step] = {
    "triage": lambda c, t: c.triage(
        Severity.ORANGE, HandlingClass.SIMPLE, CALENDAR_2026, "dispatcher-1", t()
    ),
    "dispatch": lambda c, t: c.dispatch(joint_dispatch(), "dispatcher-1", t()),
    "accept": lambda c, t: c.accept(CO_UNIT, "officer-2", t()),
    "refuse": lambda c, t: c.refuse(CO_UNIT, "not our duty", "officer-2", t()),
    "report_progress": lambda c, t: c.report_progress("met both parties", "officer-1", t()),
    "urge": lambda c, t: c.urge(
        Instrument.WORK_PROMPT_LETTER, LEAD, "response overdue", "director-1", t()
    ),
    "escalate": lambda c, t: c.escalate(COUNTY, "deadlines keep slipping", "director-1", t()),
    "resolve": lambda c, t: c.resolve(Outcome.HANDLED, "repaired the pipe", "officer-1", t()),
    "give_feedback": lambda c, t: c.give_feedback("the pipe was repaired", "clerk-1", t()),
    "confirm": lambda c, t: c.confirm("party-1", t()),
    "reject_result": lambda c, t: c.reject_result("still leaking", "party-1", t()),
    "evaluate": lambda c, t: c.evaluate(5, "满意", "party-1", t()),
    "close": lambda c, t: c.close("clerk-1", t()),
    "reopen": lambda c, t: c.reopen("leaking again", "clerk-1", t()),
    "merge_into": lambda c, t: c.merge_into(
        Case.create_id(TOWNSHIP, "ZZ-2026-000000"), "clerk-1", t()
    ),
    "withdraw": lambda c, t: c.withdraw("settled privately", "clerk-1", t()),
    "raise_severity": lambda c, t: c.raise_severity(
        Severity.ORANGE, "more households joined", "director-1", t()
    ),
    "mark_group_matter": lambda c, t: c.mark_group_matter(
        "thirty households signed", "director-1", t()
    ),
    "keep_separate": lambda c, t: c.keep_separate(
        earlier_case(c.tenant), "a different flat, same building", "clerk-1", t()
    ),
    "note_linked_acceptance": lambda c, t: c.note_linked_acceptance(last_link(c), "router", t()),
    "note_linked_refusal": lambda c, t: c.note_linked_refusal(
        last_link(c), "not a matter for this village", "router", t()
    ),
    "note_linked_progress": lambda c, t: c.note_linked_progress(
        last_link(c), "mediators visited", "router", t()
    ),
    "note_linked_outcome": lambda c, t: c.note_linked_outcome(
        reporting_link(c), Outcome.MEDIATED, "mediated above", "router", t()
    ),
    "close_with_origin": lambda c, t: c.close_with_origin("router", t()),
    "rework": lambda c, t: c.rework("the party rejected the result", "router", t()),
    "withdraw_with_origin": lambda c, t: c.withdraw_with_origin(
        "the origin was withdrawn", "router", t()
    ),
}


# -- a JSON round trip like the store's, to prove events survive transcoding ----


def _dataclass_transcoding(cls: type) -> Transcoding:
    class DataclassAsDict(Transcoding):
        type = cls
        name = f"{cls.__module__}.{cls.__qualname__}"

        def encode(self, obj: Any) -> dict[str, Any]:
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

        def decode(self, data: dict[str, Any]) -> Any:
            return cls(**data)

    return DataclassAsDict()


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


def json_transcoder() -> JSONTranscoder:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DateAsISO()):
        transcoder.register(transcoding)
    for cls in TRANSCODED_TYPES:
        if dataclasses.is_dataclass(cls):
            transcoder.register(_dataclass_transcoding(cls))
    return transcoder


TRANSCODER = json_transcoder()


def through_json(events: list[Any]) -> list[Any]:
    """The events as they come back from a JSON store: tuples become lists, StrEnums str."""
    return [type(e)(**TRANSCODER.decode(TRANSCODER.encode(e.__dict__))) for e in events]


def replay(events: list[Any]) -> Case:
    case = functools.reduce(lambda agg, e: e.mutate(agg), events, None)
    assert isinstance(case, Case)
    return case
