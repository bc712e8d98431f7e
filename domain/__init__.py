"""zongzhi's pure domain: aggregates, policies and errors (stdlib + eventsourcing.domain)."""

from __future__ import annotations

from domain.alert import AlertStatus, CameraAlert
from domain.calendar import CalendarBasis, Deadline, WorkingCalendar
from domain.camera import Camera, RuleKind, Zone, ZoneRule
from domain.case import Case
from domain.categories import CATEGORIES, DEPARTMENTS, Category, category
from domain.codes import (
    Tier,
    city_of,
    is_within,
    new_stream_id,
    parent_of,
    stream_id,
    tenant_of,
    tier_of,
)
from domain.deadlines import (
    HandlingClass,
    Severity,
    handling_deadline,
    response_deadline,
)
from domain.errors import (
    DeadlineInPast,
    DomainError,
    IllegalTransition,
    UnknownCategory,
    ValidationError,
)
from domain.transitions import LEGAL_FROM
from domain.values import (
    Assignee,
    AssigneeKind,
    Assignment,
    Channel,
    Direction,
    Instrument,
    Link,
    Outcome,
    Party,
    PartyRole,
    Personal,
    Place,
    Status,
    Urging,
)

#: Every enum and dataclass that can appear in an event payload or in a Case's
#: state (for snapshots). Dataclasses rebuild with ``cls(**fields)``; encode them
#: field by field (not ``dataclasses.asdict``, which flattens nested ones).
TRANSCODED_TYPES: tuple[type, ...] = (
    # enums
    CalendarBasis,
    Channel,
    Direction,
    Severity,
    HandlingClass,
    AssigneeKind,
    Outcome,
    Instrument,
    PartyRole,
    Status,
    Tier,
    RuleKind,
    AlertStatus,
    # frozen dataclasses
    Deadline,
    Personal,
    Party,
    Place,
    Assignee,
    Assignment,
    Urging,
    Link,
    ZoneRule,
    Zone,
)

__all__ = [
    "CATEGORIES",
    "DEPARTMENTS",
    "LEGAL_FROM",
    "TRANSCODED_TYPES",
    "AlertStatus",
    "Assignee",
    "AssigneeKind",
    "Assignment",
    "CalendarBasis",
    "Camera",
    "CameraAlert",
    "Case",
    "Category",
    "Channel",
    "Deadline",
    "DeadlineInPast",
    "Direction",
    "DomainError",
    "HandlingClass",
    "IllegalTransition",
    "Instrument",
    "Link",
    "Outcome",
    "Party",
    "PartyRole",
    "Personal",
    "Place",
    "RuleKind",
    "Severity",
    "Status",
    "Tier",
    "UnknownCategory",
    "Urging",
    "ValidationError",
    "WorkingCalendar",
    "Zone",
    "ZoneRule",
    "category",
    "city_of",
    "handling_deadline",
    "is_within",
    "new_stream_id",
    "parent_of",
    "response_deadline",
    "stream_id",
    "tenant_of",
    "tier_of",
]
