"""The Case aggregate: one matter through the whole closed loop (DOMAIN.md).

Each command checks its rules once (undecorated method), then calls a private
``@event`` method whose body only evolves state and re-runs on replay. Every
command takes the actor (``by``) and the business time (``at``, tz-aware, never
before the case's previous business time); the library's own event timestamp is
the recording time, not the business time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.calendar import Deadline, WorkingCalendar
from domain.categories import category as lookup_category
from domain.checks import require_aware, require_member, require_text
from domain.codes import Tier, city_of, is_within, parent_of, stream_id, tenant_of, tier_of
from domain.deadlines import (
    HandlingClass,
    Severity,
    handling_deadline,
    response_deadline,
)
from domain.errors import IllegalTransition, ValidationError
from domain.transitions import LEGAL_FROM, require
from domain.values import (
    Assignee,
    AssigneeKind,
    Assignment,
    Channel,
    Direction,
    Instrument,
    Link,
    Outcome,
    Party,
    Place,
    Status,
    Urging,
)

__all__ = [
    "MAX_PHOTOS",
    "MAX_PHOTO_BYTES",
    "PHOTO_TYPES",
    "RED_HANDLED_FROM",
    "Callback",
    "CallbackResult",
    "Case",
    "Photo",
    "photo_type",
]

TERMINAL = frozenset({Status.CLOSED, Status.MERGED, Status.WITHDRAWN, Status.RETURNED})
#: DOMAIN.md rule 6: a red (重大) matter is handled at county level or above, so
#: below a county it escalates automatically, one tier at a time.
RED_HANDLED_FROM = Tier.COUNTY
_BELOW_COUNTY = frozenset({Tier.TOWNSHIP, Tier.VILLAGE})
LEGAL_ESCALATE = LEGAL_FROM["escalate"]
LEGAL_FROM_RESOLVE = frozenset({Status.ACCEPTED, Status.ESCALATED})
LADDER = {
    Instrument.RISK_WARNING_LETTER: Instrument.WORK_PROMPT_LETTER,
    Instrument.TASK_ASSIGNMENT_SHEET: Instrument.RISK_WARNING_LETTER,
}


class CallbackResult(StrEnum):
    """How an inspector's callback (回访) to the party went."""

    REACHED = "reached"  # the party answered and said whether it is satisfied
    UNREACHABLE = "unreachable"  # nobody answered at the numbers on record
    DECLINED = "declined"  # the party answered but would not say


@dataclass(frozen=True)
class Callback:
    """One callback to the party of a closed case (audit/callbacks.py samples them)."""

    result: CallbackResult
    satisfied: bool | None  # None unless the party was reached
    note: str
    by: str
    at: datetime
    closed_at: datetime | None  # the closure it followed


#: Photos at intake and while handling (evidence): only JPEG and PNG, known by
#: their first bytes (never by a file name or a declared type).
PHOTO_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
MAX_PHOTO_BYTES = 5 * 1024 * 1024  # 5 MiB: a phone's photo, not a video
MAX_PHOTOS = 10  # per case: evidence, not an album


def photo_type(content: bytes) -> str:
    """The content type of a photo from its magic bytes; ``ValidationError``
    (naming the rule) for anything but a JPEG or PNG within the size cap."""
    if not isinstance(content, bytes | bytearray) or not content:
        raise ValidationError("a photo must not be empty")
    if len(content) > MAX_PHOTO_BYTES:
        raise ValidationError(f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB;"
                              f" this one is {len(content)} bytes")
    for magic, content_type in PHOTO_TYPES.items():
        if content.startswith(magic):
            return content_type
    raise ValidationError("a photo must be a JPEG or PNG image (checked by its content,"
                          " not its name)")


@dataclass(frozen=True)
class Photo:
    """A photo attached to a case; its bytes live encrypted beside the events."""

    attachment_id: UUID
    sha256: str
    content_type: str
    size: int
    by: str
    at: datetime


