"""The Case aggregate: one matter through the whole closed loop (DOMAIN.md).

Each command checks its rules once (undecorated method), then calls a private
``@event`` method whose body only evolves state and re-runs on replay. Every
command takes the actor (``by``) and the business time (``at``, tz-aware, never
before the case's previous business time); the library's own event timestamp is
the recording time, not the business time.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.calendar import Deadline, WorkingCalendar
from domain.categories import category as lookup_category
from domain.checks import require_aware, require_member, require_text
from domain.codes import city_of, is_within, parent_of, stream_id, tenant_of, tier_of
from domain.deadlines import (
    HandlingClass,
    Severity,
    handling_deadline,
    response_deadline,
)
from domain.errors import IllegalTransition, ValidationError
from domain.transitions import require
from domain.values import (
    Assignee,
    AssigneeKind,
    Assignment,
    Channel,
    Instrument,
    Outcome,
    Party,
    Place,
    Status,
    Urging,
)

__all__ = ["Case"]

TERMINAL = frozenset({Status.CLOSED, Status.MERGED, Status.WITHDRAWN})
LADDER = {
    Instrument.RISK_WARNING_LETTER: Instrument.WORK_PROMPT_LETTER,
    Instrument.TASK_ASSIGNMENT_SHEET: Instrument.RISK_WARNING_LETTER,
}


class Case(Aggregate):
    """A dispute, complaint, hazard or risk, from intake to the party's confirmation."""

    @staticmethod
    def create_id(tenant: str, case_number: str) -> UUID:
        """One case number, one stream: receiving it twice cannot make two cases."""
        return stream_id(tenant, "case:" + case_number)

    @classmethod
    def receive(
        cls,
        tenant: str,
        case_number: str,
        channel: Channel,
        category: str,
        summary: str,
        parties: list[Party],
        place: Place,
        received_at: datetime,
        received_by: str,
    ) -> Case:
        """Take a matter in (受理), checking it first; the one way to start a case."""
        tier_of(tenant)
        require_text(case_number, "a case number")
        channel = require_member(Channel, channel, "a channel")
        lookup_category(category)
        require_text(summary, "a case's summary")
        if not isinstance(parties, list) or not parties:
            raise ValidationError("a case names at least one party")
        if not all(isinstance(p, Party) for p in parties):
            raise ValidationError("a case's parties must be Party values")
        if not isinstance(place, Place) or not is_within(place.division, tenant):
            raise ValidationError(
                f"a case's place must lie inside its tenant {tenant}; got {place!r}"
            )
        require_aware(received_at, "the time a case was received")
        require_text(received_by, "the actor (by)")
        return cls(
            tenant=tenant,
            case_number=case_number,
            channel=channel,
            category=category,
            summary=summary,
            parties=parties,
            place=place,
            received_at=received_at,
            received_by=received_by,
        )

    @event("Received")
    def __init__(
        self,
        tenant: str,
        case_number: str,
        channel: Channel,
        category: str,
        summary: str,
        parties: list[Party],
        place: Place,
        received_at: datetime,
        received_by: str,
    ) -> None:
        self.tenant = tenant
        self.case_number = case_number
        self.channel = Channel(channel)
        self.category = category
        self.summary = summary
        self.parties = list(parties)
        self.place = place
        self.received_at = received_at
        self.received_by = received_by
        self.status = Status.RECEIVED
        self.last_at = received_at
        self.round_started_at = received_at  # deadlines count from here
        self.severity: Severity | None = None
        self.handling: HandlingClass | None = None
        self.respond_by: Deadline | None = None
        self.handle_by: Deadline | None = None
        self.assignments: list[Assignment] = []
        self.refusals: dict[str, int] = {}
        self.urgings: list[Urging] = []
        self.progress_reports = 0
        self.last_progress_at: datetime | None = None
        self.escalated_to: str | None = None
        self.outcome: Outcome | None = None
        self.resolution: str | None = None
        self.court_reference: str | None = None
        self.resolved_by_unit: str | None = None
        self.feedback: str | None = None
        self.confirmed = False
        self.rejections = 0
        self.stars: int | None = None
        self.evaluation_comment: str | None = None
        self.closed_at: datetime | None = None
        self.repeat_count = 0
        self.repeat_against: str | None = None
        self.merged_into: UUID | None = None
        self.withdrawn_reason: str | None = None

    # -- queries ---------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Open until closed, merged or withdrawn."""
        return self.status not in TERMINAL

    @property
    def lead(self) -> Assignment | None:
        """The lead assignment of the current dispatch, if any."""
        return next((a for a in self.assignments if a.assignee.lead), None)

    def assignment(self, ref: str) -> Assignment | None:
        return next((a for a in self.assignments if a.assignee.ref == ref), None)

    # -- shared checks ---------------------------------------------------------

    def _check(self, command: str, by: str, at: datetime) -> None:
        require(command, self.status)
        require_text(by, "the actor (by)")
        require_aware(at, "a command's time (at)")
        if at < self.last_at:
            msg = (
                "time must not run backwards: a case's events are in business-time order;"
                f" {at.isoformat()} is before {self.last_at.isoformat()}"
            )
            raise ValidationError(msg)

    def _answering(self, ref: str) -> Assignment:
        assignment = self.assignment(ref)
        if assignment is None:
            msg = f"only a current assignee can accept or refuse a case; {ref!r} is not one"
            raise ValidationError(msg)
        if assignment.accepted_at is not None:
            msg = f"an assignee answers a dispatch once; {ref!r} already accepted"
            raise IllegalTransition(msg)
        return assignment

    # -- triage and dispatch (分流) ------------------------------------------------

    def triage(
        self,
        severity: Severity,
        handling: HandlingClass,
        calendar: WorkingCalendar,
        by: str,
        at: datetime,
    ) -> None:
        """Set severity and handling class; deadlines count from receipt (or re-opening)."""
        self._check("triage", by, at)
        severity = require_member(Severity, severity, "severity")
        handling = require_member(HandlingClass, handling, "handling class")
        if not isinstance(calendar, WorkingCalendar):
            raise ValidationError("deadlines are counted with a WorkingCalendar")
        self._triaged(
            severity=severity,
            handling=handling,
            respond_by=response_deadline(severity, self.round_started_at, calendar),
            handle_by=handling_deadline(handling, self.round_started_at, calendar),
            by=by,
            at=at,
        )

    @event("Triaged")
    def _triaged(
        self,
        severity: Severity,
        handling: HandlingClass,
        respond_by: Deadline,
        handle_by: Deadline,
        by: str,
        at: datetime,
    ) -> None:
        self.severity, self.handling = Severity(severity), HandlingClass(handling)
        self.respond_by, self.handle_by = respond_by, handle_by
        self.status, self.last_at = Status.TRIAGED, at

    def dispatch(self, assignees: list[Assignee], by: str, at: datetime) -> None:
        """Send the case to one lead and any co-units (joint dispatch), down the tree."""
        self._check("dispatch", by, at)
        if not isinstance(assignees, list) or not assignees:
            raise ValidationError("a dispatch names at least one assignee")
        if not all(isinstance(a, Assignee) for a in assignees):
            raise ValidationError("a dispatch's assignees must be Assignee values")
        if sum(a.lead for a in assignees) != 1:
            raise ValidationError("a dispatch names exactly one lead unit")
        refs = [a.ref for a in assignees]
        if len(set(refs)) != len(refs):
            raise ValidationError("a dispatch names each assignee once")
        for a in assignees:
            if a.kind is AssigneeKind.CENTER:
                tier_of(a.ref)
                if a.ref == self.tenant or not is_within(a.ref, self.tenant):
                    msg = (
                        "dispatch goes down the tree: a center assignee must lie"
                        f" strictly inside {self.tenant}; {a.ref} does not"
                    )
                    raise ValidationError(msg)
        self._dispatched(assignees=assignees, by=by, at=at)

    @event("Dispatched")
    def _dispatched(self, assignees: list[Assignee], by: str, at: datetime) -> None:
        self.assignments = [Assignment(a) for a in assignees]
        self.status, self.last_at = Status.DISPATCHED, at

    def accept(self, ref: str, by: str, at: datetime) -> None:
        """An assignee takes the order; the lead's acceptance makes the case accepted."""
        self._check("accept", by, at)
        assignment = self._answering(ref)
        self._accepted(ref=ref, lead=assignment.assignee.lead, by=by, at=at)

    @event("Accepted")
    def _accepted(self, ref: str, lead: bool, by: str, at: datetime) -> None:
        self.assignments = [
            Assignment(a.assignee, at) if a.assignee.ref == ref else a for a in self.assignments
        ]
        if lead:
            self.status = Status.ACCEPTED
        self.last_at = at

    def refuse(self, ref: str, reason: str, by: str, at: datetime) -> None:
        """An assignee refuses a misrouted order; every refusal is counted against it."""
        self._check("refuse", by, at)
        assignment = self._answering(ref)
        require_text(reason, "a refusal's reason")
        self._refused(ref=ref, lead=assignment.assignee.lead, reason=reason, by=by, at=at)

    @event("Refused")
    def _refused(self, ref: str, lead: bool, reason: str, by: str, at: datetime) -> None:
        self.refusals[ref] = self.refusals.get(ref, 0) + 1
        if lead:
            self.assignments = []
            self.status = Status.TRIAGED
        else:
            self.assignments = [a for a in self.assignments if a.assignee.ref != ref]
        self.last_at = at

    # -- supervision (督办) ------------------------------------------------------

    def report_progress(self, note: str, by: str, at: datetime) -> None:
        """Record progress on an accepted (or escalated) case."""
        self._check("report_progress", by, at)
        require_text(note, "a progress note")
        self._progress_reported(note=note, by=by, at=at)

    @event("ProgressReported")
    def _progress_reported(self, note: str, by: str, at: datetime) -> None:
        self.progress_reports += 1
        self.last_progress_at = self.last_at = at

    def urge(
        self,
        instrument: Instrument,
        responsible_unit: str | None,
        reason: str,
        by: str,
        at: datetime,
    ) -> None:
        """Issue the next written instrument of the ladder: prompt letter, warning letter, sheet."""
        self._check("urge", by, at)
        instrument = require_member(Instrument, instrument, "an urging instrument")
        require_text(reason, "an urging's reason")
        unit = responsible_unit.strip() if isinstance(responsible_unit, str) else None
        prior = LADDER.get(instrument)
        if prior is not None and all(u.instrument != prior for u in self.urgings):
            msg = f"a {instrument.value} follows a {prior.value} on the same case"
            raise IllegalTransition(msg)
        if instrument is Instrument.TASK_ASSIGNMENT_SHEET and not unit:
            raise ValidationError("a task-assignment-sheet names the responsible unit")
        self._urged(
            instrument=instrument,
            responsible_unit=unit or None,
            reason=reason,
            by=by,
            at=at,
        )

    @event("Urged")
    def _urged(
        self,
        instrument: Instrument,
        responsible_unit: str | None,
        reason: str,
        by: str,
        at: datetime,
    ) -> None:
        self.urgings = [
            *self.urgings,
            Urging(instrument, responsible_unit, reason, by, at),
        ]
        self.last_at = at

    def escalate(self, to_tenant: str, reason: str, by: str, at: datetime) -> None:
        """Hand the case to the next tier up (DOMAIN.md rule 6); never above a city."""
        self._check("escalate", by, at)
        parent = parent_of(self.tenant)
        if parent is None:
            msg = f"escalation never goes above a city; {self.tenant} is a city"
            raise IllegalTransition(msg)
        if to_tenant != parent:
            msg = (
                f"a case escalates only to the next tier up: from {self.tenant} to"
                f" {parent}, not {to_tenant!r}"
            )
            raise ValidationError(msg)
        require_text(reason, "an escalation's reason")
        self._escalated(to_tenant=to_tenant, reason=reason, by=by, at=at)

    @event("Escalated")
    def _escalated(self, to_tenant: str, reason: str, by: str, at: datetime) -> None:
        self.escalated_to = to_tenant
        self.status, self.last_at = Status.ESCALATED, at

    # -- resolution, feedback, confirmation ------------------------------------

    def resolve(
        self,
        outcome: Outcome,
        summary: str,
        by: str,
        at: datetime,
        court_reference: str | None = None,
    ) -> None:
        """Record the result; a failed mediation referred to court is an outcome too."""
        self._check("resolve", by, at)
        outcome = require_member(Outcome, outcome, "an outcome")
        if outcome is Outcome.REFERRED_TO_COURT:
            require_text(court_reference, "a referral to court's court reference")
        elif court_reference is not None:
            raise ValidationError("a court reference belongs only to a case referred to court")
        if outcome is Outcome.NO_ACTION_WARRANTED:
            require_text(summary, "the reason why no action is warranted (summary)")
        if not isinstance(summary, str):
            raise ValidationError("a resolution's summary must be text")
        if self.status == Status.ESCALATED:
            resolved_by_unit = self.escalated_to
        else:
            lead = self.lead
            resolved_by_unit = lead.assignee.ref if lead else None
        self._resolved(
            outcome=outcome,
            summary=summary,
            court_reference=court_reference,
            resolved_by_unit=resolved_by_unit,
            by=by,
            at=at,
        )

    @event("Resolved")
    def _resolved(
        self,
        outcome: Outcome,
        summary: str,
        court_reference: str | None,
        resolved_by_unit: str | None,
        by: str,
        at: datetime,
    ) -> None:
        self.outcome, self.resolution = Outcome(outcome), summary
        self.court_reference, self.resolved_by_unit = court_reference, resolved_by_unit
        self.status, self.last_at = Status.RESOLVED, at

    def give_feedback(self, message: str, by: str, at: datetime) -> None:
        """Feed the result back to the party."""
        self._check("give_feedback", by, at)
        require_text(message, "a feedback message")
        self._feedback_given(message=message, by=by, at=at)

    @event("FeedbackGiven")
    def _feedback_given(self, message: str, by: str, at: datetime) -> None:
        self.feedback = message
        self.status, self.last_at = Status.FEEDBACK_GIVEN, at

    def confirm(self, by: str, at: datetime) -> None:
        """The party confirms (signs) the result: the condition for closing."""
        self._check("confirm", by, at)
        self._confirmed(by=by, at=at)

    @event("Confirmed")
    def _confirmed(self, by: str, at: datetime) -> None:
        self.confirmed = True
        self.status, self.last_at = Status.CONFIRMED, at

    def reject_result(self, reason: str, by: str, at: datetime) -> None:
        """The party does not accept the result: back for rework, to the assignee
        (accepted) or, for an escalated case, to the upper tier (escalated)."""
        self._check("reject_result", by, at)
        require_text(reason, "a rejection's reason")
        self._result_rejected(reason=reason, by=by, at=at)

    @event("ResultRejected")
    def _result_rejected(self, reason: str, by: str, at: datetime) -> None:
        self.rejections += 1
        self.outcome = self.resolution = self.court_reference = None
        self.resolved_by_unit = self.feedback = None
        self.status = Status.ESCALATED if self.escalated_to else Status.ACCEPTED
        self.last_at = at

    def evaluate(self, stars: int, comment: str, by: str, at: datetime) -> None:
        """The party rates satisfaction, one to five stars, once per round."""
        self._check("evaluate", by, at)
        if isinstance(stars, bool) or not isinstance(stars, int) or not 1 <= stars <= 5:
            msg = f"satisfaction is rated with 1 to 5 stars; got {stars!r}"
            raise ValidationError(msg)
        if not isinstance(comment, str):
            raise ValidationError("an evaluation's comment must be text (it may be empty)")
        if self.stars is not None:
            raise IllegalTransition("a case is evaluated once; this one already was")
        self._evaluated(stars=stars, comment=comment, by=by, at=at)

    @event("Evaluated")
    def _evaluated(self, stars: int, comment: str, by: str, at: datetime) -> None:
        self.stars, self.evaluation_comment = stars, comment
        self.last_at = at

    def close(self, by: str, at: datetime) -> None:
        """Close the loop; only after the party confirmed (DOMAIN.md rule 8)."""
        self._check("close", by, at)
        self._closed(by=by, at=at)

    @event("Closed")
    def _closed(self, by: str, at: datetime) -> None:
        self.closed_at = at
        self.status, self.last_at = Status.CLOSED, at

    def reopen(self, reason: str, by: str, at: datetime) -> None:
        """The matter came back: a repeat complaint against the unit that resolved it."""
        self._check("reopen", by, at)
        require_text(reason, "a re-opening's reason")
        self._reopened(reason=reason, repeat_against=self.resolved_by_unit, by=by, at=at)

    @event("Reopened")
    def _reopened(self, reason: str, repeat_against: str | None, by: str, at: datetime) -> None:
        self.repeat_count += 1
        self.repeat_against = repeat_against
        self.round_started_at = at
        self.respond_by = self.handle_by = None  # re-triage counts them from `at`
        self.assignments, self.urgings = [], []
        self.escalated_to = None
        self.outcome = self.resolution = self.court_reference = None
        self.resolved_by_unit = self.feedback = None
        self.confirmed = False
        self.stars, self.evaluation_comment = None, None
        self.closed_at = None
        self.status, self.last_at = Status.TRIAGED, at

    # -- duplicates and withdrawal -----------------------------------------------

    def merge_into(self, other_case_id: UUID, by: str, at: datetime) -> None:
        """A duplicate registration joins the case it duplicates (DOMAIN.md rule 1)."""
        self._check("merge_into", by, at)
        if not isinstance(other_case_id, UUID):
            raise ValidationError("a case merges into another case's id (a UUID)")
        if other_case_id == self.id:
            raise ValidationError("a case cannot be merged into itself")
        other_tenant = tenant_of(other_case_id)
        if other_tenant is not None and city_of(other_tenant) != city_of(self.tenant):
            msg = (
                "a case merges only into a case of the same city;"
                f" {other_tenant} is not in {city_of(self.tenant)}"
            )
            raise ValidationError(msg)
        self._merged(into=other_case_id, by=by, at=at)

    @event("Merged")
    def _merged(self, into: UUID, by: str, at: datetime) -> None:
        self.merged_into = into
        self.status, self.last_at = Status.MERGED, at

    def withdraw(self, reason: str, by: str, at: datetime) -> None:
        """The applicant withdraws the matter before it is resolved."""
        self._check("withdraw", by, at)
        require_text(reason, "a withdrawal's reason")
        self._withdrawn(reason=reason, by=by, at=at)

    @event("Withdrawn")
    def _withdrawn(self, reason: str, by: str, at: datetime) -> None:
        self.withdrawn_reason = reason
        self.status, self.last_at = Status.WITHDRAWN, at
