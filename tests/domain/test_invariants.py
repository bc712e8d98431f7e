"""Random command sequences: every step is refused with nothing changed, or recorded
as one event; a case always equals its replay (also after a JSON round trip);
closed implies confirmed; refusals and repeat complaints never decrease.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import hypothesis
from case_builders import (
    CALENDAR_2026,
    CITY,
    CO_UNIT,
    COUNTY,
    LEAD,
    T0,
    TOWNSHIP,
    VILLAGE,
    joint_dispatch,
    receive,
    replay,
    through_json,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    DomainError,
    HandlingClass,
    Instrument,
    Outcome,
    Severity,
    Status,
)

# Time steps: mostly forward, sometimes backwards (which must be refused).
steps = st.integers(min_value=-120, max_value=60 * 24 * 3).map(lambda m: timedelta(minutes=m))
actors = st.sampled_from(["u-1", "u-2", "", "party-1"])
texts = st.sampled_from(["", " ", "reason", "调解成功"])
refs = st.sampled_from([LEAD, CO_UNIT, "housing", "grid-7", VILLAGE])
assignees = st.builds(
    Assignee,
    kind=st.sampled_from(list(AssigneeKind)),
    ref=st.sampled_from([LEAD, CO_UNIT, "grid-7", VILLAGE, TOWNSHIP, COUNTY, "330782102"]),
    lead=st.booleans(),
)
dispatches = st.one_of(st.builds(joint_dispatch), st.lists(assignees, min_size=0, max_size=3))


class CaseLife(RuleBasedStateMachine):
    case: Case
    events: list[Any]

    @initialize(channel=st.sampled_from(list(Channel)))
    def received(self, channel: Channel) -> None:
        self.case = receive(channel=channel, at=T0)
        self.events = list(self.case.collect_events())
        self.refusals = dict(self.case.refusals)
        self.repeats = self.case.repeat_count

    def attempt(self, command: Callable[[], None]) -> None:
        before = copy.deepcopy(self.case.__dict__)
        try:
            command()
        except DomainError:
            assert self.case.__dict__ == before, "a refused command changed the case"
            return
        new = self.case.collect_events()
        assert len(new) == 1, "a command records exactly one event"
        self.events += new

    def at(self, step: timedelta) -> datetime:
        return self.case.last_at + step

    @rule(
        severity=st.sampled_from([*Severity, "purple"]),
        handling=st.sampled_from(list(HandlingClass)),
        by=actors,
        step=steps,
    )
    def triage(self, severity: Severity, handling: HandlingClass, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.triage(severity, handling, CALENDAR_2026, by, self.at(step)))

    @rule(who=dispatches, by=actors, step=steps)
    def dispatch(self, who: list[Assignee], by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.dispatch(who, by, self.at(step)))

    @rule(ref=refs, by=actors, step=steps)
    def accept(self, ref: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.accept(ref, by, self.at(step)))

    @rule(ref=refs, reason=texts, by=actors, step=steps)
    def refuse(self, ref: str, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.refuse(ref, reason, by, self.at(step)))

    @rule(note=texts, by=actors, step=steps)
    def report_progress(self, note: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.report_progress(note, by, self.at(step)))

    @rule(
        instrument=st.sampled_from(list(Instrument)),
        unit=st.sampled_from([None, "", LEAD]),
        reason=texts, by=actors, step=steps,
    )  # fmt: skip
    def urge(
        self, instrument: Instrument, unit: str | None, reason: str, by: str, step: timedelta
    ) -> None:
        self.attempt(lambda: self.case.urge(instrument, unit, reason, by, self.at(step)))

    @rule(to=st.sampled_from([COUNTY, CITY, "330783"]), reason=texts, by=actors, step=steps)
    def escalate(self, to: str, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.escalate(to, reason, by, self.at(step)))

    @rule(
        outcome=st.sampled_from(list(Outcome)),
        summary=texts,
        court=st.sampled_from([None, "", "(2026)浙0782民初1号"]),
        by=actors, step=steps,
    )  # fmt: skip
    def resolve(
        self, outcome: Outcome, summary: str, court: str | None, by: str, step: timedelta
    ) -> None:
        self.attempt(
            lambda: self.case.resolve(outcome, summary, by, self.at(step), court_reference=court)
        )

    @rule(message=texts, by=actors, step=steps)
    def give_feedback(self, message: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.give_feedback(message, by, self.at(step)))

    @rule(by=actors, step=steps)
    def confirm(self, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.confirm(by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def reject_result(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.reject_result(reason, by, self.at(step)))

    @rule(stars=st.integers(min_value=-1, max_value=7), comment=texts, by=actors, step=steps)
    def evaluate(self, stars: int, comment: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.evaluate(stars, comment, by, self.at(step)))

    @rule(by=actors, step=steps)
    def close(self, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.close(by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def reopen(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.reopen(reason, by, self.at(step)))

    @rule(itself=st.booleans(), by=actors, step=steps)
    def merge_into(self, itself: bool, by: str, step: timedelta) -> None:
        other = self.case.id if itself else Case.create_id(TOWNSHIP, "ZZ-0")
        self.attempt(lambda: self.case.merge_into(other, by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def withdraw(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.withdraw(reason, by, self.at(step)))

    @rule(step=st.integers(min_value=0, max_value=600).map(lambda m: timedelta(minutes=m)))
    def advance(self, step: timedelta) -> None:
        """The next step of the loop with valid input, so that deep states are reached."""
        case, at = self.case, self.at(step)
        path: dict[Status, Callable[[], None]] = {
            Status.RECEIVED: lambda: case.triage(
                Severity.BLUE, HandlingClass.SIMPLE, CALENDAR_2026, "d-1", at
            ),
            Status.TRIAGED: lambda: case.dispatch(joint_dispatch(), "d-1", at),
            Status.DISPATCHED: lambda: case.accept(LEAD, "o-1", at),
            Status.ACCEPTED: lambda: case.resolve(Outcome.HANDLED, "done", "o-1", at),
            Status.ESCALATED: lambda: case.resolve(Outcome.MEDIATED, "done", "o-1", at),
            Status.RESOLVED: lambda: case.give_feedback("done", "c-1", at),
            Status.FEEDBACK_GIVEN: lambda: case.confirm("party-1", at),
            Status.CONFIRMED: lambda: case.close("c-1", at),
            Status.CLOSED: lambda: case.reopen("came back", "c-1", at),
        }
        if case.status in path:
            self.attempt(path[case.status])
            hypothesis.event(f"reached {case.status}")

    @invariant()
    def equals_its_replay(self) -> None:
        assert replay(self.events).__dict__ == self.case.__dict__
        assert replay(through_json(self.events)).__dict__ == self.case.__dict__

    @invariant()
    def closed_implies_confirmed(self) -> None:
        if self.case.status is Status.CLOSED:
            assert self.case.confirmed and self.case.closed_at is not None

    @invariant()
    def refusals_and_repeats_never_decrease(self) -> None:
        for ref, count in self.refusals.items():
            assert self.case.refusals.get(ref, 0) >= count
        assert self.case.repeat_count >= self.repeats
        self.refusals = dict(self.case.refusals)
        self.repeats = self.case.repeat_count

    @invariant()
    def a_lead_is_present_whenever_the_case_is_dispatched_or_accepted(self) -> None:
        if self.case.status in (Status.DISPATCHED, Status.ACCEPTED):
            assert self.case.lead is not None
        if self.case.status is Status.ACCEPTED:
            lead = self.case.lead
            assert lead is None or lead.accepted_at is not None


CaseLife.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_case_life = CaseLife.TestCase
