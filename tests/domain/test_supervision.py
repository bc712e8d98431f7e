"""The supervision ladder (督办, DOMAIN.md rules 5 and 6), rung by rung.

Real ``Case`` objects, the hand-written 2026 calendar, no server. The clock is
played the scheduler's way: ask :func:`next_step`, issue what it returns as the
case's own command at ``max(now, case.last_at)``. Every expected instant below
is counted by hand from the 2026 schedule, not by the calendar under test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from case_builders import (
    CALENDAR_2026,
    CITY,
    COUNTY,
    CST,
    LEAD,
    T0,
    TOWNSHIP,
    VILLAGE,
    dispatched_down,
    handed_down,
    joint_dispatch,
    receive,
)

from domain import Case, HandlingClass, Instrument, Outcome, Severity, Status
from domain.supervision import SCHEDULER, Step, next_step, next_step_at

PROMPT = Instrument.WORK_PROMPT_LETTER
WARNING = Instrument.RISK_WARNING_LETTER
SHEET = Instrument.TASK_ASSIGNMENT_SHEET
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant of 2026, Beijing time."""
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


def dispatched(
    severity: Severity = Severity.YELLOW,
    handling: HandlingClass = HandlingClass.COMPLEX,
    *,
    tenant: str = TOWNSHIP,
    received: datetime = T0,
) -> Case:
    """A case received at ``received``, triaged and dispatched to units (LEAD leads)
    within the same hour, never answered."""
    case = receive(tenant=tenant, at=received)
    case.triage(severity, handling, CALENDAR_2026, "dispatcher-1", received + 10 * MINUTE)
    case.dispatch(joint_dispatch(), "dispatcher-1", received + 20 * MINUTE)
    assert case.status is Status.DISPATCHED
    return case


def issue(case: Case, now: datetime) -> Step | None:
    """One scheduler tick on one case: issue the due step, if any."""
    step = next_step(case, now, CALENDAR_2026)
    if step is None:
        return None
    when = max(now, case.last_at)
    if step.instrument is None:
        assert step.to_tenant is not None
        case.escalate(step.to_tenant, step.reason, SCHEDULER, when)
    else:
        case.urge(step.instrument, step.responsible_unit, step.reason, SCHEDULER, when)
    return step


def what(step: Step) -> str:
    return step.instrument.value if step.instrument else f"escalation to {step.to_tenant}"


def run_clock(case: Case, until: datetime | None = None) -> list[tuple[datetime, str]]:
    """A clock that never misses an instant: each step at the moment it falls due
    (and, checked on the way, not one second earlier)."""
    until = until or case.last_at + timedelta(days=120)
    issued = []
    while (when := next_step_at(case, CALENDAR_2026)) is not None and when <= until:
        assert next_step(case, when - SECOND, CALENDAR_2026) is None, f"early at {when}"
        step = issue(case, when)
        assert step is not None
        issued.append((when, what(step)))
    return issued


def escalation_to(tenant: str) -> str:
    return f"escalation to {tenant}"


# -- the ladder, rung by rung ----------------------------------------------------


