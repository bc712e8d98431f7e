"""History and replay: who did what, when and why; a case as it stood at an instant.

:func:`history` lists a tenant's or a case's events in log order with the
actor (``by``), the business time (``at``), the time the event was recorded
(the event's own timestamp, taken by the writing process) and the reason,
note or summary where the event has one. It reads the stored JSON and never
decrypts: personal fields are left out, never shown in clear.

:func:`case_as_of` replays a case's events recorded at or before an instant,
read once; :func:`tenant_as_of` does the same for every case of a tenant.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.domain import CanMutateProtocol
from eventsourcing.persistence import StoredEvent
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composed, Identifier

from audit.chain import AuditError
from domain import Case, Status, WorkingCalendar, tenant_of
from domain.supervision import due_at
from tenants.center import CaseNotFound
from tenants.persistence import log_group_schema
from tenants.service import Tenants

#: Fields that say why, in the order they are looked for.
WHY = ("reason", "note", "message", "comment", "summary", "handover_reason")
_SKIPPED = {"timestamp", "originator_topic", "by", "at", "received_by", "received_at", *WHY}
#: Stars that count as satisfied (as projections.kpis.SATISFIED_STARS).
SATISFIED_STARS = 4
_RECORDED = re.compile(rb'"timestamp":\{"_type_":"datetime_iso","_data_":"([^"]+)"')


@dataclass(frozen=True)
class Entry:
    """One event of the history (no personal field in it)."""

    tenant: str
    position: int
    case_id: UUID
    version: int
    type: str
    by: str | None
    at: datetime | None  # business time, as the actor gave it
    recorded: datetime | None  # when the event was recorded (the writer's clock)
    why: str | None
    details: dict[str, str | int | float | bool] = field(default_factory=dict)

    def line(self) -> str:
        at = self.at.isoformat() if self.at else "-"
        recorded = self.recorded.isoformat() if self.recorded else "-"
        what = " ".join(f"{k}={v}" for k, v in self.details.items())
        why = f" why: {self.why}" if self.why else ""
        return (f"{self.tenant} #{self.position} {self.case_id} v{self.version} {self.type} "
                f"by {self.by or '-'} at {at} (recorded {recorded}){why}"
                + (f" [{what}]" if what else ""))


def event_type(topic: str) -> str:
    """``domain.case:Case.Triaged`` -> ``Triaged``."""
    return topic.rpartition(":")[2].rpartition(".")[2]


def recorded_at(state: bytes) -> datetime | None:
    """The event's own timestamp, read from its stored JSON without decoding it all."""
    found = _RECORDED.search(state, 0, 256)
    if found is not None:
        return datetime.fromisoformat(found.group(1).decode())
    value = json.loads(state).get("timestamp")
    found_at = _value(value) if isinstance(value, dict) else None
    return found_at if isinstance(found_at, datetime) else None


def _value(value: Any) -> Any:
    if isinstance(value, dict) and value.get("_type_") == "datetime_iso":
        return datetime.fromisoformat(value["_data_"])
    return value


def entry(tenant: str, position: int, case_id: UUID, version: int, topic: str,
          state: bytes) -> Entry:
    data: dict[str, Any] = json.loads(state)
    by = data.get("by", data.get("received_by"))
    at = _value(data.get("at", data.get("received_at")))
    recorded = _value(data.get("timestamp"))
    why = next((data[k] for k in WHY if isinstance(data.get(k), str) and data[k]), None)
    details = {k: v for k, v in data.items()
               if k not in _SKIPPED and isinstance(v, str | int | float | bool)}
    return Entry(tenant, position, case_id, version, event_type(topic),
                 by if isinstance(by, str) else None,
                 at if isinstance(at, datetime) else None,
                 recorded if isinstance(recorded, datetime) else None, why, details)


