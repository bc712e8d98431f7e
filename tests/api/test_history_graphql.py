"""History and "as of" over GraphQL: a case's or a center's events with who, when
and why, filtered; a case and a center exactly as they stood at a past instant.

Given a city with two counties; one case of the first county driven through its
loop with the recorded instant noted after each command, and a second case
received later; an inspector of each county, a provincial auditor, a clerk.
"""

from __future__ import annotations

import base64
import itertools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import World, error_codes, staff, token_service
from fastapi.testclient import TestClient
from support import write_divisions

sys.path.insert(0, str(Path(__file__).parents[1] / "audit"))
from audit_support import UNIT, party

from api.app import create_app
from api.auth import Principal, Role
from domain import Case, Channel, HandlingClass, Instrument, Outcome, Place, Severity
from domain.calendar import CHINA
from tenants.service import Tenants

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=CHINA)
_cities = itertools.count(5801)  # 58: no province, no other suite

CASE_AS_OF = """query($c: ID!, $at: DateTime!) { caseAsOf(caseId: $c, at: $at) {
  caseId at existed case { number center version status isOpen severity handling
    assignments { kind ref lead acceptedAt } urgings { instrument reason by }
    progressReports outcome resolution feedback confirmed rejections stars closedAt
    respondBy handleBy dueAt overdue parties { name phone idNumber } } } }"""
CASE_HISTORY = """query($c: ID!, $f: DateTime, $t: DateTime, $types: [String!], $actor: String,
  $first: Int!, $after: String) {
  caseHistory(caseId: $c, from: $f, to: $t, types: $types, actor: $actor, first: $first,
              after: $after) {
    entries { position caseId version type by at recorded why details { name value } }
    hasNextPage endCursor } }"""
CENTER_HISTORY = """query($code: String!, $types: [String!], $actor: String) {
  centerHistory(code: $code, types: $types, actor: $actor, first: 100) {
    entries { caseId version type by why } hasNextPage } }"""
CENTER_AS_OF = """query($code: String!, $at: DateTime!) { centerAsOf(code: $code, at: $at) {
  center at cases open byStatus { status cases } overdue dueWithin24h matters withdrawn
  resolved resolutionRate evaluated satisfied satisfaction closedAtLeastOnce
  repeatComplaints repeatComplaintRate } }"""


@dataclass
class Lived:
    world: World
    case: Case
    later: Case  # a second case of the same center, received after the first closed
    before: datetime  # before the first case was received
    recorded: list[tuple[datetime, Case]]  # after each command: the instant, the case then
    between: datetime  # after the first case closed, before the second was received


def remembered(case: Case) -> dict[str, Any]:
    """What the test compares of a case (as GraphQL names and writes it)."""
    return {
        "version": case.version, "status": case.status.name, "isOpen": case.is_open,
        "severity": case.severity.name if case.severity else None,
        "handling": case.handling.name if case.handling else None,
        "assignments": [{"kind": a.assignee.kind.name, "ref": a.assignee.ref,
                         "lead": a.assignee.lead,
                         "acceptedAt": a.accepted_at.isoformat() if a.accepted_at else None}
                        for a in case.assignments],
        "urgings": [{"instrument": u.instrument.name, "reason": u.reason, "by": u.by}
                    for u in case.urgings],
        "progressReports": case.progress_reports,
        "outcome": case.outcome.name if case.outcome else None,
        "resolution": case.resolution, "feedback": case.feedback,
        "confirmed": case.confirmed, "rejections": case.rejections, "stars": case.stars,
        "closedAt": case.closed_at.isoformat() if case.closed_at else None,
    }


def instant(value: datetime) -> str:
    return value.astimezone(CHINA).isoformat()


