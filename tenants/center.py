"""One governance center's application: load, command, save.

A ``CenterApp`` is bound to one tenant. It reads and writes only that
tenant's rows of its city's log group, encrypts personal fields with that
tenant's data key, and counts deadlines on the shared working calendar.
Construct it through :class:`tenants.service.Tenants`, which caches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, ProgrammingError
from psycopg.errors import UndefinedTable

from domain import (
    Assignee,
    AssigneeKind,
    Case,
    Channel,
    HandlingClass,
    IllegalTransition,
    Instrument,
    Outcome,
    Party,
    Place,
    Severity,
    Status,
    ValidationError,
    WorkingCalendar,
    parent_of,
    tenant_of,
)
from domain.intake import REPEAT_WINDOW, Candidate, repeat_of, suspected_duplicates
from tenants.keys import Keyring
from tenants.persistence import TenantRecorder
from tenants.transcodings import PersonalAsCiphertext, register_domain_transcodings


class CaseNotFound(LookupError):
    """No such case in this tenant (it may exist in another one: that is not said)."""


class ConcurrentUpdate(RuntimeError):
    """Someone else changed the case since it was read; reload and retry."""


def replay(case: Case | None, events: Iterable[Any]) -> Case | None:
    """A case from its events: the library's ``project_aggregate`` without its
    per-event ``isinstance`` against a runtime-checkable protocol, which was a fifth of
    a command's client CPU (profiled); every event of a case stream mutates a Case."""
    for event in events:
        case = event.mutate(case)
    return case


