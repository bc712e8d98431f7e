"""Hand-overs between centers on real PostgreSQL: escalation up the tree and
back, joint dispatch down to villages, rework, and the router's exactly-once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from handover_support import Clock, drain, history, reload, triaged
from support import write_divisions

from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    Direction,
    IllegalTransition,
    Outcome,
    Status,
    ValidationError,
)
from flows.router import Router
from tenants.service import Tenants

UNIT = Assignee(AssigneeKind.UNIT, "justice-office", lead=True)


def center(code: str, lead: bool = False) -> Assignee:
    return Assignee(AssigneeKind.CENTER, code, lead=lead)


def test_a_village_case_escalates_to_the_county_and_the_outcome_comes_back(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township, county = city_tree["village"][0], city_tree["township"][0], \
        city_tree["county"][0]
    router, clock = Router(tenants, city), Clock()
    v_app, t_app, c_app = (tenants.center(x) for x in (village, township, county))

    origin = triaged(v_app, clock)
    origin = v_app.escalate_case(origin.id, township, "双方情绪激烈, 村级无法调处",
                                 "director-v", clock())
    drain(router)
    t_case = t_app.get_case(origin.links[0].case_id)
    assert t_case.status is Status.TRIAGED and t_case.channel is Channel.HANDOVER
    assert t_case.origin is not None and t_case.origin.case_id == origin.id
    assert t_case.origin.direction is Direction.DOWN and t_case.severity is origin.severity
    assert t_case.parties[0].phone is not None
    assert t_case.parties[0].phone.text == "13912345678"  # re-encrypted with its own key

    t_case = t_app.escalate_case(t_case.id, county, "涉及多个乡镇", "director-t", clock())
    drain(router)
    c_case = c_app.get_case(t_case.links[0].case_id)
    assert c_case.origin is not None and c_case.origin.case_id == t_case.id

    c_app.dispatch_case(c_case.id, [UNIT], "dispatcher-c", clock())
    c_app.accept_case(c_case.id, UNIT.ref, "officer-c", clock())
    c_app.report_progress(c_case.id, "县司法局已约谈双方", "officer-c", clock())
    c_app.resolve_case(c_case.id, Outcome.MEDIATED, "签订调解协议", "officer-c", clock())
    drain(router)

    t_case, origin = reload(tenants, t_case), reload(tenants, origin)
    assert t_case.status is Status.RESOLVED and t_case.resolved_by_unit == county
    assert origin.status is Status.RESOLVED and origin.resolved_by_unit == township
    assert origin.outcome is Outcome.MEDIATED and origin.resolution == "签订调解协议"
    assert "LinkedProgressNoted" in history(t_app, t_case)

    for step in (lambda: v_app.give_feedback(origin.id, "已调解", "clerk-v", clock()),
                 lambda: v_app.confirm_case(origin.id, "party", clock()),
                 lambda: v_app.evaluate_case(origin.id, 5, "满意", "party", clock()),
                 lambda: v_app.close_case(origin.id, "clerk-v", clock())):
        step()
    drain(router)
    assert reload(tenants, t_case).status is Status.CLOSED
    assert reload(tenants, c_case).status is Status.CLOSED
    assert history(v_app, origin) == [
        "Received", "Triaged", "Escalated", "LinkedOutcomeNoted", "FeedbackGiven",
        "Confirmed", "Evaluated", "Closed"]
    assert history(t_app, t_case) == [
        "Received", "Escalated", "LinkedProgressNoted", "LinkedOutcomeNoted",
        "ClosedWithOrigin"]
    assert history(c_app, c_case)[-1] == "ClosedWithOrigin"


def test_a_joint_dispatch_to_three_villages(
        tenants: Tenants, city: str, tmp_path: Path) -> None:
    tree = write_divisions(tmp_path / "div", city, townships=2, villages=3)
    tenants.import_divisions(tmp_path / "div", city, "test", datetime.now(UTC))
    township = tree["township"][0]
    v1, v2, v3 = (v for v in tree["village"] if v.startswith(township))
    elsewhere = next(v for v in tree["village"] if v.startswith(tree["township"][1]))
    router, clock, t_app = Router(tenants, city), Clock(), tenants.center(township)
    with pytest.raises(ValidationError, match="strictly inside"):
        t_app.dispatch_case(triaged(t_app, clock).id, [center(elsewhere, lead=True)], "d",
                            clock())

    case = triaged(t_app, clock, summary="多户共用水渠纠纷")
    case = t_app.dispatch_case(case.id, [center(v1, lead=True), center(v2), center(v3)],
                               "dispatcher-t", clock())
    assert [(k.tenant, k.lead) for k in case.links] == [(v1, True), (v2, False), (v3, False)]
    drain(router)
    c1, c2, c3 = (tenants.center(k.tenant).get_case(k.case_id) for k in case.links)
    for linked, village in ((c1, v1), (c2, v2), (c3, v3)):  # each its own order and deadline
        assert linked.status is Status.DISPATCHED
        assert linked.assignments[0].assignee.ref == village
        assert linked.respond_by is not None and linked.respond_by.by > clock.now

    tenants.center(v1).accept_case(c1.id, v1, "director-v1", clock())
    tenants.center(v2).accept_case(c2.id, v2, "director-v2", clock())
    tenants.center(v3).accept_case(c3.id, v3, "director-v3", clock())
    tenants.center(v1).report_progress(c1.id, "已上门查看", "grid-v1", clock())
    tenants.center(v2).resolve_case(c2.id, Outcome.HANDLED, "清理了本村段水渠", "grid-v2",
                                    clock())
    drain(router)
    case = reload(tenants, case)
    assert case.status is Status.ACCEPTED  # a co-village's outcome does not resolve it
    assert all(case.assignment(v).accepted_at is not None  # type: ignore[union-attr]
               for v in (v1, v2, v3))
    with pytest.raises(IllegalTransition, match="resolved by the outcome"):
        t_app.resolve_case(case.id, Outcome.HANDLED, "自行处理", "officer", clock())

    tenants.center(v1).resolve_case(c1.id, Outcome.MEDIATED, "三户达成协议", "grid-v1",
                                    clock())
    drain(router)
    case = reload(tenants, case)
    assert case.status is Status.RESOLVED and case.resolved_by_unit == v1
    t_app.give_feedback(case.id, "已处理", "clerk-t", clock())
    t_app.confirm_case(case.id, "party", clock())
    with pytest.raises(IllegalTransition, match=f"still owed by {v3}"):
        t_app.close_case(case.id, "clerk-t", clock())  # the third village has not reported
    tenants.center(v3).resolve_case(c3.id, Outcome.HANDLED, "本村段已疏通", "grid-v3", clock())
    drain(router)
    t_app.close_case(case.id, "clerk-t", clock())
    drain(router)
    for linked in (c1, c2, c3):
        assert reload(tenants, linked).status is Status.CLOSED
    assert history(t_app, case).count("LinkedOutcomeNoted") == 3
    assert history(t_app, case).count("LinkedProgressNoted") == 1


def test_a_refused_order_returns_to_the_sender_and_the_case_is_redispatched(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    township = city_tree["township"][0]
    v1 = next(v for v in city_tree["village"] if v.startswith(township))
    router, clock, t_app = Router(tenants, city), Clock(), tenants.center(township)
    case = t_app.dispatch_case(triaged(t_app, clock).id, [center(v1, lead=True)], "d", clock())
    drain(router)
    linked = tenants.center(v1).get_case(case.links[0].case_id)
    with pytest.raises(ValidationError, match="only a current assignee"):
        tenants.center(v1).accept_case(linked.id, township, "director-v1", clock())
    with pytest.raises(IllegalTransition, match="answers the order in its own linked case"):
        t_app.accept_case(case.id, v1, "dispatcher-t", clock())
    tenants.center(v1).refuse_case(linked.id, v1, "不属本村辖区", "director-v1", clock())
    drain(router)
    assert reload(tenants, linked).status is Status.RETURNED
    case = reload(tenants, case)
    assert case.status is Status.TRIAGED and case.refusals == {v1: 1}
    assert case.links[0].returned


def test_a_rejected_result_sends_the_upper_tier_back_to_work(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    router, clock = Router(tenants, city), Clock()
    v_app, t_app = tenants.center(village), tenants.center(township)
    origin = v_app.escalate_case(triaged(v_app, clock).id, township, "村级调解失败", "d",
                                 clock())
    drain(router)
    t_case = t_app.get_case(origin.links[0].case_id)
    t_app.dispatch_case(t_case.id, [UNIT], "d", clock())
    t_app.accept_case(t_case.id, UNIT.ref, "officer", clock())
    t_app.resolve_case(t_case.id, Outcome.REFERRED_TO_COURT, "调解不成, 引导起诉", "officer",
                       clock(), court_reference="(2026)浙0782民初123号")
    drain(router)
    origin = reload(tenants, origin)
    assert origin.outcome is Outcome.REFERRED_TO_COURT
    assert origin.court_reference == "(2026)浙0782民初123号"
    v_app.give_feedback(origin.id, "已引导诉讼", "clerk", clock())
    v_app.reject_result(origin.id, "不同意诉讼, 要求再调解", "party", clock())
    drain(router)
    t_case = reload(tenants, t_case)
    assert t_case.status is Status.ACCEPTED and t_case.outcome is None
    assert history(t_app, t_case)[-1] == "ReworkRequested"


def test_the_router_is_exactly_once_when_two_run_or_one_runs_twice(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    clock, v_app = Clock(), tenants.center(village)
    cases = [v_app.escalate_case(triaged(v_app, clock, phone=f"1391234{i:04d}").id, township,
                                 "升级", "d", clock()) for i in range(5)]
    first, second = Router(tenants, city), Router(tenants, city)
    first.run_once(limit=2)
    second.run_once(limit=3)  # starts where the first left off
    first.catch_up()
    second.catch_up()
    Router(tenants, city).catch_up()
    t_app = tenants.center(township)
    for case in cases:
        linked = t_app.get_case(case.links[0].case_id)
        assert history(t_app, linked) == ["Received"]
    assert first.handed_over + second.handed_over == 5


def test_bad_hand_overs_are_refused_and_write_nothing(
        tenants: Tenants, city_tree: dict[str, list[str]], city: str) -> None:
    village, township = city_tree["village"][0], city_tree["township"][0]
    other_village = next(v for v in city_tree["village"] if not v.startswith(township))
    clock = Clock()
    c_app, t_app = tenants.center(city), tenants.center(township)
    at_city = triaged(c_app, clock)
    at_township = triaged(t_app, clock)
    positions = {app.tenant: app.store.max_tenant_position() for app in (c_app, t_app)}

    with pytest.raises(IllegalTransition, match="never goes above a city"):
        c_app.escalate_case(at_city.id, city[:2], "省级", "d", clock())
    with pytest.raises(ValidationError, match="strictly inside"):
        t_app.dispatch_case(at_township.id, [center(other_village, lead=True)], "d", clock())
    tenants.registry.retire(village, "撤并", "ops", datetime.now(UTC))
    with pytest.raises(ValidationError, match=r"active center; .* retired"):
        t_app.dispatch_case(at_township.id, [center(village, lead=True)], "d", clock())
    with pytest.raises(ValidationError, match="into itself"):
        t_app.merge_case(at_township.id, at_township.id, "clerk", clock())
    with pytest.raises(ValidationError, match="own center"):
        t_app.merge_case(at_township.id, at_city.id, "clerk", clock())
    assert {app.tenant: app.store.max_tenant_position() for app in (c_app, t_app)} == positions
    assert isinstance(Case.linked_id(at_city.id, 3, township), type(at_city.id))