@pytest.fixture(scope="module")
def lived(tenants: Tenants, tmp_path_factory: pytest.TempPathFactory) -> Lived:
    code = str(next(_cities))
    directory = tmp_path_factory.mktemp("history-api") / code
    tree = write_divisions(directory, code, counties=2, townships=1, villages=1)
    tenants.import_divisions(directory, code, "test", datetime.now(CHINA))
    tokens = token_service(tenants)
    app = create_app(tenants, tokens=tokens)
    world = World(tenants, tokens, tree, {}, {}, app, TestClient(app))

    center = tenants.center(tree["county"][0])
    clock = iter(T0 + timedelta(hours=h) for h in range(100))
    before = datetime.now(UTC)
    time.sleep(0.005)
    case = center.receive_case(channel=Channel.WINDOW, category="neighbour-dispute",
                               summary="两户因宅基地边界争执", parties=[party()],
                               place=Place(center.tenant, "某路1号"), by="clerk-1",
                               at=next(clock))
    cid = case.id
    steps: list[Callable[[], Case]] = [
        lambda: case,
        lambda: center.triage_case(cid, Severity.YELLOW, HandlingClass.COMPLEX, "disp-1",
                                   next(clock)),
        lambda: center.dispatch_case(cid, [UNIT], "disp-1", next(clock)),
        lambda: center.accept_case(cid, UNIT.ref, "officer-1", next(clock)),
        lambda: center.report_progress(cid, "已约谈双方", "officer-1", next(clock)),
        lambda: center.urge_case(cid, Instrument.WORK_PROMPT_LETTER, UNIT.ref, "进展缓慢",
                                 "director-1", next(clock)),
        lambda: center.resolve_case(cid, Outcome.MEDIATED, "签订调解协议", "officer-1",
                                    next(clock)),
        lambda: center.give_feedback(cid, "已告知当事人", "clerk-1", next(clock)),
        lambda: center.reject_result(cid, "对界址不认可", "party", next(clock)),
        lambda: center.resolve_case(cid, Outcome.MEDIATED, "重新勘界后达成协议", "officer-2",
                                    next(clock)),
        lambda: center.give_feedback(cid, "再次告知当事人", "clerk-1", next(clock)),
        lambda: center.confirm_case(cid, "party", next(clock)),
        lambda: center.evaluate_case(cid, 5, "满意", "party", next(clock)),
        lambda: center.close_case(cid, "clerk-1", next(clock)),
    ]
    recorded: list[tuple[datetime, Case]] = []
    for step in steps:
        then = step()
        time.sleep(0.004)
        recorded.append((datetime.now(UTC), then))
        time.sleep(0.004)
    between = datetime.now(UTC)
    time.sleep(0.005)
    later = center.receive_case(channel=Channel.HOTLINE_12345, category="neighbour-dispute",
                                summary="楼上漏水", parties=[party()],
                                place=Place(center.tenant, "某路2号"), by="clerk-2",
                                at=next(clock))
    return Lived(world, case, later, before, recorded, between)


def ok(body: dict[str, Any]) -> dict[str, Any]:
    assert not body.get("errors"), body.get("errors")
    data: dict[str, Any] = body["data"]
    return data


def code_of(body: dict[str, Any]) -> str:
    [code] = set(error_codes(body).values())
    assert body["data"] is None or not any(body["data"].values())
    return code


def auditor(lived: Lived) -> Principal:
    return staff(Role.AUDITOR, lived.world.a["city"][0])


def test_a_case_as_of_each_recorded_instant_is_what_it_was_then(lived: Lived) -> None:
    # given a case driven through 14 commands, its state noted after each
    assert [c.version for _, c in lived.recorded] == list(range(1, 15))
    who = auditor(lived)
    for at, then in lived.recorded:
        # when the auditor asks for the case as of that instant
        found = ok(lived.world.post(CASE_AS_OF, {"c": str(lived.case.id), "at": instant(at)},
                                    who))["caseAsOf"]
        # then it is the case as it was then
        assert found["existed"] is True
        state = found["case"]
        assert {k: state[k] for k in remembered(then)} == remembered(then), at
        assert state["number"] == lived.case.case_number
    final = lived.recorded[-1][1]
    assert (final.status.name, final.rejections, final.stars) == ("CLOSED", 1, 5)