def history(tenants: Tenants, *, tenant: str | None = None, case_id: UUID | None = None,
            since: datetime | None = None, until: datetime | None = None,
            types: Sequence[str] = (), actor: str | None = None,
            limit: int | None = None, after: int | None = None) -> list[Entry]:
    """A tenant's (log order) or a case's (version order) events; ``since`` and
    ``until`` bound the recorded time (inclusive), ``types`` the event types
    (``Triaged`` or a full topic), ``actor`` the ``by``; ``after`` skips the
    events up to that tenant position (tenant) or version (case), for paging."""
    if (tenant is None) == (case_id is None):
        raise AuditError("history needs a tenant or a case, not both")
    if case_id is not None:
        owner = tenant_of(case_id)
        if owner is None:
            raise CaseNotFound(f"{case_id} is not a case id")
        tenant = owner
    assert tenant is not None
    tenants.registry.get(tenant)  # raises UnknownTenant
    schema = Identifier(log_group_schema(tenant[:4]))
    statement: Composed = SQL(
        "SELECT tenant_position, originator_id, originator_version, topic, state "
        "FROM {0}.events WHERE tenant = %(tenant)s").format(schema)
    if case_id is not None:
        statement += SQL(" AND originator_id = %(case)s")
        if after is not None:
            statement += SQL(" AND originator_version > %(after)s")
        statement += SQL(" ORDER BY originator_version")
    else:
        if after is not None:
            statement += SQL(" AND tenant_position > %(after)s")
        statement += SQL(" ORDER BY tenant_position")
    wanted = set(types)
    found: list[Entry] = []
    store = tenants.datastore_for(tenant[:4])
    with store.get_connection() as conn, conn.transaction(), conn.cursor(
            name="audit_history", row_factory=tuple_row, binary=True) as cur:
        cur.itersize = 2000
        cur.execute(statement, {"tenant": tenant, "case": case_id, "after": after})
        for position, oid, version, topic, state in cur:
            if wanted and event_type(topic) not in wanted and topic not in wanted:
                continue
            e = entry(tenant, position, oid, version, topic, bytes(state))
            if (since and (e.recorded is None or e.recorded < since)) or \
                    (until and (e.recorded is None or e.recorded > until)) or \
                    (actor is not None and e.by != actor):
                continue
            found.append(e)
            if limit is not None and len(found) >= limit:
                break
    return found


def _prefix(stored: Sequence[StoredEvent], instant: datetime) -> int:
    """How many of a stream's events were recorded at or before ``instant``."""
    for i, s in enumerate(stored):
        recorded = recorded_at(s.state)
        if recorded is None or recorded > instant:
            return i
    return len(stored)


def _replay(tenants: Tenants, tenant: str, stored: Sequence[StoredEvent]) -> Case:
    mapper = tenants.center(tenant).mapper
    events = [cast(CanMutateProtocol[Case], mapper.to_domain_event(s)) for s in stored]
    case = project_aggregate(None, events)
    assert isinstance(case, Case)
    return case


def case_as_of(tenants: Tenants, case_id: UUID, instant: datetime) -> Case | None:
    """The case exactly as it stood at ``instant`` (its events recorded at or
    before it, replayed); ``None`` if it did not exist yet."""
    if instant.tzinfo is None:
        raise AuditError("an instant must be timezone-aware")
    tenant = tenant_of(case_id)
    if tenant is None:
        raise CaseNotFound(f"{case_id} is not a case id")
    stored = tenants.center(tenant).store.select_events(case_id)
    if not stored:
        raise CaseNotFound(f"no case {case_id} in center {tenant}")
    k = _prefix(stored, instant)
    return _replay(tenants, tenant, stored[:k]) if k else None


def _streams(tenants: Tenants, tenant: str) -> Iterator[tuple[UUID, list[StoredEvent]]]:
    schema = Identifier(log_group_schema(tenant[:4]))
    store = tenants.datastore_for(tenant[:4])
    with store.get_connection() as conn, conn.transaction(), conn.cursor(
            name="audit_as_of", row_factory=tuple_row, binary=True) as cur:
        cur.itersize = 2000
        cur.execute(SQL("SELECT originator_id, originator_version, topic, state FROM {0}.events "
                        "WHERE tenant = %s ORDER BY originator_id, originator_version"
                        ).format(schema), (tenant,))
        current: UUID | None = None
        events: list[StoredEvent] = []
        for oid, version, topic, state in cur:
            if oid != current:
                if current is not None:
                    yield current, events
                current, events = oid, []
            events.append(StoredEvent(oid, version, topic, bytes(state)))
        if current is not None:
            yield current, events


