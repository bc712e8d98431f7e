"""Random command sequences: every step is refused with nothing changed, or recorded
as one event (plus the escalation a red or group matter calls for); a case always
equals its replay (also after a JSON round trip); closed implies confirmed or closed
with its origin; refusals and repeat complaints never decrease; an escalated case
has its escalation link; a handed-down case never escalates; a handed-over case never
runs the party's loop; a lower center owes an outcome only while it is an assignee,
and has accepted whenever it reported one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

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
    VILLAGE_2,
    VILLAGE_3,
    Clock,
    centers,
    dispatched_down,
    earlier_case,
    joint_dispatch,
    receive,
    replay,
    take_over,
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
    Direction,
    DomainError,
    HandlingClass,
    Instrument,
    Outcome,
    Severity,
    Status,
    parent_of,
)

# Time steps: mostly forward, sometimes backwards (which must be refused).
steps = st.integers(min_value=-120, max_value=60 * 24 * 3).map(lambda m: timedelta(minutes=m))
actors = st.sampled_from(["u-1", "u-2", "", "party-1"])
texts = st.sampled_from(["", " ", "reason", "调解成功"])
refs = st.sampled_from([LEAD, CO_UNIT, "housing", "grid-7", VILLAGE, VILLAGE_2])
assignees = st.builds(
    Assignee,
    kind=st.sampled_from(list(AssigneeKind)),
    ref=st.sampled_from(
        [LEAD, CO_UNIT, "grid-7", VILLAGE, VILLAGE_2, TOWNSHIP, COUNTY, "330782102"]
    ),
    lead=st.booleans(),
)
# Which case a linked report names: one of the case's links by position, else an unlinked id.
link_positions = st.integers(min_value=0, max_value=3)
# Valid dispatches (to units, to two villages, a unit leading a village) and random ones.
dispatches = st.one_of(
    st.builds(joint_dispatch),
    st.builds(centers, st.sampled_from([VILLAGE, VILLAGE_2]), st.just(VILLAGE_3)),
    st.builds(lambda: [joint_dispatch()[0], Assignee(AssigneeKind.CENTER, VILLAGE_2)]),
    st.lists(assignees, min_size=0, max_size=3),
)


class Life(RuleBasedStateMachine):
    """The rules of a case's life; subclasses say how the case starts."""

    case: Case
    events: list[Any]

    def start(self, case: Case) -> None:
        self.case = case
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
        names = [type(e).__name__ for e in new]
        assert names[1:] in ([], ["Escalated"]), f"a command records one event: {names}"
        if len(names) == 2:
            assert self.case.status is Status.ESCALATED
        self.events += new

    def at(self, step: timedelta) -> datetime:
        return self.case.last_at + step

    def linked(self, position: int) -> UUID:
        links = self.case.links
        return links[position].case_id if position < len(links) else earlier_case(VILLAGE)

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

    @rule(severity=st.sampled_from(list(Severity)), reason=texts, by=actors, step=steps)
    def raise_severity(self, severity: Severity, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.raise_severity(severity, reason, by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def mark_group_matter(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.mark_group_matter(reason, by, self.at(step)))

    @rule(listed=st.booleans(), reason=texts, by=actors, step=steps)
    def keep_separate(self, listed: bool, reason: str, by: str, step: timedelta) -> None:
        other = earlier_case(self.case.tenant) if listed else self.case.id
        self.attempt(lambda: self.case.keep_separate(other, reason, by, self.at(step)))

    @rule(position=link_positions, by=actors, step=steps)
    def note_linked_acceptance(self, position: int, by: str, step: timedelta) -> None:
        linked = self.linked(position)
        self.attempt(lambda: self.case.note_linked_acceptance(linked, by, self.at(step)))

    @rule(position=link_positions, reason=texts, by=actors, step=steps)
    def note_linked_refusal(self, position: int, reason: str, by: str, step: timedelta) -> None:
        linked = self.linked(position)
        self.attempt(lambda: self.case.note_linked_refusal(linked, reason, by, self.at(step)))

    @rule(position=link_positions, note=texts, by=actors, step=steps)
    def note_linked_progress(self, position: int, note: str, by: str, step: timedelta) -> None:
        linked = self.linked(position)
        self.attempt(lambda: self.case.note_linked_progress(linked, note, by, self.at(step)))

    @rule(
        position=link_positions,
        outcome=st.sampled_from(list(Outcome)),
        summary=texts,
        court=st.sampled_from([None, "(2026)浙0782民初1号"]),
        by=actors, step=steps,
    )  # fmt: skip
    def note_linked_outcome(
        self, position: int, outcome: Outcome, summary: str, court: str | None, by: str,
        step: timedelta,
    ) -> None:  # fmt: skip
        linked = self.linked(position)
        self.attempt(
            lambda: self.case.note_linked_outcome(
                linked, outcome, summary, by, self.at(step), court_reference=court
            )
        )

    @rule(by=actors, step=steps)
    def close_with_origin(self, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.close_with_origin(by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def rework(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.rework(reason, by, self.at(step)))

    @rule(reason=texts, by=actors, step=steps)
    def withdraw_with_origin(self, reason: str, by: str, step: timedelta) -> None:
        self.attempt(lambda: self.case.withdraw_with_origin(reason, by, self.at(step)))

    @rule(
        step=st.integers(min_value=0, max_value=600).map(lambda m: timedelta(minutes=m)),
        down=st.booleans(),
    )
    def advance(self, step: timedelta, down: bool) -> None:
        """The next step of the loop with valid input, so that deep states are reached;
        ``down``: a triaged case is dispatched to two villages rather than to units."""
        command = self.next_step(self.case, self.at(step), down)
        if command is not None:
            self.attempt(command)
            hypothesis.event(f"reached {self.case.status}")
            if any(k.direction is Direction.DOWN for k in self.case.links):
                hypothesis.event(f"reached {self.case.status} with lower centers")

    @staticmethod
    def next_step(case: Case, at: datetime, down: bool = False) -> Callable[[], None] | None:
        lead = case.lead.assignee.ref if case.lead else LEAD
        lead_link, status = case.lead_link, case.status
        owed = [k for k in case.links if k.pending and k.direction is Direction.DOWN]
        answering = next(
            (k for k in owed if (a := case.assignment(k.tenant)) and a.accepted_at is None), None
        )
        co_center = next((k for k in owed if not k.lead), None)
        if status is Status.RECEIVED:
            return lambda: case.triage(Severity.BLUE, HandlingClass.SIMPLE, CALENDAR_2026, "d", at)
        if status is Status.TRIAGED:
            assignees = centers(VILLAGE, VILLAGE_2) if down else joint_dispatch()
            return lambda: case.dispatch(assignees, "d-1", at)
        if status in (Status.DISPATCHED, Status.ACCEPTED) and answering is not None:
            # every lower center accepts (a co-center may report only once it has)
            return lambda: case.note_linked_acceptance(answering.case_id, "router", at)
        if status is Status.DISPATCHED:
            return lambda: case.accept(lead, "o-1", at)
        if status is Status.ACCEPTED and co_center is not None:
            return lambda: case.note_linked_outcome(co_center.case_id, Outcome.HANDLED, "", "r", at)
        if status is Status.ACCEPTED and lead_link is None:
            return lambda: case.resolve(Outcome.HANDLED, "done", "o-1", at)
        if status in (Status.ACCEPTED, Status.ESCALATED):
            # the escalation is the last link; an accepted case waits for its lead center
            linked = (case.links[-1] if status is Status.ESCALATED else lead_link).case_id
            return lambda: case.note_linked_outcome(linked, Outcome.MEDIATED, "done", "r", at)
        if status is Status.RESOLVED and case.origin is not None:
            return lambda: case.close_with_origin("router", at)
        steps: dict[Status, Callable[[], None]] = {
            Status.RESOLVED: lambda: case.give_feedback("done", "c-1", at),
            Status.FEEDBACK_GIVEN: lambda: case.confirm("party-1", at),
            Status.CONFIRMED: lambda: case.close("c-1", at),
            Status.CLOSED: lambda: case.reopen("came back", "c-1", at),
        }
        return steps.get(status)

    @invariant()
    def equals_its_replay(self) -> None:
        assert replay(self.events).__dict__ == self.case.__dict__
        assert replay(through_json(self.events)).__dict__ == self.case.__dict__

    @invariant()
    def closed_implies_confirmed_or_closed_with_its_origin(self) -> None:
        if self.case.status is Status.CLOSED:
            assert self.case.closed_at is not None
            assert self.case.confirmed or self.case.origin is not None
        if self.case.status is Status.CLOSED and self.case.origin is None:
            assert not any(k.pending for k in self.case.links)

    @invariant()
    def an_escalated_case_is_linked_to_its_parents_case(self) -> None:
        if self.case.status is Status.ESCALATED:
            ups = [k for k in self.case.links if k.direction is Direction.UP]
            assert len(ups) == 1 and ups[0].lead
            assert ups[0].tenant == self.case.escalated_to == parent_of(self.case.tenant)

    @invariant()
    def a_handed_down_case_never_escalates_and_only_it_returns(self) -> None:
        if self.case.handed_down:
            assert self.case.escalated_to is None
        if self.case.status is Status.RETURNED:
            assert self.case.handed_down and self.case.assignments == []

    @invariant()
    def a_handed_over_case_leaves_the_partys_loop_to_its_origin(self) -> None:
        if self.case.origin is not None:
            assert self.case.feedback is None and not self.case.confirmed
            assert self.case.stars is None and self.case.repeat_count == 0

    @invariant()
    def a_lower_center_owes_an_outcome_only_while_assigned_and_reports_once_accepted(
        self,
    ) -> None:
        for link in self.case.links:
            if link.direction is not Direction.DOWN:
                continue
            assignment = self.case.assignment(link.tenant)
            if link.pending:  # a refusal, the lead's too, sends every order still owed back
                assert assignment is not None, f"{link.tenant} owes but is not assigned"
            if link.outcome is not None and assignment is not None:
                assert assignment.accepted_at is not None, f"{link.tenant} never accepted"

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


class CaseLife(Life):
    """A case received by a township center."""

    @initialize(channel=st.sampled_from(list(Channel)))
    def received(self, channel: Channel) -> None:
        self.start(receive(channel=channel, at=T0))


class HandedOverLife(Life):
    """A case opened by a hand-over: dispatched down to a village, or escalated up."""

    @initialize(dispatched=st.booleans(), severity=st.sampled_from(list(Severity)))
    def taken_over(self, dispatched: bool, severity: Severity) -> None:
        if dispatched:
            # a red township case escalates instead of going down
            not_red = Severity.ORANGE if severity is Severity.RED else severity
            source, clock = dispatched_down(VILLAGE, severity=not_red)
        else:
            clock = Clock()
            source = receive(tenant=VILLAGE, at=clock.now)
            source.triage(severity, HandlingClass.COMPLEX, CALENDAR_2026, "d-1", clock())
            if source.status is not Status.ESCALATED:
                source.escalate(TOWNSHIP, "two villages involved", "director-1", clock())
        self.start(take_over(source, source.links[0], clock))


SETTINGS = settings(max_examples=200, stateful_step_count=40, deadline=None)
CaseLife.TestCase.settings = SETTINGS
HandedOverLife.TestCase.settings = SETTINGS
test_case_life = CaseLife.TestCase
test_handed_over_life = HandedOverLife.TestCase