def test_a_case_as_of_before_it_was_received_did_not_exist(lived: Lived) -> None:
    found = ok(lived.world.post(CASE_AS_OF, {"c": str(lived.case.id),
                                             "at": instant(lived.before)},
                                auditor(lived)))["caseAsOf"]
    assert (found["existed"], found["case"]) == (False, None)


def test_a_case_as_of_shows_deadlines_then_and_parties_only_masked(lived: Lived) -> None:
    at, then = lived.recorded[3]  # accepted: the handling deadline applies
    state = ok(lived.world.post(CASE_AS_OF, {"c": str(lived.case.id), "at": instant(at)},
                                staff(Role.INSPECTOR, lived.world.a["county"][0])))[
        "caseAsOf"]["case"]
    assert then.handle_by is not None and then.respond_by is not None
    assert datetime.fromisoformat(state["handleBy"]) == then.handle_by.by
    assert datetime.fromisoformat(state["respondBy"]) == then.respond_by.by
    assert datetime.fromisoformat(state["dueAt"]) == then.handle_by.by
    assert state["overdue"] is (then.handle_by.by < at)  # business time is March 2026
    [p] = state["parties"]
    assert p["phone"] == "139****5678" and "王小明" not in str(p) and "12345678" not in str(p)


def test_a_case_history_says_who_when_and_why_in_order(lived: Lived) -> None:
    page = ok(lived.world.post(CASE_HISTORY, {"c": str(lived.case.id), "first": 100},
                               auditor(lived)))["caseHistory"]
    entries = page["entries"]
    assert [e["version"] for e in entries] == list(range(1, 15))
    assert [e["type"] for e in entries][:4] == ["Received", "Triaged", "Dispatched", "Accepted"]
    assert entries[0]["by"] == "clerk-1" and entries[8]["by"] == "party"
    assert entries[8]["why"] == "对界址不认可"  # the rejection's reason
    assert [datetime.fromisoformat(e["recorded"]) <= at
            for e, (at, _) in zip(entries, lived.recorded, strict=True)] == [True] * 14
    assert not page["hasNextPage"]
    assert "王小明" not in str(page) and "13912345678" not in str(page)


def test_history_filters_by_type_actor_and_recorded_time_narrow_it(lived: Lived) -> None:
    who = auditor(lived)
    cid = str(lived.case.id)

    def versions(**variables: Any) -> list[int]:
        page = ok(lived.world.post(CASE_HISTORY, {"c": cid, "first": 100, **variables},
                                   who))["caseHistory"]
        return [e["version"] for e in page["entries"]]

    assert versions(types=["Resolved", "FeedbackGiven"]) == [7, 8, 10, 11]
    assert versions(actor="officer-1") == [4, 5, 7]
    # recorded between the third and the sixth command's instants: commands 4 to 6
    assert versions(f=instant(lived.recorded[2][0]), t=instant(lived.recorded[5][0])) == \
        [4, 5, 6]
    assert versions(actor="nobody") == []
    # the center's history: both cases; filtered by actor, only the later case's intake
    center = ok(lived.world.post(CENTER_HISTORY, {"code": lived.world.a["county"][0],
                                                  "actor": "clerk-2"}, who))["centerHistory"]
    assert [(e["caseId"], e["type"]) for e in center["entries"]] == \
        [(str(lived.later.id), "Received")]


def test_history_pages_follow_each_other_without_gap_or_overlap(lived: Lived) -> None:
    who = auditor(lived)
    seen: list[int] = []
    after = None
    for _ in range(10):
        page = ok(lived.world.post(CASE_HISTORY, {"c": str(lived.case.id), "first": 4,
                                                  "after": after}, who))["caseHistory"]
        seen += [e["version"] for e in page["entries"]]
        if not page["hasNextPage"]:
            break
        after = page["endCursor"]
    assert seen == list(range(1, 15))


