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
    HandlingClass,
    Instrument,
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
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CST)  # a Monday

LEAD = "justice-office"
CO_UNIT = "police"


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


def receive(
    channel: Channel = Channel.WINDOW,
    tenant: str = TOWNSHIP,
    case_number: str = "ZZ-2026-000001",
    category: str = "neighbour-dispute",
    at: datetime = T0,
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
    )


def joint_dispatch() -> list[Assignee]:
    return [
        Assignee(AssigneeKind.UNIT, LEAD, lead=True),
        Assignee(AssigneeKind.UNIT, CO_UNIT, lead=False),
    ]


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


def case_in(status: Status, channel: Channel = Channel.WINDOW) -> tuple[Case, Clock]:
    """A case brought to ``status`` along the canonical path, and its clock."""
    clock = Clock()
    steps: list[Step] = []
    current: Status | None = status
    while current is not None and current is not Status.RECEIVED:
        previous, step = PATH[current]
        steps.append(step)
        current = previous
    case = receive(channel=channel, at=clock.now)
    for step in reversed(steps):
        step(case, clock)
    assert case.status is status
    return case, clock


# Commands called with valid arguments, so that only the status decides.
COMMANDS: dict[str, Step] = {
    "triage": lambda c, t: c.triage(
        Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "dispatcher-1", t()
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