def tenant_as_of(tenants: Tenants, tenant: str, instant: datetime) -> dict[UUID, Case]:
    """Every case of ``tenant`` as it stood at ``instant`` (those that existed)."""
    if instant.tzinfo is None:
        raise AuditError("an instant must be timezone-aware")
    tenants.registry.get(tenant)
    cases: dict[UUID, Case] = {}
    for case_id, stored in _streams(tenants, tenant):
        k = _prefix(stored, instant)
        if k:
            cases[case_id] = _replay(tenants, tenant, stored[:k])
    return cases


@dataclass(frozen=True)
class TenantFigures:
    """A tenant's own cases as they stood at ``instant`` (``tenant_figures``)."""

    tenant: str
    instant: datetime
    cases: int  # every case that existed
    open: int
    by_status: dict[str, int]  # status -> cases, only statuses held by some case
    overdue: int  # open, past the deadline that applied then (domain.supervision.due_at)
    due_within_24h: int  # open, that deadline within the next 24 hours
    matters: int  # merged duplicates and orders returned upwards left out
    withdrawn: int
    resolved: int  # matters not withdrawn with a result
    evaluated: int
    satisfied: int  # 4 or 5 stars
    closed_at_least_once: int
    repeat_complaints: int  # re-opened at least once

    @property
    def resolution_rate(self) -> float | None:
        base = self.matters - self.withdrawn
        return self.resolved / base if base else None

    @property
    def satisfaction(self) -> float | None:
        return self.satisfied / self.evaluated if self.evaluated else None

    @property
    def repeat_complaint_rate(self) -> float | None:
        base = self.closed_at_least_once
        return self.repeat_complaints / base if base else None


def figures_of(tenant: str, cases: Iterable[Case], instant: datetime,
               calendar: WorkingCalendar) -> TenantFigures:
    """Counts, working-view sizes and KPIs of ``cases`` (a tenant as of ``instant``)."""
    by_status: Counter[str] = Counter()
    n = still_open = overdue = due_soon = matters = withdrawn = resolved = 0
    evaluated = satisfied = closed_once = repeats = 0
    for case in cases:
        n += 1
        by_status[case.status.value] += 1
        if case.is_open:
            still_open += 1
            due = due_at(case, calendar)
            if due is not None and due[0] < instant:
                overdue += 1
            elif due is not None and due[0] < instant + timedelta(hours=24):
                due_soon += 1
        if case.status in (Status.MERGED, Status.RETURNED):
            continue
        matters += 1
        if case.status is Status.WITHDRAWN:
            withdrawn += 1
        elif case.outcome is not None:
            resolved += 1
        if case.stars is not None:
            evaluated += 1
            satisfied += case.stars >= SATISFIED_STARS
        if case.closed_at is not None or case.repeat_count > 0:
            closed_once += 1
        repeats += case.repeat_count > 0
    return TenantFigures(tenant, instant, n, still_open, dict(sorted(by_status.items())),
                         overdue, due_soon, matters, withdrawn, resolved, evaluated,
                         satisfied, closed_once, repeats)


def tenant_figures(tenants: Tenants, tenant: str, instant: datetime) -> TenantFigures:
    """:func:`figures_of` the tenant's cases replayed as of ``instant``."""
    cases = tenant_as_of(tenants, tenant, instant)
    return figures_of(tenant, cases.values(), instant, tenants.calendar())


__all__ = ["Entry", "TenantFigures", "case_as_of", "event_type", "figures_of", "history",
           "recorded_at", "tenant_as_of", "tenant_figures"]
