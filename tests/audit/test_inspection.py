"""Closed-loop inspection over a generated month with planted violations.

Given a county with its townships and villages and a month of cases, most of them
driven cleanly through the loop and some with one planted violation each; when the
inspector inspects the county for March; then every planted violation is reported
with its code, case and unit, and nothing else: untouched cases are clean, and cases
closed outside the period, open cases and cases outside the subtree are not inspected.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from uuid import UUID

import pytest
from loop_support import LEAD, MARCH, UNIT, Clock, full_loop, private, receive

from audit.chain import AuditError
from audit.inspection import CODES, inspect
from domain import Assignee, AssigneeKind, HandlingClass, Outcome, Severity, Status
from domain.calendar import CHINA
from flows.router import Router
from tenants.center import CenterApp
from tenants.registry import UnknownTenant
from tenants.service import Tenants

APRIL = datetime(2026, 4, 1, tzinfo=CHINA)
HOURS = 60.0


def out_of_order(app: CenterApp, start: datetime) -> UUID:
    """Feedback recorded before the result it feeds back."""
    clock = Clock(start)
    case = receive(app, clock(0))
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.DIFFICULT, "dispatcher-1", clock())
    app.dispatch_case(case.id, [LEAD], "dispatcher-1", clock())
    app.accept_case(case.id, UNIT, "officer-1", clock())
    t1, t2, t3 = clock(), clock(), clock()
    private(app, case.id, lambda c: c._feedback_given(message="已告知", by="clerk-1", at=t1))
    private(app, case.id, lambda c: c._resolved(
        outcome=Outcome.MEDIATED, summary="调解", court_reference=None,
        resolved_by_unit=UNIT, by="officer-1", at=t2))
    private(app, case.id, lambda c: c._confirmed(by="party", at=t3))
    app.close_case(case.id, "clerk-1", clock())
    app.evaluate_case(case.id, 4, "", "party", clock())
    return case.id


def resolved_without_acceptance(app: CenterApp, start: datetime, unit: str = UNIT) -> UUID:
    """A result recorded on a dispatch nobody accepted (``unit`` names the result's unit)."""
    clock = Clock(start)
    case = receive(app, clock(0))
    app.triage_case(case.id, Severity.YELLOW, HandlingClass.DIFFICULT, "dispatcher-1", clock())
    app.dispatch_case(case.id, [LEAD], "dispatcher-1", clock())
    if unit != UNIT:
        app.accept_case(case.id, UNIT, "officer-1", clock())
    at = clock()
    private(app, case.id, lambda c: c._resolved(
        outcome=Outcome.HANDLED, summary="已处理", court_reference=None,
        resolved_by_unit=unit, by="officer-1", at=at))
    app.give_feedback(case.id, "已告知", "clerk-1", clock())
    app.confirm_case(case.id, "party", clock())
    app.close_case(case.id, "clerk-1", clock())
    app.evaluate_case(case.id, 5, "", "party", clock())
    return case.id


def test_every_planted_violation_is_reported_and_nothing_else(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    # Given a month of cases in a county's subtree, 3 clean ones in each center ...
    county = city_tree["county"][0]
    centers = [county, *city_tree["township"], *city_tree["village"]]
    clean: list[UUID] = []
    for i, code in enumerate(centers):
        for j in range(3):
            clean.append(full_loop(tenants.center(code), MARCH[(i * 3 + j) % 18]))
    # ... one that came back (its first round missed the evaluation) and closed cleanly again
    village = tenants.center(city_tree["village"][0])
    again = full_loop(village, MARCH[1], evaluate=False)
    clock = Clock(MARCH[3])
    village.reopen_case(again, "repeat complaint: 又吵了", "clerk-1", clock(0))
    village.triage_case(again, Severity.BLUE, HandlingClass.DIFFICULT, "dispatcher-1", clock())
    village.dispatch_case(again, [LEAD], "dispatcher-1", clock())
    village.accept_case(again, UNIT, "officer-2", clock())
    village.resolve_case(again, Outcome.MEDIATED, "再次调解", "officer-2", clock())
    village.give_feedback(again, "已告知", "clerk-1", clock())
    village.confirm_case(again, "party", clock())
    village.close_case(again, "clerk-1", clock())
    village.evaluate_case(again, 4, "", "party", clock())
    clean.append(again)

    # ... and one violation planted in each of these (case, code, unit answering for it)
    township = tenants.center(city_tree["township"][0])
    app = tenants.center(county)
    v2 = tenants.center(city_tree["village"][1])
    planted = [
        (full_loop(app, MARCH[0], confirm=False), "MISSING_CONFIRMATION", county),
        (full_loop(township, MARCH[1], severity=Severity.ORANGE, dispatch_after=26 * HOURS),
         "DISPATCH_LATE", township.tenant),
        (full_loop(v2, MARCH[2], evaluate=False), "MISSING_EVALUATION", v2.tenant),
        (full_loop(app, MARCH[3], severity=Severity.ORANGE, accept_after=25 * HOURS),
         "ACCEPTANCE_LATE", UNIT),
        (full_loop(township, MARCH[4], handling=HandlingClass.SIMPLE, resolve_after=24 * HOURS),
         "RESOLUTION_LATE", UNIT),
        (full_loop(v2, MARCH[5], handling=HandlingClass.COMPLEX, resolve_after=8 * 24 * HOURS),
         "PROGRESS_LATE", UNIT),
        (full_loop(village, MARCH[6], confirm_by="officer-1"), "CONFIRMED_BY_RESOLVER", UNIT),
        (out_of_order(app, MARCH[7]), "OUT_OF_ORDER", county),
        (resolved_without_acceptance(township, MARCH[8]), "MISSING_ACCEPTANCE", UNIT),
        (resolved_without_acceptance(v2, MARCH[9], unit="police-station"),
         "RESOLVED_NOT_BY_LEAD", UNIT),
    ]
    # ... and a repeat complaint worked again without a new triage (no deadline applied)
    untriaged = full_loop(v2, MARCH[10])
    clock = Clock(MARCH[11])
    v2.reopen_case(untriaged, "repeat complaint: 又漏水", "clerk-1", clock(0))
    v2.dispatch_case(untriaged, [LEAD], "dispatcher-1", clock())
    v2.accept_case(untriaged, UNIT, "officer-1", clock())
    v2.resolve_case(untriaged, Outcome.MEDIATED, "再次调解", "officer-1", clock())
    v2.give_feedback(untriaged, "已告知", "clerk-1", clock())
    v2.confirm_case(untriaged, "party", clock())
    v2.close_case(untriaged, "clerk-1", clock())
    v2.evaluate_case(untriaged, 4, "", "party", clock())
    planted.append((untriaged, "MISSING_TRIAGE", v2.tenant))
    # ... and cases that must not be inspected: closed in April, still open, outside the
    # county (at the city's own center), each with a violation of its own
    outside_period = full_loop(app, APRIL + timedelta(days=1), evaluate=False)
    still_open = receive(app, MARCH[10]).id
    outside_subtree = full_loop(tenants.center(city), MARCH[11], confirm=False)

    # When the inspector inspects the county's subtree for March
    report = inspect(tenants, county, MARCH[0].replace(day=1, hour=0), APRIL)

    # Then every planted violation is reported, and nothing else
    reported = {(v.case_id, v.code, v.unit) for v in report.violations}
    assert reported == set(planted)
    assert len(report.violations) == len(planted)
    by_case = {c.case_id: c for c in report.cases}
    assert all(by_case[case_id].clean for case_id in clean)
    assert set(by_case) == set(clean) | {case_id for case_id, _, _ in planted}
    assert not {outside_period, still_open, outside_subtree} & set(by_case)
    # each violation names its rule and the case's number
    for v in report.violations:
        assert CODES[v.code] in v.message
        assert v.case_number == by_case[v.case_id].case_number
    # per tenant and per unit, the counts add up from the plants
    expected_tenant = Counter(by_case[case_id].tenant for case_id, _, _ in planted)
    for tally in report.by_tenant():
        inspected = sum(1 for c in report.cases if c.tenant == tally.tenant)
        assert (tally.inspected, tally.violations) == (inspected, expected_tenant[tally.tenant])
        assert tally.clean == inspected - expected_tenant[tally.tenant]
    expected_unit = Counter((by_case[case_id].tenant, unit) for case_id, _, unit in planted)
    assert {(u.tenant, u.unit): u.violations for u in report.by_unit()} == dict(expected_unit)
    assert report.by_code() == {code: 1 for _, code, _ in planted}


def test_a_late_dispatch_is_counted_against_the_center_not_again_against_the_unit(
        tenants: Tenants, city_tree: dict[str, list[str]]) -> None:
    # Given a case dispatched after its response deadline (so the unit's acceptance is late too)
    app = tenants.center(city_tree["township"][0])
    case_id = full_loop(app, MARCH[0], severity=Severity.ORANGE, dispatch_after=30 * HOURS)
    # When it is inspected
    report = inspect(tenants, app.tenant, MARCH[0] - timedelta(days=1), APRIL)
    # Then the breach is the center's dispatch, reported once
    [violation] = report.violations
    assert (violation.case_id, violation.code, violation.unit) == \
        (case_id, "DISPATCH_LATE", app.tenant)
    assert violation.deadline is not None and violation.at is not None
    assert violation.at > violation.deadline


def test_an_inspection_needs_a_known_scope_and_a_zoned_period(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    county = city_tree["county"][0]
    with pytest.raises(AuditError, match="timezone-aware"):
        inspect(tenants, county, datetime(2026, 3, 1), APRIL)
    with pytest.raises(AuditError, match="starts before it ends"):
        inspect(tenants, county, APRIL, APRIL)
    with pytest.raises(UnknownTenant):
        inspect(tenants, city + "99", MARCH[0], APRIL)


def test_cases_handed_up_and_down_the_tree_are_inspected_at_their_origin_and_clean(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    v_app, t_app = tenants.center(village), tenants.center(township)
    router = Router(tenants, city)
    clock = Clock(MARCH[0])
    # Given a village case escalated to its township, resolved there by a unit ...
    up = receive(v_app, clock(0))
    v_app.triage_case(up.id, Severity.YELLOW, HandlingClass.DIFFICULT, "dispatcher-v", clock())
    up = v_app.escalate_case(up.id, township, "村级无法调处", "director-v", clock())
    router.catch_up()
    linked = up.links[0].case_id
    t_app.dispatch_case(linked, [LEAD], "dispatcher-t", clock())
    t_app.accept_case(linked, UNIT, "officer-t", clock())
    t_app.resolve_case(linked, Outcome.MEDIATED, "乡镇调解成功", "officer-t", clock())
    router.catch_up()
    # ... and a township case dispatched down to the village, which resolves it
    down = receive(t_app, clock())
    t_app.triage_case(down.id, Severity.YELLOW, HandlingClass.DIFFICULT, "dispatcher-t",
                      clock())
    down = t_app.dispatch_case(down.id, [Assignee(AssigneeKind.CENTER, village, lead=True)],
                               "dispatcher-t", clock())
    router.catch_up()
    below = down.links[0].case_id
    v_app.accept_case(below, village, "director-v", clock())
    router.catch_up()
    v_app.resolve_case(below, Outcome.HANDLED, "村里已处理", "grid-1", clock())
    router.catch_up()
    # ... each closing its loop with the party at its origin
    for app, case_id in ((v_app, up.id), (t_app, down.id)):
        app.give_feedback(case_id, "已告知", "clerk-1", clock())
        app.confirm_case(case_id, "party", clock())
        app.close_case(case_id, "clerk-1", clock())
        app.evaluate_case(case_id, 5, "", "party", clock())
    router.catch_up()
    assert t_app.get_case(linked).status is Status.CLOSED  # closed with its origin

    # When the township's subtree is inspected
    report = inspect(tenants, township, MARCH[0] - timedelta(days=1), APRIL)

    # Then the two origins are inspected, clean; the linked cases are not inspected apart
    assert {c.case_id for c in report.cases} == {up.id, down.id}
    assert report.violations == ()
