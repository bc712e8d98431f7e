"""Value types of a case: enums and frozen dataclasses carried in its events.

Every type here is JSON-transcodable field by field (``cls(**fields)``): fields
hold str, int, float, bool, None, datetime, UUID, list, dict, enums and
dataclasses of this package only (never tuples). Enum fields are restored from
their plain string in ``__post_init__``, because JSON turns a StrEnum into a str.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from domain.checks import require_member, require_text

__all__ = [
    "Assignee",
    "AssigneeKind",
    "Assignment",
    "Channel",
    "Direction",
    "Instrument",
    "Link",
    "Outcome",
    "Party",
    "PartyRole",
    "Personal",
    "Place",
    "Status",
    "Urging",
]


class Channel(StrEnum):
    """How a matter came in (DOMAIN.md rule 1: one entrance, one number)."""

    WINDOW = "window"
    HOTLINE_12345 = "hotline-12345"
    GRID_PATROL = "grid-patrol"
    CITIZEN_APP = "citizen-app"
    PETITION = "petition"
    CAMERA = "camera"
    HANDOVER = "handover"  # dispatched down or escalated up by another center


class Status(StrEnum):
    """Where a case stands in the closed loop."""

    RECEIVED = "received"
    TRIAGED = "triaged"
    DISPATCHED = "dispatched"
    ACCEPTED = "accepted"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    FEEDBACK_GIVEN = "feedback-given"
    CONFIRMED = "confirmed"
    CLOSED = "closed"
    MERGED = "merged"
    WITHDRAWN = "withdrawn"
    RETURNED = "returned"  # a center refused an order from above: back to the sender


class AssigneeKind(StrEnum):
    """Who a case is dispatched to: a stationed unit, a lower-tier center, a grid worker."""

    UNIT = "unit"
    CENTER = "center"
    GRID_WORKER = "grid-worker"


class Outcome(StrEnum):
    """How a case was resolved (DOMAIN.md rule 7: mediation first, litigation last)."""

    MEDIATED = "mediated"
    HANDLED = "handled"
    REFERRED_TO_COURT = "referred-to-court"
    NO_ACTION_WARRANTED = "no-action-warranted"


class Instrument(StrEnum):
    """The supervision ladder, "two letters and one sheet" (DOMAIN.md rule 5)."""

    WORK_PROMPT_LETTER = "work-prompt-letter"  # 工作提示函
    RISK_WARNING_LETTER = "risk-warning-letter"  # 风险预警函
    TASK_ASSIGNMENT_SHEET = "task-assignment-sheet"  # 任务交办单


class PartyRole(StrEnum):
    """A party's role in a matter."""

    APPLICANT = "applicant"
    RESPONDENT = "respondent"
    OTHER = "other"


_PHONE = re.compile(r"1\d{10}")
_ID_NUMBER = re.compile(r"\d{17}[\dXx]|\d{15}")
_SHORT_TEXT = 4  # names: keep the surname, mask the rest


@dataclass(frozen=True, repr=False)
class Personal:
    """A citizen's personal field (name, phone, id number, address).

    ``text`` is None when it can no longer be read: the tenant's key was
    destroyed (crypto-shredding). repr() and str() show the masked form only.
    """

    text: str | None

    @property
    def shredded(self) -> bool:
        return self.text is None

    def masked(self) -> str:
        """张** for a name, 138****1234 for a phone, 330***********1234 for an id."""
        text = self.text
        if text is None:
            return "[shredded]"
        if _PHONE.fullmatch(text):
            return f"{text[:3]}****{text[-4:]}"
        if _ID_NUMBER.fullmatch(text):
            return f"{text[:3]}{'*' * (len(text) - 7)}{text[-4:]}"
        if len(text) <= _SHORT_TEXT:
            return text[:1] + "*" * (len(text) - 1)
        keep = min(6, len(text) // 2)
        return text[:keep] + "*" * (len(text) - keep)

    def __repr__(self) -> str:
        return f"Personal({self.masked()!r})"

    def __str__(self) -> str:
        return self.masked()


@dataclass(frozen=True)
class Party:
    """A party to a matter; personal fields are encrypted at rest and masked in views."""

    name: Personal
    phone: Personal | None = None
    id_number: Personal | None = None
    address: Personal | None = None
    role: str = PartyRole.APPLICANT.value

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "role", require_member(PartyRole, self.role, "a party's role").value
        )


@dataclass(frozen=True)
class Place:
    """Where a matter happened: a division code, an address, optional coordinates."""

    division: str
    address: str
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class Assignee:
    """Who a case is dispatched to: a department, a lower-tier center (its code), a grid worker."""

    kind: AssigneeKind
    ref: str
    lead: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "kind", require_member(AssigneeKind, self.kind, "an assignee's kind")
        )
        require_text(self.ref, "an assignee's ref")


@dataclass(frozen=True)
class Assignment:
    """An assignee of the current dispatch, and when it accepted (None: not yet answered).

    A refusal removes the assignment (a lead's refusal removes them all), so an
    assignment on the case has either accepted or not answered yet.
    """

    assignee: Assignee
    accepted_at: datetime | None = None


@dataclass(frozen=True)
class Urging:
    """One supervision instrument issued on a case."""

    instrument: Instrument
    responsible_unit: str | None
    reason: str
    by: str
    at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "instrument", Instrument(self.instrument))


class Direction(StrEnum):
    """Where a linked case lies relative to this one: a tier up or a tier down."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Link:
    """A case in another center that this case is linked to by a hand-over.

    On the sending case, one link per hand-over it made (an escalation up, or
    one per center of a dispatch down), with that case's outcome once reported.
    On the receiving case, its ``origin``: the sending case. ``lead`` says
    whether the linked center leads (an escalation target always does).
    """

    case_id: UUID
    tenant: str
    direction: Direction
    lead: bool = True
    outcome: Outcome | None = None
    returned: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "case_id", _uuid(self.case_id))
        object.__setattr__(self, "direction", Direction(self.direction))
        if self.outcome is not None:
            object.__setattr__(self, "outcome", Outcome(self.outcome))

    @property
    def pending(self) -> bool:
        """Still owes an outcome (not reported, not returned)."""
        return self.outcome is None and not self.returned


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
