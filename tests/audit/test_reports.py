"""The inspection and KPI workbooks hold exactly the reports' figures."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO
from typing import Any

import pytest
from loop_support import MARCH, full_loop
from openpyxl import load_workbook

from audit.chain import AuditError
from audit.inspection import CODES, inspect
from audit.reports import INSPECTION_SHEETS, inspection_workbook, kpi_report, kpi_workbook
from domain import Severity
from domain.calendar import CHINA
from projections.kpis import kpis
from projections.queries import Period
from projections.views import CaseView
from tenants.service import Tenants

START = datetime(2026, 3, 1, tzinfo=CHINA)
APRIL = datetime(2026, 4, 1, tzinfo=CHINA)


def rows(content: bytes, title: str) -> list[tuple[Any, ...]]:
    wb = load_workbook(BytesIO(content), read_only=True)
    return [tuple(r) for r in wb[title].iter_rows(values_only=True)]


def test_the_inspection_workbook_lists_every_violation_and_its_counts(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    # Given a township with clean cases and three with violations
    township = tenants.center(city_tree["township"][0])
    village = tenants.center(city_tree["village"][0])
    for day in range(3):
        full_loop(township, MARCH[day])
    full_loop(township, MARCH[3], evaluate=False)
    full_loop(village, MARCH[4], confirm=False)
    full_loop(village, MARCH[5], severity=Severity.ORANGE, dispatch_after=25 * 60)
    report = inspect(tenants, township.tenant, START, APRIL)
    assert len(report.violations) == 3

    # When it is written as a workbook
    content = inspection_workbook(report)

    # Then every sheet opens, headed in Chinese then English, with the report's rows
    wb = load_workbook(BytesIO(content), read_only=True)
    assert wb.sheetnames == ["概况 Summary", *(title for title, _, _ in INSPECTION_SHEETS)]
    assert rows(content, "概况 Summary")[2] == (
        township.tenant, START.isoformat(), APRIL.isoformat(), 6, 3, 3)
    violations = rows(content, "违规明细 Violations")
    assert violations[0][0] == "案件编号" and violations[1][0] == "case number"
    assert [(r[0], r[5], r[6]) for r in violations[2:]] == \
        [(v.case_number, v.code, CODES[v.code]) for v in report.violations]
    by_rule = rows(content, "按规则 By rule")[2:]
    assert {r[0]: r[2] for r in by_rule} == report.by_code() == {
        "MISSING_EVALUATION": 1, "MISSING_CONFIRMATION": 1, "DISPATCH_LATE": 1}
    by_center = rows(content, "按中心 By center")[2:]
    assert by_center == [(t.tenant, t.inspected, t.clean, t.violations)
                         for t in report.by_tenant()]


def test_the_kpi_report_covers_the_scope_and_each_child_as_the_kpis_do(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    county = city_tree["county"][0]
    for i, code in enumerate([county, *city_tree["township"], city_tree["village"][2]]):
        full_loop(tenants.center(code), MARCH[i], evaluate=i % 2 == 0)
    CaseView(tenants, city).catch_up()
    now = datetime(2026, 4, 2, tzinfo=CHINA)

    report = kpi_report(tenants, county, START, APRIL, now)
    assert [r.center for r in report.rows] == [county, *city_tree["township"]]
    for row in report.rows:
        assert row.kpis == kpis(tenants, row.center, now, period=Period(START, APRIL))
    assert report.rows[0].kpis.matters == 4
    assert [r.kpis.matters for r in report.rows[1:]] == [1, 2]

    sheet = rows(kpi_workbook(report), "考核指标 KPIs")
    assert sheet[1][:3] == ("center", "name", "matters")
    assert [(r[0], r[2], r[11], r[12]) for r in sheet[2:]] == [
        (r.center, r.kpis.matters, r.kpis.satisfaction.denominator, r.kpis.satisfaction.value)
        for r in report.rows]


def test_a_kpi_report_needs_a_zoned_period(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    county = city_tree["county"][0]
    with pytest.raises(AuditError, match="timezone-aware"):
        kpi_report(tenants, county, datetime(2026, 3, 1), APRIL, APRIL)
    with pytest.raises(AuditError, match="starts before it ends"):
        kpi_report(tenants, county, APRIL, START, APRIL)