def test_the_ladder_rung_by_rung_with_a_clock_that_ticks_at_nine() -> None:
    # Received Mon Mar 2 09:00, yellow: respond within 3 working days (Tue, Wed, Thu).
    case = dispatched()
    assert case.respond_by is not None and case.respond_by.by == at(3, 6)

    # Nothing before the response deadline, however close.
    for now in (T0, at(3, 5, 9), at(3, 6) - SECOND):
        assert next_step(case, now, CALENDAR_2026) is None
    first = next_step(case, at(3, 6), CALENDAR_2026)
    assert first is not None and first.instrument is PROMPT
    assert first.responsible_unit == LEAD and first.to_tenant is None
    assert "the response deadline passed" in first.reason and "breach 1" in first.reason

    # The clock comes round at 09:00 Friday and issues the work prompt letter.
    assert issue(case, at(3, 6, 9)) == first
    assert [(u.instrument, u.responsible_unit, u.by, u.at) for u in case.urgings] == [
        (PROMPT, LEAD, SCHEDULER, at(3, 6, 9))]
    assert issue(case, at(3, 6, 9)) is None  # the same tick again issues nothing

    # Second breach: the deadline is long gone, but the unit gets its grace of one
    # working day after the letter's day (Friday): Monday, so Tuesday 00:00.
    assert next_step_at(case, CALENDAR_2026) == at(3, 10)
    assert next_step(case, at(3, 10) - SECOND, CALENDAR_2026) is None
    second = issue(case, at(3, 10, 9))
    assert second is not None and second.instrument is WARNING
    assert second.responsible_unit == LEAD and "breach 2" in second.reason

    # Third breach: the task assignment sheet, naming the responsible unit.
    assert next_step_at(case, CALENDAR_2026) == at(3, 12)
    assert next_step(case, at(3, 12) - SECOND, CALENDAR_2026) is None
    third = issue(case, at(3, 12, 9))
    assert third is not None and third.instrument is SHEET and "breach 3" in third.reason
    assert case.urgings[-1].responsible_unit == LEAD

    # Still overdue a working day after the sheet: the case escalates to the county.
    assert next_step_at(case, CALENDAR_2026) == at(3, 14)
    assert next_step(case, at(3, 14) - SECOND, CALENDAR_2026) is None
    fourth = issue(case, at(3, 14, 9))
    assert fourth is not None and fourth.instrument is None and fourth.to_tenant == COUNTY
    assert "still overdue after the task-assignment-sheet" in fourth.reason
    assert case.status is Status.ESCALATED and case.escalated_to == COUNTY
    assert case.links[-1].tenant == COUNTY

    # The ladder is over: three instruments, one escalation, nothing more ever.
    assert [u.instrument for u in case.urgings] == [PROMPT, WARNING, SHEET]
    assert next_step_at(case, CALENDAR_2026) is None
    assert next_step(case, at(12, 31), CALENDAR_2026) is None


def test_a_clock_that_never_misses_an_instant_issues_each_rung_at_its_deadline() -> None:
    assert run_clock(dispatched()) == [
        (at(3, 6), PROMPT),  # end of Thu Mar 5: the 3rd working day
        (at(3, 10), WARNING),  # letter on Fri; grace Mon
        (at(3, 12), SHEET),  # letter on Tue; grace Wed
        (at(3, 14), escalation_to(COUNTY)),  # sheet on Thu; grace Fri
    ]


def test_a_late_clock_climbs_one_rung_per_tick_and_counts_the_grace_from_its_own_issue(
) -> None:
    # The scheduler was down for two weeks: it does not fire the whole ladder at once.
    case = dispatched()
    late = at(3, 20, 9)
    step = issue(case, late)
    assert step is not None and step.instrument is PROMPT
    assert issue(case, late) is None
    assert next_step_at(case, CALENDAR_2026) == at(3, 24)  # Fri Mar 20 → grace Mon Mar 23


