"""Closed-loop inspection (闭环核查): did each closed case really close its loop?

For every case of a subtree whose loop closed (a ``Closed`` event, the party's
loop) in a period, :func:`inspect_case` replays its events and checks the last
round (from receipt, or the last re-opening) against the rules of
docs/audit.md ("Closed-loop inspection"): every required step present
(intake, dispatch, acceptance, resolution, feedback, party confirmation,
evaluation, closure), in that order, within its deadlines, by the right
actors. Each finding is a :class:`Violation` with a stable code and a message
naming the rule; :func:`inspect` gathers them per case, per unit and per
tenant. Everything comes from the events alone (decoded without decrypting
personal fields), so an auditor can recompute the report from an export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from audit.chain import AuditError
from domain import Case, HandlingClass, Status, Tier, WorkingCalendar, is_within, tier_of
from domain.deadlines import PROGRESS_WORKING_DAYS
from projections.views import view_transcoder
from tenants.persistence import LOG_GROUP, Factory, log_group_schema
from tenants.service import Tenants

__all__ = [
    "CODES",
    "CaseInspection",
    "InspectionReport",
    "TenantTally",
    "UnitTally",
    "Violation",
    "cities_of",
    "closed_streams",
    "inspect",
    "inspect_case",
]

#: Every violation code and the rule it states (docs/audit.md lists the same).
CODES: dict[str, str] = {
    "MISSING_TRIAGE": "each round is triaged (severity and deadlines) before it is dispatched",
    "MISSING_DISPATCH": "a closed case was dispatched (or escalated) before it was resolved",
    "MISSING_ACCEPTANCE": "the lead assignee accepted the dispatch before the result",
    "MISSING_RESOLUTION": "a closed case has a recorded result",
    "MISSING_FEEDBACK": "the result was fed back to the party before closure",
    "MISSING_CONFIRMATION": "a case is closed only after the party confirmed the result",
    "MISSING_EVALUATION": "the party evaluated the result (satisfaction)",
    "OUT_OF_ORDER": "the loop's steps come in order: intake, dispatch, acceptance, "
                    "resolution, feedback, confirmation, closure (evaluation after "
                    "confirmation)",
    "DISPATCH_LATE": "a case is dispatched before its response deadline",
    "ACCEPTANCE_LATE": "the lead accepts before the response deadline",
    "RESOLUTION_LATE": "a simple or difficult matter is resolved by its handling deadline",
    "PROGRESS_LATE": "a complex matter reports progress (or its result) within "
                     f"{PROGRESS_WORKING_DAYS} working days, and again within "
                     f"{PROGRESS_WORKING_DAYS} after each report",
    "RESOLVED_NOT_BY_LEAD": "the result is recorded for the lead assignee that accepted",
    "CONFIRMED_BY_RESOLVER": "the party's confirmation is not recorded by the actor "
                             "who recorded the result",
    "EVALUATED_BY_RESOLVER": "the party's evaluation is not recorded by the actor who "
                             "recorded the result",
}

#: The loop's steps in their required order (evaluation is checked against confirmation).
STEPS = ("intake", "dispatch", "acceptance", "resolution", "feedback", "confirmation",
         "closure")
PROVINCE_DIGITS = 2
CLOSED_TOPIC = get_topic(getattr(Case, "Closed"))  # noqa: B009 (made by @event: mypy cannot see it)


@dataclass(frozen=True)
class Violation:
    """One broken rule on one case; ``unit`` is who answers for it: the lead
    assignee for acceptance, handling and result, else the center itself."""

    code: str
    message: str
    case_id: UUID
    case_number: str
    tenant: str
    unit: str
    step: str
    at: datetime | None = None  # when the offending act happened (None: it did not)
    deadline: datetime | None = None

    @property
    def rule(self) -> str:
        return CODES[self.code]


@dataclass(frozen=True)
class CaseInspection:
    case_id: UUID
    case_number: str
    tenant: str
    closed_at: datetime
    round: int  # 1 for the first receipt, +1 per re-opening
    violations: tuple[Violation, ...]

    @property
    def clean(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class UnitTally:
    tenant: str
    unit: str
    violations: int
    cases: int  # distinct cases with a violation against this unit


@dataclass(frozen=True)
class TenantTally:
    tenant: str
    inspected: int
    clean: int
    violations: int


@dataclass(frozen=True)
class InspectionReport:
    scope: str
    start: datetime
    end: datetime
    cases: tuple[CaseInspection, ...]  # every inspected case, clean ones included

    @property
    def inspected(self) -> int:
        return len(self.cases)

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(v for c in self.cases for v in c.violations)

    def by_code(self) -> dict[str, int]:
        counts = Counter(v.code for v in self.violations)
        return {code: counts[code] for code in CODES if counts[code]}

    def by_unit(self) -> tuple[UnitTally, ...]:
        violations: Counter[tuple[str, str]] = Counter()
        cases: dict[tuple[str, str], set[UUID]] = {}
        for v in self.violations:
            violations[(v.tenant, v.unit)] += 1
            cases.setdefault((v.tenant, v.unit), set()).add(v.case_id)
        return tuple(UnitTally(t, u, violations[(t, u)], len(cases[(t, u)]))
                     for t, u in sorted(violations))

    def by_tenant(self) -> tuple[TenantTally, ...]:
        tally: dict[str, list[int]] = {}
        for c in self.cases:
            row = tally.setdefault(c.tenant, [0, 0, 0])
            row[0] += 1
            row[1] += c.clean
            row[2] += len(c.violations)
        return tuple(TenantTally(t, *tally[t]) for t in sorted(tally))


# -- one case ----------------------------------------------------------------------


def _kind(event: Any) -> str:
    return type(event).__name__


def _last(events: Sequence[Any], *kinds: str) -> Any:
    return next((e for e in reversed(events) if _kind(e) in kinds), None)


def inspect_case(events: Sequence[Any], calendar: WorkingCalendar) -> CaseInspection | None:
    """Check a case's closed loop from its decoded events (version order); None
    unless its party's loop is closed now (status closed by ``Closed``)."""
    case: Case | None = None
    for e in events:
        case = e.mutate(case)
    if not isinstance(case, Case) or case.status is not Status.CLOSED \
            or case.closed_at is None:
        return None
    closure = _last(events, "Closed", "ClosedWithOrigin")
    if closure is None or _kind(closure) != "Closed":
        return None  # a linked case: its loop is its origin's (inspected there)
    start = max((i for i, e in enumerate(events) if _kind(e) == "Reopened"), default=0)
    loop = list(events[start:])
    found: list[Violation] = []

    def flag(code: str, message: str, step: str, unit: str | None = None,
             at: datetime | None = None, deadline: datetime | None = None) -> None:
        found.append(Violation(code, f"{message} ({CODES[code]})", case.id, case.case_number,
                               case.tenant, unit or case.tenant, step, at, deadline))

    # The steps that count: the last of each in the round, before or at closure.
    resolution = _last(loop, "Resolved", "LinkedOutcomeNoted")
    if resolution is not None and _kind(resolution) == "LinkedOutcomeNoted" \
            and not resolution.resolves:
        resolution = next((e for e in reversed(loop) if _kind(e) == "Resolved"
                           or (_kind(e) == "LinkedOutcomeNoted" and e.resolves)), None)
    escalations = {e.linked_case for e in loop if _kind(e) == "Escalated"}
    escalated_route = resolution is not None and _kind(resolution) == "LinkedOutcomeNoted" \
        and resolution.linked_case in escalations
    dispatch = _last(loop, "Escalated") if escalated_route else _last(loop, "Dispatched")
    first_route = next((e for e in loop if _kind(e) in ("Dispatched", "Escalated")), None)
    lead = next((a.ref for a in dispatch.assignees if a.lead), None) \
        if dispatch is not None and _kind(dispatch) == "Dispatched" else None
    acceptance = None
    if dispatch is not None and not escalated_route:
        acceptance = next((e for e in reversed(loop) if _kind(e) == "Accepted" and e.lead
                           and e.originator_version > dispatch.originator_version), None)
    feedback = _last(loop, "FeedbackGiven")
    confirmation = _last(loop, "Confirmed")
    evaluation = _last(loop, "Evaluated")
    unit = lead or case.tenant

    # 1. Every step present.
    if not any(_kind(e) == "Triaged" for e in loop) and case.respond_by is None:
        flag("MISSING_TRIAGE", "no triage in the round: no deadline applied to it", "triage")
    if first_route is None:
        flag("MISSING_DISPATCH", "no dispatch or escalation in the round", "dispatch")
    elif acceptance is None and not escalated_route:
        flag("MISSING_ACCEPTANCE", f"no acceptance by the lead {lead or '(none)'} of the"
             " last dispatch", "acceptance", unit)
    for event, step, code in ((resolution, "resolution", "MISSING_RESOLUTION"),
                              (feedback, "feedback", "MISSING_FEEDBACK"),
                              (confirmation, "confirmation", "MISSING_CONFIRMATION"),
                              (evaluation, "evaluation", "MISSING_EVALUATION")):
        if event is None:
            flag(code, f"no {step} recorded in the round", step)

    # 2. In order (by version: the order the events were recorded in).
    steps = dict(zip(STEPS, (loop[0], dispatch, acceptance, resolution, feedback,
                             confirmation, closure), strict=True))
    previous: tuple[str, Any] | None = None
    for step in STEPS:
        event = steps[step]
        if event is None:
            continue
        if previous is not None and event.originator_version < previous[1].originator_version:
            flag("OUT_OF_ORDER", f"{step} (v{event.originator_version}) was recorded before "
                 f"{previous[0]} (v{previous[1].originator_version})", step,
                 at=getattr(event, "at", None))
        previous = (step, event)
    if evaluation is not None and confirmation is not None \
            and evaluation.originator_version < confirmation.originator_version:
        flag("OUT_OF_ORDER", f"evaluation (v{evaluation.originator_version}) was recorded "
             f"before confirmation (v{confirmation.originator_version})", "evaluation",
             at=evaluation.at)

    # 3. Within the deadlines of the round (recorded by triage, or by the hand-over).
    respond_by = case.respond_by.by if case.respond_by else None
    dispatched_late = False
    if respond_by is not None and first_route is not None and first_route.at > respond_by:
        dispatched_late = True
        what = "dispatch" if _kind(first_route) == "Dispatched" else "escalation"
        flag("DISPATCH_LATE", f"first {what} at {first_route.at.isoformat()}, response "
             f"deadline {respond_by.isoformat()}", "dispatch", at=first_route.at,
             deadline=respond_by)
    if respond_by is not None and acceptance is not None and not dispatched_late \
            and acceptance.at > respond_by:
        flag("ACCEPTANCE_LATE", f"{acceptance.ref} accepted at {acceptance.at.isoformat()}, "
             f"response deadline {respond_by.isoformat()}", "acceptance", acceptance.ref,
             acceptance.at, respond_by)
    handle_by = case.handle_by.by if case.handle_by else None
    if handle_by is not None and resolution is not None:
        if case.handling is HandlingClass.COMPLEX:
            due = handle_by
            for e in loop:
                if _kind(e) not in ("ProgressReported", "LinkedProgressNoted") \
                        and e is not resolution:
                    continue
                if e.at > due:
                    flag("PROGRESS_LATE", f"{'result' if e is resolution else 'progress'} "
                         f"at {e.at.isoformat()}, progress due {due.isoformat()}",
                         "resolution", unit, e.at, due)
                    break
                if e is resolution:
                    break
                due = calendar.add_working_days(e.at, PROGRESS_WORKING_DAYS).by
        elif resolution.at > handle_by:
            flag("RESOLUTION_LATE", f"result at {resolution.at.isoformat()}, handling "
                 f"deadline {handle_by.isoformat()}", "resolution", unit, resolution.at,
                 handle_by)

    # 4. By the right actors.
    own_result = resolution is not None and _kind(resolution) == "Resolved"
    if own_result and lead is not None and resolution.resolved_by_unit != lead:
        flag("RESOLVED_NOT_BY_LEAD", f"result recorded for {resolution.resolved_by_unit!r}, "
             f"the lead that accepted is {lead!r}", "resolution", unit, resolution.at)
    if own_result and confirmation is not None and confirmation.by == resolution.by:
        flag("CONFIRMED_BY_RESOLVER", f"confirmation recorded by {confirmation.by!r}, who "
             "recorded the result", "confirmation", resolution.resolved_by_unit or unit,
             confirmation.at)
    if own_result and evaluation is not None and evaluation.by == resolution.by:
        flag("EVALUATED_BY_RESOLVER", f"evaluation recorded by {evaluation.by!r}, who "
             "recorded the result", "evaluation", resolution.resolved_by_unit or unit,
             evaluation.at)
    return CaseInspection(case.id, case.case_number, case.tenant, case.closed_at,
                          case.repeat_count + 1, tuple(found))


