"""The inspection and KPI reports as staff use them: spreadsheets (xlsx).

Every sheet has two header rows, Chinese first and English under it; times are
written as ISO 8601 text with their offset (Excel has no time zones). The
figures are exactly those of :mod:`audit.inspection` and
:func:`projections.kpis.kpis` — the GraphQL fields ``inspectionReport`` and
``kpiReport`` serve the same objects — so a sheet and the API never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from audit.chain import AuditError
from audit.inspection import CODES, PROVINCE_DIGITS, InspectionReport, cities_of
from projections.kpis import Kpis, kpis
from projections.queries import Period
from tenants.service import Tenants

__all__ = [
    "INSPECTION_SHEETS",
    "KPI_COLUMNS",
    "KpiReport",
    "KpiRow",
    "inspection_workbook",
    "kpi_report",
    "kpi_workbook",
]


@dataclass(frozen=True)
class KpiRow:
    center: str
    name: str
    kpis: Kpis  # the center with its subtree


@dataclass(frozen=True)
class KpiReport:
    """The KPIs of a scope (with its subtree) and of each of its children, for the
    cases received in ``[start, end)`` as they stand at ``now``; for a province,
    of each of its cities."""

    scope: str
    start: datetime
    end: datetime
    now: datetime
    rows: tuple[KpiRow, ...]  # the scope first, then its children by code


def kpi_report(tenants: Tenants, scope: str, start: datetime, end: datetime,
               now: datetime) -> KpiReport:
    if start.tzinfo is None or end.tzinfo is None or now.tzinfo is None:
        raise AuditError("a report's period and time must be timezone-aware")
    if not start < end:
        raise AuditError(f"a period starts before it ends; {start.isoformat()} is not "
                         f"before {end.isoformat()}")
    period = Period(start, end)
    rows: list[KpiRow] = []
    if len(scope) == PROVINCE_DIGITS:  # an auditor's province: its cities (no total row)
        children = [tenants.registry.get(city) for city in cities_of(tenants, scope)]
    else:
        center = tenants.registry.get(scope)  # UnknownTenant
        rows.append(KpiRow(center.code, center.name, kpis(tenants, scope, now, period=period)))
        children = tenants.registry.children(scope)
    for child in sorted(children, key=lambda c: c.code):
        rows.append(KpiRow(child.code, child.name,
                           kpis(tenants, child.code, now, period=period)))
    return KpiReport(scope, start, end, now, tuple(rows))


def _time(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None




#: (中文, English, value) of each column of the KPI sheet, one row per center.
KPI_COLUMNS: tuple[tuple[str, str, Callable[[KpiRow], Any]], ...] = (
    ("中心代码", "center", lambda r: r.center),
    ("中心名称", "name", lambda r: r.name),
    ("受理事项", "matters", lambda r: r.kpis.matters),
    ("撤回", "withdrawn", lambda r: r.kpis.withdrawn),
    ("化解数", "resolved", lambda r: r.kpis.resolution_rate.numerator),
    ("化解率", "resolution rate", lambda r: r.kpis.resolution_rate.value),
    ("诉讼转立案", "referred to court", lambda r: r.kpis.referred_to_court),
    ("重复投诉", "repeat complaints", lambda r: r.kpis.repeat_complaint_rate.numerator),
    ("曾办结", "closed at least once", lambda r: r.kpis.repeat_complaint_rate.denominator),
    ("重复投诉率", "repeat-complaint rate", lambda r: r.kpis.repeat_complaint_rate.value),
    ("满意(4-5星)", "satisfied", lambda r: r.kpis.satisfaction.numerator),
    ("已评价", "evaluated", lambda r: r.kpis.satisfaction.denominator),
    ("满意度", "satisfaction", lambda r: r.kpis.satisfaction.value),
    ("响应时长中位数(小时)", "response time median (h)",
     lambda r: r.kpis.response_time.median_hours),
    ("办理时长中位数(小时)", "handling time median (h)",
     lambda r: r.kpis.handling_time.median_hours),
    ("按时办结率", "on-time rate", lambda r: r.kpis.on_time_rate.value),
    ("当前超期", "overdue now", lambda r: r.kpis.overdue_now),
    ("乡镇及以下化解率", "resolved at township or below",
     lambda r: r.kpis.resolved_at_township_or_below.value),
    ("退回次数", "refusals", lambda r: r.kpis.refusals),
)

Column = tuple[str, str, Callable[[Any], Any]]

#: The inspection workbook: (sheet title, columns, rows of the report).
INSPECTION_SHEETS: tuple[tuple[str, tuple[Column, ...],
                               Callable[[InspectionReport], Sequence[Any]]], ...] = (
    ("违规明细 Violations", (
        ("案件编号", "case number", lambda v: v.case_number),
        ("案件ID", "case id", lambda v: str(v.case_id)),
        ("中心", "center", lambda v: v.tenant),
        ("责任单位", "unit", lambda v: v.unit),
        ("环节", "step", lambda v: v.step),
        ("代码", "code", lambda v: v.code),
        ("规则", "rule", lambda v: CODES[v.code]),
        ("说明", "message", lambda v: v.message),
        ("发生时间", "at", lambda v: _time(v.at)),
        ("时限", "deadline", lambda v: _time(v.deadline)),
    ), lambda r: r.violations),
    ("按中心 By center", (
        ("中心", "center", lambda t: t.tenant),
        ("核查案件", "inspected", lambda t: t.inspected),
        ("无问题", "clean", lambda t: t.clean),
        ("违规数", "violations", lambda t: t.violations),
    ), lambda r: r.by_tenant()),
    ("按单位 By unit", (
        ("中心", "center", lambda u: u.tenant),
        ("责任单位", "unit", lambda u: u.unit),
        ("违规数", "violations", lambda u: u.violations),
        ("涉及案件", "cases", lambda u: u.cases),
    ), lambda r: r.by_unit()),
    ("按规则 By rule", (
        ("代码", "code", lambda kv: kv[0]),
        ("规则", "rule", lambda kv: CODES[kv[0]]),
        ("违规数", "violations", lambda kv: kv[1]),
    ), lambda r: sorted(r.by_code().items())),
)


def _sheet(ws: Worksheet, columns: Sequence[Column], rows: Sequence[Any]) -> None:
    ws.append([zh for zh, _, _ in columns])
    ws.append([en for _, en, _ in columns])
    for cell in (*ws[1], *ws[2]):
        cell.font = Font(bold=True)
    ws.freeze_panes = "A3"
    for row in rows:
        ws.append([value(row) for _, _, value in columns])


def _save(wb: Workbook) -> bytes:
    out = BytesIO()
    wb.save(out)
    return out.getvalue()


def inspection_workbook(report: InspectionReport) -> bytes:
    """A summary sheet, then the violations, and their counts per center, unit and rule."""
    wb = Workbook()
    summary = wb.active
    assert summary is not None
    summary.title = "概况 Summary"
    _sheet(summary, (
        ("范围", "scope", lambda r: r.scope),
        ("起", "from", lambda r: _time(r.start)),
        ("止(不含)", "to (exclusive)", lambda r: _time(r.end)),
        ("核查案件", "inspected", lambda r: r.inspected),
        ("无问题", "clean", lambda r: sum(c.clean for c in r.cases)),
        ("违规数", "violations", lambda r: len(r.violations)),
    ), [report])
    for title, columns, rows in INSPECTION_SHEETS:
        _sheet(wb.create_sheet(title), columns, rows(report))
    return _save(wb)


def kpi_workbook(report: KpiReport) -> bytes:
    """One row per center: the scope with its subtree, then each child with its own."""
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "考核指标 KPIs"
    _sheet(ws, KPI_COLUMNS, report.rows)
    about = wb.create_sheet("说明 About")
    _sheet(about, (
        ("范围", "scope", lambda r: r.scope),
        ("受理起", "received from", lambda r: _time(r.start)),
        ("受理止(不含)", "received before", lambda r: _time(r.end)),
        ("统计时点", "as of", lambda r: _time(r.now)),
        ("口径", "definitions", lambda r: "docs/kpis.md"),
    ), [report])
    return _save(wb)
