"""Read functions over the case view: each tier's working views and figures.

Every function takes the process's :class:`~tenants.service.Tenants` and an
explicit scope: a center's code, alone (``subtree=False``) or with every center
below it (``subtree=True``: the codes that start with it). Nothing here reads a
clock; ``now`` is a parameter. Results are frozen dataclasses.

Lists are pages in a stable order with keyset cursors: ``first`` (1 to
:data:`MAX_FIRST`) rows after the opaque ``after`` cursor (the ``end_cursor`` of
the previous page). A cursor holds the last row's sort key, not an offset, so
rows added or changed meanwhile never make a page repeat or skip a row that kept
its place; a cursor from another list is refused (:class:`InvalidCursor`).

Two counting bases (docs/kpis.md):

* **lists** show cases: every case of a center in scope, linked cases included
  (each is a work item of its own center);
* **figures** count *matters*: in a subtree, a case opened by a hand-over from
  a case inside the same subtree is left out (its origin counts), so a matter
  escalated or dispatched inside the scope is counted once.

For a GraphQL dataloader, :func:`cases_by_ids` and :func:`figures_for` answer
many keys in one query per city, in the order asked.

A log group whose view was never built reads as empty (see
:func:`view_position` for how far a view has got).
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import dataclasses
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, TypeVar
from uuid import UUID

from eventsourcing.persistence import ProgrammingError
from psycopg import Connection
from psycopg.errors import InvalidSchemaName, UndefinedTable
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg.sql import Literal as SQLLiteral

from domain import Severity, Status, Tier, ValidationError, city_of, tenant_of, tier_of
from tenants.persistence import log_group_schema
from tenants.service import Tenants

TABLE = "case_view"
PROJECTOR = "case_view"  # the CaseView projector's name in the tracking table
DEFAULT_FIRST = 50
MAX_FIRST = 500

T = TypeVar("T")


class InvalidCursor(ValidationError):
    """A cursor that this list did not hand out (or that was altered)."""


# -- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Cases *received* in ``[start, end)``; None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class CaseFilter:
    """Narrows any list; every field set must hold.

    ``statuses``: any of these; ``received_from`` inclusive, ``received_to``
    exclusive; ``assignee``: a ref (unit, center code, grid worker) among the
    assignees of the case's current dispatch.
    """

    statuses: tuple[Status, ...] = ()
    category: str | None = None
    severity: Severity | None = None
    received_from: datetime | None = None
    received_to: datetime | None = None
    assignee: str | None = None


@dataclass(frozen=True)
class UnitCount:
    """A count per unit (a department, a center's code or a grid worker)."""

    unit: str
    count: int


@dataclass(frozen=True)
class CaseRow:
    """One case as the view holds it (no personal data). See ``projections.views``."""

    case_id: UUID
    tenant: str
    case_number: str
    channel: str
    category: str
    summary: str
    status: Status
    is_open: bool
    severity: Severity | None
    handling: str | None
    group_matter: bool
    received_at: datetime
    round_started_at: datetime
    respond_by: datetime | None
    handle_by: datetime | None
    #: The deadline that applies now (response while dispatched, handling or the
    #: progress duty while accepted) and which one; None when none applies.
    due_by: datetime | None
    due_kind: str | None
    next_step_at: datetime | None
    lead_kind: str | None
    lead_ref: str | None
    assignees: tuple[str, ...]
    lead_accepted_at: datetime | None
    progress_reports: int
    last_progress_at: datetime | None
    resolved_at: datetime | None
    resolved_via: UUID | None
    outcome: str | None
    court_reference: str | None
    resolved_by: str | None
    rejections: int
    closed_at: datetime | None
    stars: int | None
    repeat_count: int
    repeat_against: str | None
    refusals: tuple[UnitCount, ...]
    breaches: tuple[UnitCount, ...]
    urgings: int
    last_instrument: str | None
    last_urged_at: datetime | None
    escalated_to: str | None
    origin_case: UUID | None
    origin_tenant: str | None
    origin_direction: str | None
    linked_cases: tuple[UUID, ...]
    merged_into: UUID | None
    division: str
    lat: float | None
    lon: float | None
    last_at: datetime
    version: int

    @property
    def handed_down(self) -> bool:
        """Dispatched to this center by an upper one (it answers the order)."""
        return self.origin_direction == "up"


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; pass ``end_cursor`` as ``after`` for the next one."""

    items: tuple[T, ...]
    end_cursor: str | None
    has_next: bool


@dataclass(frozen=True)
class Lane:
    """One assignee's column on a dispatch board."""

    assignee: str
    kind: str | None
    dispatched: int  # waiting for its acceptance
    accepted: int
    overdue: int  # of both, past the deadline that applies


@dataclass(frozen=True)
class Figures:
    """Counts of matters received in a period, by where they stand now.

    ``received`` excludes merged duplicates and orders returned to the upper
    center; ``received = open + closed + withdrawn``.
    """

    received: int = 0
    open: int = 0
    closed: int = 0
    withdrawn: int = 0
    resolved: int = 0  # has a result in its current round (closed or not)
    overdue: int = 0  # open, past the deadline that applies at ``now``


@dataclass(frozen=True)
class CenterFigures:
    code: str
    subtree: bool
    figures: Figures


@dataclass(frozen=True)
class TierFigures:
    """The matters of a subtree whose (counted) case lies at one tier."""

    tier: Tier
    centers: int  # registered centers of that tier in the subtree
    figures: Figures


@dataclass(frozen=True)
class Rollup:
    """A center's subtree: its total, split by tier, and each child's subtree."""

    code: str
    period: Period
    total: Figures
    tiers: tuple[TierFigures, ...]
    children: tuple[CenterFigures, ...]


# -- working views --------------------------------------------------------------------

INBOX_WHERE = ("(status IN ('received', 'triaged') "
               "OR (status = 'dispatched' AND origin_direction = 'up'))")
BOARD_WHERE = ("status IN ('dispatched', 'accepted') AND lead_ref IS NOT NULL "
               "AND coalesce(origin_direction, '') <> 'up'")


def inbox(tenants: Tenants, tenant: str, *, filters: CaseFilter | None = None,
          first: int = DEFAULT_FIRST, after: str | None = None) -> Page[CaseRow]:
    """Cases waiting for this center, oldest first: received or triaged ones to
    route (escalated-in and re-opened cases arrive triaged), and orders
    dispatched down from an upper center awaiting its acceptance or refusal."""
    return _page(tenants, "inbox", tenant, False, filters, first, after,
                 extra=(INBOX_WHERE,), params=[])


def dispatch_board(tenants: Tenants, tenant: str, *, filters: CaseFilter | None = None,
                   first: int = DEFAULT_FIRST, after: str | None = None) -> Page[CaseRow]:
    """This center's dispatched and accepted cases, by lead assignee, then oldest
    first (``filters.assignee`` narrows it to one lane)."""
    return _page(tenants, "board", tenant, False, filters, first, after, extra=(BOARD_WHERE,),
                 params=[])


def dispatch_lanes(tenants: Tenants, tenant: str, now: datetime) -> tuple[Lane, ...]:
    """The dispatch board's lanes with their counts, by assignee."""
    statement = SQL(
        "SELECT lead_ref, min(lead_kind) AS kind, "
        "count(*) FILTER (WHERE status = 'dispatched') AS dispatched, "
        "count(*) FILTER (WHERE status = 'accepted') AS accepted, "
        "count(*) FILTER (WHERE due_by < %s) AS overdue "
        "FROM {0} WHERE tenant = %s AND status IN ('dispatched', 'accepted') "
        "AND lead_ref IS NOT NULL AND coalesce(origin_direction, '') <> 'up' "
        "GROUP BY lead_ref ORDER BY lead_ref").format(view_table(tenant))
    rows = fetch(tenants, tenant, statement, [now, tenant])
    return tuple(Lane(r["lead_ref"], r["kind"], r["dispatched"], r["accepted"], r["overdue"])
                 for r in rows)


def overdue(tenants: Tenants, scope: str, now: datetime, *, subtree: bool = False,
            filters: CaseFilter | None = None, first: int = DEFAULT_FIRST,
            after: str | None = None) -> Page[CaseRow]:
    """Open cases past the deadline that applies (the response deadline while
    dispatched, the handling deadline or a complex matter's progress duty while
    accepted), longest overdue first."""
    return _page(tenants, "due", scope, subtree, filters, first, after,
                 extra=("due_by < %s",), params=[now])


def due_soon(tenants: Tenants, scope: str, now: datetime, within: timedelta, *,
             subtree: bool = False, filters: CaseFilter | None = None,
             first: int = DEFAULT_FIRST, after: str | None = None) -> Page[CaseRow]:
    """Open cases whose applicable deadline falls in ``[now, now + within)``,
    soonest first."""
    return _page(tenants, "due", scope, subtree, filters, first, after,
                 extra=("due_by >= %s", "due_by < %s"), params=[now, now + within])


def cases(tenants: Tenants, scope: str, *, subtree: bool = False,
          filters: CaseFilter | None = None, first: int = DEFAULT_FIRST,
          after: str | None = None) -> Page[CaseRow]:
    """Every case of the scope, newest first."""
    return _page(tenants, "cases", scope, subtree, filters, first, after, extra=(), params=[])


def cases_by_ids(tenants: Tenants, ids: Sequence[UUID]) -> list[CaseRow | None]:
    """The rows of ``ids`` in the order given (None where there is none): one
    query per city, for a dataloader."""
    by_city: dict[str, list[UUID]] = defaultdict(list)
    for case_id in ids:
        tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
        if tenant is not None:
            by_city[city_of(tenant)].append(case_id)
    found: dict[UUID, CaseRow] = {}
    for city, wanted in by_city.items():
        statement = SQL("SELECT {0} FROM {1} WHERE case_id = ANY(%s)").format(
            _ROW_COLUMNS, view_table(city))
        for row in fetch_cases(tenants, city, statement, [wanted]):
            found[row.case_id] = row
    return [found.get(case_id) for case_id in ids]


# -- figures along the tree -----------------------------------------------------------


def figures_for(tenants: Tenants, codes: Sequence[str], now: datetime, *,
                period: Period | None = None, subtree: bool = True) -> dict[str, Figures]:
    """The figures of each code (its subtree, or the center alone), one query per
    city; every code asked is in the answer."""
    period = period or Period()
    result = {code: Figures() for code in codes}
    by_city: dict[str, list[str]] = defaultdict(list)
    for code in dict.fromkeys(codes):
        by_city[city_of(_code(code))].append(code)
    for city, wanted in by_city.items():
        # Per code a LATERAL aggregate over a range, not a join on
        # ``LIKE s.code || '%'``: a prefix that is not a constant cannot use the
        # (tenant, ...) indexes, and a join would scan the whole view. Under "C"
        # collation every code starting with s.code lies in [s.code, s.code || ':').
        condition = (SQL("c.tenant >= s.code AND c.tenant < s.code || ':' AND NOT coalesce("
                         "c.origin_tenant LIKE s.code || '%%', false)") if subtree
                     else SQL("c.tenant = s.code"))
        where, params = period_where(period, "c.")
        statement = SQL(
            "SELECT s.code, f.* FROM unnest(%s::text[]) AS s(code) CROSS JOIN LATERAL "
            "(SELECT {figures} FROM {table} c WHERE {condition} AND {counted}{where}) f "
            "WHERE f.received > 0").format(
            figures=FIGURES_SQL, table=view_table(city), condition=condition,
            counted=COUNTED, where=where)
        for r in fetch(tenants, city, statement, [wanted, now, *params]):
            result[r["code"]] = _figures(r)
    return result


def children_figures(tenants: Tenants, tenant: str, now: datetime, *,
                     period: Period | None = None) -> tuple[CenterFigures, ...]:
    """Each child center of ``tenant`` (retired ones too) with its subtree's figures."""
    children = [c.code for c in tenants.registry.children(_code(tenant))]
    figures = figures_for(tenants, children, now, period=period, subtree=True)
    return tuple(CenterFigures(code, True, figures[code]) for code in children)


def rollup(tenants: Tenants, tenant: str, now: datetime, *,
           period: Period | None = None) -> Rollup:
    """The subtree of ``tenant``: its total, the split by tier (which sums to the
    total) and each child's subtree (a matter handed between two children counts
    in both, so the children need not sum to the total)."""
    period = period or Period()
    code = _code(tenant)
    scope, scope_params = scope_where(code, subtree=True)
    where, params = period_where(period)
    statement = SQL(
        "SELECT length(tenant) AS digits, {figures} FROM {table} "
        "WHERE {scope} AND {counted}{where} GROUP BY length(tenant)").format(
        figures=FIGURES_SQL, table=view_table(code), scope=scope, counted=COUNTED, where=where)
    rows = {r["digits"]: _figures(r)
            for r in fetch(tenants, code, statement, [now, *scope_params, *params])}
    centers = tenants.registry.subtree(code)
    tiers = tuple(
        TierFigures(tier, sum(1 for c in centers if c.tier is tier),
                    rows.get(digits, Figures()))
        for tier, digits in TIER_DIGITS.items() if digits >= len(code))
    total = Figures(*(sum(getattr(t.figures, f) for t in tiers) for f in FIGURE_FIELDS))
    return Rollup(code, period, total, tiers,
                  children_figures(tenants, code, now, period=period))


def view_position(tenants: Tenants, city: str) -> tuple[int, int]:
    """(the last notification the city's case view covers, the log group's last
    notification): how fresh the view is."""
    schema = Identifier(log_group_schema(city_of(_code(city))))
    statement = SQL(
        "SELECT (SELECT max(notification_id) FROM {0}.tracking "
        "WHERE application_name = %s) AS covered, "
        "(SELECT max(notification_id) FROM {0}.events) AS last").format(schema)
    rows = fetch(tenants, city, statement, [PROJECTOR], prepare=None)
    return (rows[0]["covered"] or 0, rows[0]["last"] or 0) if rows else (0, 0)


# -- SQL shared with projections.kpis -----------------------------------------------------

TIER_DIGITS = {Tier.CITY: 4, Tier.COUNTY: 6, Tier.TOWNSHIP: 9, Tier.VILLAGE: 12}
FIGURE_FIELDS = ("received", "open", "closed", "withdrawn", "resolved", "overdue")
#: The cases a figure counts: merged duplicates and returned orders are not matters.
COUNTED = SQL("status NOT IN ('merged', 'returned')")
#: The figures of a group of counted rows; its one parameter is ``now``.
FIGURES_SQL = SQL(
    "count(*) AS received, "
    "count(*) FILTER (WHERE is_open) AS open, "
    "count(*) FILTER (WHERE status = 'closed') AS closed, "
    "count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn, "
    "count(*) FILTER (WHERE outcome IS NOT NULL) AS resolved, "
    "count(*) FILTER (WHERE is_open AND due_by < %s) AS overdue")


def scope_where(scope: str, *, subtree: bool, matters: bool = True,
                prefix: str = "") -> tuple[Composed, list[Any]]:
    """The rows of a scope. With ``subtree`` and ``matters``, a case handed over
    from a case inside the same subtree is left out (its origin counts)."""
    code = _code(scope)
    params = [code] if not subtree else [code + "%"] * (2 if matters else 1)
    return scope_condition(subtree=subtree, matters=matters, prefix=prefix), params


def scope_condition(*, subtree: bool, matters: bool = True, prefix: str = "") -> Composed:
    """:func:`scope_where`'s condition alone: the same for every scope of a shape."""
    tenant, origin = Identifier(*_qualified(prefix, "tenant")), \
        Identifier(*_qualified(prefix, "origin_tenant"))
    if not subtree:
        return SQL("{0} = %s").format(tenant)
    if not matters:
        return SQL("{0} LIKE %s").format(tenant)
    return SQL("{0} LIKE %s AND NOT coalesce({1} LIKE %s, false)").format(tenant, origin)


def period_where(period: Period, prefix: str = "") -> tuple[Composed, list[Any]]:
    """`` AND received_at`` within the period (empty when it is open)."""
    column = Identifier(*_qualified(prefix, "received_at"))
    parts: list[Composable] = []
    params: list[Any] = []
    if period.start is not None:
        parts.append(SQL(" AND {0} >= %s").format(column))
        params.append(period.start)
    if period.end is not None:
        parts.append(SQL(" AND {0} < %s").format(column))
        params.append(period.end)
    return Composed(parts), params


#: Threads that run one request's statements side by side (each on a pooled connection
#: of its own); shared by the process, so concurrent requests queue rather than multiply.
_STATEMENTS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kpi-statement")


def together(*calls: Callable[[], T]) -> list[T]:
    """The calls' results, the calls run at once on the statement threads, each in
    the caller's context (its trace span). Statements that each scan a scope's rows
    (a KPI set's four) take the time of the longest side by side, not the sum."""
    futures = [_STATEMENTS.submit(contextvars.copy_context().run, call) for call in calls]
    return [f.result() for f in futures]


def fetch(tenants: Tenants, scope: str, statement: SQL | Composed,
          params: Sequence[Any], *, prepare: bool | None = False) -> list[DictRow]:
    """Rows of a statement on the log group of ``scope`` (on the server that
    holds it); none if its view was never built. Not prepared unless asked
    (``prepare=None``: psycopg prepares a statement text used often on a connection):
    a generic plan cannot see that ``tenant LIKE %s`` is the prefix of one subtree,
    and would scan where a custom plan seeks."""
    return _on_view(tenants, scope,
                    lambda conn: conn.execute(statement, params, prepare=prepare).fetchall())


def _on_view(tenants: Tenants, scope: str, run: Callable[[Connection[DictRow]], list[T]]
             ) -> list[T]:
    try:
        with tenants.datastore_for(city_of(_code(scope))).get_connection() as conn:
            return run(conn)
    except (UndefinedTable, InvalidSchemaName):
        return []
    except ProgrammingError as e:
        if isinstance(e.__cause__, (UndefinedTable, InvalidSchemaName)):
            return []
        raise


def view_table(scope: str) -> Identifier:
    """The case view of the scope's log group."""
    return Identifier(log_group_schema(city_of(_code(scope))), TABLE)


def _qualified(prefix: str, column: str) -> tuple[str, ...]:
    return (prefix.rstrip("."), column) if prefix else (column,)


def _code(scope: str) -> str:
    """A center's code (4, 6, 9 or 12 digits), or ValidationError."""
    tier_of(scope)
    return scope


def _figures(r: Mapping[str, Any]) -> Figures:
    return Figures(*(int(r[f]) for f in FIGURE_FIELDS))


# -- pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Order:
    """A list's sort key: columns (all one direction) ending with case_id."""

    columns: tuple[str, ...]
    parse: tuple[Callable[[Any], Any], ...]
    direction: Literal["ASC", "DESC"] = "ASC"
    encode: tuple[Callable[[Any], Any], ...] = field(default=())


def _iso(value: datetime) -> str:
    return value.isoformat()


def _parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a naive time")
    return parsed


def _parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not text")
    return value


ORDERS: dict[str, _Order] = {
    "inbox": _Order(("received_at", "case_id"), (_parse_time, UUID), "ASC", (_iso, str)),
    "board": _Order(("lead_ref", "received_at", "case_id"), (_parse_text, _parse_time, UUID),
                    "ASC", (str, _iso, str)),
    "due": _Order(("due_by", "case_id"), (_parse_time, UUID), "ASC", (_iso, str)),
    "cases": _Order(("received_at", "case_id"), (_parse_time, UUID), "DESC", (_iso, str)),
}


def encode_cursor(kind: str, row: CaseRow) -> str:
    order = ORDERS[kind]
    key = [enc(getattr(row, c)) for c, enc in zip(order.columns, order.encode, strict=True)]
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> list[Any]:
    """The sort key a cursor holds; InvalidCursor unless this list handed it out."""
    order = ORDERS[kind]
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if not isinstance(data, list) or data[0] != kind \
                or len(data) != len(order.columns) + 1:
            raise ValueError("not a cursor of this list")
        return [parse(v) for parse, v in zip(order.parse, data[1:], strict=True)]
    except (ValueError, TypeError, IndexError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(f"not a cursor of this list: {cursor!r}") from e


def filter_where(filters: CaseFilter) -> tuple[tuple[str, ...], list[Any]]:
    """A filter's conditions (constant SQL text, so a page's statement is cached by
    its shape) and their parameters."""
    parts: list[str] = []
    params: list[Any] = []
    if filters.statuses:
        parts.append("status = ANY(%s)")
        params.append([Status(s).value for s in filters.statuses])
    if filters.category is not None:
        parts.append("category = %s")
        params.append(filters.category)
    if filters.severity is not None:
        parts.append("severity = %s")
        params.append(Severity(filters.severity).value)
    if filters.received_from is not None:
        parts.append("received_at >= %s")
        params.append(filters.received_from)
    if filters.received_to is not None:
        parts.append("received_at < %s")
        params.append(filters.received_to)
    if filters.assignee is not None:
        parts.append("assignees @> ARRAY[%s]::text[]")
        params.append(filters.assignee)
    return tuple(parts), params


def _page(tenants: Tenants, kind: str, scope: str, subtree: bool,
          filters: CaseFilter | None, first: int, after: str | None, *,
          extra: tuple[str, ...], params: list[Any]) -> Page[CaseRow]:
    if isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_FIRST:
        raise ValidationError(f"first must be 1 to {MAX_FIRST}; got {first!r}")
    code = _code(scope)
    filter_sql, filter_params = filter_where(filters or CaseFilter())
    values: list[Any] = [code + "%" if subtree else code, *params, *filter_params]
    if after is not None:
        values += decode_cursor(kind, after)
    statement = _page_statement(city_of(code), kind, subtree, extra, filter_sql,
                                after is not None, first + 1)
    # a center's own list (``tenant = %s``) plans the same for every center: prepared
    rows = fetch_cases(tenants, scope, statement, values, prepare=None if not subtree else False)
    has_next = len(rows) > first
    rows = rows[:first]
    end = encode_cursor(kind, rows[-1]) if rows else after
    return Page(tuple(rows), end, has_next)


@functools.lru_cache(maxsize=1024)
def _page_statement(city: str, kind: str, subtree: bool, extra: tuple[str, ...],
                    filters: tuple[str, ...], paged: bool, limit: int) -> str:
    """A page's SQL text by its shape, composed once (composing it per request was
    a fifth of a list's client CPU, profiled)."""
    order = ORDERS[kind]
    conditions: list[Composable] = [scope_condition(subtree=subtree, matters=False),
                                    *(SQL(e) for e in extra), *(SQL(f) for f in filters)]
    key = SQL(", ").join(Identifier(c) for c in order.columns)
    if paged:
        comparison = ">" if order.direction == "ASC" else "<"
        conditions.append(SQL("({0}) {1} ({2})").format(
            key, SQL(comparison), SQL(", ").join(SQL("%s") for _ in order.columns)))
    direction = SQL(f" {order.direction}")
    return SQL("SELECT {0} FROM {1} WHERE {2} ORDER BY {3} LIMIT {4}").format(
        _ROW_COLUMNS, view_table(city), SQL(" AND ").join(conditions),
        SQL(", ").join(Identifier(c) + direction for c in order.columns),
        SQLLiteral(limit)).as_string(None)


def _counts(value: Mapping[str, int] | None) -> tuple[UnitCount, ...]:
    if not value:
        return ()
    return tuple(UnitCount(k, int(v)) for k, v in sorted(value.items()))


_STATUSES = {s.value: s for s in Status}
_SEVERITIES = {s.value: s for s in Severity}


#: The view's columns in :class:`CaseRow`'s order, as a list query selects them: the
#: two jsonb counts as text (most are ``{}``, decoded without the JSON decoder).
_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(CaseRow))
_JSON_TEXT = ("refusals", "breaches")
_ROW_COLUMNS = SQL(", ").join(
    SQL("{0}::text AS {0}").format(Identifier(n)) if n in _JSON_TEXT else Identifier(n)
    for n in _ROW_FIELDS)


@functools.lru_cache(maxsize=4096)
def _counts_text(value: str) -> tuple[UnitCount, ...]:
    """A jsonb count as text, decoded once per distinct text: the same few units
    and counts recur on every page (building a county's 21-row overdue page at
    1,000,000 cases took 0.115 ms decoding them each time, 0.080 ms so); the result
    is immutable, so shared."""
    return () if value == "{}" else _counts(json.loads(value))


def case_row(values: Sequence[Any]) -> CaseRow:
    """A row of :data:`_ROW_COLUMNS` as a :class:`CaseRow`.

    Built without the dataclass's ``__init__``: a frozen dataclass sets each of its
    50 fields through ``object.__setattr__``, which was two thirds of a list page's
    row-building CPU (profiled). The values come from the view's typed columns; only
    the enums, arrays and counts are converted here."""
    r = dict(zip(_ROW_FIELDS, values, strict=True))
    r["status"] = _STATUSES[r["status"]]
    severity = r["severity"]
    r["severity"] = _SEVERITIES[severity] if severity else None
    r["assignees"] = tuple(r["assignees"])
    r["linked_cases"] = tuple(r["linked_cases"])
    r["refusals"] = _counts_text(r["refusals"])
    r["breaches"] = _counts_text(r["breaches"])
    row: CaseRow = object.__new__(CaseRow)
    row.__dict__.update(r)
    return row


def _case_rows(cursor: Any) -> Callable[[Sequence[Any]], CaseRow]:
    """A psycopg row factory: each row straight into a :class:`CaseRow`."""
    return case_row


def fetch_cases(tenants: Tenants, scope: str, statement: str | SQL | Composed,
                params: Sequence[Any], *, prepare: bool | None = False) -> list[CaseRow]:
    """Rows of a statement selecting :data:`_ROW_COLUMNS`, as :class:`CaseRow`; the
    results in binary (cheaper to load than text: timestamps, uuids, arrays)."""
    return _on_view(tenants, scope, lambda conn: conn.cursor(row_factory=_case_rows).execute(
        statement, params, prepare=prepare, binary=True).fetchall())


__all__ = [
    "DEFAULT_FIRST",
    "MAX_FIRST",
    "CaseFilter",
    "CaseRow",
    "CenterFigures",
    "Figures",
    "InvalidCursor",
    "Lane",
    "Page",
    "Period",
    "Rollup",
    "TierFigures",
    "UnitCount",
    "case_row",
    "cases",
    "cases_by_ids",
    "children_figures",
    "dispatch_board",
    "dispatch_lanes",
    "due_soon",
    "figures_for",
    "inbox",
    "overdue",
    "rollup",
    "together",
    "view_position",
    "view_table",
]