# -- a subtree and period ------------------------------------------------------------------


def _mapper(tenants: Tenants, city: str) -> Mapper[UUID]:
    """Decodes a city's events with personal fields left unread (never decrypted)."""
    factory = Factory({**tenants.env, LOG_GROUP: city})
    mapper: Mapper[UUID] = factory.mapper(transcoder=view_transcoder())
    return mapper


def cities_of(tenants: Tenants, scope: str) -> list[str]:
    """The log groups holding ``scope``'s subtree: its city, or for a province
    (an auditor's scope, 2 digits) every registered city in it."""
    is_within(scope, scope)  # ValidationError for anything but a province or a center
    if len(scope) == PROVINCE_DIGITS:
        return sorted(c.code for c in tenants.registry.all()
                      if c.tier is Tier.CITY and c.code.startswith(scope))
    tier_of(scope)
    tenants.registry.get(scope)  # UnknownTenant
    return [scope[:4]]


def closed_streams(tenants: Tenants, scope: str) -> Iterator[list[Any]]:
    """The decoded events (version order) of every case of ``scope``'s subtree
    (a center's, or a province's) that has a ``Closed`` event, one list per
    case, city by city in case id order."""
    for city in cities_of(tenants, scope):
        yield from _closed_in(tenants, city, scope)