def test_an_unanswered_case_is_not_urged_before_dispatch_nor_after_it_is_resolved() -> None:
    triaged = receive(at=T0)
    triaged.triage(Severity.YELLOW, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", T0 + MINUTE)
    assert next_step_at(triaged, CALENDAR_2026) is None
    assert next_step(triaged, at(6, 1), CALENDAR_2026) is None

    case = dispatched(handling=HandlingClass.SIMPLE)
    case.accept(LEAD, "officer-1", at(3, 2, 11))
    assert run_clock(case, until=at(3, 3)) == [(at(3, 3), PROMPT)]  # not handled that day
    case.resolve(Outcome.HANDLED, "已处理", "officer-1", at(3, 3, 10))
    assert next_step_at(case, CALENDAR_2026) is None
    assert next_step(case, at(6, 1), CALENDAR_2026) is None


# -- acceptance and progress move the due ---------------------------------------------


def test_acceptance_moves_the_due_to_the_handling_deadline() -> None:
    # A difficult matter: a solution within one calendar month of receipt (Apr 2 09:00).
    case = dispatched(handling=HandlingClass.DIFFICULT)
    case.accept(LEAD, "officer-1", at(3, 3, 10))
    assert case.handle_by is not None and case.handle_by.by == at(4, 2, 9)
    assert next_step_at(case, CALENDAR_2026) == at(4, 2, 9)
    assert next_step(case, at(3, 6), CALENDAR_2026) is None  # the response was in time
    assert next_step(case, at(4, 2, 9) - SECOND, CALENDAR_2026) is None
    step = next_step(case, at(4, 2, 9), CALENDAR_2026)
    assert step is not None and step.instrument is PROMPT and step.responsible_unit == LEAD
    assert "the handling deadline passed" in step.reason


def test_accepted_after_the_prompt_letter_the_ladder_waits_for_the_handling_deadline() -> None:
    case = dispatched(handling=HandlingClass.DIFFICULT)
    assert issue(case, at(3, 6)) is not None  # prompt letter for the late response
    case.accept(LEAD, "officer-1", at(3, 6, 10))
    # The grace after the letter ends Tue Mar 10, but the unit now owes a solution
    # only by Apr 2 09:00: the ladder resumes there, on its second rung.
    assert run_clock(case) == [
        (at(4, 2, 9), WARNING),
        (at(4, 4), SHEET),  # warning on Thu; grace Fri Apr 3
        (at(4, 8), escalation_to(COUNTY)),  # sheet on Sat Apr 4; Qingming 4-6; grace Tue
    ]
    assert "the handling deadline" in case.urgings[1].reason


def test_a_complex_cases_progress_report_restarts_the_progress_duty() -> None:
    case = dispatched(handling=HandlingClass.COMPLEX)
    case.accept(LEAD, "officer-1", at(3, 2, 13))
    assert next_step_at(case, CALENDAR_2026) == at(3, 10)  # 5 working days: Tue..Mon

    case.report_progress("已约谈双方", "officer-1", at(3, 6, 15))
    # Five working days after Friday's report: Mon 9 .. Fri 13.
    assert next_step_at(case, CALENDAR_2026) == at(3, 14)
    assert next_step(case, at(3, 10), CALENDAR_2026) is None
    step = issue(case, at(3, 14))
    assert step is not None and step.instrument is PROMPT
    assert "the progress duty passed" in step.reason

    # A report after the letter restarts the duty again (Tue 17 .. Mon 23); the
    # next breach of it is the second rung.
    case.report_progress("已组织现场调解", "officer-1", at(3, 16, 10))
    assert next_step_at(case, CALENDAR_2026) == at(3, 24)
    assert next_step(case, at(3, 24) - SECOND, CALENDAR_2026) is None
    step = next_step(case, at(3, 24), CALENDAR_2026)
    assert step is not None and step.instrument is WARNING and "breach 2" in step.reason


def test_a_progress_report_does_not_move_a_simple_matters_deadline() -> None:
    case = dispatched(handling=HandlingClass.SIMPLE)
    case.accept(LEAD, "officer-1", at(3, 2, 11))
    case.report_progress("正在处理", "officer-1", at(3, 2, 16))
    assert next_step_at(case, CALENDAR_2026) == at(3, 3)  # the end of the day of receipt


# -- severities and the calendar --------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "received", "expected"),
    [
        pytest.param(Severity.RED, at(3, 2, 9), [
            (at(3, 2, 11), PROMPT), (at(3, 2, 13), WARNING), (at(3, 2, 15), SHEET),
            (at(3, 2, 17), escalation_to(CITY))], id="red-2h"),
        # Clock hours do not stop for Labour Day.
        pytest.param(Severity.RED, at(4, 30, 20), [
            (at(4, 30, 22), PROMPT), (at(5, 1, 0), WARNING), (at(5, 1, 2), SHEET),
            (at(5, 1, 4), escalation_to(CITY))], id="red-through-labour-day"),
        pytest.param(Severity.ORANGE, at(3, 2, 9), [
            (at(3, 3, 9), PROMPT), (at(3, 4, 9), WARNING), (at(3, 5, 9), SHEET),
            (at(3, 6, 9), escalation_to(CITY))], id="orange-24h"),
    ],
)
def test_red_and_orange_count_the_grace_in_clock_hours(
    severity: Severity, received: datetime, expected: list[tuple[datetime, str]]
) -> None:
    # A red matter is handled at county level: the county's unit is urged.
    case = dispatched(severity, HandlingClass.SIMPLE, tenant=COUNTY, received=received)
    assert case.status is Status.DISPATCHED
    assert run_clock(case) == expected


