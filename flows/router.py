"""The router: performs the hand-overs between centers that cases ask for.

A case that is escalated or dispatched to a lower center records the hand-over
in its own tenant (DESIGN.md "Flows between tenants"). The router follows the
city's log group and performs the follow-up in the other tenant: it opens the
linked case there, relays acceptance, refusal, progress and outcome back to the
sending case, and sends closure, rework and withdrawal on to linked cases.

Each notification's follow-up events are written in one transaction with the
router's position in that log group (the library's process recorder and
single-row tracking), so a router killed at any instant and restarted neither
loses nor repeats a hand-over; two routers on one log group cannot both
record the same position. Linked case ids are fixed by the sending event, a
second guard against doubling.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.utils import get_topic

from domain import Case, Direction, DomainError, Link, tenant_of
from tenants.center import CaseNotFound, CenterApp
from tenants.keys import KeyringError
from tenants.listen import listening
from tenants.persistence import (
    ANY_TENANT,
    LOG_GROUP,
    TENANT,
    Factory,
    TenantProcessRecorder,
)
from tenants.service import Tenants
from tenants.supervision import supervised
from tenants.telemetry import links_to, tracer

log = logging.getLogger(__name__)

ROUTER = "router"
BATCH = 100
RETRIES = 5
#: Events the router only ever relays to the case's origin.
ONLY_TO_ORIGIN = frozenset({"Accepted", "ProgressReported", "Resolved", "LinkedOutcomeNoted"})
NO_ORIGIN_CACHE = 100_000
RESTART_AFTER = 2.0  # seconds a failed router waits before it resumes

#: Every case event the router reacts to (the rest of the log it skips by topic).
TOPICS = [
    get_topic(getattr(Case, name))
    for name in (
        "Escalated", "Dispatched", "Accepted", "Refused", "ProgressReported", "Resolved",
        "LinkedOutcomeNoted", "Closed", "ClosedWithOrigin", "ResultRejected",
        "ReworkRequested", "Withdrawn", "Merged",
    )
]


@dataclass
class Work:
    """The follow-up of one notification: new or changed cases, per center."""

    cases: list[tuple[CenterApp, Case]]
    skipped: list[str]


class Router:
    """Follows one city's log group and performs its hand-overs."""

    def __init__(self, tenants: Tenants, city: str, name: str = ROUTER) -> None:
        self.tenants = tenants
        self.city = city
        self.name = name
        factory = Factory({**tenants.env, TENANT: ANY_TENANT, LOG_GROUP: city})
        recorder = factory.process_recorder()
        assert isinstance(recorder, TenantProcessRecorder)
        self.recorder = recorder
        self.channel = self.recorder.channel_name
        self.handed_over = 0
        self.skipped = 0
        # Cases known to have no origin (an origin is fixed when a case is opened).
        self._no_origin: dict[UUID, None] = {}

    def position(self) -> int:
        return self.recorder.max_tracking_id(self.name) or 0

    # -- following the log ---------------------------------------------------------

    def run_once(self, limit: int = BATCH) -> int:
        """Process the next notifications; returns how many were read."""
        start = self.position()
        notifications = self.recorder.select_notifications(
            start, limit, topics=TOPICS, inclusive_of_start=False)
        unrecorded = None  # the last notification that needed nothing, if after a commit
        for n in notifications:
            unrecorded = None if self._process(n) else n.id
        if unrecorded is not None:
            # Notifications that needed nothing share one position write per batch: a
            # restart re-reads them and again finds nothing to do.
            with contextlib.suppress(IntegrityError):  # another router recorded a later one
                self.recorder.insert_events([], tracking=Tracking(self.name, unrecorded))
        return len(notifications)

    def catch_up(self) -> int:
        total = 0
        while read := self.run_once():
            total += read
        return total

    def run(self, stop: Callable[[], bool], idle_wait: float = 1.0) -> None:
        """Catch up, then wait for NOTIFY on the log group (or ``idle_wait``), until stop()."""
        supervised(lambda: self._follow(stop, idle_wait), stop,
                   what=f"router {self.city}", retry_after=RESTART_AFTER, log=log)

    def _follow(self, stop: Callable[[], bool], idle_wait: float) -> None:
        with listening(self.tenants.datastore_for(self.city).url, self.channel) as wait:
            parents: list[str] = []  # trace contexts of the writes that woke us
            while not stop():
                if parents:
                    with tracer.start_as_current_span(
                            "router.handovers", links=links_to(parents),
                            attributes={"zongzhi.log_group": self.city}):
                        read = self.run_once()
                else:
                    read = self.run_once()
                parents = [] if read else wait(idle_wait)

    # -- one notification ----------------------------------------------------------

    def _process(self, notification: StoredEvent) -> bool:
        """Perform one notification's follow-up with its position; False if it needed
        none (its position is then left to the batch)."""
        notification_id: int = notification.id  # type: ignore[attr-defined]
        tracking = Tracking(self.name, notification_id)
        for attempt in range(RETRIES):
            work = self._follow_up(notification)
            if not work.cases and not work.skipped:
                return False
            stored = [
                app.mapper.to_stored_event(event)
                for app, case in work.cases
                for event in case.collect_events()
            ]
            try:
                self.recorder.insert_events(stored, tracking=tracking)
            except IntegrityError:
                if self.recorder.has_tracking_id(self.name, notification_id):
                    return True  # another router recorded this position: nothing to do
                if attempt == RETRIES - 1:
                    raise
                continue  # a staff command changed a target case meanwhile: redo
            self.handed_over += len(work.cases)
            self._log_skipped(work, notification_id)
            return True
        raise AssertionError("unreachable")

    def _log_skipped(self, work: Work, notification_id: int) -> None:
        self.skipped += len(work.skipped)
        for reason in work.skipped:
            log.warning("router %s, notification %s: %s", self.city, notification_id, reason)

    def _follow_up(self, notification: StoredEvent) -> Work:
        case_id = notification.originator_id
        assert isinstance(case_id, UUID)
        work = Work([], [])
        if notification.topic.rpartition(".")[2] in ONLY_TO_ORIGIN and case_id in self._no_origin:
            return work  # relayed only to an origin, and this case has none (never will)
        event_tenant = _tenant_of(case_id)
        source_app = self.tenants.center(event_tenant)
        event: Any = source_app.mapper.to_domain_event(notification)
        case: Case = source_app.repository.get(case_id, version=notification.originator_version)
        if case.origin is None:
            self._no_origin[case_id] = None
            while len(self._no_origin) > NO_ORIGIN_CACHE:
                del self._no_origin[next(iter(self._no_origin))]
        kind = type(event).__name__
        actor = f"{event_tenant}:{event.by}"
        at: datetime = event.at

        def act(target: Link, command: Callable[[Case, datetime], None]) -> None:
            app = self.tenants.center(target.tenant)
            try:
                other = app.get_case(target.case_id)
                if not other.is_open:
                    return  # it ended meanwhile (returned, withdrawn): nothing to send
                command(other, max(at, other.last_at))
            except (DomainError, CaseNotFound, KeyringError) as e:
                work.skipped.append(f"{kind} of {case.case_number} not relayed to"
                                    f" {target.tenant}: {e}")
                return
            work.cases.append((app, other))

        escalation = case.link(event.linked_case) if kind == "Escalated" else None
        if escalation is not None:
            self._open(work, case, escalation, Direction.DOWN, event.reason, actor, at)
        elif kind == "Dispatched":
            for link in case.links:
                reason = f"dispatched by {event_tenant} ({case.case_number})"
                self._open(work, case, link, Direction.UP, reason, actor, at)
        if case.origin is not None:
            self._relay_back(case, event, kind, act, actor)
        if kind in ("Closed", "ClosedWithOrigin"):
            ended = f"the case {case.case_number} at {event_tenant} closed"
            for link in case.links:
                if link.outcome is not None:
                    act(link, lambda c, t: c.close_with_origin(actor, t))
                elif link.pending:
                    act(link, lambda c, t: c.withdraw_with_origin(ended, actor, t))
        elif kind == "Refused" and event.lead:
            cancelled = f"the lead center refused the dispatch of {case.case_number}"
            for link in case.links:
                if link.returned and link.tenant != event.ref:
                    act(link, lambda c, t: c.withdraw_with_origin(cancelled, actor, t))
        elif kind in ("ResultRejected", "ReworkRequested") and case.lead_link is not None:
            reason = event.reason
            act(case.lead_link, lambda c, t: c.rework(reason, actor, t))
        elif kind in ("Withdrawn", "Merged"):
            reason = f"the case {case.case_number} at {event_tenant} was {case.status}"
            for link in case.links:
                if not link.returned:
                    act(link, lambda c, t: c.withdraw_with_origin(reason, actor, t))
        return work

    def _relay_back(self, case: Case, event: Any, kind: str,
                    act: Callable[[Link, Callable[[Case, datetime], None]], None],
                    actor: str) -> None:
        origin = case.origin
        assert origin is not None
        own_order = case.handed_down and getattr(event, "ref", None) == case.tenant
        if kind == "Accepted" and own_order:
            act(origin, lambda c, t: c.note_linked_acceptance(case.id, actor, t))
        elif kind == "Refused" and own_order:
            reason = event.reason
            act(origin, lambda c, t: c.note_linked_refusal(case.id, reason, actor, t))
        elif kind == "ProgressReported":
            note = event.note
            act(origin, lambda c, t: c.note_linked_progress(case.id, note, actor, t))
        elif kind == "Resolved" or (kind == "LinkedOutcomeNoted" and event.resolves):
            outcome, summary, court = case.outcome, case.resolution or "", case.court_reference
            assert outcome is not None
            act(origin, lambda c, t: c.note_linked_outcome(
                case.id, outcome, summary, actor, t, court_reference=court))

    def _open(self, work: Work, case: Case, link: Link, origin_direction: Direction,
              reason: str, actor: str, at: datetime) -> None:
        """Open the linked case in ``link.tenant`` unless it exists already."""
        app = self.tenants.center(link.tenant)
        try:
            app.get_case(link.case_id)
        except CaseNotFound:
            pass
        else:
            return  # opened before (by a router whose position was not yet recorded)
        origin = Link(case.id, case.tenant, origin_direction, lead=link.lead)
        try:
            linked = Case.take_over(
                case_id=link.case_id, case_number=app.next_case_number(at), origin=origin,
                origin_case_number=case.case_number, reason=reason, source=case,
                calendar=app.calendar(), by=actor, at=at)
            app.mapper.to_stored_event(linked.pending_events[0])  # encrypts: key still there?
        except (DomainError, KeyringError) as e:
            work.skipped.append(f"{case.case_number} not handed to {link.tenant}: {e}")
            return
        work.cases.append((app, linked))


def _tenant_of(originator_id: UUID) -> str:
    tenant = tenant_of(originator_id)
    if tenant is None:
        raise ValueError(f"stream {originator_id} carries no tenant")
    return tenant


__all__ = ["ROUTER", "TOPICS", "Router"]
