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

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar, cast

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from api.auth import Principal
from api.authz import Action, Authorizer, Scope
from api.context import Context
from api.errors import ApiError, forbidden
from api.ids import center_of, stream_id
from audit import callbacks as callback_service
from audit import inspection as inspection_service
from audit import reports as report_service
from audit.chain import AuditError
from domain import is_within
from domain.case import CallbackResult

__all__ = [
    "READ_INSPECTION",
    "AuditMutation",
    "AuditQuery",
    "authorize_subtree",
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