@pytest.mark.parametrize(
    ("severity", "received", "expected"),
    [
        # Thu Apr 30, May 6, May 7 → letter Fri May 8 00:00; the grace day after a
        # Friday letter is the make-up Saturday May 9.
        pytest.param(Severity.YELLOW, at(4, 29, 9), [
            (at(5, 8), PROMPT), (at(5, 10), WARNING), (at(5, 12), SHEET),
            (at(5, 14), escalation_to(COUNTY))], id="yellow-received-apr-29"),
        # May 6, 7, 8 → the letter marks the end of Friday (Sat May 9 00:00); the
        # letter's own day is never grace, Sunday is off: Monday is the grace day.
        pytest.param(Severity.YELLOW, at(4, 30, 9), [
            (at(5, 9), PROMPT), (at(5, 12), WARNING), (at(5, 14), SHEET),
            (at(5, 16), escalation_to(COUNTY))], id="yellow-received-apr-30"),
        # 7 working days: May 6, 7, 8, Sat 9 (make-up), 11, 12, 13.
        pytest.param(Severity.BLUE, at(4, 30, 9), [
            (at(5, 14), PROMPT), (at(5, 16), WARNING), (at(5, 19), SHEET),
            (at(5, 21), escalation_to(COUNTY))], id="blue-received-apr-30"),
        # Qingming Sat Apr 4 - Mon Apr 6: Fri 3, Tue 7, Wed 8.
        pytest.param(Severity.YELLOW, at(4, 2, 9), [
            (at(4, 9), PROMPT), (at(4, 11), WARNING), (at(4, 14), SHEET),
            (at(4, 16), escalation_to(COUNTY))], id="yellow-over-qingming"),
    ],
)
def test_yellow_and_blue_deadlines_and_graces_skip_the_holidays_and_count_make_up_days(
    severity: Severity, received: datetime, expected: list[tuple[datetime, str]]
) -> None:
    issued = run_clock(dispatched(severity, received=received))
    assert issued == expected
    for when, _ in issued:
        # Every rung falls at the end (00:00 after) of an official working day.
        ended = (when - SECOND).date()
        assert CALENDAR_2026.is_workday(ended), f"{when} ends {ended}, a day off"
        assert not date(2026, 5, 1) <= ended <= date(2026, 5, 5)


# -- where the ladder ends without escalating ---------------------------------------------


def test_a_city_cases_ladder_ends_at_the_task_assignment_sheet() -> None:
    case = dispatched(tenant=CITY)
    assert run_clock(case) == [(at(3, 6), PROMPT), (at(3, 10), WARNING), (at(3, 12), SHEET)]
    assert case.status is Status.DISPATCHED and case.escalated_to is None
    assert next_step(case, at(12, 31), CALENDAR_2026) is None
    assert "never goes above a city" in (case.escalation_blocker() or "")


def test_a_case_handed_down_from_the_township_is_urged_but_never_escalates() -> None:
    _, case, _ = handed_down()  # the village's case for the township's order
    assert case.tenant == VILLAGE and case.status is Status.DISPATCHED
    issued = run_clock(case)
    assert issued == [(at(3, 6), PROMPT), (at(3, 10), WARNING), (at(3, 12), SHEET)]
    # The village center itself answers the order: the sheet names it.
    assert case.urgings[-1].responsible_unit == VILLAGE
    assert case.escalated_to is None and case.links == []
    assert next_step(case, at(12, 31), CALENDAR_2026) is None


def test_a_case_dispatched_to_a_lower_center_waits_for_it_instead_of_escalating() -> None:
    case, _ = dispatched_down(VILLAGE)  # the township's own case, the village leads
    assert run_clock(case) == [(at(3, 6), PROMPT), (at(3, 10), WARNING), (at(3, 12), SHEET)]
    assert case.urgings[-1].responsible_unit == VILLAGE
    assert case.status is Status.DISPATCHED and case.escalated_to is None


# -- the clock's time zone ------------------------------------------------------------------


def test_the_grace_does_not_depend_on_the_time_zone_the_clock_runs_in() -> None:
    beijing, utc = dispatched(), dispatched()
    expected = run_clock(beijing)
    issued = []
    while (when := next_step_at(utc, CALENDAR_2026)) is not None:
        step = issue(utc, when.astimezone(UTC))
        assert step is not None
        issued.append((when, what(step)))
    # In UTC the prompt letter (Fri 00:00 Beijing = Thu 16:00 UTC) gets Friday as its
    # grace day, and the warning letter comes on Saturday 08:00 instead of Tuesday.
    assert issued == expected
