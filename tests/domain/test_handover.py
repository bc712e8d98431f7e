"""Hand-overs between centers: dispatch down, escalation up, and what flows back."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

import pytest
from case_builders import (
    CALENDAR_2026,
    CITY,
    COMMANDS,
    COUNTY,
    CST,
    LEAD,
    TOWNSHIP,
    VILLAGE,
    VILLAGE_2,
    VILLAGE_3,
    Clock,
    case_in,
    centers,
    dispatched_down,
    earlier_case,
    escalated_up,
    handed_down,
    handed_over_in,
    linked_case_in,
    receive,
    replay,
    take_over,
    through_json,
)

from domain import (
    Assignee,
    AssigneeKind,
    Assignment,
    Case,
    Channel,
    Direction,
    HandlingClass,
    IllegalTransition,
    Link,
    Outcome,
    Severity,
    Status,
    ValidationError,
    tenant_of,
)

COURT_REFERENCE = "(2026)浙0782民初1号"


def names(case: Case) -> list[str]:
    return [type(e).__name__ for e in case.collect_events()]


# -- taking a case over ---------------------------------------------------------------


def test_a_case_dispatched_down_awaits_the_centers_answer_to_the_order() -> None:
    # Given a township case, orange and complex, dispatched to a village on Wednesday
    origin, clock = dispatched_down(VILLAGE, severity=Severity.ORANGE)
    clock.now = datetime(2026, 3, 4, 14, 0, tzinfo=CST)
    # When the village opens its case for the order
    case = take_over(origin, origin.links[0], clock, number="V-2026-000007")
    # Then it is the linked case, dispatched to the village itself, pointing up to its origin
    assert case.id == origin.links[0].case_id and case.tenant == VILLAGE
    assert case.status is Status.DISPATCHED and case.channel is Channel.HANDOVER
    assert case.assignments == [Assignment(Assignee(AssigneeKind.CENTER, VILLAGE, lead=True))]
    assert case.origin == Link(origin.id, TOWNSHIP, Direction.UP)
    assert case.origin_case_number == origin.case_number and case.handed_down
    # And it keeps the severity and handling, with deadlines counted from the hand-over
    assert (case.severity, case.handling) == (Severity.ORANGE, HandlingClass.COMPLEX)
    assert case.respond_by is not None and case.handle_by is not None
    assert case.respond_by.by == datetime(2026, 3, 5, 15, 0, tzinfo=CST)
    assert case.handle_by.by == datetime(2026, 3, 12, tzinfo=CST)
    assert origin.handle_by is not None and origin.handle_by.by == datetime(2026, 3, 10, tzinfo=CST)


def test_a_handed_down_case_is_answered_by_its_own_center() -> None:
    _, case, clock = handed_down()
    with pytest.raises(ValidationError, match="only a current assignee"):
        case.accept(LEAD, "officer-1", clock())
    case.accept(VILLAGE, "director-v", clock())
    assert case.status is Status.ACCEPTED


def test_a_case_escalated_from_below_is_filed_triaged_with_the_senders_severity() -> None:
    # Given a village case, yellow and difficult, escalated to its township
    clock = Clock()
    source = receive(tenant=VILLAGE, at=clock.now)
    source.triage(Severity.YELLOW, HandlingClass.DIFFICULT, CALENDAR_2026, "d-1", clock())
    source.escalate(TOWNSHIP, "two villages involved", "director-1", clock())
    # When the township takes it over on Friday
    clock.now = datetime(2026, 3, 6, 9, 0, tzinfo=CST)
    case = take_over(source, source.links[-1], clock)
    # Then it is filed: triaged, unassigned, pointing down to its origin
    assert case.status is Status.TRIAGED and case.assignments == []
    assert case.origin == Link(source.id, VILLAGE, Direction.DOWN) and not case.handed_down
    assert (case.severity, case.handling) == (Severity.YELLOW, HandlingClass.DIFFICULT)
    # And its deadlines count from the hand-over: 3 working days, one calendar month
    assert case.respond_by is not None and case.handle_by is not None
    assert case.respond_by.by == datetime(2026, 3, 12, tzinfo=CST)
    assert case.handle_by.by == datetime(2026, 4, 6, 10, 0, tzinfo=CST)
    assert case.escalation_blocker() is None


def test_a_red_matter_handed_up_from_a_village_goes_on_to_the_county_at_once() -> None:
    # Given a red village case: it escalated to the township when triaged
    clock = Clock()
    source = receive(tenant=VILLAGE, at=clock.now)
    source.triage(Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "d-1", clock())
    assert source.escalated_to == TOWNSHIP
    # When the township takes it over, then it escalates on to the county in the same step
    township = take_over(source, source.links[-1], clock)
    assert names(township) == ["Received", "Escalated"]
    assert township.status is Status.ESCALATED and township.escalated_to == COUNTY
    assert township.links == [
        Link(Case.linked_id(township.id, 2, COUNTY), COUNTY, Direction.UP, lead=True)
    ]
    # And the county, where red matters are handled, files it
    county = take_over(township, township.links[-1], clock)
    assert county.status is Status.TRIAGED and county.severity is Severity.RED
    assert county.links == [] and county.escalated_to is None


def test_a_hand_over_survives_a_json_round_trip() -> None:
    origin, case, clock = handed_down()
    case.accept(VILLAGE, "director-v", clock())
    origin.note_linked_acceptance(case.id, "router", clock())
    for c in (origin, case):
        assert replay(through_json(c.collect_events())).__dict__ == c.__dict__


def _dispatched() -> Case:
    return dispatched_down(VILLAGE)[0]


def _escalated() -> Case:
    return escalated_up()[0]


SIBLING_TOWNSHIP = "330782102"
SOURCES: dict[str, tuple[Callable[[], Case], Direction]] = {
    "dispatched down": (_dispatched, Direction.UP),
    "escalated up": (_escalated, Direction.DOWN),
}


def hand_over(source: Case, to: str, direction: Direction, **changes: Any) -> Case:
    """Case.take_over of ``source`` into ``to``, with valid arguments unless changed."""
    arguments: dict[str, Any] = {
        "case_id": Case.linked_id(source.id, source.version, to),
        "case_number": "HO-1",
        "origin": Link(source.id, source.tenant, direction),
        "origin_case_number": source.case_number,
        "reason": "handed over",
        "source": source,
        "calendar": CALENDAR_2026,
        "by": "router",
        "at": datetime(2026, 3, 3, 9, 0, tzinfo=CST),
    }
    return Case.take_over(**{**arguments, **changes})


@pytest.mark.parametrize(("kind", "to"), [("dispatched down", VILLAGE), ("escalated up", TOWNSHIP)])
def test_a_hand_over_with_valid_arguments_opens_the_linked_case(kind: str, to: str) -> None:
    build, direction = SOURCES[kind]
    source = build()
    case = hand_over(source, to, direction)
    assert case.tenant == to and case.origin == Link(source.id, source.tenant, direction)


@pytest.mark.parametrize("kind", list(SOURCES))
def test_a_hand_over_names_its_sending_case_as_it_is(kind: str) -> None:
    build, direction = SOURCES[kind]
    source = build()
    to = VILLAGE if direction is Direction.UP else TOWNSHIP
    wrong = {
        "the origin's tenant": {"origin": Link(source.id, COUNTY, direction)},
        "the origin's case": {"origin": Link(earlier_case(source.tenant), source.tenant,
                                             direction)},
        "a case id without a tenant": {"case_id": uuid4()},
        "a case id that is not a UUID": {"case_id": str(Case.linked_id(source.id, 3, to))},
    }
    for what, changes in wrong.items():
        with pytest.raises(ValidationError, match="names the sending case and a tenant's"):
            hand_over(source, to, direction, **changes)
            pytest.fail(f"{what} was taken")


@pytest.mark.parametrize(
    ("kind", "to", "rule"),
    [
        # dispatched down: the receiver lies strictly inside the sender
        ("dispatched down", TOWNSHIP, "is not down"),
        ("dispatched down", COUNTY, "is not down"),
        ("dispatched down", SIBLING_TOWNSHIP, "is not down"),
        ("dispatched down", "330782102203", "is not down"),  # a village of another township
        # escalated up: the receiver is the sender's parent
        ("escalated up", VILLAGE, "is not one tier up"),
        ("escalated up", VILLAGE_2, "is not one tier up"),
        ("escalated up", COUNTY, "is not one tier up"),
        ("escalated up", CITY, "is not one tier up"),
    ],
)
def test_a_hand_over_goes_down_the_tree_or_one_tier_up(kind: str, to: str, rule: str) -> None:
    build, direction = SOURCES[kind]
    source = build()
    expected = f"a hand-over goes down the tree or one tier up; {source.tenant} to {to} {rule}"
    with pytest.raises(ValidationError, match=re.escape(expected)):
        hand_over(source, to, direction)


def test_a_hand_over_in_the_wrong_direction_is_refused() -> None:
    # A township's dispatch to a village taken as an escalation, and a village's
    # escalation to its township taken as a dispatch
    with pytest.raises(ValidationError, match="is not one tier up"):
        hand_over(_dispatched(), VILLAGE, Direction.DOWN)
    with pytest.raises(ValidationError, match="is not down"):
        hand_over(_escalated(), TOWNSHIP, Direction.UP)


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        ({"case_number": ""}, "a case number must not be empty"),
        ({"case_number": "  "}, "a case number must not be empty"),
        ({"case_number": None}, "a case number must not be empty"),
        ({"by": ""}, r"the actor \(by\) must not be empty"),
        ({"at": datetime(2026, 3, 3, 9, 0)}, "must be timezone-aware"),
        ({"at": "2026-03-03T09:00+08:00"}, "must be a datetime"),
        ({"reason": " "}, "reason must not be empty"),
        ({"calendar": None}, "WorkingCalendar"),
    ],
)
def test_a_hand_over_is_numbered_attributed_and_timed(changes: dict[str, Any], rule: str) -> None:
    with pytest.raises(ValidationError, match=rule):
        hand_over(_dispatched(), VILLAGE, Direction.UP, **changes)


def test_only_a_triaged_case_is_handed_over() -> None:
    clock = Clock()
    source = receive(tenant=VILLAGE, at=clock.now)
    with pytest.raises(IllegalTransition, match="only a triaged case"):
        hand_over(source, TOWNSHIP, Direction.DOWN)


# -- linked ids and links -------------------------------------------------------------


def test_a_linked_id_is_fixed_by_the_sending_case_its_event_and_the_center() -> None:
    sender = Case.create_id(TOWNSHIP, "ZZ-2026-000001")
    linked = Case.linked_id(sender, 3, VILLAGE)
    assert linked == Case.linked_id(sender, 3, VILLAGE)
    assert tenant_of(linked) == VILLAGE
    others = {
        Case.linked_id(sender, 4, VILLAGE),
        Case.linked_id(sender, 3, VILLAGE_2),
        Case.linked_id(Case.create_id(TOWNSHIP, "ZZ-2026-000002"), 3, VILLAGE),
    }
    assert linked not in others and len(others) == 3


def test_dispatching_the_same_case_twice_names_the_same_linked_cases() -> None:
    first, _ = dispatched_down(VILLAGE, VILLAGE_2)
    again, _ = dispatched_down(VILLAGE, VILLAGE_2)
    assert first.links == again.links
    assert first.links[0].case_id == Case.linked_id(first.id, first.version, VILLAGE)


def test_a_new_dispatch_round_names_new_linked_cases() -> None:
    case, clock = dispatched_down(VILLAGE)
    returned = case.links[0]
    case.note_linked_refusal(returned.case_id, "not a village matter", "router", clock())
    case.dispatch([Assignee(AssigneeKind.CENTER, VILLAGE, lead=True)], "d-1", clock())
    assert case.links[0].tenant == VILLAGE and case.links[0].case_id != returned.case_id


def test_a_joint_dispatch_to_three_villages_links_each_with_one_lead() -> None:
    case, _ = dispatched_down(VILLAGE, VILLAGE_2, VILLAGE_3)
    version = case.version
    assert case.links == [
        Link(Case.linked_id(case.id, version, VILLAGE), VILLAGE, Direction.DOWN, lead=True),
        Link(Case.linked_id(case.id, version, VILLAGE_2), VILLAGE_2, Direction.DOWN, lead=False),
        Link(Case.linked_id(case.id, version, VILLAGE_3), VILLAGE_3, Direction.DOWN, lead=False),
    ]
    assert all(k.pending for k in case.links) and case.lead_link == case.links[0]


def test_only_center_assignees_are_linked() -> None:
    case, _ = linked_case_in(Status.DISPATCHED)
    assert [(k.tenant, k.lead) for k in case.links] == [(VILLAGE_2, False), (VILLAGE_3, False)]
    assert case.lead_link is None


# -- answers from a lower center -----------------------------------------------------


def test_a_center_answers_an_order_in_its_own_case_not_in_the_senders() -> None:
    case, clock = dispatched_down(VILLAGE)
    with pytest.raises(IllegalTransition, match="answers the order in its own linked case"):
        case.accept(VILLAGE, "officer-1", clock())
    case.note_linked_acceptance(case.links[0].case_id, "router", accepted_at := clock())
    assert case.status is Status.ACCEPTED
    assert case.assignments[0].accepted_at == accepted_at


def test_a_handed_down_center_refusing_the_order_returns_it() -> None:
    _, case, clock = handed_down()
    case.refuse(VILLAGE, "not a village matter", "director-v", clock())
    assert case.status is Status.RETURNED and not case.is_open
    assert case.assignments == [] and case.refusals == {VILLAGE: 1}
    with pytest.raises(IllegalTransition, match="this one is returned"):
        case.accept(VILLAGE, "director-v", clock())


def test_the_senders_refusal_marks_the_link_returned() -> None:
    origin, case, clock = handed_down()
    origin.note_linked_refusal(case.id, "not a village matter", "router", clock())
    assert origin.links[0].returned and not origin.links[0].pending
    assert origin.status is Status.TRIAGED and origin.assignments == []
    assert origin.refusals == {VILLAGE: 1} and origin.lead_link is None


# -- outcomes from a linked case ------------------------------------------------------


def test_the_lead_centers_outcome_resolves_the_sender_and_a_co_centers_does_not() -> None:
    # Given a case led by one village, with two co-villages, accepted by the lead and one co
    case, clock = dispatched_down(VILLAGE, VILLAGE_2, VILLAGE_3)
    lead, co, _ = case.links
    case.note_linked_acceptance(lead.case_id, "router", clock())
    case.note_linked_acceptance(co.case_id, "router", clock())
    # When a co-village reports, then its link has an outcome and the case is not resolved
    case.note_linked_outcome(co.case_id, Outcome.HANDLED, "patrols added", "router", clock())
    linked = case.link(co.case_id)
    assert linked is not None and linked.outcome is Outcome.HANDLED
    assert case.status is Status.ACCEPTED and case.outcome is None
    # When the lead village reports, then the case is resolved by that village
    case.note_linked_outcome(lead.case_id, Outcome.MEDIATED, "调解成功", "router", clock())
    assert case.status is Status.RESOLVED and case.resolved_by_unit == VILLAGE
    assert (case.outcome, case.resolution) == (Outcome.MEDIATED, "调解成功")
    # And an outcome is reported once, and only by a linked case
    with pytest.raises(IllegalTransition, match="already reported its outcome"):
        case.note_linked_outcome(lead.case_id, Outcome.HANDLED, "again", "router", clock())
    with pytest.raises(ValidationError, match="not a linked case"):
        case.note_linked_outcome(earlier_case(), Outcome.HANDLED, "x", "router", clock())


def test_a_case_led_by_a_lower_center_is_not_resolved_here() -> None:
    case, clock = dispatched_down(VILLAGE)
    case.note_linked_acceptance(case.links[0].case_id, "router", clock())
    with pytest.raises(
        IllegalTransition, match=f"handed to center {VILLAGE} is resolved by the outcome"
    ):
        case.resolve(Outcome.HANDLED, "done", "officer-1", clock())
    assert case.status is Status.ACCEPTED


def test_a_linked_cases_progress_is_entered_in_the_senders_history() -> None:
    case, clock = case_in(Status.ESCALATED)
    case.collect_events()
    case.note_linked_progress(case.links[-1].case_id, "县调委已受理", "router", at := clock())
    assert names(case) == ["LinkedProgressNoted"]
    assert case.last_progress_at == at and case.status is Status.ESCALATED
    with pytest.raises(ValidationError, match="not a linked case"):
        case.note_linked_progress(earlier_case(), "x", "router", clock())
    with pytest.raises(ValidationError, match="progress note"):
        case.note_linked_progress(case.links[-1].case_id, " ", "router", clock())


def test_a_court_referral_reported_by_the_upper_center_carries_its_court_reference() -> None:
    case, clock = case_in(Status.ESCALATED)
    county = case.links[-1].case_id
    case.note_linked_outcome(
        county, Outcome.REFERRED_TO_COURT, "mediation failed", "router", clock(),
        court_reference=COURT_REFERENCE,
    )  # fmt: skip
    assert case.status is Status.RESOLVED and case.resolved_by_unit == COUNTY
    assert case.outcome is Outcome.REFERRED_TO_COURT
    assert case.court_reference == COURT_REFERENCE
    assert case.links[-1].outcome is Outcome.REFERRED_TO_COURT


def test_a_lower_center_reports_an_outcome_only_after_accepting_the_order() -> None:
    # Given a case dispatched to a lead village and a co-village, neither has accepted
    case, clock = dispatched_down(VILLAGE, VILLAGE_2)
    lead, co = case.links
    case.collect_events()
    # Then an outcome from either is refused, naming the center, and nothing is recorded
    for link in (lead, co):
        rule = f"center {link.tenant} reports an outcome only after accepting the order"
        with pytest.raises(IllegalTransition, match=rule):
            case.note_linked_outcome(link.case_id, Outcome.HANDLED, "done", "router", clock())
    assert names(case) == [] and case.links == [lead, co]
    # And once the lead accepted, the co-village that has not is still refused
    case.note_linked_acceptance(lead.case_id, "router", clock())
    with pytest.raises(IllegalTransition, match=f"center {VILLAGE_2} reports an outcome only"):
        case.note_linked_outcome(co.case_id, Outcome.HANDLED, "done", "router", clock())
    # When the lead reports, then its outcome resolves the case
    case.note_linked_outcome(lead.case_id, Outcome.HANDLED, "done", "router", clock())
    assert case.status is Status.RESOLVED and case.resolved_by_unit == VILLAGE


def _resolve_here(case: Case, clock: Clock, outcome: Any, summary: Any, court: Any) -> None:
    case.resolve(outcome, summary, "officer-1", clock(), court_reference=court)


def _reported_from_above(case: Case, clock: Clock, outcome: Any, summary: Any, court: Any) -> None:
    case.note_linked_outcome(
        case.links[-1].case_id, outcome, summary, "router", clock(), court_reference=court
    )


RECORDED_OUTCOMES: dict[str, tuple[Status, Callable[..., None]]] = {
    "resolved here": (Status.ACCEPTED, _resolve_here),
    "reported by the upper center": (Status.ESCALATED, _reported_from_above),
}
BAD_OUTCOMES = [
    (Outcome.REFERRED_TO_COURT, "mediation failed", None, "court reference must not be empty"),
    (Outcome.REFERRED_TO_COURT, "mediation failed", " ", "court reference must not be empty"),
    (Outcome.HANDLED, "done", COURT_REFERENCE, "belongs only to a case referred to court"),
    (Outcome.MEDIATED, "done", "", "belongs only to a case referred to court"),
    (Outcome.NO_ACTION_WARRANTED, " ", None, r"why no action is warranted \(summary\)"),
    ("settled", "done", None, "an outcome must be one of"),
    (Outcome.HANDLED, None, None, "summary must be text"),
]


@pytest.mark.parametrize("recorded", list(RECORDED_OUTCOMES))
@pytest.mark.parametrize(("outcome", "summary", "court", "rule"), BAD_OUTCOMES)
def test_an_outcome_reported_by_a_linked_case_follows_the_rules_of_a_resolution(
    recorded: str, outcome: Any, summary: Any, court: Any, rule: str
) -> None:
    status, record = RECORDED_OUTCOMES[recorded]
    case, clock = case_in(status)
    case.collect_events()
    links = list(case.links)
    with pytest.raises(ValidationError, match=rule):
        record(case, clock, outcome, summary, court)
    assert case.status is status and case.outcome is None and case.links == links
    assert names(case) == []


@pytest.mark.parametrize("recorded", list(RECORDED_OUTCOMES))
def test_no_action_warranted_is_recorded_with_its_reason(recorded: str) -> None:
    status, record = RECORDED_OUTCOMES[recorded]
    case, clock = case_in(status)
    record(case, clock, Outcome.NO_ACTION_WARRANTED, "a private contract matter", None)
    assert case.status is Status.RESOLVED and case.outcome is Outcome.NO_ACTION_WARRANTED
    assert case.resolution == "a private contract matter" and case.court_reference is None


def confirm_here(case: Case, clock: Clock) -> None:
    """The lead unit resolves the case and the party confirms the result."""
    case.resolve(Outcome.HANDLED, "done", "officer-1", clock())
    case.give_feedback("done", "clerk-1", clock())
    case.confirm("party-1", clock())


def test_a_case_closes_only_after_every_center_it_was_handed_to_reported() -> None:
    # Given a case whose two co-villages accepted, confirmed before either reported
    case, clock = linked_case_in(Status.ACCEPTED)
    first, second = case.links
    case.note_linked_acceptance(second.case_id, "router", clock())
    confirm_here(case, clock)
    # Then closing is refused, naming the villages that still owe their outcome
    with pytest.raises(IllegalTransition, match=f"still owed by {VILLAGE_2}, {VILLAGE_3}$"):
        case.close("clerk-1", clock())
    case.note_linked_outcome(first.case_id, Outcome.HANDLED, "done", "router", clock())
    with pytest.raises(IllegalTransition, match=f"still owed by {VILLAGE_3}$"):
        case.close("clerk-1", clock())
    # When the last village reports, then the case closes
    case.note_linked_outcome(second.case_id, Outcome.HANDLED, "done", "router", clock())
    case.close("clerk-1", clock())
    assert case.status is Status.CLOSED


def test_a_co_centers_refusal_returns_its_own_order_and_owes_no_outcome() -> None:
    case, clock = linked_case_in(Status.ACCEPTED)
    accepted, refusing = case.links
    case.note_linked_refusal(refusing.case_id, "not ours", "router", clock())
    assert case.links == [accepted, Link(refusing.case_id, VILLAGE_3, Direction.DOWN,
                                         lead=False, returned=True)]
    assert case.status is Status.ACCEPTED and case.refusals == {VILLAGE_3: 1}
    case.note_linked_outcome(accepted.case_id, Outcome.HANDLED, "done", "router", clock())
    confirm_here(case, clock)
    case.close("clerk-1", clock())
    assert case.status is Status.CLOSED and case.links[-1].returned


def test_a_lead_centers_refusal_ends_the_whole_dispatch() -> None:
    # Given a case led by a village, with a co-village that accepted and one that reported
    case, clock = dispatched_down(VILLAGE, VILLAGE_2, VILLAGE_3)
    lead, accepted, reported = case.links
    case.note_linked_acceptance(accepted.case_id, "router", clock())
    case.note_linked_acceptance(reported.case_id, "router", clock())
    case.note_linked_outcome(reported.case_id, Outcome.HANDLED, "patrols added", "r", clock())
    events = case.collect_events()
    # When the lead village refuses the order
    case.note_linked_refusal(lead.case_id, "not a village matter", "router", clock())
    # Then every order still owed goes back with it, and the outcome reported stays
    refused = case.collect_events()
    assert [type(e).__name__ for e in refused] == ["Refused"]
    assert case.links == [
        Link(lead.case_id, VILLAGE, Direction.DOWN, lead=True, returned=True),
        Link(accepted.case_id, VILLAGE_2, Direction.DOWN, lead=False, returned=True),
        Link(reported.case_id, VILLAGE_3, Direction.DOWN, lead=False, outcome=Outcome.HANDLED),
    ]
    assert not any(k.pending for k in case.links) and case.lead_link is None
    # And the case is back to triage, counted against the lead only, free to escalate
    assert case.status is Status.TRIAGED and case.assignments == []
    assert case.refusals == {VILLAGE: 1} and case.escalation_blocker() is None
    assert replay(through_json([*events, *refused])).__dict__ == case.__dict__


def test_a_lead_units_refusal_returns_the_orders_of_the_lower_co_centers() -> None:
    # Given the justice office leads, village 2 accepted its part, village 3 has not answered
    case, clock = linked_case_in(Status.DISPATCHED)
    # When the justice office refuses the order
    case.refuse(LEAD, "not our duty", "officer-1", clock())
    # Then both villages' orders go back (the router withdraws their cases)
    assert [(k.tenant, k.returned, k.outcome) for k in case.links] == [
        (VILLAGE_2, True, None), (VILLAGE_3, True, None)
    ]
    assert case.status is Status.TRIAGED and case.assignments == []
    assert case.refusals == {LEAD: 1}
    assert replay(through_json(case.collect_events())).__dict__ == case.__dict__


def test_a_co_center_that_answers_after_the_party_confirmed_does_not_block_closing() -> None:
    # Given a confirmed case: village 2 accepted, village 3 has not answered yet
    case, clock = linked_case_in(Status.CONFIRMED)
    accepted, late = case.links
    case.note_linked_outcome(accepted.case_id, Outcome.HANDLED, "done", "router", clock())
    # When village 3 accepts in its own case and resolves it, and the router relays both
    # (a relay the sending case refuses is logged and skipped)
    for relay in (
        lambda: case.note_linked_acceptance(late.case_id, "router", clock()),
        lambda: case.note_linked_outcome(late.case_id, Outcome.HANDLED, "done", "r", clock()),
    ):
        with contextlib.suppress(IllegalTransition):
            relay()
    # Then the case can close
    case.close("clerk-1", clock())
    assert case.status is Status.CLOSED


# -- a handed-over case follows its origin ------------------------------------------


def resolved_below() -> tuple[Case, Case, Clock]:
    """A village resolved the order of its township, and the township took the outcome."""
    origin, case, clock = handed_down()
    case.accept(VILLAGE, "director-v", clock())
    origin.note_linked_acceptance(case.id, "router", clock())
    case.resolve(Outcome.HANDLED, "the pipe was repaired", "officer-v", clock())
    origin.note_linked_outcome(case.id, Outcome.HANDLED, "the pipe was repaired", "r", clock())
    return origin, case, clock


def test_a_handed_over_case_closes_with_its_origin() -> None:
    origin, case, clock = resolved_below()
    assert case.resolved_by_unit == VILLAGE and origin.resolved_by_unit == VILLAGE
    origin.give_feedback("repaired", "clerk-1", clock())
    origin.confirm("party-1", clock())
    origin.close("clerk-1", clock())
    case.close_with_origin("router", closed_at := clock())
    assert case.status is Status.CLOSED and case.closed_at == closed_at
    assert not case.is_open and not case.confirmed


def test_a_rejected_result_sends_the_handed_over_case_back_for_rework() -> None:
    # Given a township case resolved by its village, fed back to the party
    origin, case, clock = resolved_below()
    origin.give_feedback("repaired", "clerk-1", clock())
    # When the party rejects the result, then the village owes a new outcome
    origin.reject_result("still leaking", "party-1", clock())
    assert origin.status is Status.ACCEPTED and origin.rejections == 1
    assert origin.links[0].outcome is None and origin.links[0].pending
    # And the village case goes back to work
    case.rework("the party says it still leaks", "router", clock())
    assert case.status is Status.ACCEPTED and case.outcome is None
    assert case.resolved_by_unit is None
    # When the village resolves again, then the township is resolved again
    case.resolve(Outcome.MEDIATED, "replaced the pipe", "officer-v", clock())
    origin.note_linked_outcome(case.id, Outcome.MEDIATED, "replaced the pipe", "r", clock())
    assert origin.status is Status.RESOLVED and origin.resolution == "replaced the pipe"


def test_rework_of_an_escalated_handed_over_case_goes_back_to_the_upper_center() -> None:
    _, case, clock = escalated_up()
    case.escalate(COUNTY, "the county must decide", "director-t", clock())
    county = case.links[-1].case_id
    case.note_linked_outcome(county, Outcome.MEDIATED, "county mediation", "router", clock())
    case.rework("the party rejected it", "router", clock())
    assert case.status is Status.ESCALATED and case.outcome is None
    assert case.links[-1].outcome is None and case.links[-1].pending


def test_a_handed_over_case_ends_with_its_origin_and_not_by_itself() -> None:
    _, case, clock = handed_down()
    with pytest.raises(IllegalTransition, match="withdrawn at its origin"):
        case.withdraw("settled", "party-1", clock())
    with pytest.raises(IllegalTransition, match="merged at its origin"):
        case.merge_into(Case.create_id(VILLAGE, "V-2026-000001"), "clerk-v", clock())
    case.withdraw_with_origin("the applicant withdrew at the township", "router", clock())
    assert case.status is Status.WITHDRAWN
    assert case.withdrawn_reason == "the applicant withdrew at the township"


def test_a_handed_over_case_closes_with_its_origin_while_a_co_center_still_owes() -> None:
    # Given a township case for a village's escalation, dispatched to two other villages
    _, case, clock = escalated_up()
    case.dispatch(centers(VILLAGE_2, VILLAGE_3), "dispatcher-t", clock())
    lead, co = case.links
    case.note_linked_acceptance(lead.case_id, "router", clock())
    case.note_linked_outcome(lead.case_id, Outcome.HANDLED, "done", "router", clock())
    assert case.status is Status.RESOLVED and case.links[-1].pending
    # When the origin closes, then this case closes too; the router withdraws the co-village
    case.close_with_origin("router", clock())
    assert case.status is Status.CLOSED and case.links[-1] == co and co.pending


def handed_over_at_the_origin(handed: str, status: Status) -> tuple[Case, Clock]:
    """A handed-over case, resolved or closed with its origin."""
    if handed == "escalated up":
        return handed_over_in(status)
    _, case, clock = resolved_below()
    if status is Status.CLOSED:
        case.close_with_origin("router", clock())
    return case, clock


PARTY_LOOP = {
    "give_feedback": (Status.RESOLVED, "feedback"),
    "evaluate": (Status.CLOSED, "evaluation"),
    "reopen": (Status.CLOSED, "a repeat complaint"),
}


@pytest.mark.parametrize("handed", ["escalated up", "dispatched down"])
@pytest.mark.parametrize("command", list(PARTY_LOOP))
def test_the_partys_loop_of_a_handed_over_case_runs_at_its_origin(
    command: str, handed: str
) -> None:
    # Given a handed-over case in a status where its own case would take the command
    status, what = PARTY_LOOP[command]
    case, clock = handed_over_at_the_origin(handed, status)
    assert case.origin is not None and case.status is status
    case.collect_events()
    version = case.version
    # When the command is given, then it is refused, naming the origin, and nothing happens
    rule = (
        f"{what} belongs to the origin case {case.origin_case_number} at"
        f" {case.origin.tenant}, where the party's loop runs"
    )
    with pytest.raises(IllegalTransition, match=re.escape(rule)):
        COMMANDS[command](case, clock)
    assert case.version == version and names(case) == [] and case.status is status
    assert case.feedback is None and case.stars is None and case.repeat_count == 0


@pytest.mark.parametrize(
    ("status", "command", "rule"),
    [
        (Status.RESOLVED, "close_with_origin", "only a handed-over case closes with its origin"),
        (Status.RESOLVED, "rework", "only a handed-over case is sent back by its origin"),
        (
            Status.TRIAGED,
            "withdraw_with_origin",
            "only a handed-over case is withdrawn by its origin",
        ),
    ],
)
def test_a_case_of_its_own_has_no_origin_to_follow(status: Status, command: str, rule: str) -> None:
    case, clock = case_in(status)
    with pytest.raises(IllegalTransition, match=rule):
        COMMANDS[command](case, clock)
    assert case.status is status


# -- escalation: red matters, raised severity, group matters --------------------------


@pytest.mark.parametrize(("tenant", "parent"), [(VILLAGE, TOWNSHIP), (TOWNSHIP, COUNTY)])
def test_a_red_matter_below_a_county_escalates_in_the_same_command(
    tenant: str, parent: str
) -> None:
    clock = Clock()
    case = receive(tenant=tenant, at=clock.now)
    case.collect_events()
    case.triage(Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "d-1", clock())
    assert names(case) == ["Triaged", "Escalated"]
    assert case.status is Status.ESCALATED and case.escalated_to == parent
    assert case.links == [
        Link(Case.linked_id(case.id, case.version, parent), parent, Direction.UP, lead=True)
    ]


@pytest.mark.parametrize("tenant", [COUNTY, CITY])
def test_a_red_matter_stays_at_a_county_or_a_city(tenant: str) -> None:
    clock = Clock()
    case = receive(tenant=tenant, at=clock.now)
    case.triage(Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "d-1", clock())
    assert case.status is Status.TRIAGED
    assert case.escalated_to is None and case.links == []


def test_severity_is_only_ever_raised_and_keeps_its_deadlines() -> None:
    case, clock = case_in(Status.ACCEPTED)
    deadlines = (case.respond_by, case.handle_by)
    for lower in (Severity.YELLOW, Severity.BLUE):
        with pytest.raises(ValidationError, match=f"can only be raised; yellow to {lower}"):
            case.raise_severity(lower, "calmer now", "director-1", clock())
    case.raise_severity(Severity.ORANGE, "more households joined", "director-1", clock())
    assert case.severity is Severity.ORANGE and case.status is Status.ACCEPTED
    assert (case.respond_by, case.handle_by) == deadlines


@pytest.mark.parametrize(
    ("tenant", "escalated"), [(VILLAGE, True), (TOWNSHIP, True), (COUNTY, False)]
)
def test_a_severity_raised_to_red_escalates_below_a_county(tenant: str, escalated: bool) -> None:
    clock = Clock()
    case = receive(tenant=tenant, at=clock.now)
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
    case.collect_events()
    case.raise_severity(Severity.RED, "a fight broke out", "director-1", clock())
    assert names(case) == ["SeverityRaised", *(["Escalated"] if escalated else [])]
    assert case.severity is Severity.RED
    assert (case.status is Status.ESCALATED) is escalated


def test_a_group_matter_escalates_and_is_marked_once() -> None:
    case, clock = case_in(Status.ACCEPTED)
    case.collect_events()
    case.mark_group_matter("thirty households signed", "director-1", clock())
    assert names(case) == ["GroupMatterMarked", "Escalated"]
    assert case.group_matter and case.escalated_to == COUNTY
    with pytest.raises(IllegalTransition, match="marked a group matter once"):
        case.mark_group_matter("forty now", "director-1", clock())


def test_a_group_matter_marked_before_triage_escalates_when_triaged() -> None:
    # Given a township case marked a group matter as it came in
    clock = Clock()
    case = receive(at=clock.now)
    case.collect_events()
    case.mark_group_matter("thirty households signed", "director-1", clock())
    assert names(case) == ["GroupMatterMarked"]
    assert case.status is Status.RECEIVED and case.escalated_to is None and case.links == []
    # When it is triaged, then it escalates to the county in the same command
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
    events = case.collect_events()
    assert [type(e).__name__ for e in events] == ["Triaged", "Escalated"]
    assert events[-1].reason == "group matter (群体性)"
    assert case.status is Status.ESCALATED and case.escalated_to == COUNTY
    assert case.links == [
        Link(Case.linked_id(case.id, case.version, COUNTY), COUNTY, Direction.UP, lead=True)
    ]


def test_a_group_matter_blocked_by_lower_centers_escalates_once_they_return_the_order() -> None:
    # Given a group matter marked while a village still owed its answer
    case, clock = dispatched_down(VILLAGE)
    case.mark_group_matter("thirty households signed", "director-1", clock())
    assert case.status is Status.DISPATCHED and case.escalated_to is None
    case.collect_events()
    # When the village returns the order, the matter escalates in the same command, once
    case.note_linked_refusal(case.links[0].case_id, "not a village matter", "router", clock())
    assert names(case) == ["Refused", "Escalated"] and case.escalated_to == COUNTY
    assert case.status is Status.ESCALATED


def test_a_group_matter_at_a_city_is_only_recorded_when_triaged() -> None:
    clock = Clock()
    case = receive(tenant=CITY, at=clock.now)
    case.mark_group_matter("thirty households signed", "director-1", clock())
    case.collect_events()
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
    assert names(case) == ["Triaged"] and case.status is Status.TRIAGED
    assert case.group_matter and case.escalated_to is None


def test_a_red_matter_escalates_once_its_lower_centers_no_longer_block_it() -> None:
    # Given a township case led by the justice office with a co-village, raised to red
    # while the village had not reported (escalation blocked)
    case, clock = linked_case_in(Status.ACCEPTED)
    case.raise_severity(Severity.RED, "a fight broke out", "director-1", clock())
    assert case.escalated_to is None
    # When both villages are done with their part
    accepted, unanswered = case.links
    case.note_linked_outcome(accepted.case_id, Outcome.HANDLED, "done", "router", clock())
    case.note_linked_refusal(unanswered.case_id, "not ours", "router", clock())
    assert case.escalation_blocker() is None
    # Then the red matter goes to the county rather than being resolved here
    with contextlib.suppress(IllegalTransition):
        case.resolve(Outcome.HANDLED, "handled at the township", "officer-1", clock())
    assert case.escalated_to == COUNTY


def _city_case() -> tuple[Case, Clock]:
    clock = Clock()
    case = receive(tenant=CITY, at=clock.now)
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
    return case, clock


def _handed_down_case() -> tuple[Case, Clock]:
    _, case, clock = handed_down()
    return case, clock


BLOCKED = {
    "a city": (_city_case, "never goes above a city"),
    "handed down": (_handed_down_case, "answered to it: refuse the order or report the outcome"),
    "lower centers pending": (
        lambda: dispatched_down(VILLAGE, VILLAGE_2),
        "escalates only after they report an outcome or return the order",
    ),
}


@pytest.mark.parametrize("blocked", list(BLOCKED))
def test_a_group_matter_stays_where_escalation_is_blocked(blocked: str) -> None:
    build, rule = BLOCKED[blocked]
    case, clock = build()
    status = case.status
    case.collect_events()
    case.mark_group_matter("thirty households signed", "director-1", clock())
    assert names(case) == ["GroupMatterMarked"]
    assert case.group_matter and case.status is status and case.escalated_to is None
    with pytest.raises(IllegalTransition, match=rule):
        case.escalate(COUNTY, "group matter", "director-1", clock())


def test_a_case_escalates_once_its_lower_centers_returned_the_order() -> None:
    case, clock = dispatched_down(VILLAGE)
    returned = case.links[0]
    case.note_linked_refusal(returned.case_id, "not a village matter", "router", clock())
    assert case.escalation_blocker() is None
    case.escalate(COUNTY, "the county must decide", "director-1", clock())
    assert [(k.tenant, k.direction, k.returned) for k in case.links] == [
        (VILLAGE, Direction.DOWN, True),
        (COUNTY, Direction.UP, False),
    ]
    assert case.lead_link == case.links[-1]


# -- suspected duplicates ---------------------------------------------------------------


def test_staff_keep_a_case_separate_from_each_listed_candidate_once() -> None:
    first = Case.create_id(TOWNSHIP, "ZZ-2026-000010")
    second = Case.create_id(TOWNSHIP, "ZZ-2026-000011")
    clock = Clock()
    case = receive(at=clock.now, suspected_duplicates=[first, second])
    with pytest.raises(ValidationError, match="not a suspected duplicate"):
        case.keep_separate(earlier_case(), "a different flat", "clerk-1", clock())
    with pytest.raises(ValidationError, match="reason"):
        case.keep_separate(first, " ", "clerk-1", clock())
    case.keep_separate(first, "a different flat", "clerk-1", clock())
    with pytest.raises(IllegalTransition, match="already taken"):
        case.keep_separate(first, "still different", "clerk-1", clock())
    case.keep_separate(second, "another building", "clerk-1", clock())
    assert case.kept_separate_from == [first, second]


def test_suspected_duplicates_are_cases_of_the_same_center() -> None:
    with pytest.raises(ValidationError, match=f"same center {TOWNSHIP}"):
        receive(suspected_duplicates=[Case.create_id(VILLAGE, "V-2026-000001")])
