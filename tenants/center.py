"""One governance center's application: load, command, save.

A ``CenterApp`` is bound to one tenant. It reads and writes only that
tenant's rows of its city's log group, encrypts personal fields with that
tenant's data key, and counts deadlines on the shared working calendar.
Construct it through :class:`tenants.service.Tenants`, which caches them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder

from domain import (
    Assignee,
    Case,
    Channel,
    HandlingClass,
    Instrument,
    Outcome,
    Party,
    Place,
    Severity,
    WorkingCalendar,
    tenant_of,
)
from tenants.keys import Keyring
from tenants.persistence import TenantRecorder
from tenants.transcodings import PersonalAsCiphertext, register_domain_transcodings


class CaseNotFound(LookupError):
    """No such case in this tenant (it may exist in another one: that is not said)."""


class ConcurrentUpdate(RuntimeError):
    """Someone else changed the case since it was read; reload and retry."""


class CenterApp(Application[UUID]):
    """The commands of one center's closed loop."""

    name = "Center"

    def __init__(self, tenant: str, env: dict[str, str], keyring: Keyring,
                 calendar: Callable[[], WorkingCalendar]) -> None:
        self.tenant = tenant
        self.keyring = keyring
        self.calendar = calendar
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
            case: Case = self.repository.get(case_id)
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
        case = Case.receive(
            tenant=self.tenant, case_number=self.next_case_number(at), channel=channel,
            category=category, summary=summary, parties=parties, place=place,
            received_at=at, received_by=by)
        self.save(case)
        return case

    # -- the loop ----------------------------------------------------------

    def _update(self, case_id: UUID, command: Callable[[Case], None]) -> Case:
        case = self.get_case(case_id)
        command(case)
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
        return self._update(case_id, lambda c: c.triage(severity, handling, calendar, by, at))

    def dispatch_case(self, case_id: UUID, assignees: list[Assignee], by: str,
                      at: datetime) -> Case:
        return self._update(case_id, lambda c: c.dispatch(assignees, by, at))

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
        self.get_case(into)  # the surviving case must exist in this center
        return self._update(case_id, lambda c: c.merge_into(into, by, at))

    def withdraw_case(self, case_id: UUID, reason: str, by: str, at: datetime) -> Case:
        return self._update(case_id, lambda c: c.withdraw(reason, by, at))
