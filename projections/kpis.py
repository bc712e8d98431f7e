"""The figures of DOMAIN.md (考核指标) per center or subtree, period and category.

Computed in SQL over the case view; ``docs/kpis.md`` defines each one (numerator,
denominator, fields and the events behind them, exclusions) so that an auditor
can recompute it from the event history. In brief:

* the **period** selects cases by ``received_at`` (the first receipt), half
  open ``[start, end)``; figures describe those cases as they stand now;
* **matter basis** (resolution, repeat complaints, satisfaction, handling time,
  overdue, township-or-below, hot spots): each matter once per scope; a case
  handed over from a case in the same subtree is left out, its origin counts;
  merged duplicates and orders returned upwards are no matters;
* **dispatch basis** (response time, on-time rate, the per-unit figures): the
  work each center dispatched, i.e. every case in scope except those dispatched
  down to it from above (its answer to such an order is counted in the upper
  center's case, against it as that case's unit).

``alert_precision`` is confirmed / (confirmed + dismissed) of the camera alerts
dispositioned in the period (``projections.alerts``); None without any, or when a
category is asked for (alerts have a kind, not a category).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from domain import city_of
from projections.queries import (
    Period,
    fetch,
    period_where,
    scope_where,
    together,
    view_table,
)
from tenants.persistence import log_group_schema
from tenants.service import Tenants

#: The resolving tier counted as "township or below": township (9) and village (12).
TOWNSHIP_DIGITS = 9
#: Hand-overs followed to find where a matter was resolved (the tree is 4 deep,
#: a matter may climb and descend it).
MAX_CHAIN = 8
SATISFIED_STARS = 4
DEFAULT_TOP = 10


@dataclass(frozen=True)
class Rate:
    """``numerator / denominator``; ``value`` None when nothing was counted."""

    numerator: int
    denominator: int
    value: float | None

    @classmethod
    def of(cls, numerator: int, denominator: int) -> Rate:
        return cls(numerator, denominator, numerator / denominator if denominator else None)


@dataclass(frozen=True)
class Durations:
    """Hours between two instants over ``count`` cases: median and 90th percentile
    (continuous percentiles, as PostgreSQL's ``percentile_cont``)."""

    count: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class UnitFigures:
    """One unit's record in the scope (dispatch basis)."""

    unit: str  # a department code, a lower center's code or a grid worker
    resolved: int  # results recorded with this unit as the lead
    resolved_on_time: int  # ... with no deadline breached against it in the round
    on_time_rate: float | None
    breaches: int  # deadlines that passed while it led, in current rounds
    overdue_now: int  # open cases it leads, past the applicable deadline at ``now``
    refusals: int  # orders it refused
    repeat_complaints: int  # re-opened cases whose last result it had recorded


@dataclass(frozen=True)
class Kpis:
    scope: str
    subtree: bool
    period: Period
    category: str | None
    matters: int  # received in the period (merged duplicates, returned orders left out)
    withdrawn: int
    resolution_rate: Rate  # with a result / matters not withdrawn
    referred_to_court: int  # results that are a court filing (counted as resolved)
    repeat_complaint_rate: Rate  # re-opened at least once / closed at least once
    satisfaction: Rate  # 4 or 5 stars / evaluated
    response_time: Durations  # round start -> first acceptance by the lead (dispatch basis)
    handling_time: Durations  # round start -> result (matter basis)
    on_time_rate: Rate  # dispatch basis, see UnitFigures
    overdue_now: int
    resolved_at_township_or_below: Rate  # resolved in a township or village / resolved
    alert_precision: Rate | None  # None without dispositioned alerts (projections.alerts)
    refusals: int
    units: tuple[UnitFigures, ...]


@dataclass(frozen=True)
class HotSpot:
    """How many matters of a category arose at a place in an ISO week (China time)."""

    category: str
    division: str
    week: str  # e.g. "2026-W10"
    matters: int


def _where(scope: str, subtree: bool, period: Period, category: str | None, *,
           matters: bool) -> tuple[Composed, list[Any]]:
    scope_sql, params = scope_where(scope, subtree=subtree, matters=matters)
    period_sql, period_params = period_where(period)
    sql = scope_sql + period_sql + SQL(" AND status NOT IN ('merged', 'returned')")
    params += period_params
    if category is not None:
        sql += SQL(" AND category = %s")
        params.append(category)
    if not matters:  # dispatch basis: orders from above are answered in the upper case
        sql += SQL(" AND coalesce(origin_direction, '') <> 'up'")
    return sql, params


HOURS = "extract(epoch FROM ({0} - round_started_at)) / 3600.0"

MATTERS = SQL(
    "SELECT count(*) AS matters, "
    "count(*) FILTER (WHERE status = 'withdrawn') AS withdrawn, "
    "count(*) FILTER (WHERE status <> 'withdrawn' AND outcome IS NOT NULL) AS resolved, "
    "count(*) FILTER (WHERE status <> 'withdrawn' AND outcome IS NOT NULL "
    "AND resolved_via IS NULL AND length(tenant) >= {digits}) AS resolved_here_below, "
    "count(*) FILTER (WHERE outcome = 'referred-to-court') AS court, "
    "count(*) FILTER (WHERE repeat_count > 0 OR case_id IN ({dissatisfied})) AS repeated, "
    "count(*) FILTER (WHERE closed_at IS NOT NULL OR repeat_count > 0) AS closed_once, "
    "count(*) FILTER (WHERE stars IS NOT NULL) AS evaluated, "
    "count(*) FILTER (WHERE stars >= {satisfied}) AS satisfied, "
    "count(*) FILTER (WHERE is_open AND due_by < %s) AS overdue, "
    "count(resolved_at) AS handled, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY {hours}) AS handling_median, "
    "percentile_cont(0.9) WITHIN GROUP (ORDER BY {hours}) AS handling_p90 "
    "FROM {table} WHERE {where}")

DISPATCHED = SQL(
    "SELECT count(lead_accepted_at) AS responded, "
    "percentile_cont(0.5) WITHIN GROUP (ORDER BY {hours}) AS response_median, "
    "percentile_cont(0.9) WITHIN GROUP (ORDER BY {hours}) AS response_p90, "
    "count(*) FILTER (WHERE outcome IS NOT NULL AND resolved_by = lead_ref) AS led, "
    "count(*) FILTER (WHERE outcome IS NOT NULL AND resolved_by = lead_ref "
    "AND NOT breaches ? resolved_by) AS on_time "
    "FROM {table} WHERE {where}")

#: Where each matter resolved through a hand-over was resolved: follow
#: ``resolved_via`` (the linked case whose outcome it is) to the case whose own
#: ``Resolved`` recorded it. A matter resolved in place (no ``resolved_via``, most
#: of them) is its own resolving case: ``MATTERS`` counts those in the same scan.
RESOLVED_VIA = SQL(
    "WITH RECURSIVE chain AS ("
    "SELECT case_id AS root, resolved_via AS via, tenant AS here, 0 AS depth "
    "FROM {table} WHERE {where} AND status <> 'withdrawn' AND outcome IS NOT NULL "
    "AND resolved_via IS NOT NULL "
    "UNION ALL SELECT chain.root, v.resolved_via, v.tenant, chain.depth + 1 "
    "FROM chain JOIN {table} v ON v.case_id = chain.via WHERE chain.depth < {limit}), "
    "ends AS (SELECT DISTINCT ON (root) here FROM chain ORDER BY root, depth DESC) "
    "SELECT count(*) FILTER (WHERE length(here) >= {digits}) AS below FROM ends")

#: Per unit, summed over five kinds of contribution of a case. The cases with no
#: breach or refusal (most) are passed over before their (empty) objects are expanded.
UNITS = SQL(
    "WITH d AS (SELECT tenant, outcome, resolved_by, lead_ref, breaches, refusals, "
    "is_open, due_by, repeat_against FROM {table} WHERE {where}), u AS ("
    "SELECT resolved_by AS unit, 1 AS resolved, "
    "(NOT breaches ? resolved_by)::int AS on_time, 0 AS breaches, 0 AS overdue, "
    "0 AS refusals, 0 AS repeats FROM d "
    "WHERE outcome IS NOT NULL AND resolved_by = lead_ref "
    "UNION ALL SELECT b.key, 0, 0, b.value::int, 0, 0, 0 "
    "FROM d, jsonb_each_text(d.breaches) AS b WHERE d.breaches <> '{{}}' "
    "UNION ALL SELECT lead_ref, 0, 0, 0, 1, 0, 0 FROM d "
    "WHERE is_open AND due_by < %s AND lead_ref IS NOT NULL "
    "UNION ALL SELECT r.key, 0, 0, 0, 0, r.value::int, 0 "
    "FROM d, jsonb_each_text(d.refusals) AS r WHERE d.refusals <> '{{}}' "
    "AND r.key <> d.tenant "
    "UNION ALL SELECT repeat_against, 0, 0, 0, 0, 0, 1 FROM d "
    "WHERE repeat_against IS NOT NULL) "
    "SELECT unit, sum(resolved)::int AS resolved, sum(on_time)::int AS on_time, "
    "sum(breaches)::int AS breaches, sum(overdue)::int AS overdue, "
    "sum(refusals)::int AS refusals, sum(repeats)::int AS repeats "
    "FROM u GROUP BY unit ORDER BY unit")

HOT_SPOTS = SQL(
    "SELECT category, division, "
    "to_char(received_at AT TIME ZONE 'Asia/Shanghai', 'IYYY-\"W\"IW') AS week, "
    "count(*) AS matters FROM {table} WHERE {where} "
    "GROUP BY 1, 2, 3 ORDER BY matters DESC, category, division, week LIMIT %s")


def kpis(tenants: Tenants, scope: str, now: datetime, *, subtree: bool = True,
         period: Period | None = None, category: str | None = None) -> Kpis:
    """The KPIs of ``scope`` (with its subtree unless ``subtree`` is False) for the
    cases received in ``period`` (all time by default), optionally one category.
    ``now`` decides what is overdue."""
    period = period or Period()
    table = view_table(scope)
    where, params = _where(scope, subtree, period, category, matters=True)
    d_where, d_params = _where(scope, subtree, period, category, matters=False)
    matters = MATTERS.format(
        dissatisfied=_dissatisfied(tenants, scope), satisfied=Literal(SATISFIED_STARS),
        hours=SQL(HOURS).format(SQL("resolved_at")), digits=Literal(TOWNSHIP_DIGITS),
        table=table, where=where)
    via = RESOLVED_VIA.format(table=table, where=where, limit=Literal(MAX_CHAIN),
                              digits=Literal(TOWNSHIP_DIGITS))
    dispatched = DISPATCHED.format(hours=SQL(HOURS).format(SQL("lead_accepted_at")),
                                   table=table, where=d_where)
    m_rows, via_rows, d_rows, unit_rows = together(
        lambda: fetch(tenants, scope, matters, [now, *params]),
        lambda: fetch(tenants, scope, via, params),
        lambda: fetch(tenants, scope, dispatched, d_params),
        lambda: fetch(tenants, scope, UNITS.format(table=table, where=d_where),
                      [*d_params, now]))
    m, resolved_via, d = (dict(rows[0]) if rows else _EMPTY
                          for rows in (m_rows, via_rows, d_rows))
    units = tuple(
        UnitFigures(r["unit"], r["resolved"], r["on_time"],
                    r["on_time"] / r["resolved"] if r["resolved"] else None, r["breaches"],
                    r["overdue"], r["refusals"], r["repeats"])
        for r in unit_rows)
    countable = m["matters"] - m["withdrawn"]
    return Kpis(
        scope=scope, subtree=subtree, period=period, category=category,
        matters=m["matters"], withdrawn=m["withdrawn"],
        resolution_rate=Rate.of(m["resolved"], countable),
        referred_to_court=m["court"],
        repeat_complaint_rate=Rate.of(m["repeated"], m["closed_once"]),
        satisfaction=Rate.of(m["satisfied"], m["evaluated"]),
        response_time=Durations(d["responded"], _hours(d["response_median"]),
                                _hours(d["response_p90"])),
        handling_time=Durations(m["handled"], _hours(m["handling_median"]),
                                _hours(m["handling_p90"])),
        on_time_rate=Rate.of(d["on_time"], d["led"]),
        overdue_now=m["overdue"],
        resolved_at_township_or_below=Rate.of(m["resolved_here_below"] + resolved_via["below"],
                                              m["resolved"]),
        alert_precision=None if category else _alert_precision(tenants, scope, subtree, period),
        refusals=sum(u.refusals for u in units),
        units=units,
    )


def _alert_precision(tenants: Tenants, scope: str, subtree: bool, period: Period
                     ) -> Rate | None:
    from projections.alerts import alert_precision

    overall, _, _ = alert_precision(tenants, scope, subtree=subtree, start=period.start,
                                    end=period.end)
    total = overall.confirmed + overall.dismissed
    return Rate.of(overall.confirmed, total) if total else None


def hot_spots(tenants: Tenants, scope: str, *, subtree: bool = True,
              period: Period | None = None, category: str | None = None,
              top: int = DEFAULT_TOP) -> tuple[HotSpot, ...]:
    """The ``top`` (category, place division, ISO week) cells by matters received,
    most first (ties by category, division, week)."""
    where, params = _where(scope, subtree, period or Period(), category, matters=True)
    rows = fetch(tenants, scope, HOT_SPOTS.format(table=view_table(scope), where=where),
                 [*params, top])
    return tuple(HotSpot(r["category"], r["division"], r["week"], r["matters"]) for r in rows)


def _dissatisfied(tenants: Tenants, scope: str) -> Composable:
    """The cases with a dissatisfied callback (``audit.callbacks.CallbackResults``);
    none while that projector has not run on the scope's log group."""
    table = f"{log_group_schema(city_of(scope))}.callback_results"
    rows = fetch(tenants, scope, SQL("SELECT to_regclass(%s) IS NOT NULL AS here"), [table])
    if rows and rows[0]["here"]:
        return SQL("SELECT case_id FROM {0} WHERE satisfied = false").format(
            Identifier(*table.split(".")))
    return SQL("SELECT NULL::uuid WHERE false")


def _hours(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


_EMPTY: dict[str, Any] = {
    k: 0 for k in ("matters", "withdrawn", "resolved", "court", "repeated", "closed_once",
                   "evaluated", "satisfied", "overdue", "handled", "responded", "led",
                   "on_time", "below", "resolved_here_below")
} | {k: None for k in ("handling_median", "handling_p90", "response_median", "response_p90")}


__all__ = ["Durations", "HotSpot", "Kpis", "Rate", "UnitFigures", "hot_spots", "kpis"]
