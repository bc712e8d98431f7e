"""The GraphQL schema: centers, cases, figures, every domain command, case changes.

Reads come from the projections (lists, figures, KPIs) and from the event store
(a case's detail, its timeline); writes are the centers' commands
(``tenants.center.CenterApp``). Every resolver authorizes first
(``api.authz``: the role × action table and the tenant rule of
docs/authorization.md), then reads or writes; a refusal is an error with
``extensions.code`` ``FORBIDDEN`` and nothing is written. docs/api.md is the
guide; the SDL is ``schema.as_str()`` (``python -m api.schema``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, TypeVar, cast
from uuid import UUID

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.extensions import SchemaExtension
from strawberry.types import Info

from api.alerts_schema import AlertMutation, AlertQuery, AlertSubscription
from api.audit_schema import AuditMutation, AuditQuery
from api.auth import Principal, Role
from api.authz import Action, Scope, answerable_refs
from api.context import Context
from api.errors import ErrorCodes, forbidden, not_found
from api.execution import PlainLeaves
from api.guards import check_first, require_reach
from api.ids import center_of, stream_id
from api.limits import DEFAULT_FIRST, DEFAULT_TOP, limits
from api.loaders import CaseRecord, FiguresKey
from api.media import PhotoType, photo_type_of
from api.privacy import PERSONAL_FIELDS, mask_party, unmask, views_of
from api.timeline import entry
from domain import (
    CATEGORIES,
    DEPARTMENTS,
    Assignee,
    AssigneeKind,
    CalendarBasis,
    Channel,
    Direction,
    HandlingClass,
    Instrument,
    Link,
    Outcome,
    Party,
    PartyRole,
    Personal,
    Place,
    Severity,
    Status,
    Tier,
    ValidationError,
    category,
    is_within,
    parent_of,
    tenant_of,
    tier_of,
)
from domain import Case as DomainCase
from domain.calendar import CHINA
from domain.calendar import Deadline as DomainDeadline
from projections import dashboards, queries
from projections import kpis as kpi_queries
from projections.queries import CaseFilter, CaseRow, Page, Period, encode_cursor
from tenants.center import CenterApp, ConcurrentUpdate
from tenants.registry import CenterInfo

__all__ = ["Mutation", "Query", "Subscription", "schema"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
GInfo = Info[Context, None]


def field(description: str | None = None, *, name: str | None = None,
          graphql_type: Any | None = None) -> Callable[[F], F]:
    """``strawberry.field`` with a description (and the GraphQL type, where the
    resolver's annotation also admits an awaitable), typed for mypy (strawberry's own
    overload for a decorator with arguments returns ``Any``)."""
    return cast("Callable[[F], F]", strawberry.field(description=description, name=name,
                                                     graphql_type=graphql_type))


def mutation(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(description=description))


def subscription(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.subscription(description=description))

# -- enums ----------------------------------------------------------------------------

CaseStatus = strawberry.enum(Status, name="CaseStatus")
strawberry.enum(Severity)
strawberry.enum(HandlingClass)
strawberry.enum(Channel)
strawberry.enum(Outcome)
strawberry.enum(Instrument)
strawberry.enum(AssigneeKind)
strawberry.enum(PartyRole)
strawberry.enum(Tier)
strawberry.enum(Direction)
strawberry.enum(CalendarBasis)
strawberry.enum(Role)
strawberry.enum(Action)


@strawberry.enum
class PartyField(Enum):
    """A personal field of a party (shown masked unless unmasked with a reason)."""

    NAME = "name"
    PHONE = "phone"
    ID_NUMBER = "id_number"
    ADDRESS = "address"


assert {f.value for f in PartyField} == set(PERSONAL_FIELDS)

# -- helpers --------------------------------------------------------------------------


def _ctx(info: GInfo) -> Context:
    return info.context


def _case_id(value: str) -> UUID:
    return stream_id(value, "case")


_tenant = center_of


def _cst(value: T) -> T:
    """A time read from the case view (the session's UTC) in China time, as the
    event store's business times are."""
    return value.astimezone(CHINA) if isinstance(value, datetime) else value


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationError(f"{what} needs a time zone (e.g. +08:00); got {value.isoformat()}")
    return value


def _period(start: datetime | None, end: datetime | None) -> Period:
    return Period(_aware(start, "from"), _aware(end, "to"))


def _category(code: str | None) -> str | None:
    if code is not None:
        category(code)  # UnknownCategory: VALIDATION
    return code


def _assignee_ref(principal: Principal) -> str:
    """The ref a unit officer or grid worker is dispatched under."""
    if principal.has(Role.UNIT_OFFICER) and principal.unit:
        return principal.unit
    return principal.grid_ref


async def _off(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work (the store, the projections) off the event loop."""
    return await run_in_threadpool(function, *args, **kwargs)


async def _center_info(ctx: Context, code: str) -> CenterInfo:
    """The registered center, from the registry's memory when that needs no I/O
    (a thread hop costs more than a request's field), else read on a thread."""
    registry = ctx.services.tenants.registry
    known = registry.cached(code)
    return known if known is not None else await _off(registry.get, code)


# -- small types ------------------------------------------------------------------------


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class UnitCount:
    unit: str
    count: int


@strawberry.type(name="Deadline")
class DeadlineType:
    """When something is due and how it was counted: ``basis`` is
    WEEKDAYS_FALLBACK (with a ``note``) when the year's official holiday
    schedule was not loaded and only Monday–Friday were counted."""

    at: datetime
    basis: CalendarBasis
    note: str

    @staticmethod
    def of(deadline: DomainDeadline | None) -> DeadlineType | None:
        if deadline is None:
            return None
        return DeadlineType(at=deadline.by, basis=deadline.basis, note=deadline.note)


@strawberry.type
class Deadlines:
    respond_by: DeadlineType | None
    handle_by: DeadlineType | None
    calendar_note: str = strawberry.field(description=(
        "How deadlines are counted: red and orange response times and difficult "
        "matters in clock time; the others in China's official working days, or "
        "Monday–Friday where a year's schedule is not loaded (see each basis)."))


CALENDAR_NOTE = ("red 2 h and orange 24 h responses and a difficult matter's month are clock "
                 "time; other deadlines count China's official working days, or Monday–Friday "
                 "only where that year's holiday schedule is not loaded (basis "
                 "WEEKDAYS_FALLBACK)")


@strawberry.type
class Due:
    """The deadline that applies now (response, handling or progress duty)."""

    at: datetime
    kind: str | None


@strawberry.type(name="Party")
class PartyType:
    """A party; personal fields masked unless unmasked (and recorded)."""

    name: str | None
    phone: str | None
    id_number: str | None
    address: str | None
    role: PartyRole

    @staticmethod
    def of(fields: dict[str, str | None]) -> PartyType:
        return PartyType(name=fields["name"], phone=fields["phone"],
                         id_number=fields["id_number"], address=fields["address"],
                         role=PartyRole(fields["role"] or PartyRole.APPLICANT.value))


@strawberry.type(name="Place")
class PlaceType:
    division: str
    address: str | None
    lat: float | None
    lon: float | None


@strawberry.type(name="Assignment")
class AssignmentType:
    kind: AssigneeKind
    ref: str
    lead: bool
    accepted_at: datetime | None


@strawberry.type(name="Urging")
class UrgingType:
    instrument: Instrument
    responsible_unit: str | None
    reason: str
    by: str
    at: datetime


@strawberry.type(name="TimelineEntry")
class TimelineEntry:
    version: int
    kind: str
    at: datetime
    by: str | None
    summary: str


@strawberry.type
class CaseLink:
    """Another case this one is linked to (by a hand-over, a merge, a suspected
    duplicate). ``case`` is null when the asker may not read it."""

    case_id: strawberry.ID
    center: str
    direction: Direction | None = None
    lead: bool | None = None
    outcome: Outcome | None = None
    returned: bool | None = None

    @staticmethod
    def to(case_id: UUID, link: Link | None = None,
           direction: Direction | None = None) -> CaseLink:
        center = tenant_of(case_id) or ""
        if link is None:
            return CaseLink(case_id=strawberry.ID(str(case_id)), center=center,
                            direction=direction)
        return CaseLink(case_id=strawberry.ID(str(case_id)), center=link.tenant,
                        direction=link.direction, lead=link.lead, outcome=link.outcome,
                        returned=link.returned)

    @strawberry.field
    async def case(self, info: GInfo) -> CaseNode | None:
        return await _visible_case(_ctx(info), UUID(str(self.case_id)))


# -- the case -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Basics:
    """What both the case aggregate and the view row tell."""

    number: str
    tenant: str
    channel: Channel
    category: str
    summary: str
    status: Status
    is_open: bool
    severity: Severity | None
    handling: HandlingClass | None
    group_matter: bool
    received_at: datetime
    round_started_at: datetime
    last_at: datetime
    version: int
    escalated_to: str | None
    outcome: Outcome | None
    court_reference: str | None
    resolved_by: str | None
    rejections: int
    stars: int | None
    closed_at: datetime | None
    repeat_count: int
    repeat_against: str | None
    merged_into: UUID | None
    progress_reports: int
    origin: CaseLink | None
    place: PlaceType

    @staticmethod
    def of_case(c: DomainCase) -> _Basics:
        return _Basics(
            c.case_number, c.tenant, c.channel, c.category, c.summary, c.status, c.is_open,
            c.severity, c.handling, c.group_matter, c.received_at, c.round_started_at,
            c.last_at, c.version, c.escalated_to, c.outcome, c.court_reference,
            c.resolved_by_unit, c.rejections, c.stars, c.closed_at, c.repeat_count,
            c.repeat_against, c.merged_into, c.progress_reports,
            CaseLink.to(c.origin.case_id, c.origin) if c.origin else None,
            PlaceType(division=c.place.division, address=c.place.address, lat=c.place.lat,
                      lon=c.place.lon))

    @staticmethod
    def of_row(r: CaseRow) -> _Basics:
        origin = None
        if r.origin_case is not None:
            direction = Direction(r.origin_direction) if r.origin_direction else None
            origin = CaseLink.to(r.origin_case, direction=direction)
        return _Basics(
            r.case_number, r.tenant, Channel(r.channel), r.category, r.summary, r.status,
            r.is_open, r.severity, HandlingClass(r.handling) if r.handling else None,
            r.group_matter, _cst(r.received_at), _cst(r.round_started_at), _cst(r.last_at),
            r.version, r.escalated_to, Outcome(r.outcome) if r.outcome else None,
            r.court_reference, r.resolved_by, r.rejections, r.stars, _cst(r.closed_at),
            r.repeat_count,
            r.repeat_against, r.merged_into, r.progress_reports, origin,
            PlaceType(division=r.division, address=None, lat=r.lat, lon=r.lon))


@strawberry.type(name="Case")
class CaseNode:
    """A case the asker may read. Simple fields come from where the case was
    found (the event store for ``case(id)`` and mutations, the case view for
    lists); detail (parties, timeline, deadlines, assignments) is read from the
    event store in one batch per request."""

    case_id: strawberry.Private[UUID]
    basics: strawberry.Private[_Basics]
    record: strawberry.Private[CaseRecord | None] = None
    aggregate: strawberry.Private[DomainCase | None] = None
    row: strawberry.Private[CaseRow | None] = None

    @staticmethod
    def of_record(record: CaseRecord) -> CaseNode:
        return CaseNode._of(record.case.id, _Basics.of_case(record.case), record=record,
                            aggregate=record.case)

    @staticmethod
    def of_case(case: DomainCase) -> CaseNode:
        return CaseNode._of(case.id, _Basics.of_case(case), aggregate=case)

    @staticmethod
    def of_row(row: CaseRow, record: CaseRecord | None = None) -> CaseNode:
        return CaseNode._of(row.case_id, _Basics.of_row(row), row=row, record=record,
                            aggregate=record.case if record else None)

    @staticmethod
    def _of(case_id: UUID, basics: _Basics, **private: Any) -> CaseNode:
        """A node with its scalar fields set as plain values: strawberry answers those
        without calling a resolver, which cost about 25 µs a field (a 20-row page asks
        for ~200; profiled)."""
        same = {name: getattr(basics, name) for name in _SAME_AS_BASICS}
        return CaseNode(case_id=case_id, basics=basics, id=strawberry.ID(str(case_id)),
                        center_code=basics.tenant,
                        category_name=category(basics.category).zh, **same, **private)

    async def _case(self, info: GInfo) -> DomainCase:
        if self.aggregate is not None:
            return self.aggregate
        record = await _ctx(info).loaders.case.load(self.case_id)
        if record is None:  # the view lists a case the store does not have
            raise not_found(f"no case {self.case_id}")
        return record.case

    async def _record(self, info: GInfo) -> CaseRecord:
        if self.record is not None:
            return self.record
        record = await _ctx(info).loaders.case.load(self.case_id)
        if record is None:
            raise not_found(f"no case {self.case_id}")
        return record

    async def _row(self, info: GInfo) -> CaseRow | None:
        if self.row is not None:
            return self.row
        return await _ctx(info).loaders.row.load(self.case_id)

    id: strawberry.ID
    number: str = strawberry.field(description="统一编码: <center>-<yyyymmdd>-<serial>")
    center_code: str = strawberry.field(
        description="The center (division code) the case belongs to.")

    @strawberry.field
    async def center(self, info: GInfo) -> Center | None:
        return await _readable_center(_ctx(info), self.basics.tenant)

    channel: Channel
    category: str
    category_name: str
    summary: str
    status: Status
    is_open: bool
    severity: Severity | None
    handling: HandlingClass | None
    group_matter: bool
    received_at: datetime
    round_started_at: datetime
    last_at: datetime
    version: int = strawberry.field(description="The case's version: pass it as expectedVersion.")
    escalated_to: str | None
    outcome: Outcome | None
    court_reference: str | None
    resolved_by: str | None
    rejections: int

    @field(description="Photos attached to the case (evidence), oldest first; fetch each "
                        "url with the same bearer token.")
    async def photos(self, info: GInfo) -> list[PhotoType]:
        case = await self._case(info)
        return [photo_type_of(case.id, p) for p in case.photos]

    stars: int | None
    closed_at: datetime | None
    repeat_count: int
    repeat_against: str | None
    progress_reports: int

    @strawberry.field
    def merged_into(self) -> CaseLink | None:
        merged = self.basics.merged_into
        return CaseLink.to(merged) if merged else None

    @field(description="The case this one was opened from by a hand-over: "
                       "direction UP when it was dispatched down from above, "
                       "DOWN when it was escalated from below.")
    def origin(self) -> CaseLink | None:
        return self.basics.origin

    @strawberry.field
    def place(self) -> PlaceType:
        return self.basics.place

    @field(description="The cases this one handed over to (current round).")
    async def links(self, info: GInfo) -> list[CaseLink]:
        case = await self._case(info)
        return [CaseLink.to(k.case_id, k) for k in case.links]

    @strawberry.field
    async def suspected_duplicates(self, info: GInfo) -> list[CaseLink]:
        case = await self._case(info)
        return [CaseLink.to(i) for i in case.suspected_duplicates
                if i not in case.kept_separate_from]

    @strawberry.field
    async def kept_separate_from(self, info: GInfo) -> list[CaseLink]:
        case = await self._case(info)
        return [CaseLink.to(i) for i in case.kept_separate_from]

    @strawberry.field
    async def deadlines(self, info: GInfo) -> Deadlines:
        case = await self._case(info)
        return Deadlines(respond_by=DeadlineType.of(case.respond_by),
                         handle_by=DeadlineType.of(case.handle_by), calendar_note=CALENDAR_NOTE)

    def _of_row(self, info: GInfo, make: Callable[[CaseRow | None], T]) -> T | Awaitable[T]:
        """``make`` of the case's view row: at once when the node came from a list
        (the row is at hand, and graphql-core then completes the field without a
        coroutine: ~0.5 ms of a 20-row page, profiled), else once the request's row
        loader has it."""
        if self.row is not None:
            return make(self.row)

        async def later() -> T:
            return make(await self._row(info))

        return later()

    @field(graphql_type=Due | None,
           description="The deadline that applies now, from the case view "
                       "(null when none applies or the view has not caught up).")
    def due(self, info: GInfo) -> Due | Awaitable[Due | None] | None:
        return self._of_row(info, lambda row: None if row is None or row.due_by is None
                            else Due(at=_cst(row.due_by), kind=row.due_kind))

    @field(graphql_type=datetime | None,
           description="When the clock next urges or escalates the case.")
    def next_step_at(self, info: GInfo) -> datetime | Awaitable[datetime | None] | None:
        return self._of_row(info, lambda row: _cst(row.next_step_at) if row else None)

    @field(graphql_type=list[UnitCount],
           description="Deadlines breached in the current round, per unit.")
    def breaches(self, info: GInfo) -> list[UnitCount] | Awaitable[list[UnitCount]]:
        return self._of_row(info, lambda row: [UnitCount(unit=u.unit, count=u.count)
                                               for u in row.breaches] if row else [])

    @strawberry.field
    async def assignments(self, info: GInfo) -> list[AssignmentType]:
        case = await self._case(info)
        return [AssignmentType(kind=a.assignee.kind, ref=a.assignee.ref, lead=a.assignee.lead,
                               accepted_at=a.accepted_at) for a in case.assignments]

    @field(description="The refs of the current dispatch the asker may accept "
                       "or refuse for.")
    async def answerable_refs(self, info: GInfo) -> list[str]:
        ctx = _ctx(info)
        case = await self._case(info)
        return answerable_refs(ctx.principal, case, ctx.services.authorizer)

    @strawberry.field
    async def refusals(self, info: GInfo) -> list[UnitCount]:
        case = await self._case(info)
        return [UnitCount(unit=k, count=v) for k, v in sorted(case.refusals.items())]

    @strawberry.field
    async def urgings(self, info: GInfo) -> list[UrgingType]:
        case = await self._case(info)
        return [UrgingType(instrument=u.instrument, responsible_unit=u.responsible_unit,
                           reason=u.reason, by=u.by, at=u.at) for u in case.urgings]

    @strawberry.field
    async def resolution(self, info: GInfo) -> str | None:
        return (await self._case(info)).resolution

    @strawberry.field
    async def feedback(self, info: GInfo) -> str | None:
        return (await self._case(info)).feedback

    @strawberry.field
    async def confirmed(self, info: GInfo) -> bool:
        return (await self._case(info)).confirmed

    @strawberry.field
    async def evaluation_comment(self, info: GInfo) -> str | None:
        return (await self._case(info)).evaluation_comment

    @strawberry.field
    async def withdrawn_reason(self, info: GInfo) -> str | None:
        return (await self._case(info)).withdrawn_reason

    @field(description="The parties, masked (张**, 139****5678). To see fields in "
                       "clear, use the unmaskParties mutation: it records the view.")
    async def parties(self, info: GInfo) -> list[PartyType]:
        case = await self._case(info)
        return [PartyType.of(mask_party(p)) for p in case.parties]

    @field(description="The case's events, oldest first; never a personal field.")
    async def timeline(self, info: GInfo) -> list[TimelineEntry]:
        record = await self._record(info)
        return [TimelineEntry(version=e.version, kind=e.kind, at=e.at, by=e.by,
                              summary=e.summary) for e in map(entry, record.events)]


@strawberry.type
class CaseEdge:
    @strawberry.field
    def cursor(self) -> str:
        """Encoded only when asked for: most pages ask for nodes and pageInfo alone."""
        return encode_cursor(self.kind, self.row)

    node: CaseNode
    kind: strawberry.Private[str]  # the list's order (projections.queries.ORDERS)
    row: strawberry.Private[CaseRow]


@strawberry.type
class CaseConnection:
    edges: list[CaseEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[CaseNode]:
        return [e.node for e in self.edges]


def _connection(kind: str, rows: Sequence[tuple[CaseRow, CaseNode]], page: Page[CaseRow],
                after: str | None) -> CaseConnection:
    edges = [CaseEdge(node=node, kind=kind, row=row) for row, node in rows]
    return CaseConnection(edges=edges, page_info=PageInfo(
        has_next_page=page.has_next, has_previous_page=after is not None,
        start_cursor=encode_cursor(kind, rows[0][0]) if rows else None,
        end_cursor=page.end_cursor))


async def _visible_case(ctx: Context, case_id: UUID) -> CaseNode | None:
    """The case if the asker may read it, else None (a link, not a request)."""
    principal = ctx.principal
    auth = ctx.services.authorizer
    if not auth.can(principal, Action.CASE_READ, _tenant(case_id)):
        return None
    record = await ctx.loaders.case.load(case_id)
    if record is None or not auth.can_see_case(principal, record.case):
        return None
    return CaseNode.of_record(record)



#: CaseNode's plain fields (those its constructor takes; resolver fields are not) that
#: hold the basics' value of the same name.
_SAME_AS_BASICS = tuple(f.name for f in dataclasses.fields(_Basics)
                        if f.name in {g.name for g in dataclasses.fields(CaseNode) if g.init})

# -- filters ---------------------------------------------------------------------------


@strawberry.input(name="CaseFilter")
class CaseFilterInput:
    """Narrows a list; every field given must hold."""

    statuses: list[Status] | None = None
    category: str | None = None
    severity: Severity | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    assignee: str | None = strawberry.field(
        default=None, description="A ref among the current dispatch's assignees.")

    def to_filter(self) -> CaseFilter:
        return CaseFilter(
            statuses=tuple(self.statuses or ()), category=_category(self.category),
            severity=self.severity,
            received_from=_aware(self.received_from, "receivedFrom"),
            received_to=_aware(self.received_to, "receivedTo"), assignee=self.assignee)


Fetch = Callable[[CaseFilter], Page[CaseRow]]


async def _case_list(ctx: Context, kind: str, scope: str, subtree: bool,
                     filter_: CaseFilterInput | None, fetch: Fetch,
                     after: str | None) -> CaseConnection:
    """A page of cases, after authorizing ``case:read`` at ``scope`` (and below it
    with ``subtree``); unit officers and grid workers see their assigned cases."""
    principal = require_reach(ctx, Action.CASE_READ, scope, subtree)
    auth = ctx.services.authorizer
    filters = filter_.to_filter() if filter_ else CaseFilter()
    assigned = auth.scope(principal, Action.CASE_READ) is Scope.ASSIGNED
    if assigned:
        ref = _assignee_ref(principal)
        if filters.assignee not in (None, ref):
            return _connection(kind, [], Page((), after, False), after)
        filters = replace(filters, assignee=ref)
    page = await _off(fetch, filters)
    if not assigned:
        return _connection(kind, [(r, CaseNode.of_row(r)) for r in page.items], page, after)
    records = await ctx.loaders.case.load_many([r.case_id for r in page.items])
    shown = [(r, CaseNode.of_row(r, rec)) for r, rec in zip(page.items, records, strict=True)
             if rec is not None and auth.can_see_case(principal, rec.case)]
    return _connection(kind, shown, page, after)


# -- figures and KPIs --------------------------------------------------------------------


@strawberry.type(name="Figures")
class FiguresType:
    """Matters received in the period, by where they stand now (docs/kpis.md)."""

    received: int
    open: int
    closed: int
    withdrawn: int
    resolved: int
    overdue: int

    @staticmethod
    def of(f: queries.Figures) -> FiguresType:
        return FiguresType(received=f.received, open=f.open, closed=f.closed,
                           withdrawn=f.withdrawn, resolved=f.resolved, overdue=f.overdue)


@strawberry.type
class TierFigures:
    tier: Tier
    centers: int
    figures: FiguresType


@strawberry.type
class ChildFigures:
    code: str
    figures: FiguresType


@strawberry.type
class Rollup:
    code: str
    total: FiguresType
    tiers: list[TierFigures]
    children: list[ChildFigures]


@strawberry.type
class Rate:
    numerator: int
    denominator: int
    value: float | None

    @staticmethod
    def of(r: kpi_queries.Rate) -> Rate:
        return Rate(numerator=r.numerator, denominator=r.denominator, value=r.value)


@strawberry.type
class Durations:
    count: int
    median_hours: float | None
    p90_hours: float | None


@strawberry.type
class UnitFigures:
    unit: str
    resolved: int
    resolved_on_time: int
    on_time_rate: float | None
    breaches: int
    overdue_now: int
    refusals: int
    repeat_complaints: int


@strawberry.type
class Kpis:
    """The figures of DOMAIN.md for a scope and period; docs/kpis.md defines each."""

    scope: str
    subtree: bool
    start: datetime | None = strawberry.field(name="from")
    end: datetime | None = strawberry.field(name="to")
    category: str | None
    matters: int
    withdrawn: int
    resolution_rate: Rate
    referred_to_court: int
    repeat_complaint_rate: Rate
    satisfaction: Rate
    response_time: Durations
    handling_time: Durations
    on_time_rate: Rate
    overdue_now: int
    resolved_at_township_or_below: Rate
    alert_precision: Rate | None
    refusals: int
    units: list[UnitFigures]

    @staticmethod
    def of(k: kpi_queries.Kpis) -> Kpis:
        def durations(d: kpi_queries.Durations) -> Durations:
            return Durations(count=d.count, median_hours=d.median_hours, p90_hours=d.p90_hours)

        return Kpis(
            scope=k.scope, subtree=k.subtree, start=k.period.start, end=k.period.end,
            category=k.category, matters=k.matters, withdrawn=k.withdrawn,
            resolution_rate=Rate.of(k.resolution_rate), referred_to_court=k.referred_to_court,
            repeat_complaint_rate=Rate.of(k.repeat_complaint_rate),
            satisfaction=Rate.of(k.satisfaction), response_time=durations(k.response_time),
            handling_time=durations(k.handling_time), on_time_rate=Rate.of(k.on_time_rate),
            overdue_now=k.overdue_now,
            resolved_at_township_or_below=Rate.of(k.resolved_at_township_or_below),
            alert_precision=Rate.of(k.alert_precision) if k.alert_precision else None,
            refusals=k.refusals,
            units=[UnitFigures(unit=u.unit, resolved=u.resolved,
                               resolved_on_time=u.resolved_on_time, on_time_rate=u.on_time_rate,
                               breaches=u.breaches, overdue_now=u.overdue_now,
                               refusals=u.refusals, repeat_complaints=u.repeat_complaints)
                   for u in k.units])


@strawberry.type
class Dashboard:
    """A center's subtree KPIs and rollup for all time, as they stood at ``asOf``
    (projections/dashboards.py): kept computed for cities, counties and
    townships, at most ``maxAgeSeconds`` old; ``live`` when computed for this
    request."""

    scope: str
    as_of: datetime
    position: int
    live: bool
    kpis: Kpis
    rollup: Rollup


@strawberry.type
class HotSpot:
    category: str
    division: str
    week: str
    matters: int


@strawberry.type
class Lane:
    """One assignee's column on a dispatch board."""

    assignee: str
    kind: str | None
    dispatched: int
    accepted: int
    overdue: int


From = Annotated[datetime | None, strawberry.argument(
    name="from", description="Cases received at or after (with a time zone).")]
To = Annotated[datetime | None, strawberry.argument(
    name="to", description="Cases received before (with a time zone).")]


async def _kpis(ctx: Context, scope: str, start: datetime | None, end: datetime | None,
                category_: str | None, subtree: bool) -> Kpis:
    require_reach(ctx, Action.KPI_READ, scope, subtree)
    period, cat = _period(start, end), _category(category_)
    now = ctx.services.clock()
    found = await _off(kpi_queries.kpis, ctx.services.tenants, scope, now, subtree=subtree,
                       period=period, category=cat)
    return Kpis.of(found)


async def _hot_spots(ctx: Context, scope: str, start: datetime | None, end: datetime | None,
                     category_: str | None, subtree: bool, top: int) -> list[HotSpot]:
    require_reach(ctx, Action.KPI_READ, scope, subtree)
    period, cat = _period(start, end), _category(category_)
    found = await _off(kpi_queries.hot_spots, ctx.services.tenants, scope, subtree=subtree,
                       period=period, category=cat, top=check_first(top))
    return [HotSpot(category=h.category, division=h.division, week=h.week, matters=h.matters)
            for h in found]


async def _lanes(ctx: Context, code: str) -> list[Lane]:
    principal = require_reach(ctx, Action.CASE_READ, code, False)
    if ctx.services.authorizer.scope(principal, Action.CASE_READ) is Scope.ASSIGNED:
        raise forbidden("the dispatch board's lanes count every case of the center: "
                        "unit officers and grid workers see their own cases only")
    lanes = await _off(queries.dispatch_lanes, ctx.services.tenants, code,
                       ctx.services.clock())
    return [Lane(assignee=lane.assignee, kind=lane.kind, dispatched=lane.dispatched,
                 accepted=lane.accepted, overdue=lane.overdue) for lane in lanes]


# -- centers ---------------------------------------------------------------------------


@strawberry.interface
class Center:
    """A governance center (a tenant), keyed by its division code."""

    code: str
    name: str
    tier: Tier
    parent_code: str | None
    retired: bool
    key_shredded: bool

    @field(description="The parent center, when the asker may read it.")
    async def parent(self, info: GInfo) -> Center | None:
        return await _readable_center(_ctx(info), self.parent_code) if self.parent_code \
            else None

    @field(description="Cases waiting for this center, oldest first.")
    async def inbox(self, info: GInfo, filter: CaseFilterInput | None = None,
                    first: int = DEFAULT_FIRST, after: str | None = None) -> CaseConnection | None:
        ctx = _ctx(info)
        return await _case_list(ctx, "inbox", self.code, False, filter, lambda f: queries.inbox(
            ctx.services.tenants, self.code, filters=f, first=check_first(first), after=after),
            after)

    @field(description="This center's dispatched and accepted cases, by lead.")
    async def dispatch_board(self, info: GInfo,
                             filter: CaseFilterInput | None = None,
                             first: int = DEFAULT_FIRST,
                             after: str | None = None) -> CaseConnection | None:
        ctx = _ctx(info)
        return await _case_list(ctx, "board", self.code, False, filter,
                                lambda f: queries.dispatch_board(
                                    ctx.services.tenants, self.code, filters=f,
                                    first=check_first(first), after=after), after)

    @strawberry.field
    async def dispatch_lanes(self, info: GInfo) -> list[Lane] | None:
        return await _lanes(_ctx(info), self.code)

    @field(description="Open cases past the deadline that applies.")
    async def overdue(self, info: GInfo, subtree: bool = False,
                      filter: CaseFilterInput | None = None,
                      first: int = DEFAULT_FIRST,
                      after: str | None = None) -> CaseConnection | None:
        ctx = _ctx(info)
        now = ctx.services.clock()
        return await _case_list(ctx, "due", self.code, subtree, filter, lambda f: queries.overdue(
            ctx.services.tenants, self.code, now, subtree=subtree, filters=f,
            first=check_first(first), after=after), after)

    @field(description="Open cases due within the next hours.")
    async def due_soon(self, info: GInfo, within_hours: int = 24, subtree: bool = False,
                       filter: CaseFilterInput | None = None,
                       first: int = DEFAULT_FIRST,
                       after: str | None = None) -> CaseConnection | None:
        ctx = _ctx(info)
        if not 1 <= within_hours <= 24 * 31:
            raise ValidationError(f"withinHours must be 1 to {24 * 31}; got {within_hours}")
        now = ctx.services.clock()
        return await _case_list(ctx, "due", self.code, subtree, filter, lambda f: queries.due_soon(
            ctx.services.tenants, self.code, now, timedelta(hours=within_hours),
            subtree=subtree, filters=f, first=check_first(first), after=after), after)

    @field(description="Every case of the center (and below it), newest first.")
    async def cases(self, info: GInfo, subtree: bool = False,
                    filter: CaseFilterInput | None = None,
                    first: int = DEFAULT_FIRST, after: str | None = None) -> CaseConnection | None:
        return await _cases(_ctx(info), self.code, subtree, filter, first, after)

    @strawberry.field
    async def kpis(self, info: GInfo, start: From = None, end: To = None,
                   category: str | None = None, subtree: bool = True) -> Kpis | None:
        return await _kpis(_ctx(info), self.code, start, end, category, subtree)

    @strawberry.field
    async def hot_spots(self, info: GInfo, start: From = None, end: To = None,
                        category: str | None = None, subtree: bool = True,
                        top: int = DEFAULT_TOP) -> list[HotSpot] | None:
        return await _hot_spots(_ctx(info), self.code, start, end, category, subtree, top)

    @field(description="Counts of matters received in the period (kpi:read).")
    async def figures(self, info: GInfo, start: From = None, end: To = None,
                      subtree: bool = True) -> FiguresType | None:
        ctx = _ctx(info)
        require_reach(ctx, Action.KPI_READ, self.code, subtree)
        period = _period(start, end)
        found = await ctx.loaders.figures.load(
            FiguresKey(self.code, period.start, period.end, subtree))
        return FiguresType.of(found)


@strawberry.type
class CenterEdge:
    cursor: str
    node: Center


@strawberry.type
class CenterConnection:
    edges: list[CenterEdge]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Center]:
        return [e.node for e in self.edges]


def _code_cursor(code: str) -> str:
    return base64.urlsafe_b64encode(f"center:{code}".encode()).decode().rstrip("=")


def _decode_code_cursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith("center:"):
        raise queries.InvalidCursor(f"not a cursor of this list: {cursor!r}")
    return text.removeprefix("center:")


@strawberry.interface
class ParentCenter(Center):
    """A center with centers below it (city, county, township)."""

    @field(description="The centers one tier below, by code (center:read); retired: true "
                       "keeps only retired ones, false only active ones.")
    async def children(self, info: GInfo, first: int = DEFAULT_FIRST, after: str | None = None,
                       retired: bool | None = None) -> CenterConnection | None:
        ctx = _ctx(info)
        principal = ctx.principal
        check_first(first)
        start = _decode_code_cursor(after) if after is not None else ""
        children = await ctx.loaders.children.load(self.code)
        auth = ctx.services.authorizer
        if any(not auth.can(principal, Action.CENTER_READ, c.code) for c in children):
            raise forbidden(f"{', '.join(principal.roles)} at center {principal.tenant} may not "
                            f"read the centers below {self.code}")
        rest = [c for c in children if c.code > start
                and (retired is None or c.retired is retired)]
        page = rest[:first]
        edges = [CenterEdge(cursor=_code_cursor(c.code), node=center_type(c)) for c in page]
        return CenterConnection(edges=edges, page_info=PageInfo(
            has_next_page=len(rest) > first, has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else after))

    @field(description="The subtree's figures: total, by tier, by child (kpi:read).")
    async def rollup(self, info: GInfo, start: From = None, end: To = None) -> Rollup | None:
        ctx = _ctx(info)
        require_reach(ctx, Action.KPI_READ, self.code, True)
        found = await _off(queries.rollup, ctx.services.tenants, self.code,
                           ctx.services.clock(), period=_period(start, end))
        return _rollup(found)

    @field(description="The subtree's KPIs and rollup for all time, from the snapshot "
                       "kept for the dashboard when it is at most maxAgeSeconds old "
                       "(kpi:read).")
    async def dashboard(self, info: GInfo, max_age_seconds: int = 120) -> Dashboard | None:
        ctx = _ctx(info)
        require_reach(ctx, Action.KPI_READ, self.code, True)
        if isinstance(max_age_seconds, bool) or not 0 <= max_age_seconds <= 3600:
            raise ValidationError(f"maxAgeSeconds must be 0 to 3600; got {max_age_seconds}")
        found = await _off(dashboards.dashboard, ctx.services.tenants, self.code,
                           ctx.services.clock(), max_age=timedelta(seconds=max_age_seconds))
        return Dashboard(scope=found.scope, as_of=found.computed_at.astimezone(CHINA),
                         position=found.position,
                         live=found.live, kpis=Kpis.of(found.kpis), rollup=_rollup(found.rollup))


def _rollup(found: queries.Rollup) -> Rollup:
    return Rollup(
        code=found.code, total=FiguresType.of(found.total),
        tiers=[TierFigures(tier=t.tier, centers=t.centers, figures=FiguresType.of(t.figures))
               for t in found.tiers],
        children=[ChildFigures(code=c.code, figures=FiguresType.of(c.figures))
                  for c in found.children])


@strawberry.type
class CityCenter(ParentCenter):
    """A city's center (市级): its counties below; escalation ends here."""


@strawberry.type
class CountyCenter(ParentCenter):
    """A county's center (县级): handles red matters; its townships below."""


@strawberry.type
class TownshipCenter(ParentCenter):
    """A township's center (乡镇/街道): its villages below."""


@strawberry.type
class VillageCenter(Center):
    """A village's center (村/社区): grid workers patrol and take matters in."""

    @field(description="The dispatch board's grid-worker lanes: each grid "
                       "worker's dispatched, accepted and overdue cases.")
    async def grid_worker_lanes(self, info: GInfo) -> list[Lane] | None:
        return [lane for lane in await _lanes(_ctx(info), self.code)
                if lane.kind == AssigneeKind.GRID_WORKER.value]


_CENTER_TYPES: dict[Tier, type[Center]] = {
    Tier.CITY: CityCenter, Tier.COUNTY: CountyCenter, Tier.TOWNSHIP: TownshipCenter,
    Tier.VILLAGE: VillageCenter,
}


def center_type(c: CenterInfo) -> Center:
    return _CENTER_TYPES[c.tier](code=c.code, name=c.name, tier=c.tier, parent_code=c.parent,
                                 retired=c.retired, key_shredded=c.key_shredded)


async def _readable_center(ctx: Context, code: str) -> Center | None:
    principal = ctx.principal
    if not ctx.services.authorizer.can(principal, Action.CENTER_READ, code):
        return None
    try:
        return center_type(await _center_info(ctx, code))
    except LookupError:
        return None


async def _cases(ctx: Context, scope: str, subtree: bool, filter_: CaseFilterInput | None,
                 first: int, after: str | None) -> CaseConnection:
    return await _case_list(ctx, "cases", scope, subtree, filter_, lambda f: queries.cases(
        ctx.services.tenants, scope, subtree=subtree, filters=f, first=check_first(first),
        after=after), after)


# -- who is asking ------------------------------------------------------------------------


@strawberry.type
class Me:
    subject: str
    name: str | None
    center_code: str
    roles: list[Role]
    unit: str | None
    grid: str | None

    @field(description="The center the roles are held at (null for a province).")
    async def center(self, info: GInfo) -> Center | None:
        return await _readable_center(_ctx(info), self.center_code)

    @field(description="Whether the asker may perform the action at a center.")
    def can(self, info: GInfo, action: Action, center: str) -> bool:
        ctx = _ctx(info)
        return ctx.services.authorizer.can(ctx.principal, action, center)


@strawberry.type
class AccessRecord:
    """One recorded view of a case's personal fields in clear."""

    serial: int
    case_number: str
    viewer: str
    viewer_center: str
    roles: list[str]
    fields: list[str]
    reason: str
    at: datetime


@strawberry.type(name="Category")
class CatalogCategory:
    """A kind of matter in the catalog, with the department it goes to first."""

    code: str
    name: str
    name_en: str
    department: str
    department_name: str


@strawberry.type(name="Department")
class CatalogDepartment:
    """A department cases are dispatched to (an assignee ref of kind UNIT)."""

    code: str
    name: str


# -- queries ----------------------------------------------------------------------------


@strawberry.type
class Query(AuditQuery, AlertQuery):
    @strawberry.field
    def me(self, info: GInfo) -> Me | None:
        p = _ctx(info).principal
        return Me(subject=p.subject, name=p.name, center_code=p.tenant, roles=list(p.roles),
                  unit=p.unit, grid=p.grid)

    @field(description="The catalog of categories (any signed-in staff member).")
    def categories(self, info: GInfo) -> list[CatalogCategory] | None:
        _ctx(info).principal  # noqa: B018 - signed in, or the token's code
        return [CatalogCategory(code=c.code, name=c.zh, name_en=c.en, department=c.department,
                                department_name=DEPARTMENTS.get(c.department, c.department))
                for c in CATEGORIES.values()]

    @field(description="The departments cases go to (any signed-in staff member).")
    def departments(self, info: GInfo) -> list[CatalogDepartment] | None:
        _ctx(info).principal  # noqa: B018 - signed in, or the token's code
        return [CatalogDepartment(code=k, name=v) for k, v in DEPARTMENTS.items()]

    @field(description="A center by its division code (center:read).")
    async def center(self, info: GInfo, code: str) -> Center | None:
        ctx = _ctx(info)
        tier_of(code)
        ctx.services.authorizer.require(ctx.principal, Action.CENTER_READ, code)
        return center_type(await _center_info(ctx, code))

    @field(name="case", description="A case by its id (case:read).")
    async def case_(self, info: GInfo, id: strawberry.ID) -> CaseNode | None:
        ctx = _ctx(info)
        case_id = _case_id(id)
        ctx.services.authorizer.require(ctx.principal, Action.CASE_READ, _tenant(case_id))
        record = await ctx.loaders.case.load(case_id)
        if record is None:
            raise not_found(f"no case {case_id}")
        ctx.services.authorizer.require_on_case(ctx.principal, Action.CASE_READ, record.case)
        return CaseNode.of_record(record)

    @field(description="Cases of a center (the asker's by default), newest first.")
    async def cases(self, info: GInfo, scope: str | None = None, subtree: bool = False,
                    filter: CaseFilterInput | None = None,
                    first: int = DEFAULT_FIRST, after: str | None = None) -> CaseConnection | None:
        ctx = _ctx(info)
        return await _cases(ctx, scope or ctx.principal.tenant, subtree, filter, first, after)

    @field(description="KPIs of a center, with its subtree by default (kpi:read).")
    async def kpis(self, info: GInfo, scope: str | None = None, start: From = None,
                   end: To = None, category: str | None = None,
                   subtree: bool = True) -> Kpis | None:
        ctx = _ctx(info)
        return await _kpis(ctx, scope or ctx.principal.tenant, start, end, category, subtree)

    @field(description="Where matters of a category cluster, by week (kpi:read).")
    async def hot_spots(self, info: GInfo, scope: str | None = None, start: From = None,
                        end: To = None, category: str | None = None, subtree: bool = True,
                        top: int = DEFAULT_TOP) -> list[HotSpot] | None:
        ctx = _ctx(info)
        return await _hot_spots(ctx, scope or ctx.principal.tenant, start, end, category,
                                subtree, top)

    @field(description="Who saw a case's personal fields in clear (audit:read).")
    async def access_log(self, info: GInfo, case_id: strawberry.ID) -> list[AccessRecord] | None:
        ctx = _ctx(info)
        cid = _case_id(case_id)
        ctx.services.authorizer.require(ctx.principal, Action.AUDIT_READ, _tenant(cid))
        records = await _off(views_of, ctx.services.tenants, cid)
        return [AccessRecord(serial=r.serial, case_number=r.case_number, viewer=r.viewer,
                             viewer_center=r.viewer_tenant, roles=list(r.roles),
                             fields=list(r.fields), reason=r.reason, at=r.at)
                for r in records]


# -- mutations --------------------------------------------------------------------------


@strawberry.input
class PartyInput:
    name: str
    phone: str | None = None
    id_number: str | None = None
    address: str | None = None
    role: PartyRole = PartyRole.APPLICANT

    def to_party(self) -> Party:
        def personal(value: str | None) -> Personal | None:
            return Personal(value.strip()) if value and value.strip() else None

        name = personal(self.name)
        if name is None:
            raise ValidationError("a party's name is required (use 匿名 for an anonymous one)")
        return Party(name, personal(self.phone), personal(self.id_number),
                     personal(self.address), self.role.value)


@strawberry.input
class PlaceInput:
    address: str
    division: str | None = strawberry.field(
        default=None, description="Where it happened; the receiving center by default.")
    lat: float | None = None
    lon: float | None = None


@strawberry.input
class AssigneeInput:
    kind: AssigneeKind
    ref: str
    lead: bool = False


ExpectedVersion = Annotated[int | None, strawberry.argument(
    description="Refuse (CONFLICT) unless the case is at this version.")]
Command = Callable[[CenterApp, DomainCase, str, datetime], DomainCase]


async def _command(info: GInfo, case_id: strawberry.ID, action: Action, run: Command,
                   expected_version: int | None = None,
                   check: Callable[[Principal, DomainCase], None] | None = None) -> CaseNode:
    """Authorize ``action`` on the case (its center first, then the case itself),
    then perform the command as the principal, at the clock's time."""
    ctx = _ctx(info)
    principal = ctx.principal
    cid = _case_id(case_id)
    services = ctx.services

    def work() -> DomainCase:
        tenant = _tenant(cid)
        services.authorizer.require(principal, action, tenant)
        app = services.tenants.center(tenant)
        case = app.get_case(cid)
        services.authorizer.require_on_case(principal, action, case)
        if check is not None:
            check(principal, case)
        if expected_version is not None and case.version != expected_version:
            raise ConcurrentUpdate(f"case {case.case_number} is at version {case.version}, not "
                                   f"{expected_version}; reload and retry")
        return run(app, case, principal.subject, services.clock())

    updated = await _off(work)
    ctx.loaders.forget(cid)
    return CaseNode.of_case(updated)


def _answer_ref(ref: str | None, verb: str) -> Callable[[Principal, DomainCase], None]:
    """Checks that the principal may answer for ``ref`` (``answerable_refs``)."""
    def check(principal: Principal, case: DomainCase) -> None:
        # the resolver resolved ``ref`` before calling; this only guards pending refs
        pending = {a.assignee.ref for a in case.assignments if a.accepted_at is None}
        if ref is not None and ref in pending and ref not in answerable_refs(principal, case):
            raise forbidden(f"{', '.join(principal.roles)} at center {principal.tenant} may not "
                            f"{verb} for {ref}")
    return check


def _pick_ref(ref: str | None, principal: Principal, case: DomainCase) -> str:
    if ref is not None:
        return ref
    refs = answerable_refs(principal, case)
    if len(refs) == 1:
        return refs[0]
    if not refs:
        raise forbidden(f"no assignment of case {case.case_number} awaits an answer from "
                        f"{', '.join(principal.roles)} at center {principal.tenant}")
    raise ValidationError(f"name the ref to answer for: one of {', '.join(refs)}")


@strawberry.type
class Mutation(AuditMutation, AlertMutation):
    @mutation(description="Take a matter in at a center (case:receive). A repeat "
                          "complaint about a case closed within 90 days re-opens "
                          "that case, which is returned instead.")
    async def receive_case(self, info: GInfo, center: str, channel: Channel, category: str,
                           summary: str, parties: list[PartyInput],
                           place: PlaceInput) -> CaseNode | None:
        ctx = _ctx(info)
        principal = ctx.principal
        tier_of(center)
        ctx.services.authorizer.require(principal, Action.CASE_RECEIVE, center)
        _category(category)
        if channel is Channel.HANDOVER:
            raise ValidationError("hand-overs open cases by themselves; choose the channel the "
                                  "matter came in by")
        domain_parties = [p.to_party() for p in parties]
        where = Place(place.division or center, place.address, place.lat, place.lon)
        services = ctx.services

        def work() -> DomainCase:
            app = services.tenants.center(center)
            return app.receive_case(channel=channel, category=category, summary=summary,
                                    parties=domain_parties, place=where, by=principal.subject,
                                    at=services.clock())

        case = await _off(work)
        ctx.loaders.forget(case.id)
        return CaseNode.of_case(case)

    @mutation(description="Set severity and handling class (case:triage).")
    async def triage_case(self, info: GInfo, case_id: strawberry.ID, severity: Severity,
                          handling: HandlingClass,
                          expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_TRIAGE, lambda app, c, by, at:
                              app.triage_case(c.id, severity, handling, by, at),
                              expected_version)

    @mutation(description="Dispatch to one lead and any co-assignees "
                          "(case:dispatch).")
    async def dispatch_case(self, info: GInfo, case_id: strawberry.ID,
                            assignees: list[AssigneeInput],
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        chosen = [Assignee(a.kind, a.ref, a.lead) for a in assignees]
        return await _command(info, case_id, Action.CASE_DISPATCH, lambda app, c, by, at:
                              app.dispatch_case(c.id, chosen, by, at), expected_version)

    @mutation(description="Accept an order as (or for) an assignee (case:answer); "
                          "ref defaults to the only one the asker may answer for.")
    async def accept_case(self, info: GInfo, case_id: strawberry.ID, ref: str | None = None,
                          expected_version: ExpectedVersion = None) -> CaseNode | None:
        principal = _ctx(info).principal
        return await _command(
            info, case_id, Action.CASE_ANSWER,
            lambda app, c, by, at: app.accept_case(c.id, _pick_ref(ref, principal, c), by, at),
            expected_version, _answer_ref(ref, "accept"))

    @mutation(description="Refuse a misrouted order (case:answer).")
    async def refuse_case(self, info: GInfo, case_id: strawberry.ID, reason: str,
                          ref: str | None = None,
                          expected_version: ExpectedVersion = None) -> CaseNode | None:
        principal = _ctx(info).principal
        return await _command(
            info, case_id, Action.CASE_ANSWER,
            lambda app, c, by, at: app.refuse_case(c.id, _pick_ref(ref, principal, c), reason,
                                                   by, at),
            expected_version, _answer_ref(ref, "refuse"))

    @mutation(description="Record progress (case:progress).")
    async def report_progress(self, info: GInfo, case_id: strawberry.ID, note: str,
                              expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_PROGRESS, lambda app, c, by, at:
                              app.report_progress(c.id, note, by, at), expected_version)

    @mutation(description="Issue the next supervision instrument (case:urge).")
    async def urge_case(self, info: GInfo, case_id: strawberry.ID, instrument: Instrument,
                        reason: str, responsible_unit: str | None = None,
                        expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_URGE, lambda app, c, by, at:
                              app.urge_case(c.id, instrument, responsible_unit, reason, by, at),
                              expected_version)

    @mutation(description="Escalate to the next tier up (case:escalate).")
    async def escalate_case(self, info: GInfo, case_id: strawberry.ID, reason: str,
                            to_center: str | None = None,
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        def run(app: CenterApp, c: DomainCase, by: str, at: datetime) -> DomainCase:
            target = to_center or parent_of(c.tenant)
            if target is None:
                raise ValidationError(f"escalation never goes above a city; {c.tenant} is one")
            return app.escalate_case(c.id, target, reason, by, at)

        return await _command(info, case_id, Action.CASE_ESCALATE, run, expected_version)

    @mutation(description="Record the result (case:resolve).")
    async def resolve_case(self, info: GInfo, case_id: strawberry.ID, outcome: Outcome,
                           summary: str, court_reference: str | None = None,
                           expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_RESOLVE, lambda app, c, by, at:
                              app.resolve_case(c.id, outcome, summary, by, at, court_reference),
                              expected_version)

    @mutation(description="Feed the result back to the party (case:feedback).")
    async def give_feedback(self, info: GInfo, case_id: strawberry.ID, message: str,
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_FEEDBACK, lambda app, c, by, at:
                              app.give_feedback(c.id, message, by, at), expected_version)

    @mutation(description="Record the party's confirmation (case:feedback).")
    async def confirm_case(self, info: GInfo, case_id: strawberry.ID,
                           expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_FEEDBACK, lambda app, c, by, at:
                              app.confirm_case(c.id, by, at), expected_version)

    @mutation(description="Record that the party rejects the result "
                          "(case:feedback).")
    async def reject_result(self, info: GInfo, case_id: strawberry.ID, reason: str,
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_FEEDBACK, lambda app, c, by, at:
                              app.reject_result(c.id, reason, by, at), expected_version)

    @mutation(description="Record the party's rating, 1-5 stars (case:feedback).")
    async def evaluate_case(self, info: GInfo, case_id: strawberry.ID, stars: int,
                            comment: str = "",
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_FEEDBACK, lambda app, c, by, at:
                              app.evaluate_case(c.id, stars, comment, by, at), expected_version)

    @mutation(description="Close the loop after the party confirmed "
                          "(case:feedback).")
    async def close_case(self, info: GInfo, case_id: strawberry.ID,
                         expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_FEEDBACK, lambda app, c, by, at:
                              app.close_case(c.id, by, at), expected_version)

    @mutation(description="Re-open a closed case (case:reopen).")
    async def reopen_case(self, info: GInfo, case_id: strawberry.ID, reason: str,
                          expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_REOPEN, lambda app, c, by, at:
                              app.reopen_case(c.id, reason, by, at), expected_version)

    @mutation(description="The party complains again about a case closed within "
                          "90 days: re-open it as a repeat complaint (case:reopen).")
    async def repeat_complaint(self, info: GInfo, case_id: strawberry.ID, summary: str,
                               expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_REOPEN, lambda app, c, by, at:
                              app.repeat_complaint(c.id, summary, by, at), expected_version)

    @mutation(description="Merge a duplicate into an open case of the same center "
                          "(case:merge).")
    async def merge_case(self, info: GInfo, case_id: strawberry.ID, into: strawberry.ID,
                         expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_MERGE, lambda app, c, by, at:
                              app.merge_case(c.id, _case_id(into), by, at), expected_version)

    @mutation(description="The applicant withdraws the matter (case:withdraw).")
    async def withdraw_case(self, info: GInfo, case_id: strawberry.ID, reason: str,
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_WITHDRAW, lambda app, c, by, at:
                              app.withdraw_case(c.id, reason, by, at), expected_version)

    @mutation(description="Raise the severity of a case under way (case:triage).")
    async def raise_severity(self, info: GInfo, case_id: strawberry.ID, severity: Severity,
                             reason: str,
                             expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_TRIAGE, lambda app, c, by, at:
                              app.raise_severity(c.id, severity, reason, by, at),
                              expected_version)

    @mutation(description="Mark the case a group matter (群体性); it escalates "
                          "when it can (case:triage).")
    async def mark_group_matter(self, info: GInfo, case_id: strawberry.ID, reason: str,
                                expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_TRIAGE, lambda app, c, by, at:
                              app.mark_group_matter(c.id, reason, by, at), expected_version)

    @mutation(description="Decide a suspected duplicate is a matter of its own "
                          "(case:keep-separate).")
    async def keep_separate(self, info: GInfo, case_id: strawberry.ID, other: strawberry.ID,
                            reason: str,
                            expected_version: ExpectedVersion = None) -> CaseNode | None:
        return await _command(info, case_id, Action.CASE_KEEP_SEPARATE, lambda app, c, by, at:
                              app.keep_separate(c.id, _case_id(other), reason, by, at),
                              expected_version)

    @mutation(description="Show the parties' fields in clear (personal:view, a "
                          "reason required). The view is recorded first, as an "
                          "access record in the case's center (see accessLog).")
    async def unmask_parties(self, info: GInfo, case_id: strawberry.ID,
                             fields: list[PartyField], reason: str) -> list[PartyType] | None:
        ctx = _ctx(info)
        principal = ctx.principal
        cid = _case_id(case_id)
        services = ctx.services

        def work() -> list[dict[str, str | None]]:
            tenant = _tenant(cid)
            services.authorizer.require(principal, Action.PERSONAL_VIEW, tenant)
            case = services.tenants.center(tenant).get_case(cid)
            return unmask(services.tenants, principal, case, [f.value for f in fields], reason,
                          services.clock(), authorizer=services.authorizer)

        return [PartyType.of(p) for p in await _off(work)]


# -- subscriptions ------------------------------------------------------------------------


@strawberry.type
class CaseChange:
    """A case event, as recorded: pass ``position`` as ``afterPosition`` to resume."""

    position: str = strawberry.field(description="The log's position (decimal digits).")
    case_id: strawberry.ID
    center: str
    kind: str = strawberry.field(description="The event: Received, Triaged, Dispatched ...")
    version: int

    @field(description="The case as it is now (null if no longer readable).")
    async def case(self, info: GInfo) -> CaseNode | None:
        return await _visible_case(_ctx(info), UUID(str(self.case_id)))


def _position(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise ValidationError(f"afterPosition is a position the feed gave; {value!r} is not")
    return int(value)


@strawberry.type
class Subscription(AlertSubscription):
    @subscription(description=(
        "Case events of a center (the asker's by default) and, with subtree, of every center "
        "below it; only events the asker may read (case:read, and for unit officers and grid "
        "workers only their assigned cases). Camera alerts: alertRaised."))
    async def case_changed(self, info: GInfo, scope: str | None = None, subtree: bool = False,
                           after_position: str | None = None
                           ) -> AsyncGenerator[CaseChange, None]:
        ctx = _ctx(info)
        code = scope or ctx.principal.tenant
        principal = require_reach(ctx, Action.CASE_READ, code, subtree)
        after = _position(after_position)
        auth = ctx.services.authorizer
        assigned = auth.scope(principal, Action.CASE_READ) is Scope.ASSIGNED
        async for change in ctx.services.feed.follow(code[:4], after):
            inside = change.tenant == code or (subtree and is_within(change.tenant, code))
            if not inside or not auth.can(principal, Action.CASE_READ, change.tenant):
                continue
            loaders = ctx.fresh_loaders()
            if assigned:
                record = await loaders.case.load(change.case_id)
                if record is None or not auth.can_see_case(principal, record.case):
                    continue
            yield CaseChange(position=str(change.position),
                             case_id=strawberry.ID(str(change.case_id)), center=change.tenant,
                             kind=change.kind, version=change.version)


# -- the schema -------------------------------------------------------------------------


class FreshLoaders(SchemaExtension):
    """New loaders for every operation: a websocket's context outlives its
    operations, and one operation must not answer from what another read."""

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, Context):
            context.forget_loaders()
        yield


class ZongzhiSchema(strawberry.Schema):
    """Errors are logged and coded by :class:`api.errors.ErrorCodes`, not here."""

    def process_errors(self, errors: Any, execution_context: Any = None) -> None:
        return None


schema = ZongzhiSchema(
    query=Query, mutation=Mutation, subscription=Subscription,
    types=[CityCenter, CountyCenter, TownshipCenter, VillageCenter],
    extensions=[*limits(), FreshLoaders, ErrorCodes],
    execution_context_class=PlainLeaves,
)

if __name__ == "__main__":
    print(schema.as_str())
