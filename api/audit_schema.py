"""GraphQL for inspectors and auditors: the inspection report, callback samples,
recording a callback, and the KPI report (docs/audit.md, docs/api.md).

``AuditQuery`` and ``AuditMutation`` are bases of the schema's ``Query`` and
``Mutation`` (``api.schema``). Authorization, as everywhere, through
``api.authz``: the inspection report and a callback sample need
``inspection:run`` (inspectors) or ``audit:read`` (auditors, read-only) over
the whole subtree asked for; recording a callback needs ``inspection:run`` at
the case's center; the KPI report needs ``kpi:read`` over the subtree. Anything
else is ``FORBIDDEN`` and nothing is read or written. The same checks guard the
spreadsheet downloads (``api.reports``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from api.auth import Principal
from api.authz import Action, Authorizer, Scope
from api.context import Context
from api.errors import ApiError, forbidden
from api.guards import check_first
from api.ids import center_of, stream_id
from api.limits import DEFAULT_FIRST
from api.privacy import mask_party
from audit import callbacks as callback_service
from audit import history as history_service
from audit import inspection as inspection_service
from audit import reports as report_service
from audit.chain import AuditError
from domain import (
    AssigneeKind,
    Channel,
    HandlingClass,
    Instrument,
    Outcome,
    PartyRole,
    Severity,
    Status,
    WorkingCalendar,
    is_within,
)
from domain import Case as DomainCase
from domain.case import CallbackResult
from domain.supervision import due_at

__all__ = [
    "READ_INSPECTION",
    "AuditMutation",
    "AuditQuery",
    "authorize_subtree",
    "case_as_of",
    "center_as_of",
    "history_page",
    "inspection_report",
    "kpi_report",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
GInfo = Info[Context, None]

#: Who may read an inspection report or draw a callback sample: inspectors (who
#: run inspections) and auditors (who read everything, change nothing).
READ_INSPECTION = (Action.INSPECTION_RUN, Action.AUDIT_READ)

strawberry.enum(CallbackResult)


def _field(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.field(description=description))


def _mutation(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(description=description))


def authorize_subtree(authorizer: Authorizer, principal: Principal,
                      actions: Sequence[Action], scope: str) -> None:
    """Allow when one of ``actions`` is granted to the principal at ``scope`` and
    below it (a subtree grant), else FORBIDDEN naming what was asked."""
    is_within(scope, scope)  # VALIDATION for anything but a center's or a province's code
    for action in actions:
        if authorizer.can(principal, action, scope) \
                and authorizer.scope(principal, action) is Scope.SUBTREE:
            return
    asked = " or ".join(actions)
    raise forbidden(f"{', '.join(principal.roles)} at center {principal.tenant} may not "
                    f"{asked} over center {scope} and its subtree")


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None:
        raise ApiError("VALIDATION",
                       f"{what} needs a time zone (e.g. +08:00); got {value.isoformat()}")
    return value


async def _off(function: Callable[..., T], *args: Any) -> T:
    try:
        return await run_in_threadpool(function, *args)
    except AuditError as e:
        raise ApiError("VALIDATION", str(e)) from e


def inspection_report(ctx: Context, scope: str, start: datetime, end: datetime
                      ) -> inspection_service.InspectionReport:
    """Authorized, then computed (blocking: run it off the event loop)."""
    authorize_subtree(ctx.services.authorizer, ctx.principal, READ_INSPECTION, scope)
    return inspection_service.inspect(ctx.services.tenants, scope, _aware(start, "from"),
                                      _aware(end, "to"))


def kpi_report(ctx: Context, scope: str, start: datetime, end: datetime
               ) -> report_service.KpiReport:
    authorize_subtree(ctx.services.authorizer, ctx.principal, (Action.KPI_READ,), scope)
    return report_service.kpi_report(ctx.services.tenants, scope, _aware(start, "from"),
                                     _aware(end, "to"), ctx.services.clock())


# -- history and as of --------------------------------------------------------------------

#: Longest event type name accepted in a filter (the longest is far shorter).
MAX_TYPE_LENGTH = 80
#: A cursor's position fits PostgreSQL's bigint.
MAX_CURSOR_DIGITS = 18


def _past(ctx: Context, value: datetime, what: str) -> datetime:
    """A zoned instant not after now: VALIDATION otherwise (the log cannot say
    what it will hold)."""
    _aware(value, what)
    now = ctx.services.clock()
    if value > now:
        raise ApiError("VALIDATION", f"{what} {value.isoformat()} is in the future "
                                     f"(now {now.isoformat()}): as of needs a past instant")
    return value


def _reachable_case(ctx: Context, case_id: object) -> UUID:
    """The case id if the asker may read the audit trail at the case's center
    (FORBIDDEN before anything about the case is read)."""
    cid = stream_id(case_id, "case")
    authorize_subtree(ctx.services.authorizer, ctx.principal, READ_INSPECTION, center_of(cid))
    return cid


def _cursor(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"history:{kind}:{key}".encode()).decode().rstrip("=")


def _after(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        label, found, key = text.rpartition(":")
        if label != f"history:{kind}" or not found or not key.isascii() \
                or not key.isdigit() or len(key) > MAX_CURSOR_DIGITS:
            raise ValueError(text)
        return int(key)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError("BAD_REQUEST", f"not a cursor of this history: {cursor!r}") from None


@dataclass(frozen=True)
class HistoryFilter:
    start: datetime | None
    end: datetime | None
    types: tuple[str, ...]
    actor: str | None

    @staticmethod
    def of(start: datetime | None, end: datetime | None, types: Sequence[str] | None,
           actor: str | None) -> HistoryFilter:
        if start is not None:
            _aware(start, "from")
        if end is not None:
            _aware(end, "to")
        if start is not None and end is not None and end < start:
            raise ApiError("VALIDATION", f"to ({end.isoformat()}) is before from "
                                         f"({start.isoformat()})")
        for t in types or ():
            if not t.strip() or len(t) > MAX_TYPE_LENGTH:
                raise ApiError("VALIDATION", f"an event type is a name such as Triaged "
                                             f"(1 to {MAX_TYPE_LENGTH} characters); got {t!r}")
        return HistoryFilter(start, end, tuple(t.strip() for t in types or ()),
                             actor.strip() or None if actor is not None else None)


def history_page(ctx: Context, code: str | None, case_id: object | None,
                 where: HistoryFilter, first: int,
                 after: str | None) -> tuple[list[history_service.Entry], bool, str]:
    """Authorized, then one page of a center's or a case's history (blocking)."""
    check_first(first)
    if case_id is not None:
        cid: UUID | None = _reachable_case(ctx, case_id)
        kind = "case"
    else:
        assert code is not None
        authorize_subtree(ctx.services.authorizer, ctx.principal, READ_INSPECTION, code)
        cid, kind = None, "center"
    found = history_service.history(
        ctx.services.tenants, tenant=None if cid else code, case_id=cid, since=where.start,
        until=where.end, types=where.types, actor=where.actor, limit=first + 1,
        after=_after(kind, after))
    return found[:first], len(found) > first, kind


def case_as_of(ctx: Context, case_id: object, at: datetime) -> CaseAsOf:
    """Authorized, then the case replayed as of ``at`` (blocking)."""
    cid = _reachable_case(ctx, case_id)
    instant = _past(ctx, at, "at")
    tenants = ctx.services.tenants
    case = history_service.case_as_of(tenants, cid, instant)
    state = None if case is None else CaseState.of(case, instant, tenants.calendar())
    return CaseAsOf(case_id=strawberry.ID(str(cid)), at=instant, existed=case is not None,
                    case=state)


def center_as_of(ctx: Context, code: str, at: datetime) -> history_service.TenantFigures:
    authorize_subtree(ctx.services.authorizer, ctx.principal, READ_INSPECTION, code)
    instant = _past(ctx, at, "at")
    return history_service.tenant_figures(ctx.services.tenants, code, instant)


# -- types ------------------------------------------------------------------------------

From = Annotated[datetime, strawberry.argument(
    name="from", description="Start of the period, inclusive (with a time zone).")]
To = Annotated[datetime, strawberry.argument(
    name="to", description="End of the period, exclusive (with a time zone).")]


@strawberry.type
class InspectionViolation:
    """One broken rule of the closed loop (docs/audit.md lists the codes)."""

    code: str
    rule: str
    message: str
    case_id: strawberry.ID
    case_number: str
    center: str
    unit: str
    step: str
    at: datetime | None
    deadline: datetime | None

    @staticmethod
    def of(v: inspection_service.Violation) -> InspectionViolation:
        return InspectionViolation(
            code=v.code, rule=v.rule, message=v.message, case_id=strawberry.ID(str(v.case_id)),
            case_number=v.case_number, center=v.tenant, unit=v.unit, step=v.step, at=v.at,
            deadline=v.deadline)


@strawberry.type
class InspectedCase:
    case_id: strawberry.ID
    case_number: str
    center: str
    closed_at: datetime
    round: int
    violations: list[InspectionViolation]


@strawberry.type
class CenterTally:
    center: str
    inspected: int
    clean: int
    violations: int


@strawberry.type
class UnitTally:
    center: str
    unit: str
    violations: int
    cases: int


@strawberry.type
class CodeTally:
    code: str
    rule: str
    violations: int


@strawberry.type
class InspectionReport:
    """Closed cases of a subtree whose loop closed in the period, checked."""

    scope: str
    start: datetime = strawberry.field(name="from")
    end: datetime = strawberry.field(name="to")
    inspected: int
    clean: int
    violation_count: int
    by_center: list[CenterTally]
    by_unit: list[UnitTally]
    by_code: list[CodeTally]
    cases: list[InspectedCase] = strawberry.field(
        description="The inspected cases that have a violation (clean ones are counted only).")

    @staticmethod
    def of(r: inspection_service.InspectionReport) -> InspectionReport:
        return InspectionReport(
            scope=r.scope, start=r.start, end=r.end, inspected=r.inspected,
            clean=sum(c.clean for c in r.cases), violation_count=len(r.violations),
            by_center=[CenterTally(center=t.tenant, inspected=t.inspected, clean=t.clean,
                                   violations=t.violations) for t in r.by_tenant()],
            by_unit=[UnitTally(center=u.tenant, unit=u.unit, violations=u.violations,
                               cases=u.cases) for u in r.by_unit()],
            by_code=[CodeTally(code=k, rule=inspection_service.CODES[k], violations=n)
                     for k, n in sorted(r.by_code().items())],
            cases=[InspectedCase(case_id=strawberry.ID(str(c.case_id)),
                                 case_number=c.case_number, center=c.tenant,
                                 closed_at=c.closed_at, round=c.round,
                                 violations=[InspectionViolation.of(v) for v in c.violations])
                   for c in r.cases if not c.clean])


@strawberry.type
class SampledCase:
    case_id: strawberry.ID
    case_number: str
    center: str
    closed_at: datetime
    rank: str
    callbacks: int
    satisfied: bool | None


@strawberry.type
class CallbackSample:
    """A reproducible sample of closed cases (docs/audit.md, "Callbacks")."""

    scope: str
    start: datetime = strawberry.field(name="from")
    end: datetime = strawberry.field(name="to")
    salt: str
    seed: str
    population: int
    cases: list[SampledCase]


@strawberry.type
class CallbackRecord:
    case_id: strawberry.ID
    case_number: str
    result: CallbackResult
    satisfied: bool | None
    note: str
    by: str
    at: datetime


@strawberry.type
class KpiReportRow:
    """One center with its subtree; columns as in the spreadsheet (docs/kpis.md)."""

    center: str
    name: str
    matters: int
    withdrawn: int
    resolved: int
    resolution_rate: float | None
    referred_to_court: int
    repeat_complaints: int
    closed_at_least_once: int
    repeat_complaint_rate: float | None
    satisfied: int
    evaluated: int
    satisfaction: float | None
    response_median_hours: float | None
    handling_median_hours: float | None
    on_time_rate: float | None
    overdue_now: int
    resolved_at_township_or_below: float | None
    refusals: int

    @staticmethod
    def of(row: report_service.KpiRow) -> KpiReportRow:
        k = row.kpis
        return KpiReportRow(
            center=row.center, name=row.name, matters=k.matters, withdrawn=k.withdrawn,
            resolved=k.resolution_rate.numerator, resolution_rate=k.resolution_rate.value,
            referred_to_court=k.referred_to_court,
            repeat_complaints=k.repeat_complaint_rate.numerator,
            closed_at_least_once=k.repeat_complaint_rate.denominator,
            repeat_complaint_rate=k.repeat_complaint_rate.value,
            satisfied=k.satisfaction.numerator, evaluated=k.satisfaction.denominator,
            satisfaction=k.satisfaction.value,
            response_median_hours=k.response_time.median_hours,
            handling_median_hours=k.handling_time.median_hours,
            on_time_rate=k.on_time_rate.value, overdue_now=k.overdue_now,
            resolved_at_township_or_below=k.resolved_at_township_or_below.value,
            refusals=k.refusals)


@strawberry.type
class KpiReport:
    scope: str
    start: datetime = strawberry.field(name="from")
    end: datetime = strawberry.field(name="to")
    as_of: datetime
    rows: list[KpiReportRow]


@strawberry.type
class HistoryDetail:
    """Another scalar field of the event (never a personal one)."""

    name: str
    value: str


@strawberry.type
class HistoryEntry:
    """One event: what, who, when (as the actor gave it, and as recorded) and why."""

    position: int = strawberry.field(description="The event's place in its center's log.")
    case_id: strawberry.ID
    version: int = strawberry.field(description="The event's version in its case.")
    type: str
    by: str | None
    at: datetime | None = strawberry.field(description="Business time, as the actor gave it.")
    recorded: datetime | None = strawberry.field(
        description="When the event was recorded (what as-of replays go by).")
    why: str | None = strawberry.field(description="Reason, note, comment or summary.")
    details: list[HistoryDetail]

    @staticmethod
    def of(e: history_service.Entry) -> HistoryEntry:
        return HistoryEntry(
            position=e.position, case_id=strawberry.ID(str(e.case_id)), version=e.version,
            type=e.type, by=e.by, at=e.at, recorded=e.recorded, why=e.why,
            details=[HistoryDetail(name=k, value=str(v)) for k, v in e.details.items()])


@strawberry.type
class HistoryPage:
    entries: list[HistoryEntry]
    has_next_page: bool
    end_cursor: str | None

    @staticmethod
    def of(found: tuple[list[history_service.Entry], bool, str]) -> HistoryPage:
        entries, more, kind = found
        last = entries[-1] if entries else None
        key = None if last is None else (last.version if kind == "case" else last.position)
        return HistoryPage(entries=[HistoryEntry.of(e) for e in entries], has_next_page=more,
                           end_cursor=None if key is None else _cursor(kind, key))


@strawberry.type
class AsOfAssignment:
    kind: AssigneeKind
    ref: str
    lead: bool
    accepted_at: datetime | None


@strawberry.type
class AsOfUrging:
    instrument: Instrument
    responsible_unit: str | None
    reason: str
    by: str
    at: datetime


@strawberry.type
class AsOfParty:
    """A party, masked (an as-of read never shows personal fields in clear)."""

    name: str | None
    phone: str | None
    id_number: str | None
    address: str | None
    role: PartyRole


@strawberry.type
class CaseState:
    """A case as it stood at an instant (its events recorded by then, replayed)."""

    number: str
    center: str
    version: int
    channel: Channel
    category: str
    summary: str
    status: Status
    is_open: bool
    severity: Severity | None
    handling: HandlingClass | None
    received_at: datetime
    round_started_at: datetime
    last_at: datetime
    respond_by: datetime | None
    handle_by: datetime | None
    due_at: datetime | None = strawberry.field(
        description="The deadline that applied then (response, handling or progress duty).")
    due_kind: str | None
    overdue: bool = strawberry.field(description="Open and past that deadline at the instant.")
    escalated_to: str | None
    assignments: list[AsOfAssignment]
    urgings: list[AsOfUrging]
    progress_reports: int
    outcome: Outcome | None
    resolution: str | None
    resolved_by: str | None
    court_reference: str | None
    feedback: str | None
    confirmed: bool
    rejections: int
    stars: int | None
    evaluation_comment: str | None
    closed_at: datetime | None
    repeat_count: int
    merged_into: strawberry.ID | None
    withdrawn_reason: str | None
    parties: list[AsOfParty]

    @staticmethod
    def of(c: DomainCase, instant: datetime, calendar: WorkingCalendar) -> CaseState:
        due = due_at(c, calendar) if c.is_open else None
        parties = [mask_party(p) for p in c.parties]
        return CaseState(
            number=c.case_number, center=c.tenant, version=c.version, channel=c.channel,
            category=c.category, summary=c.summary, status=c.status, is_open=c.is_open,
            severity=c.severity, handling=c.handling, received_at=c.received_at,
            round_started_at=c.round_started_at, last_at=c.last_at,
            respond_by=c.respond_by.by if c.respond_by else None,
            handle_by=c.handle_by.by if c.handle_by else None,
            due_at=due[0] if due else None, due_kind=due[1] if due else None,
            overdue=due is not None and due[0] < instant, escalated_to=c.escalated_to,
            assignments=[AsOfAssignment(kind=a.assignee.kind, ref=a.assignee.ref,
                                        lead=a.assignee.lead, accepted_at=a.accepted_at)
                         for a in c.assignments],
            urgings=[AsOfUrging(instrument=u.instrument, responsible_unit=u.responsible_unit,
                                reason=u.reason, by=u.by, at=u.at) for u in c.urgings],
            progress_reports=c.progress_reports, outcome=c.outcome, resolution=c.resolution,
            resolved_by=c.resolved_by_unit, court_reference=c.court_reference,
            feedback=c.feedback, confirmed=c.confirmed, rejections=c.rejections,
            stars=c.stars, evaluation_comment=c.evaluation_comment, closed_at=c.closed_at,
            repeat_count=c.repeat_count,
            merged_into=strawberry.ID(str(c.merged_into)) if c.merged_into else None,
            withdrawn_reason=c.withdrawn_reason,
            parties=[AsOfParty(name=p["name"], phone=p["phone"], id_number=p["id_number"],
                               address=p["address"],
                               role=PartyRole(p["role"] or PartyRole.APPLICANT.value))
                     for p in parties])


@strawberry.type
class CaseAsOf:
    case_id: strawberry.ID
    at: datetime
    existed: bool = strawberry.field(description="False when the case was not received yet.")
    case: CaseState | None


@strawberry.type
class StatusCount:
    status: str
    cases: int


@strawberry.type
class CenterAsOf:
    """A center's own cases as they stood at an instant: counts, working-view sizes,
    KPIs (every case received by then; no period, no subtree; docs/api.md)."""

    center: str
    at: datetime
    cases: int
    open: int
    by_status: list[StatusCount]
    overdue: int
    due_within_24h: int
    matters: int
    withdrawn: int
    resolved: int
    resolution_rate: float | None
    evaluated: int
    satisfied: int
    satisfaction: float | None
    closed_at_least_once: int
    repeat_complaints: int
    repeat_complaint_rate: float | None

    @staticmethod
    def of(f: history_service.TenantFigures) -> CenterAsOf:
        return CenterAsOf(
            center=f.tenant, at=f.instant, cases=f.cases, open=f.open,
            by_status=[StatusCount(status=k, cases=v) for k, v in f.by_status.items()],
            overdue=f.overdue, due_within_24h=f.due_within_24h, matters=f.matters,
            withdrawn=f.withdrawn, resolved=f.resolved, resolution_rate=f.resolution_rate,
            evaluated=f.evaluated, satisfied=f.satisfied, satisfaction=f.satisfaction,
            closed_at_least_once=f.closed_at_least_once,
            repeat_complaints=f.repeat_complaints,
            repeat_complaint_rate=f.repeat_complaint_rate)


HistoryFrom = Annotated[datetime | None, strawberry.argument(
    name="from", description="Recorded at or after (with a time zone).")]
HistoryTo = Annotated[datetime | None, strawberry.argument(
    name="to", description="Recorded at or before (with a time zone).")]


# -- fields ------------------------------------------------------------------------------


@strawberry.type
class AuditQuery:
    @_field("Closed-loop inspection of a center's subtree for cases closed in a period "
            "(inspection:run or audit:read over the subtree).")
    async def inspection_report(self, info: GInfo, scope: str, start: From,
                                end: To) -> InspectionReport | None:
        report = await _off(inspection_report, info.context, scope, start, end)
        return InspectionReport.of(report)

    @_field("A reproducible sample of closed cases to call back (inspection:run or "
            "audit:read over the subtree).")
    async def callback_sample(self, info: GInfo, scope: str, start: From, end: To,
                              size: int = 20, salt: str = "") -> CallbackSample | None:
        ctx = info.context

        def draw() -> callback_service.CallbackSample:
            authorize_subtree(ctx.services.authorizer, ctx.principal, READ_INSPECTION, scope)
            return callback_service.sample(ctx.services.tenants, scope,
                                           _aware(start, "from"), _aware(end, "to"), size,
                                           salt)

        s = await _off(draw)
        return CallbackSample(
            scope=s.scope, start=s.start, end=s.end, salt=s.salt, seed=s.seed,
            population=s.population,
            cases=[SampledCase(case_id=strawberry.ID(str(c.case_id)),
                               case_number=c.case_number, center=c.tenant,
                               closed_at=c.closed_at, rank=c.rank, callbacks=c.callbacks,
                               satisfied=c.satisfied) for c in s.cases])

    @_field("KPIs of a center and of each of its children, each with its subtree, for the "
            "cases received in a period (kpi:read over the subtree).")
    async def kpi_report(self, info: GInfo, scope: str, start: From,
                         end: To) -> KpiReport | None:
        r = await _off(kpi_report, info.context, scope, start, end)
        return KpiReport(scope=r.scope, start=r.start, end=r.end, as_of=r.now,
                         rows=[KpiReportRow.of(row) for row in r.rows])

    @_field("A case's events in order: who, when, why; never a personal field "
            "(inspection:run or audit:read over the case's center).")
    async def case_history(self, info: GInfo, case_id: strawberry.ID,
                           start: HistoryFrom = None, end: HistoryTo = None,
                           types: list[str] | None = None, actor: str | None = None,
                           first: int = DEFAULT_FIRST,
                           after: str | None = None) -> HistoryPage | None:
        where = HistoryFilter.of(start, end, types, actor)
        found = await _off(history_page, info.context, None, case_id, where, first, after)
        return HistoryPage.of(found)

    @_field("A center's events in log order: who, when, why; never a personal field "
            "(inspection:run or audit:read over the center).")
    async def center_history(self, info: GInfo, code: str, start: HistoryFrom = None,
                             end: HistoryTo = None, types: list[str] | None = None,
                             actor: str | None = None, first: int = DEFAULT_FIRST,
                             after: str | None = None) -> HistoryPage | None:
        where = HistoryFilter.of(start, end, types, actor)
        found = await _off(history_page, info.context, code, None, where, first, after)
        return HistoryPage.of(found)

    @_field("A case exactly as it stood at a past instant: its events recorded by then, "
            "replayed; parties masked (inspection:run or audit:read over its center).")
    async def case_as_of(self, info: GInfo, case_id: strawberry.ID,
                         at: datetime) -> CaseAsOf | None:
        return await _off(case_as_of, info.context, case_id, at)

    @_field("A center's own cases as they stood at a past instant: counts, working-view "
            "sizes and KPIs (inspection:run or audit:read over the center).")
    async def center_as_of(self, info: GInfo, code: str, at: datetime) -> CenterAsOf | None:
        return CenterAsOf.of(await _off(center_as_of, info.context, code, at))


@strawberry.type
class AuditMutation:
    @_mutation("Record the result of a callback (回访) to the party of a closed case "
               "(inspection:run at the case's center). `satisfied` is required when the "
               "party was reached, and must be left out otherwise.")
    async def record_callback(self, info: GInfo, case_id: strawberry.ID,
                              result: CallbackResult, satisfied: bool | None = None,
                              note: str = "") -> CallbackRecord | None:
        ctx = info.context
        principal = ctx.principal
        cid = stream_id(case_id, "case")
        tenant = center_of(cid)

        def work() -> CallbackRecord:
            ctx.services.authorizer.require(principal, Action.INSPECTION_RUN, tenant)
            case = callback_service.record_callback(
                ctx.services.tenants, cid, result, satisfied, note, principal.subject,
                ctx.services.clock())
            c = case.callbacks[-1]
            return CallbackRecord(case_id=strawberry.ID(str(case.id)),
                                  case_number=case.case_number, result=c.result,
                                  satisfied=c.satisfied, note=c.note, by=c.by, at=c.at)

        record = await _off(work)
        ctx.loaders.forget(cid)
        return record