def test_a_center_as_of_counts_its_cases_as_they_stood(lived: Lived) -> None:
    who = auditor(lived)
    code = lived.world.a["county"][0]

    def figures(at: datetime) -> dict[str, Any]:
        found: dict[str, Any] = ok(lived.world.post(CENTER_AS_OF, {"code": code,
                                                                   "at": instant(at)},
                                                    who))["centerAsOf"]
        return found

    assert figures(lived.before)["cases"] == 0
    accepted = figures(lived.recorded[3][0])
    assert (accepted["cases"], accepted["open"], accepted["resolved"]) == (1, 1, 0)
    assert accepted["byStatus"] == [{"status": "accepted", "cases": 1}]
    assert accepted["overdue"] == (lived.recorded[3][1].handle_by.by  # type: ignore[union-attr]
                                   < lived.recorded[3][0])
    closed = figures(lived.between)
    assert closed["byStatus"] == [{"status": "closed", "cases": 1}]
    assert (closed["matters"], closed["resolved"], closed["resolutionRate"]) == (1, 1, 1.0)
    assert (closed["evaluated"], closed["satisfied"], closed["satisfaction"]) == (1, 1, 1.0)
    now = figures(datetime.now(UTC))
    assert (now["cases"], now["open"]) == (2, 1)
    assert now["byStatus"] == [{"status": "closed", "cases": 1},
                               {"status": "received", "cases": 1}]
    assert now["resolutionRate"] == 0.5


def test_history_and_as_of_are_refused_outside_the_readers_reach(lived: Lived) -> None:
    a1, a2 = lived.world.a["county"]
    cid = str(lived.case.id)
    at = instant(lived.recorded[-1][0])
    for who in (staff(Role.INSPECTOR, a2), staff(Role.CLERK, a1),
                staff(Role.DIRECTOR, lived.world.a["city"][0])):
        assert code_of(lived.world.post(CASE_AS_OF, {"c": cid, "at": at}, who)) == "FORBIDDEN"
        assert code_of(lived.world.post(CASE_HISTORY, {"c": cid, "first": 5}, who)) == \
            "FORBIDDEN"
        assert code_of(lived.world.post(CENTER_AS_OF, {"code": a1, "at": at}, who)) == \
            "FORBIDDEN"
        assert code_of(lived.world.post(CENTER_HISTORY, {"code": a1}, who)) == "FORBIDDEN"
    # the second county's inspector reads its own center (nothing in it)
    own = ok(lived.world.post(CENTER_AS_OF, {"code": a2, "at": at},
                              staff(Role.INSPECTOR, a2)))["centerAsOf"]
    assert own["cases"] == 0


def test_bad_instants_filters_and_cursors_are_refused_with_the_rule(lived: Lived) -> None:
    who = auditor(lived)
    cid = str(lived.case.id)
    future = datetime.now(UTC) + timedelta(days=1)
    for variables in ({"c": cid, "at": "2026-03-02T10:00:00"},  # naive
                      {"c": cid, "at": instant(future)}):
        body = lived.world.post(CASE_AS_OF, variables, who)
        assert code_of(body) == "VALIDATION"
        assert any(w in body["errors"][0]["message"] for w in ("time zone", "future"))
    body = lived.world.post(CENTER_AS_OF, {"code": lived.world.a["county"][0],
                                           "at": instant(future)}, who)
    assert code_of(body) == "VALIDATION" and "future" in body["errors"][0]["message"]
    body = lived.world.post(CASE_HISTORY, {"c": cid, "first": 5,
                                           "f": instant(lived.recorded[5][0]),
                                           "t": instant(lived.recorded[2][0])}, who)
    assert code_of(body) == "VALIDATION" and "before" in body["errors"][0]["message"]
    overflowing = base64.urlsafe_b64encode(b"history:case:" + b"9" * 30).decode()
    for cursor in ("nope", overflowing):
        assert code_of(lived.world.post(CASE_HISTORY, {"c": cid, "first": 5, "after": cursor},
                                        who)) == "BAD_REQUEST"
    assert code_of(lived.world.post(CASE_AS_OF, {"c": "not-a-uuid", "at": instant(
        lived.between)}, who)) == "VALIDATION"
