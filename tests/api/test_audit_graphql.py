"""Inspectors and auditors over HTTP: the inspection report, callback samples and
results, the KPI report, as GraphQL and as spreadsheets, under the same rules.

Given two cities (A: two counties, B: one) with a month of closed cases in A's
first county — one closed without the party's confirmation — and in its second
county; an inspector of each county, a provincial auditor, a clerk.
"""

from __future__ import annotations

import itertools
import sys
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from api_support import World, bearer, error_codes, staff, token_service
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from support import write_divisions

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))
from loop_support import MARCH, full_loop, receive

from api.app import create_app
from api.auth import Role
from api.reports import XLSX
from audit.callbacks import CallbackResults
from audit.reports import KPI_COLUMNS
from domain.calendar import CHINA
from projections.views import CaseView
from tenants.service import Tenants

START = datetime(2026, 3, 1, tzinfo=CHINA)
APRIL = datetime(2026, 4, 1, tzinfo=CHINA)
PERIOD = {"from": START.isoformat(), "to": APRIL.isoformat()}

INSPECTION = """query($s: String!, $f: DateTime!, $t: DateTime!) {
  inspectionReport(scope: $s, from: $f, to: $t) {
    scope inspected clean violationCount
    byCenter { center inspected clean violations }
    byUnit { center unit violations cases }
    byCode { code rule violations }
    cases { caseId caseNumber center violations { code rule message unit step } }
  } }"""
SAMPLE = """query($s: String!, $f: DateTime!, $t: DateTime!, $n: Int!, $salt: String!) {
  callbackSample(scope: $s, from: $f, to: $t, size: $n, salt: $salt) {
    seed population cases { caseId caseNumber center callbacks satisfied } } }"""
RECORD = """mutation($c: ID!, $r: CallbackResult!, $sat: Boolean, $note: String!) {
  recordCallback(caseId: $c, result: $r, satisfied: $sat, note: $note) {
    caseId result satisfied note by } }"""
KPIS = """query($s: String!, $f: DateTime!, $t: DateTime!) {
  kpiReport(scope: $s, from: $f, to: $t) { scope rows {
    center name matters withdrawn resolved resolutionRate referredToCourt repeatComplaints
    closedAtLeastOnce repeatComplaintRate satisfied evaluated satisfaction
    responseMedianHours handlingMedianHours onTimeRate overdueNow
    resolvedAtTownshipOrBelow refusals } } }"""


#: This module's city codes: its own range, so that it takes none of the codes other
#: API suites expect in theirs (api_support.new_city).
_cities = itertools.count(5701)  # 57: no province, no other suite


def audit_world(tenants: Tenants, directory: Path) -> World:
    """Two registered cities (A: 2 counties x 2 townships x 2 villages, B: 1 x 1 x 1)
    and the API over them."""
    trees = []
    for shape in ({"counties": 2, "townships": 2, "villages": 2},
                  {"counties": 1, "townships": 1, "villages": 1}):
        code = str(next(_cities))
        trees.append(write_divisions(directory / code, code, **shape))
        tenants.import_divisions(directory / code, code, "test", datetime.now(CHINA))
    tokens = token_service(tenants)
    app = create_app(tenants, tokens=tokens)
    return World(tenants, tokens, trees[0], trees[1], {}, app, TestClient(app))


