"""The Case through the closed loop (DOMAIN.md), one rule per test."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from case_builders import (
    CALENDAR_2026,
    CITY,
    CO_UNIT,
    COUNTY,
    LEAD,
    T0,
    TOWNSHIP,
    VILLAGE,
    Clock,
    case_in,
    joint_dispatch,
    receive,
)

from domain import (
    Assignee,
    AssigneeKind,
    CalendarBasis,
    Case,
    Channel,
    DomainError,
    HandlingClass,
    IllegalTransition,
    Instrument,
    Outcome,
    Party,
    Personal,
    Place,
    Severity,
    Status,
    UnknownCategory,
    ValidationError,
    tenant_of,
)


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_runs_the_same_closed_loop(channel: Channel) -> None:
    # Given a matter received through this channel
    clock = Clock()
    case = receive(channel=channel, at=clock.now)
    assert (case.status, case.channel) == (Status.RECEIVED, channel)

    # When it goes round the loop
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "dispatcher-1", clock())
    case.dispatch(joint_dispatch(), "dispatcher-1", clock())
    case.accept(LEAD, "officer-1", clock())
    case.accept(CO_UNIT, "officer-2", clock())
    case.report_progress("met both parties", "officer-1", clock())
    case.urge(Instrument.WORK_PROMPT_LETTER, LEAD, "progress is slow", "director-1", clock())
    case.resolve(Outcome.MEDIATED, "调解成功", "officer-1", clock())
    case.give_feedback("已调解", "clerk-1", clock())
    case.confirm("party-1", clock())
    case.close("clerk-1", closed_at := clock())
    case.evaluate(5, "满意", "party-1", clock())

    # Then it is closed, confirmed, evaluated, and every step is an event
    assert case.status is Status.CLOSED and not case.is_open
    assert case.confirmed and case.stars == 5
    assert case.closed_at == closed_at
    assert case.resolved_by_unit == LEAD
    names = [type(e).__name__ for e in case.collect_events()]
    assert names == [
        "Received", "Triaged", "Dispatched", "Accepted", "Accepted", "ProgressReported",
        "Urged", "Resolved", "FeedbackGiven", "Confirmed", "Closed", "Evaluated",
    ]  # fmt: skip


def test_one_case_number_makes_one_stream_inside_its_tenant() -> None:
    case = receive(case_number="ZZ-2026-000042")
    assert case.id == Case.create_id(TOWNSHIP, "ZZ-2026-000042")
    assert tenant_of(case.id) == TOWNSHIP
    assert receive(case_number="ZZ-2026-000042").id == case.id


def test_a_case_closes_only_after_the_party_confirms() -> None:
    # Given a resolved case whose result was fed back
    case, clock = case_in(Status.FEEDBACK_GIVEN)
    # When the clerk closes it before the party confirmed, then it is refused
    with pytest.raises(IllegalTransition, match="closed only after the party confirmed"):
        case.close("clerk-1", clock())
    # When the party confirms, then it can be closed
    case.confirm("party-1", clock())
    case.close("clerk-1", clock())
    assert case.status is Status.CLOSED and case.confirmed


def test_triage_sets_deadlines_counted_from_receipt_on_the_working_calendar() -> None:
    # Given a case received on the Wednesday before the National Day holiday
    received_at = datetime(2026, 9, 30, 10, 0, tzinfo=T0.tzinfo)
    case = receive(at=received_at)
    # When it is triaged yellow and complex
    case.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", received_at)
    # Then it must be answered within 3 working days: Oct 8, Oct 9 and make-up Saturday Oct 10
    assert case.respond_by is not None and case.handle_by is not None
    assert case.respond_by.by == datetime(2026, 10, 11, tzinfo=T0.tzinfo)
    # And report progress within 5: Oct 8, 9, 10, then Monday 12 and Tuesday 13
    assert case.handle_by.by == datetime(2026, 10, 14, tzinfo=T0.tzinfo)
    assert case.respond_by.basis is CalendarBasis.OFFICIAL


def test_a_dispatch_names_exactly_one_lead_and_each_assignee_once() -> None:
    case, clock = case_in(Status.TRIAGED)
    two_leads = [
        Assignee(AssigneeKind.UNIT, "police", True),
        Assignee(AssigneeKind.UNIT, "fire", True),
    ]
    with pytest.raises(ValidationError, match="exactly one lead"):
        case.dispatch(two_leads, "d-1", clock())
    no_lead = [Assignee(AssigneeKind.UNIT, "police", False)]
    with pytest.raises(ValidationError, match="exactly one lead"):
        case.dispatch(no_lead, "d-1", clock())
    twice = [
        Assignee(AssigneeKind.UNIT, "police", True),
        Assignee(AssigneeKind.GRID_WORKER, "police"),
    ]
    with pytest.raises(ValidationError, match="each assignee once"):
        case.dispatch(twice, "d-1", clock())
    assert case.status is Status.TRIAGED


@pytest.mark.parametrize("center", [TOWNSHIP, COUNTY, "330782102", "3301001"])
def test_dispatch_to_a_center_goes_down_the_tree(center: str) -> None:
    # Given a township case, a center assignee must be strictly inside the township
    case, clock = case_in(Status.TRIAGED)
    with pytest.raises(ValidationError):
        case.dispatch([Assignee(AssigneeKind.CENTER, center, True)], "d-1", clock())
    case.dispatch([Assignee(AssigneeKind.CENTER, VILLAGE, True)], "d-1", clock())
    assert case.status is Status.DISPATCHED


def test_a_lead_refusal_sends_the_case_back_to_triage_and_is_counted() -> None:
    # Given a jointly dispatched case
    case, clock = case_in(Status.DISPATCHED)
    # When the lead unit refuses it as misrouted
    case.refuse(LEAD, "not a matter for the justice office", "officer-1", clock())
    # Then the case is back in triage with no assignees, and the refusal counts against it
    assert case.status is Status.TRIAGED and case.assignments == []
    assert case.refusals == {LEAD: 1}
    # And a second round of kicking the ball counts again
    case.dispatch(joint_dispatch(), "d-1", clock())
    case.refuse(LEAD, "still not ours", "officer-1", clock())
    assert case.refusals == {LEAD: 2}


def test_a_co_unit_refusal_removes_only_that_unit() -> None:
    case, clock = case_in(Status.ACCEPTED)
    case.refuse(CO_UNIT, "not our duty", "officer-2", clock())
    assert case.status is Status.ACCEPTED
    assert [a.assignee.ref for a in case.assignments] == [LEAD]
    assert case.refusals == {CO_UNIT: 1}


def test_only_a_current_assignee_answers_and_only_once() -> None:
    case, clock = case_in(Status.DISPATCHED)
    with pytest.raises(ValidationError, match="only a current assignee"):
        case.accept("housing", "officer-9", clock())
    case.accept(LEAD, "officer-1", clock())
    with pytest.raises(IllegalTransition, match="answers a dispatch once"):
        case.refuse(LEAD, "changed my mind", "officer-1", clock())


def test_the_urging_ladder_climbs_one_instrument_at_a_time() -> None:
    # Given an accepted case that stalls
    case, clock = case_in(Status.ACCEPTED)
    # Then a risk warning letter cannot come before a work prompt letter
    with pytest.raises(IllegalTransition, match="follows a work-prompt-letter"):
        case.urge(Instrument.RISK_WARNING_LETTER, LEAD, "overdue", "director-1", clock())
    case.urge(Instrument.WORK_PROMPT_LETTER, LEAD, "overdue", "director-1", clock())
    # And a task assignment sheet cannot come before a risk warning letter
    with pytest.raises(IllegalTransition, match="follows a risk-warning-letter"):
        case.urge(Instrument.TASK_ASSIGNMENT_SHEET, LEAD, "overdue", "director-1", clock())
    case.urge(Instrument.RISK_WARNING_LETTER, LEAD, "still overdue", "director-1", clock())
    # And a task assignment sheet names the responsible unit
    with pytest.raises(ValidationError, match="names the responsible unit"):
        case.urge(Instrument.TASK_ASSIGNMENT_SHEET, "  ", "overdue", "director-1", clock())
    case.urge(Instrument.TASK_ASSIGNMENT_SHEET, LEAD, "overdue a week", "director-1", clock())
    assert [u.instrument for u in case.urgings] == list(Instrument)


def test_a_case_escalates_only_to_the_next_tier_up() -> None:
    case, clock = case_in(Status.ACCEPTED)
    with pytest.raises(ValidationError, match="next tier up"):
        case.escalate(CITY, "group conflict", "director-1", clock())
    with pytest.raises(ValidationError, match="reason"):
        case.escalate(COUNTY, " ", "director-1", clock())
    case.escalate(COUNTY, "group conflict", "director-1", clock())
    assert case.status is Status.ESCALATED and case.escalated_to == COUNTY


def test_escalation_never_goes_above_a_city() -> None:
    clock = Clock()
    case = receive(tenant=CITY, at=clock.now)
    case.triage(Severity.RED, HandlingClass.DIFFICULT, CALENDAR_2026, "d-1", clock())
    with pytest.raises(IllegalTransition, match="never goes above a city"):
        case.escalate("33", "too big", "director-1", clock())


def test_the_upper_tiers_outcome_flows_back_to_an_escalated_case() -> None:
    # Given a case escalated to the county
    case, clock = case_in(Status.ESCALATED)
    county_case = case.links[-1].case_id
    # Then it is not resolved here
    with pytest.raises(IllegalTransition, match="resolved by the outcome the upper tier reports"):
        case.resolve(Outcome.MEDIATED, "county mediation succeeded", "director-2", clock())
    # When the county's case reports progress and then its outcome
    case.note_linked_progress(county_case, "county mediators took it", "router", clock())
    case.note_linked_outcome(
        county_case, Outcome.MEDIATED, "county mediation succeeded", "router", clock()
    )
    # Then the case is resolved by the county, with the county's result
    assert case.status is Status.RESOLVED and case.resolved_by_unit == COUNTY
    assert (case.outcome, case.resolution) == (Outcome.MEDIATED, "county mediation succeeded")
    assert case.links[-1].outcome is Outcome.MEDIATED


def test_a_failed_mediation_referred_to_court_is_a_recorded_outcome() -> None:
    case, clock = case_in(Status.ACCEPTED)
    with pytest.raises(ValidationError, match="court reference"):
        case.resolve(Outcome.REFERRED_TO_COURT, "mediation failed", "officer-1", clock())
    with pytest.raises(ValidationError, match="court reference belongs only"):
        case.resolve(
            Outcome.MEDIATED,
            "ok",
            "officer-1",
            clock(),
            court_reference="(2026)浙0782民初1号",
        )
    case.resolve(
        Outcome.REFERRED_TO_COURT, "mediation failed", "officer-1", clock(),
        court_reference="(2026)浙0782民初1号",
    )  # fmt: skip
    assert case.outcome is Outcome.REFERRED_TO_COURT
    assert case.court_reference == "(2026)浙0782民初1号"


def test_no_action_warranted_needs_a_reason() -> None:
    case, clock = case_in(Status.ACCEPTED)
    with pytest.raises(ValidationError, match="no action is warranted"):
        case.resolve(Outcome.NO_ACTION_WARRANTED, "", "officer-1", clock())


def test_a_rejected_result_goes_back_for_rework_and_is_counted() -> None:
    case, clock = case_in(Status.FEEDBACK_GIVEN)
    case.reject_result("the pipe still leaks", "party-1", clock())
    assert case.status is Status.ACCEPTED and case.rejections == 1
    assert case.outcome is None and not case.confirmed


def test_satisfaction_is_one_to_five_stars_given_once() -> None:
    case, clock = case_in(Status.CONFIRMED)
    for stars in (0, 6, True):
        with pytest.raises(ValidationError, match="1 to 5 stars"):
            case.evaluate(stars, "", "party-1", clock())
    case.evaluate(4, "还行", "party-1", clock())
    case.close("clerk-1", clock())
    with pytest.raises(IllegalTransition, match="evaluated once"):
        case.evaluate(5, "", "party-1", clock())


def test_a_reopened_case_is_a_repeat_complaint_against_the_unit_that_resolved_it() -> None:
    # Given a closed case resolved by the justice office
    case, clock = case_in(Status.CLOSED)
    case.evaluate(5, "", "party-1", clock())
    # When the matter comes back
    case.reopen("漏水复发", "clerk-1", reopened_at := clock())
    # Then it counts against the justice office, and a new round starts at triage
    assert case.repeat_count == 1 and case.repeat_against == LEAD
    assert case.status is Status.TRIAGED and case.is_open
    assert not case.confirmed and case.stars is None and case.closed_at is None
    assert case.assignments == [] and case.respond_by is None
    # And re-triage counts the new deadlines from the re-opening
    case.triage(Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "d-1", clock())
    assert case.respond_by is not None
    assert case.respond_by.by == reopened_at + timedelta(hours=2)


def test_a_duplicate_is_merged_into_another_case_never_into_itself() -> None:
    case, clock = case_in(Status.RECEIVED)
    with pytest.raises(ValidationError, match="into itself"):
        case.merge_into(case.id, "clerk-1", clock())
    other_city = Case.create_id("330102", "X-1")
    with pytest.raises(ValidationError, match="same city"):
        case.merge_into(other_city, "clerk-1", clock())
    original = Case.create_id(TOWNSHIP, "ZZ-2026-000000")
    case.merge_into(original, "clerk-1", clock())
    assert case.status is Status.MERGED and case.merged_into == original and not case.is_open


def test_a_withdrawn_case_is_terminal() -> None:
    case, clock = case_in(Status.ESCALATED)
    case.withdraw("settled privately", "party-1", clock())
    assert case.status is Status.WITHDRAWN and not case.is_open
    with pytest.raises(IllegalTransition):
        case.report_progress("too late", "officer-1", clock())


def test_business_time_never_runs_backwards() -> None:
    case, _ = case_in(Status.TRIAGED)
    with pytest.raises(ValidationError, match="time must not run backwards"):
        case.dispatch(joint_dispatch(), "d-1", T0 - timedelta(minutes=1))


def test_times_are_timezone_aware_and_actors_named() -> None:
    case, clock = case_in(Status.RECEIVED)
    with pytest.raises(ValidationError, match="timezone-aware"):
        case.triage(
            Severity.RED,
            HandlingClass.SIMPLE,
            CALENDAR_2026,
            "d-1",
            datetime(2026, 3, 3, 9),
        )
    with pytest.raises(ValidationError, match="actor"):
        case.triage(Severity.RED, HandlingClass.SIMPLE, CALENDAR_2026, "", clock())
    with pytest.raises(ValidationError, match="severity"):
        case.triage("purple", HandlingClass.SIMPLE, CALENDAR_2026, "d-1", clock())  # type: ignore[arg-type]


def test_a_case_is_received_only_with_a_known_category_a_party_and_a_place_inside_its_tenant() -> (
    None
):
    with pytest.raises(UnknownCategory, match="'pigeons'"):
        receive(category="pigeons")
    good = receive()
    with pytest.raises(ValidationError, match="at least one party"):
        Case.receive(TOWNSHIP, "N-1", Channel.WINDOW, "other", "s", [], good.place, T0, "c")
    outside = Place("330782102001", "elsewhere")
    with pytest.raises(ValidationError, match="inside its tenant"):
        Case.receive(
            TOWNSHIP,
            "N-1",
            Channel.WINDOW,
            "other",
            "s",
            good.parties,
            outside,
            T0,
            "c",
        )
    with pytest.raises(ValidationError, match="summary"):
        Case.receive(
            TOWNSHIP,
            "N-1",
            Channel.WINDOW,
            "other",
            " ",
            good.parties,
            good.place,
            T0,
            "c",
        )
    with pytest.raises(ValidationError, match="timezone-aware"):
        Case.receive(
            TOWNSHIP, "N-1", Channel.WINDOW, "other", "s", good.parties, good.place,
            datetime(2026, 1, 5, 9), "c",
        )  # fmt: skip


def test_personal_fields_never_show_unmasked() -> None:
    party = Party(
        name=Personal("张三丰"),
        phone=Personal("13812341234"),
        id_number=Personal("330782198001011234"),
        address=Personal(None),
    )
    shown = repr(party) + str(party.name) + repr([party])
    assert "张三丰" not in shown and "13812341234" not in shown
    assert "198001011234" not in shown
    assert party.name.masked() == "张**"
    assert party.phone is not None and party.phone.masked() == "138****1234"
    assert party.id_number is not None and party.id_number.masked() == "330***********1234"
    assert party.address is not None and party.address.shredded


def test_every_failed_command_is_a_domain_error_and_records_nothing() -> None:
    case, clock = case_in(Status.CLOSED)
    case.collect_events()
    with pytest.raises(DomainError):
        case.dispatch(joint_dispatch(), "d-1", clock())
    assert case.collect_events() == []