class CenterApp(Application[UUID]):
    """The commands of one center's closed loop."""

    name = "Center"

    def __init__(self, tenant: str, env: dict[str, str], keyring: Keyring,
                 calendar: Callable[[], WorkingCalendar],
                 active: Callable[[str], bool] | None = None) -> None:
        self.tenant = tenant
        self.keyring = keyring
        self.calendar = calendar
        self.active = active or (lambda code: True)
        super().__init__(env)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)
        transcoder.register(PersonalAsCiphertext(self.keyring, self.tenant))

    @property
    def store(self) -> TenantRecorder:
        assert isinstance(self.recorder, TenantRecorder)
        return self.recorder

    # -- reads -------------------------------------------------------------

    def get_case(self, case_id: UUID) -> Case:
        if tenant_of(case_id) != self.tenant:
            raise CaseNotFound(f"no case {case_id} in center {self.tenant}")
        try:
            case: Case = self.repository.get(case_id, projector_func=replay)
        except AggregateNotFoundError:
            raise CaseNotFound(f"no case {case_id} in center {self.tenant}") from None
        assert isinstance(case, Case)
        return case

    def case_events(self, case_id: UUID) -> list[Any]:
        """The case's events in order (one read; the recorder fences the tenant)."""
        events = list(self.events.get(case_id)) if tenant_of(case_id) == self.tenant else []
        if not events:
            raise CaseNotFound(f"no case {case_id} in center {self.tenant}")
        return events

    # -- intake ------------------------------------------------------------

    def next_case_number(self, at: datetime) -> str:
        """``<tenant>-<yyyymmdd>-<serial>``: one number for one matter (统一编码)."""
        sequence = f"{self.store.datastore.schema}.case_number_seq"
        with self.store.datastore.get_connection() as conn:
            row = conn.execute("SELECT nextval(%s::regclass) AS n", (sequence,)).fetchone()
        assert row is not None
        return f"{self.tenant}-{at:%Y%m%d}-{row['n']:06d}"

    def receive_case(self, *, channel: Channel, category: str, summary: str,
                     parties: list[Party], place: Place, by: str, at: datetime) -> Case:
        """Take a matter in. The same matter coming back after closure (a
        repeat complaint) re-opens its case, which is returned instead of a new
        one; open cases it likely duplicates are flagged on the new case."""
        self.keyring.require_key(self.tenant)
        keys = self.match_keys(parties)
        candidates = self.candidates(category, keys, at)
        if isinstance(place, Place):
            repeat = repeat_of(candidates, place, at)
            if repeat is not None:
                return self.reopen_case(repeat.case_id, f"repeat complaint: {summary}", by, at)
            duplicates = suspected_duplicates(candidates, place, at)
        else:
            duplicates = []  # Case.receive names the error
        case = Case.receive(
            tenant=self.tenant, case_number=self.next_case_number(at), channel=channel,
            category=category, summary=summary, parties=parties, place=place,
            received_at=at, received_by=by, match_keys=keys,
            suspected_duplicates=duplicates)
        self.save(case)
        return case

    def match_keys(self, parties: list[Party]) -> list[str]:
        """Keyed hashes of the parties' phone and id numbers (never the numbers)."""
        keys: set[str] = set()
        for party in parties if isinstance(parties, list) else []:
            for kind in ("phone", "id_number"):
                value = getattr(party, kind, None) if isinstance(party, Party) else None
                if value is not None and value.text:
                    keys.add(self.keyring.match_key(self.tenant, kind, value.text))
        return sorted(keys)

    def candidates(self, category: str, keys: list[str], at: datetime) -> list[Candidate]:
        """Earlier cases of this center and category sharing a key, from the case
        index (as far as its projector has got; none before it first ran)."""
        if not keys:
            return []
        since = at - REPEAT_WINDOW
        statement = (
            f'SELECT case_id, status, division, lat, lon, round_started_at, closed_at '
            f'FROM "{self.store.datastore.schema}".case_index WHERE tenant = %s '
            "AND category = %s AND match_keys && %s::text[] "
            "AND (round_started_at >= %s OR closed_at >= %s)"
        )
        try:
            with self.store.datastore.get_connection() as conn:
                rows = conn.execute(statement, (self.tenant, category, keys, since,
                                                since)).fetchall()
        except ProgrammingError as e:
            if isinstance(e.__cause__, UndefinedTable):
                return []  # no projector has run on this log group yet
            raise
        return [
            Candidate(r["case_id"], Status(r["status"]),
                      Place(r["division"], "", r["lat"], r["lon"]),
                      r["round_started_at"], r["closed_at"])
            for r in rows
        ]

    def repeat_complaint(self, case_id: UUID, summary: str, by: str, at: datetime) -> Case:
        """The party complains again about a closed case: re-open it (counts as a
        repeat complaint against the unit that resolved it) within the window."""
        case = self.get_case(case_id)
        if case.closed_at is not None and at - case.closed_at > REPEAT_WINDOW:
            msg = (
                f"a repeat complaint re-opens a case closed within {REPEAT_WINDOW.days} days;"
                f" {case.case_number} closed on {case.closed_at:%Y-%m-%d}: register a new case"
            )
            raise ValidationError(msg)
        return self.reopen_case(case_id, f"repeat complaint: {summary}", by, at)

    # -- the loop ----------------------------------------------------------

    def _update(self, case_id: UUID, command: Callable[[Case], None]) -> Case:
        case = self.get_case(case_id)
        command(case)
        return self.save_case(case)

    def save_case(self, case: Case) -> Case:
        """Save a case's new events; ``ConcurrentUpdate`` if it changed since it was read."""
        try:
            self.save(case)
        except IntegrityError as e:
            raise ConcurrentUpdate(
                f"case {case.case_number} changed since it was read; reload and retry"
            ) from e
        return case

    def triage_case(self, case_id: UUID, severity: Severity, handling: HandlingClass,
                    by: str, at: datetime) -> Case:
        calendar = self.calendar()
        if severity == Severity.RED:
            self.require_parent_active()  # red below a county escalates at once
        return self._update(case_id, lambda c: c.triage(severity, handling, calendar, by, at))

    def dispatch_case(self, case_id: UUID, assignees: list[Assignee], by: str,
                      at: datetime) -> Case:
        for a in assignees if isinstance(assignees, list) else []:
            if isinstance(a, Assignee) and a.kind is AssigneeKind.CENTER:
                self._require_active(a.ref, "a case is dispatched only to an active center")
        return self._update(case_id, lambda c: c.dispatch(assignees, by, at))

    def _require_active(self, code: str, rule: str) -> None:
        if not self.active(code):
            raise ValidationError(f"{rule}; {code} is retired or not registered")

    def raise_severity(self, case_id: UUID, severity: Severity, reason: str, by: str,
                       at: datetime) -> Case:
        self.require_parent_active()
        return self._update(case_id, lambda c: c.raise_severity(severity, reason, by, at))

    def mark_group_matter(self, case_id: UUID, reason: str, by: str, at: datetime) -> Case:
        self.require_parent_active()
        return self._update(case_id, lambda c: c.mark_group_matter(reason, by, at))

    def keep_separate(self, case_id: UUID, other_case_id: UUID, reason: str, by: str,
                      at: datetime) -> Case:
        return self._update(case_id, lambda c: c.keep_separate(other_case_id, reason, by, at))

    def require_parent_active(self) -> None:
        parent = parent_of(self.tenant)
        if parent is not None:
            self._require_active(parent, "a case escalates only to an active parent center")

    def accept_case(self, case_id: UUID, ref: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.accept(ref, by, at))

    def refuse_case(self, case_id: UUID, ref: str, reason: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.refuse(ref, reason, by, at))

    def report_progress(self, case_id: UUID, note: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.report_progress(note, by, at))

    def urge_case(self, case_id: UUID, instrument: Instrument, responsible_unit: str | None,
                  reason: str, by: str, at: datetime) -> Case:
        return self._update(
            case_id, lambda c: c.urge(instrument, responsible_unit, reason, by, at))

    def escalate_case(self, case_id: UUID, to_tenant: str, reason: str, by: str,
                      at: datetime) -> Case:
        if to_tenant == parent_of(self.tenant):
            self.require_parent_active()
        return self._update(case_id, lambda c: c.escalate(to_tenant, reason, by, at))

    def resolve_case(self, case_id: UUID, outcome: Outcome, summary: str, by: str,
                     at: datetime, court_reference: str | None = None) -> Case:
        return self._update(
            case_id, lambda c: c.resolve(outcome, summary, by, at, court_reference))

    def give_feedback(self, case_id: UUID, message: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.give_feedback(message, by, at))

    def confirm_case(self, case_id: UUID, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.confirm(by, at))

    def reject_result(self, case_id: UUID, reason: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.reject_result(reason, by, at))

    def evaluate_case(self, case_id: UUID, stars: int, comment: str, by: str,
                      at: datetime) -> Case:
        return self._update(case_id, lambda c: c.evaluate(stars, comment, by, at))

    def close_case(self, case_id: UUID, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.close(by, at))

    def reopen_case(self, case_id: UUID, reason: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.reopen(reason, by, at))

    def merge_case(self, case_id: UUID, into: UUID, by: str, at: datetime) -> Case:
        if not isinstance(into, UUID) or tenant_of(into) != self.tenant:
            raise ValidationError(
                f"a case merges only into another case of its own center {self.tenant}")
        if not self.get_case(into).is_open:
            raise IllegalTransition(
                "a duplicate merges only into a case still open; register it as a new case "
                "or re-open the closed one")
        return self._update(case_id, lambda c: c.merge_into(into, by, at))

    def withdraw_case(self, case_id: UUID, reason: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.withdraw(reason, by, at))