@pytest.fixture(scope="module")
def world(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> World:
    world = audit_world(tenants, tmp_path_factory.mktemp("audit-api"))
    a1, a2 = world.a["county"]
    for code in (a1, world.a["township"][0], world.a["village"][0], a2):
        for day in range(2):
            full_loop(tenants.center(code), MARCH[day + 1])
    full_loop(tenants.center(a1), MARCH[4], confirm=False)  # closed without confirmation
    CaseView(tenants, world.a["city"][0]).catch_up()
    return world


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert not body.get("errors"), body.get("errors")
    data: dict[str, Any] = body["data"]
    return data


def code_of(body: dict[str, Any]) -> str:
    [code] = set(error_codes(body).values())
    assert body["data"] is None or not any(body["data"].values())
    return code


def download(world: World, kind: str, scope: str, who: Any) -> Any:
    return world.client.get(f"/audit/reports/{kind}.xlsx", params={"scope": scope, **PERIOD},
                            headers={"Authorization": bearer(world.tokens, who)})


def sheet_rows(content: bytes, title: str) -> list[tuple[Any, ...]]:
    wb = load_workbook(BytesIO(content), read_only=True)
    return [tuple(r) for r in wb[title].iter_rows(values_only=True)]


def test_an_inspector_gets_the_report_of_its_subtree_with_the_planted_violation(
        world: World) -> None:
    a1 = world.a["county"][0]
    inspector = staff(Role.INSPECTOR, a1)
    report = ok(world.post(INSPECTION, {"s": a1, "f": START.isoformat(),
                                        "t": APRIL.isoformat()}, inspector))["inspectionReport"]
    # 2 closed cases in each of 3 centers of the county's subtree, plus the planted one
    assert (report["inspected"], report["clean"], report["violationCount"]) == (7, 6, 1)
    [case] = report["cases"]
    [violation] = case["violations"]
    assert (case["center"], violation["code"], violation["step"]) == \
        (a1, "MISSING_CONFIRMATION", "confirmation")
    assert violation["rule"] in violation["message"]
    assert report["byCenter"] == [
        {"center": a1, "inspected": 3, "clean": 2, "violations": 1},
        {"center": world.a["township"][0], "inspected": 2, "clean": 2, "violations": 0},
        {"center": world.a["village"][0], "inspected": 2, "clean": 2, "violations": 0}]
    assert report["byUnit"] == [{"center": a1, "unit": a1, "violations": 1, "cases": 1}]


def test_the_spreadsheets_hold_the_same_figures_as_graphql(world: World) -> None:
    a1 = world.a["county"][0]
    inspector = staff(Role.INSPECTOR, a1)
    variables = {"s": a1, "f": START.isoformat(), "t": APRIL.isoformat()}
    report = ok(world.post(INSPECTION, variables, inspector))["inspectionReport"]
    # When the inspector downloads the inspection report
    response = download(world, "inspection", a1, inspector)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    # Then it opens with openpyxl: Chinese headers, English under them, the same figures
    summary = sheet_rows(response.content, "概况 Summary")
    assert summary[0][:3] == ("范围", "起", "止(不含)")
    assert summary[1][:3] == ("scope", "from", "to (exclusive)")
    assert summary[2][0] == a1 and summary[2][3:] == \
        (report["inspected"], report["clean"], report["violationCount"])
    violations = sheet_rows(response.content, "违规明细 Violations")
    assert violations[1][:6] == ("case number", "case id", "center", "unit", "step", "code")
    assert [(r[1], r[2], r[3], r[4], r[5], r[7]) for r in violations[2:]] == [
        (c["caseId"], c["center"], v["unit"], v["step"], v["code"], v["message"])
        for c in report["cases"] for v in c["violations"]]
    by_center = sheet_rows(response.content, "按中心 By center")
    assert [dict(zip(("center", "inspected", "clean", "violations"), r, strict=True))
            for r in by_center[2:]] == report["byCenter"]

    # And the KPI report, as GraphQL and as a sheet, for the county and each child
    kpis = ok(world.post(KPIS, variables, staff(Role.DIRECTOR, a1)))["kpiReport"]
    assert [r["center"] for r in kpis["rows"]] == [a1, *world.a["township"][:2]]
    assert kpis["rows"][0]["matters"] == 7 and kpis["rows"][0]["resolved"] == 7
    sheet = download(world, "kpis", a1, staff(Role.DIRECTOR, a1))
    assert sheet.status_code == 200, sheet.text
    rows = sheet_rows(sheet.content, "考核指标 KPIs")
    assert rows[0] == tuple(zh for zh, _, _ in KPI_COLUMNS)
    assert rows[1] == tuple(en for _, en, _ in KPI_COLUMNS)
    fields = ("center", "name", "matters", "withdrawn", "resolved", "resolutionRate",
              "referredToCourt", "repeatComplaints", "closedAtLeastOnce",
              "repeatComplaintRate", "satisfied", "evaluated", "satisfaction",
              "responseMedianHours", "handlingMedianHours", "onTimeRate", "overdueNow",
              "resolvedAtTownshipOrBelow", "refusals")
    assert [dict(zip(fields, r, strict=True)) for r in rows[2:]] == kpis["rows"]


def test_an_inspector_of_one_county_cannot_get_anothers_report(world: World) -> None:
    a1, a2 = world.a["county"]
    inspector = staff(Role.INSPECTOR, a1)
    for query, extra in ((INSPECTION, {}), (SAMPLE, {"n": 5, "salt": ""}), (KPIS, {})):
        body = world.post(query, {"s": a2, "f": START.isoformat(), "t": APRIL.isoformat(),
                                  **extra}, inspector)
        assert code_of(body) == "FORBIDDEN"
    for kind in ("inspection", "kpis"):
        response = download(world, kind, a2, inspector)
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"
    # nor the city's or the province's, above it
    for above in (world.a["city"][0], a1[:2]):
        assert code_of(world.post(INSPECTION, {"s": above, "f": START.isoformat(),
                                               "t": APRIL.isoformat()}, inspector)) == "FORBIDDEN"


def test_staff_without_inspection_rights_are_refused_and_a_token_is_required(
        world: World) -> None:
    a1 = world.a["county"][0]
    variables = {"s": a1, "f": START.isoformat(), "t": APRIL.isoformat()}
    for role in (Role.CLERK, Role.DISPATCHER, Role.DIRECTOR):
        assert code_of(world.post(INSPECTION, variables, staff(role, a1))) == "FORBIDDEN"
        assert download(world, "inspection", a1, staff(role, a1)).status_code == 403
    assert code_of(world.post(KPIS, variables, staff(Role.CLERK, a1))) == "FORBIDDEN"
    anonymous = world.client.get("/audit/reports/inspection.xlsx",
                                 params={"scope": a1, **PERIOD})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "UNAUTHENTICATED"
    zoneless = world.post(INSPECTION, {**variables, "f": "2026-03-01T00:00:00"},
                          staff(Role.INSPECTOR, a1))
    assert code_of(zoneless) == "VALIDATION"


def test_a_provincial_auditor_reads_every_report_but_records_nothing(world: World) -> None:
    a1, a2 = world.a["county"]
    auditor = staff(Role.AUDITOR, a1[:2])
    for scope, inspected in ((a1, 7), (a2, 2)):
        report = ok(world.post(INSPECTION, {"s": scope, "f": START.isoformat(),
                                            "t": APRIL.isoformat()}, auditor))
        assert report["inspectionReport"]["inspected"] == inspected
        assert download(world, "inspection", scope, auditor).status_code == 200
    # ... the whole province at once: both cities' cases, and a KPI row per city
    province = ok(world.post(INSPECTION, {"s": a1[:2], "f": START.isoformat(),
                                          "t": APRIL.isoformat()}, auditor))
    assert province["inspectionReport"]["inspected"] == 9
    kpis = ok(world.post(KPIS, {"s": a1[:2], "f": START.isoformat(), "t": APRIL.isoformat()},
                         auditor))["kpiReport"]
    assert [r["center"] for r in kpis["rows"]] == [world.a["city"][0], world.b["city"][0]]
    assert [r["matters"] for r in kpis["rows"]] == [9, 0]
    drawn = ok(world.post(SAMPLE, {"s": a2, "f": START.isoformat(), "t": APRIL.isoformat(),
                                   "n": 1, "salt": ""}, auditor))["callbackSample"]
    body = world.post(RECORD, {"c": drawn["cases"][0]["caseId"], "r": "REACHED", "sat": True,
                               "note": ""}, auditor)
    assert code_of(body) == "FORBIDDEN"
    case_id = UUID(drawn["cases"][0]["caseId"])
    assert world.tenants.center(a2).get_case(case_id).callbacks == []


def test_an_inspector_samples_and_records_callbacks_in_its_subtree_only(
        world: World) -> None:
    a1, a2 = world.a["county"]
    inspector = staff(Role.INSPECTOR, a1)
    variables = {"s": a1, "f": START.isoformat(), "t": APRIL.isoformat(), "n": 3,
                 "salt": "round-1"}
    first = ok(world.post(SAMPLE, variables, inspector))["callbackSample"]
    again = ok(world.post(SAMPLE, variables, staff(Role.INSPECTOR, a1)))["callbackSample"]
    assert first == again and first["population"] == 7 and len(first["cases"]) == 3
    # When the inspector records a dissatisfied callback on the first sampled case
    picked = first["cases"][0]
    recorded = ok(world.post(RECORD, {"c": picked["caseId"], "r": "REACHED", "sat": False,
                                      "note": "问题仍在"}, inspector))["recordCallback"]
    assert recorded == {"caseId": picked["caseId"], "result": "REACHED", "satisfied": False,
                        "note": "问题仍在", "by": inspector.subject}
    # Then the case's center holds the event, and the KPI report counts a repeat complaint
    center = world.tenants.center(picked["center"])
    assert type(center.case_events(UUID(picked["caseId"]))[-1]).__name__ == "CallbackRecorded"
    city = world.a["city"][0]
    CaseView(world.tenants, city).catch_up()
    CallbackResults(world.tenants, city).catch_up()
    kpis = ok(world.post(KPIS, {"s": a1, "f": START.isoformat(), "t": APRIL.isoformat()},
                         inspector))["kpiReport"]
    assert kpis["rows"][0]["repeatComplaints"] == 1
    assert kpis["rows"][0]["closedAtLeastOnce"] == 7

    # Bad input: another county's case, an open case, a case that does not exist,
    # a reached party without an answer; nothing is written
    other = ok(world.post(SAMPLE, {**variables, "s": a2}, staff(Role.INSPECTOR, a2)))
    foreign = other["callbackSample"]["cases"][0]["caseId"]
    assert code_of(world.post(RECORD, {"c": foreign, "r": "REACHED", "sat": True,
                                       "note": ""}, inspector)) == "FORBIDDEN"
    open_case = receive(world.tenants.center(a1), MARCH[5])
    assert code_of(world.post(RECORD, {"c": str(open_case.id), "r": "UNREACHABLE",
                                       "note": ""}, inspector)) == "ILLEGAL_TRANSITION"
    missing = UUID(int=open_case.id.int ^ 1)
    assert code_of(world.post(RECORD, {"c": str(missing), "r": "DECLINED", "note": ""},
                              inspector)) == "NOT_FOUND"
    second = first["cases"][1]["caseId"]
    assert code_of(world.post(RECORD, {"c": second, "r": "REACHED", "note": ""},
                              inspector)) == "VALIDATION"
    assert world.tenants.center(a2).get_case(UUID(foreign)).callbacks == []
    assert world.tenants.center(a1).get_case(open_case.id).version == 1