def _closed_in(tenants: Tenants, city: str, scope: str) -> Iterator[list[Any]]:
    mapper = _mapper(tenants, city)
    schema = Identifier(log_group_schema(city))
    statement = SQL(
        "SELECT originator_id, originator_version, topic, state FROM {0}.events "
        "WHERE tenant LIKE %(scope)s AND originator_id IN (SELECT originator_id FROM "
        "{0}.events WHERE tenant LIKE %(scope)s AND topic = %(closed)s) "
        "ORDER BY originator_id, originator_version").format(schema)
    with tenants.datastore_for(city).get_connection() as conn, conn.transaction(), \
            conn.cursor(name="audit_inspection", row_factory=tuple_row, binary=True) as cur:
        cur.itersize = 2000
        cur.execute(statement, {"scope": scope + "%", "closed": CLOSED_TOPIC})
        current: UUID | None = None
        events: list[Any] = []
        for oid, version, topic, state in cur:
            if oid != current:
                if events:
                    yield events
                current, events = oid, []
            event = mapper.to_domain_event(StoredEvent(oid, version, topic, bytes(state)))
            events.append(event)
        if events:
            yield events


def _period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise AuditError("a period's bounds must be timezone-aware")
    if not start < end:
        raise AuditError(f"a period starts before it ends; {start.isoformat()} is not "
                         f"before {end.isoformat()}")


def inspect(tenants: Tenants, scope: str, start: datetime, end: datetime) -> InspectionReport:
    """Inspect every case of ``scope`` (a center, or a province) and below whose
    loop closed (its current closure's business time) in ``[start, end)``."""
    _period(start, end)
    calendar = tenants.calendar()
    found = []
    for events in closed_streams(tenants, scope):
        checked = inspect_case(events, calendar)
        if checked is not None and start <= checked.closed_at < end:
            found.append(checked)
    found.sort(key=lambda c: (c.tenant, c.closed_at, c.case_number))
    return InspectionReport(scope, start, end, tuple(found))