class Case(Aggregate):
    """A dispute, complaint, hazard or risk, from intake to the party's confirmation."""

    @staticmethod
    def create_id(tenant: str, case_number: str, linked_id: UUID | None = None) -> UUID:
        """One case number, one stream: receiving it twice cannot make two cases.
        A case opened by a hand-over takes the id its sender fixed (``linked_id``)."""
        return linked_id or stream_id(tenant, "case:" + case_number)

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
        match_keys: list[str] | None = None,
        suspected_duplicates: list[UUID] | None = None,
    ) -> Case:
        """Take a matter in (受理), checking it first; the one way to start a case.

        ``match_keys`` are keyed hashes of the parties' phone and id numbers
        (computed by the application, never the numbers themselves), and
        ``suspected_duplicates`` the open cases intake found matching them.
        """
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
        keys = list(match_keys or [])
        if not all(isinstance(k, str) and k for k in keys):
            raise ValidationError("a case's match keys must be non-empty text")
        duplicates = list(suspected_duplicates or [])
        for d in duplicates:
            if not isinstance(d, UUID) or tenant_of(d) != tenant:
                raise ValidationError(
                    f"a suspected duplicate must be a case of the same center {tenant}: {d!r}"
                )
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
            match_keys=keys,
            suspected_duplicates=duplicates,
        )

    @staticmethod
    def linked_id(from_case: UUID, from_version: int, to_tenant: str) -> UUID:
        """The id of the case a hand-over creates in ``to_tenant``: fixed by the
        sending case and event, so performing the hand-over twice cannot make two."""
        return stream_id(to_tenant, f"handover:{from_case}:{from_version}")

    @classmethod
    def take_over(
        cls,
        case_id: UUID,
        case_number: str,
        origin: Link,
        origin_case_number: str,
        reason: str,
        source: Case,
        calendar: WorkingCalendar,
        by: str,
        at: datetime,
    ) -> Case:
        """Open the linked case a hand-over creates in the other center.

        ``origin`` is the sending case seen from here: ``Direction.UP`` when it
        was dispatched down from above (the new case awaits this center's
        acceptance of the order), ``Direction.DOWN`` when it was escalated from
        below (the new case is filed, 备案, triaged with the sender's severity).
        Deadlines count from the hand-over. A red matter below a county
        escalates on at once.
        """
        tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
        if tenant is None or not isinstance(origin, Link) or origin.case_id != source.id \
                or origin.tenant != source.tenant:
            raise ValidationError("a hand-over names the sending case and a tenant's case id")
        if origin.direction is Direction.UP:
            fits = tenant != source.tenant and is_within(tenant, source.tenant)
        else:
            fits = parent_of(source.tenant) == tenant
        if not fits:
            msg = (
                f"a hand-over goes down the tree or one tier up; {source.tenant} to {tenant}"
                f" is not {'down' if origin.direction is Direction.UP else 'one tier up'}"
            )
            raise ValidationError(msg)
        require_text(case_number, "a case number")
        require_text(origin_case_number, "the sending case's number")
        require_text(by, "the actor (by)")
        require_aware(at, "the time of a hand-over")
        require_text(reason, "a hand-over's reason")
        if source.severity is None or source.handling is None:
            raise IllegalTransition("only a triaged case can be handed to another center")
        if not isinstance(calendar, WorkingCalendar):
            raise ValidationError("deadlines are counted with a WorkingCalendar")
        case = cls(
            linked_id=case_id,
            tenant=tenant,
            case_number=case_number,
            channel=Channel.HANDOVER,
            category=source.category,
            summary=source.summary,
            parties=list(source.parties),
            place=source.place,
            received_at=at,
            received_by=by,
            origin=origin,
            origin_case_number=origin_case_number,
            handover_reason=reason,
            severity=source.severity,
            handling=source.handling,
            respond_by=response_deadline(source.severity, at, calendar),
            handle_by=handling_deadline(source.handling, at, calendar),
        )
        case._escalate_if_red(by, at)
        return case

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
        match_keys: list[str] | None = None,
        suspected_duplicates: list[UUID] | None = None,
        origin: Link | None = None,
        linked_id: UUID | None = None,
        origin_case_number: str | None = None,
        handover_reason: str | None = None,
        severity: Severity | None = None,
        handling: HandlingClass | None = None,
        respond_by: Deadline | None = None,
        handle_by: Deadline | None = None,
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
        self.severity = Severity(severity) if severity else None
        self.handling = HandlingClass(handling) if handling else None
        self.respond_by, self.handle_by = respond_by, handle_by
        self.match_keys = list(match_keys or [])
        self.suspected_duplicates = list(suspected_duplicates or [])
        self.kept_separate_from: list[UUID] = []
        self.origin = origin
        self.origin_case_number = origin_case_number
        self.handover_reason = handover_reason
        self.links: list[Link] = []
        self.group_matter = False
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
        self.callbacks: list[Callback] = []
        self.photos: list[Photo] = []
        if origin is not None and origin.direction is Direction.UP:
            # Dispatched down to this center: an order it must accept or refuse.
            self.assignments = [Assignment(Assignee(AssigneeKind.CENTER, tenant, lead=True))]
            self.status = Status.DISPATCHED
        elif origin is not None:
            self.status = Status.TRIAGED  # escalated from below: filed (备案)

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

    def link(self, case_id: UUID) -> Link | None:
        """The hand-over this case made to ``case_id``, if any (current round)."""
        return next((k for k in self.links if k.case_id == case_id), None)

    @property
    def lead_link(self) -> Link | None:
        """The linked case whose outcome resolves this one: the escalation target
        or the lead center of a dispatch down."""
        return next((k for k in self.links if k.lead and not k.returned), None)

    @property
    def handed_down(self) -> bool:
        """Dispatched to this center by an upper one (answer it there, never escalate)."""
        return self.origin is not None and self.origin.direction is Direction.UP

    def escalation_blocker(self) -> str | None:
        """Why this case cannot escalate now, or None if it can."""
        if parent_of(self.tenant) is None:
            return f"escalation never goes above a city; {self.tenant} is a city"
        if self.handed_down:
            return (
                "a case dispatched down from an upper center is answered to it:"
                " refuse the order or report the outcome, do not escalate"
            )
        if any(k.pending and k.direction is Direction.DOWN for k in self.links):
            return (
                "a case dispatched to lower centers escalates only after they report"
                " an outcome or return the order"
            )
        return None

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
        self._escalate_if_red(by, at)

    def raise_severity(self, severity: Severity, reason: str, by: str, at: datetime) -> None:
        """Raise the severity of a case under way (deadlines stay); raised to red
        below a county, it escalates automatically (DOMAIN.md rule 6)."""
        self._check("raise_severity", by, at)
        severity = require_member(Severity, severity, "severity")
        require_text(reason, "the reason severity is raised")
        order = list(Severity)  # red first
        if self.severity is None or order.index(severity) >= order.index(self.severity):
            msg = f"severity can only be raised; {self.severity} to {severity} is not a raise"
            raise ValidationError(msg)
        self._severity_raised(severity=severity, reason=reason, by=by, at=at)
        self._escalate_if_red(by, at)

    @event("SeverityRaised")
    def _severity_raised(self, severity: Severity, reason: str, by: str, at: datetime) -> None:
        self.severity, self.last_at = Severity(severity), at

    def mark_group_matter(self, reason: str, by: str, at: datetime) -> None:
        """Mark the case a group matter (群体性); it escalates automatically when it can."""
        self._check("mark_group_matter", by, at)
        require_text(reason, "the reason a case is a group matter")
        if self.group_matter:
            raise IllegalTransition("a case is marked a group matter once; this one already is")
        self._group_matter_marked(reason=reason, by=by, at=at)
        if self.escalation_blocker() is None and self.status in LEGAL_ESCALATE:
            self._escalate(parent_of(self.tenant) or "", f"group matter: {reason}", by, at)

    @event("GroupMatterMarked")
    def _group_matter_marked(self, reason: str, by: str, at: datetime) -> None:
        self.group_matter, self.last_at = True, at

    def _escalate_if_red(self, by: str, at: datetime) -> None:
        """Escalate now if the rules require it: red below a county, or a group
        matter marked before it could escalate (e.g. before triage)."""
        if self.status not in LEGAL_ESCALATE or self.escalation_blocker() is not None:
            return
        if self.severity is Severity.RED and tier_of(self.tenant) in _BELOW_COUNTY:
            reason = f"severity red: a red matter is handled from {RED_HANDLED_FROM} level up"
            self._escalate(parent_of(self.tenant) or "", reason, by, at)
        elif self.group_matter and self.escalated_to is None:
            self._escalate(parent_of(self.tenant) or "", "group matter (群体性)", by, at)

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
        links = [
            Link(Case.linked_id(self.id, self.version + 1, a.ref), a.ref, Direction.DOWN, a.lead)
            for a in assignees
            if a.kind is AssigneeKind.CENTER
        ]
        self._dispatched(assignees=assignees, links=links, by=by, at=at)

    @event("Dispatched")
    def _dispatched(
        self, assignees: list[Assignee], by: str, at: datetime, links: list[Link] | None = None
    ) -> None:
        self.assignments = [Assignment(a) for a in assignees]
        # Centers of an earlier dispatch that reported an outcome stay linked: they
        # close (or end) with this case.
        kept = [k for k in self.links if k.outcome is not None and not k.returned]
        self.links = [*kept, *(links or [])]
        self.status, self.last_at = Status.DISPATCHED, at

    def accept(self, ref: str, by: str, at: datetime) -> None:
        """An assignee takes the order; the lead's acceptance makes the case accepted."""
        self._check("accept", by, at)
        assignment = self._answering(ref)
        self._answers_here(assignment)
        self._accepted(ref=ref, lead=assignment.assignee.lead, by=by, at=at)

    def _answers_here(self, assignment: Assignment) -> None:
        assignee = assignment.assignee
        if assignee.kind is AssigneeKind.CENTER and assignee.ref != self.tenant:
            msg = (
                f"center {assignee.ref} answers the order in its own linked case;"
                " its answer is entered here from there"
            )
            raise IllegalTransition(msg)

    def note_linked_acceptance(self, linked_case: UUID, by: str, at: datetime) -> None:
        """A lower center accepted the order in its linked case."""
        self._check("note_linked_acceptance", by, at)
        link = self._linked(linked_case)
        assignment = self._answering(link.tenant)
        self._accepted(ref=link.tenant, lead=assignment.assignee.lead, by=by, at=at)

    def note_linked_refusal(self, linked_case: UUID, reason: str, by: str, at: datetime) -> None:
        """A lower center refused the order in its linked case (counted against it)."""
        self._check("note_linked_refusal", by, at)
        link = self._linked(linked_case)
        assignment = self._answering(link.tenant)
        require_text(reason, "a refusal's reason")
        self._refused(ref=link.tenant, lead=assignment.assignee.lead, reason=reason, by=by,
                      at=at)
        self._escalate_if_red(by, at)  # no longer held back by that center

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
        self._answers_here(assignment)
        require_text(reason, "a refusal's reason")
        self._refused(ref=ref, lead=assignment.assignee.lead, reason=reason, by=by, at=at)

    @event("Refused")
    def _refused(self, ref: str, lead: bool, reason: str, by: str, at: datetime) -> None:
        self.refusals[ref] = self.refusals.get(ref, 0) + 1
        # A lead's refusal ends the whole dispatch: every order still owed goes back too.
        self.links = [
            Link(k.case_id, k.tenant, k.direction, k.lead, k.outcome, returned=True)
            if k.direction is Direction.DOWN and (k.tenant == ref or (lead and k.pending))
            else k
            for k in self.links
        ]
        if self.handed_down and ref == self.tenant:
            self.assignments = []
            self.status = Status.RETURNED  # the order goes back to the upper center
        elif lead:
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
        blocker = self.escalation_blocker()
        if blocker is not None:
            raise IllegalTransition(blocker)
        if to_tenant != parent:
            msg = (
                f"a case escalates only to the next tier up: from {self.tenant} to"
                f" {parent}, not {to_tenant!r}"
            )
            raise ValidationError(msg)
        require_text(reason, "an escalation's reason")
        self._escalate(to_tenant, reason, by, at)

    def _escalate(self, to_tenant: str, reason: str, by: str, at: datetime) -> None:
        linked = Case.linked_id(self.id, self.version + 1, to_tenant)
        self._escalated(to_tenant=to_tenant, reason=reason, linked_case=linked, by=by, at=at)

    @event("Escalated")
    def _escalated(
        self, to_tenant: str, reason: str, by: str, at: datetime, linked_case: UUID | None = None
    ) -> None:
        self.escalated_to = to_tenant
        if linked_case is not None:
            self.links = [
                *[k for k in self.links if k.direction is Direction.DOWN],
                Link(linked_case, to_tenant, Direction.UP, lead=True),
            ]
        self.status, self.last_at = Status.ESCALATED, at

    # -- what linked cases report back (performed by the router) -----------------

    def note_linked_progress(self, linked_case: UUID, note: str, by: str, at: datetime) -> None:
        """Progress reported on a linked case, entered in this case's history."""
        self._check("note_linked_progress", by, at)
        self._linked(linked_case)
        require_text(note, "a progress note")
        self._linked_progress_noted(linked_case=linked_case, note=note, by=by, at=at)

    @event("LinkedProgressNoted")
    def _linked_progress_noted(self, linked_case: UUID, note: str, by: str, at: datetime) -> None:
        self.last_progress_at = self.last_at = at

    def note_linked_outcome(
        self,
        linked_case: UUID,
        outcome: Outcome,
        summary: str,
        by: str,
        at: datetime,
        court_reference: str | None = None,
    ) -> None:
        """A linked case reported its outcome; the lead's outcome resolves this case
        (then this center runs feedback, confirmation and evaluation with the party)."""
        self._check("note_linked_outcome", by, at)
        link = self._linked(linked_case)
        outcome = _checked_outcome(outcome, summary, court_reference)
        if link.outcome is not None:
            raise IllegalTransition(f"linked case {linked_case} already reported its outcome")
        answered = self.assignment(link.tenant)
        if link.direction is Direction.DOWN and answered is not None \
                and answered.accepted_at is None:
            msg = f"center {link.tenant} reports an outcome only after accepting the order"
            raise IllegalTransition(msg)
        resolves = link.lead and self.status in LEGAL_FROM_RESOLVE
        self._linked_outcome_noted(
            linked_case=linked_case, outcome=outcome, summary=summary,
            court_reference=court_reference, resolves=resolves, by=by, at=at,
        )
        self._escalate_if_red(by, at)  # no longer held back by that center

    @event("LinkedOutcomeNoted")
    def _linked_outcome_noted(
        self,
        linked_case: UUID,
        outcome: Outcome,
        summary: str,
        court_reference: str | None,
        resolves: bool,
        by: str,
        at: datetime,
    ) -> None:
        self.links = [
            Link(k.case_id, k.tenant, k.direction, k.lead, Outcome(outcome), k.returned)
            if k.case_id == linked_case else k
            for k in self.links
        ]
        if resolves:
            link = self.link(linked_case)
            self.outcome, self.resolution = Outcome(outcome), summary
            self.court_reference = court_reference
            self.resolved_by_unit = link.tenant if link else None
            self.status = Status.RESOLVED
        self.last_at = at

    def close_with_origin(self, by: str, at: datetime) -> None:
        """The sending case closed its loop with the party: close this one too."""
        self._check("close_with_origin", by, at)
        if self.origin is None:
            raise IllegalTransition("only a handed-over case closes with its origin")
        self._closed_with_origin(by=by, at=at)

    @event("ClosedWithOrigin")
    def _closed_with_origin(self, by: str, at: datetime) -> None:
        self.closed_at = at
        self.status, self.last_at = Status.CLOSED, at

    def rework(self, reason: str, by: str, at: datetime) -> None:
        """The party at the origin rejected the result this case reported: work on."""
        self._check("rework", by, at)
        if self.origin is None:
            raise IllegalTransition("only a handed-over case is sent back by its origin")
        require_text(reason, "a rework's reason")
        self._rework_requested(reason=reason, by=by, at=at)

    @event("ReworkRequested")
    def _rework_requested(self, reason: str, by: str, at: datetime) -> None:
        self._reset_result()
        self.status = Status.ESCALATED if self.escalated_to else Status.ACCEPTED
        self.last_at = at

    def withdraw_with_origin(self, reason: str, by: str, at: datetime) -> None:
        """The sending case was withdrawn or merged: this linked case ends too."""
        self._check("withdraw_with_origin", by, at)
        if self.origin is None:
            raise IllegalTransition("only a handed-over case is withdrawn by its origin")
        require_text(reason, "a withdrawal's reason")
        self._withdrawn(reason=reason, by=by, at=at)

    def _party_loop_here(self, what: str) -> None:
        if self.origin is not None:
            msg = (
                f"{what} belongs to the origin case {self.origin_case_number} at"
                f" {self.origin.tenant}, where the party's loop runs"
            )
            raise IllegalTransition(msg)

    def _linked(self, linked_case: UUID) -> Link:
        link = self.link(linked_case) if isinstance(linked_case, UUID) else None
        if link is None:
            msg = f"case {linked_case!r} is not a linked case of this case's current round"
            raise ValidationError(msg)
        return link

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
        outcome = _checked_outcome(outcome, summary, court_reference)
        if self.lead_link is not None:
            msg = (
                f"a case handed to center {self.lead_link.tenant} is resolved by the"
                " outcome that center reports, not here"
            )
            raise IllegalTransition(msg)
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
        self._party_loop_here("feedback")
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
        self._reset_result()
        self.status = Status.ESCALATED if self.escalated_to else Status.ACCEPTED
        self.last_at = at

    def _reset_result(self) -> None:
        self.outcome = self.resolution = self.court_reference = None
        self.resolved_by_unit = self.feedback = None
        self.links = [
            Link(k.case_id, k.tenant, k.direction, k.lead, None, k.returned) if k.lead else k
            for k in self.links
        ]

    def evaluate(self, stars: int, comment: str, by: str, at: datetime) -> None:
        """The party rates satisfaction, one to five stars, once per round."""
        self._check("evaluate", by, at)
        self._party_loop_here("evaluation")
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
        pending = [k.tenant for k in self.links if k.pending]
        if pending:
            msg = (
                "a case closes only after every center it was handed to reported an"
                f" outcome; still owed by {', '.join(pending)}"
            )
            raise IllegalTransition(msg)
        if self.origin is not None:
            raise IllegalTransition(
                "a handed-over case closes with its origin, where the party confirms"
            )
        self._closed(by=by, at=at)

    @event("Closed")
    def _closed(self, by: str, at: datetime) -> None:
        self.closed_at = at
        self.status, self.last_at = Status.CLOSED, at

    def reopen(self, reason: str, by: str, at: datetime) -> None:
        """The matter came back: a repeat complaint against the unit that resolved it."""
        self._check("reopen", by, at)
        self._party_loop_here("a repeat complaint")
        require_text(reason, "a re-opening's reason")
        self._reopened(reason=reason, repeat_against=self.resolved_by_unit, by=by, at=at)

    @event("Reopened")
    def _reopened(self, reason: str, repeat_against: str | None, by: str, at: datetime) -> None:
        self.repeat_count += 1
        self.repeat_against = repeat_against
        self.round_started_at = at
        self.respond_by = self.handle_by = None  # re-triage counts them from `at`
        self.assignments, self.urgings, self.links = [], [], []
        self.escalated_to = None
        self.outcome = self.resolution = self.court_reference = None
        self.resolved_by_unit = self.feedback = None
        self.confirmed = False
        self.stars, self.evaluation_comment = None, None
        self.closed_at = None
        self.status, self.last_at = Status.TRIAGED, at

    # -- callbacks (回访) --------------------------------------------------------

    def record_callback(self, result: CallbackResult, satisfied: bool | None, note: str,
                        by: str, at: datetime) -> None:
        """An inspector called the party of a closed case back (DOMAIN.md rule 9);
        ``satisfied`` is the party's answer when reached, else None."""
        if self.status is not Status.CLOSED:
            msg = f"a callback is made only on a closed case; this one is {self.status}"
            raise IllegalTransition(msg)
        self._party_loop_here("a callback")
        result = require_member(CallbackResult, result, "a callback's result")
        if result is CallbackResult.REACHED and not isinstance(satisfied, bool):
            raise ValidationError("a callback that reached the party says whether it is"
                                  f" satisfied (true or false); got {satisfied!r}")
        if result is not CallbackResult.REACHED and satisfied is not None:
            raise ValidationError(f"only a callback that reached the party records"
                                  f" satisfaction; this one was {result}")
        if not isinstance(note, str) or "\x00" in note:
            raise ValidationError("a callback's note must be text without NUL characters")
        require_text(by, "the actor (by)")
        require_aware(at, "a command's time (at)")
        if at < self.last_at:
            msg = (
                "time must not run backwards: a case's events are in business-time order;"
                f" {at.isoformat()} is before {self.last_at.isoformat()}"
            )
            raise ValidationError(msg)
        self._callback_recorded(result=result, satisfied=satisfied, note=note, by=by, at=at)

    @event("CallbackRecorded")
    def _callback_recorded(self, result: CallbackResult, satisfied: bool | None, note: str,
                           by: str, at: datetime) -> None:
        self.callbacks = [
            *self.callbacks,
            Callback(CallbackResult(result), satisfied, note, by, at, self.closed_at),
        ]
        self.last_at = at

    # -- duplicates and withdrawal -----------------------------------------------

    def merge_into(self, other_case_id: UUID, by: str, at: datetime) -> None:
        """A duplicate registration joins the case it duplicates (DOMAIN.md rule 1)."""
        self._check("merge_into", by, at)
        if not isinstance(other_case_id, UUID):
            raise ValidationError("a case merges into another case's id (a UUID)")
        if other_case_id == self.id:
            raise ValidationError("a case cannot be merged into itself")
        if self.origin is not None:
            raise IllegalTransition("a handed-over case is merged at its origin, not here")
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

    def keep_separate(self, other_case_id: UUID, reason: str, by: str, at: datetime) -> None:
        """Staff decide a suspected duplicate is a matter of its own."""
        self._check("keep_separate", by, at)
        if other_case_id not in self.suspected_duplicates:
            msg = f"case {other_case_id!r} is not a suspected duplicate of this case"
            raise ValidationError(msg)
        if other_case_id in self.kept_separate_from:
            raise IllegalTransition(f"the decision on {other_case_id} was already taken")
        require_text(reason, "the reason a case is kept separate")
        self._kept_separate(other_case_id=other_case_id, reason=reason, by=by, at=at)

    @event("KeptSeparate")
    def _kept_separate(self, other_case_id: UUID, reason: str, by: str, at: datetime) -> None:
        self.kept_separate_from = [*self.kept_separate_from, other_case_id]
        self.last_at = at

    def withdraw(self, reason: str, by: str, at: datetime) -> None:
        """The applicant withdraws the matter before it is resolved."""
        self._check("withdraw", by, at)
        if self.origin is not None:
            raise IllegalTransition("a handed-over case is withdrawn at its origin, not here")
        require_text(reason, "a withdrawal's reason")
        self._withdrawn(reason=reason, by=by, at=at)

    @event("Withdrawn")
    def _withdrawn(self, reason: str, by: str, at: datetime) -> None:
        self.withdrawn_reason = reason
        self.status, self.last_at = Status.WITHDRAWN, at


    # -- photos (evidence) ---------------------------------------------------------

    def attach_photo(self, attachment_id: UUID, sha256: str, content_type: str, size: int,
                     by: str, at: datetime) -> None:
        """Record a photo stored beside the case (its id, digest, type and size):
        only while the case is open, at most ``MAX_PHOTOS``; never removed."""
        if not self.is_open:
            raise IllegalTransition(f"photos are attached only to an open case; this one is"
                                    f" {self.status}")
        if not isinstance(attachment_id, UUID):
            raise ValidationError("a photo is named by its attachment id (a UUID)")
        if any(p.attachment_id == attachment_id for p in self.photos):
            raise ValidationError(f"photo {attachment_id} is already attached")
        if len(self.photos) >= MAX_PHOTOS:
            raise ValidationError(f"a case holds at most {MAX_PHOTOS} photos;"
                                  f" {self.case_number} has {len(self.photos)}")
        if content_type not in PHOTO_TYPES.values():
            raise ValidationError("a photo must be a JPEG or PNG image;"
                                  f" got {content_type!r}")
        if not isinstance(size, int) or isinstance(size, bool) \
                or not 0 < size <= MAX_PHOTO_BYTES:
            raise ValidationError(f"a photo is 1 byte to {MAX_PHOTO_BYTES} bytes; got {size!r}")
        if not isinstance(sha256, str) or len(sha256) != 64 \
                or any(c not in "0123456789abcdef" for c in sha256):
            raise ValidationError("a photo's digest is 64 lowercase hex digits (SHA-256)")
        require_text(by, "the actor (by)")
        require_aware(at, "a command's time (at)")
        self._photo_attached(attachment_id=attachment_id, sha256=sha256,
                             content_type=content_type, size=size, by=by, at=at)

    @event("PhotoAttached")
    def _photo_attached(self, attachment_id: UUID, sha256: str, content_type: str, size: int,
                        by: str, at: datetime) -> None:
        self.photos = [*self.photos,
                       Photo(attachment_id, sha256, content_type, size, by, at)]


def _checked_outcome(outcome: Outcome, summary: str, court_reference: str | None) -> Outcome:
    """The rules every recorded outcome follows, here or reported by a linked case."""
    outcome = require_member(Outcome, outcome, "an outcome")
    if outcome is Outcome.REFERRED_TO_COURT:
        require_text(court_reference, "a referral to court's court reference")
    elif court_reference is not None:
        raise ValidationError("a court reference belongs only to a case referred to court")
    if outcome is Outcome.NO_ACTION_WARRANTED:
        require_text(summary, "the reason why no action is warranted (summary)")
    if not isinstance(summary, str) or "\x00" in summary:
        raise ValidationError("a resolution's summary must be text without NUL characters")
    return outcome
