"""The case view: one row per case of a log group, for working views and KPIs.

Each row is the case as of the last of its events the projector has covered,
plus what only its history can tell (docs/kpis.md says how each figure reads
them):

* ``lead_accepted_at``: the first acceptance by a lead assignee in the current
  round (a round starts at receipt, and again at each re-opening);
* ``resolved_at`` / ``resolved_via``: when the current result was recorded, and
  the linked case whose reported outcome it is (None: resolved here);
* ``breaches``: per unit, the deadlines that passed in the current round before
  the act they ask for (supervision's definition of a breach: the response
  deadline without the lead's acceptance, the handling deadline without a
  result, a complex matter's progress duty), counted against the lead of the
  moment; ``due_by``/``due_kind``: the deadline that applies now;
* ``next_step_at``: when the clock will next urge or escalate the case.

**How it is computed.** A batch of notifications is folded event by event, in
log order, into the cases it touches, then each touched case is written once.
The fold applies each decoded event to the aggregate exactly as a replay does
(``event.mutate``), so a row equals the case ``repository.get`` would give at
that version; a fold is kept in a bounded cache between batches and is re-read
from the case's stored events when the cache does not hold the version just
before the event (first sight, eviction, another projector's batch). Events are
decoded without decrypting personal fields (``PersonalUnread``): the view holds
no personal data, and a tenant whose key was shredded still projects. A batch's
cases are upserted in one statement (a JSON array of records); a rebuild reads
larger batches than a follower, so that each case is rewritten fewer times.
(Loading each touched case with ``repository.get`` per batch, as the case index
does, rebuilds 16 times slower: docs/performance.md.)

Rows depend on the events and, for ``next_step_at``, ``due_by`` and progress-duty
breaches, on the working calendar the registry holds when they are computed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain import Case, Personal, WorkingCalendar
from domain.supervision import due_at, next_step_at
from projections.follower import BATCH, CASE_TOPICS, Projector
from tenants.persistence import LOG_GROUP, Factory
from tenants.service import Tenants
from tenants.transcodings import register_domain_transcodings

#: What ``due_kind`` holds, by the phrase the supervision policy uses.
DUE_KINDS = {
    "the response deadline": "response",
    "the handling deadline": "handling",
    "the progress duty": "progress",
}

COLUMNS = (
    "case_id", "tenant", "case_number", "channel", "category", "summary", "status",
    "is_open", "severity", "handling", "group_matter", "received_at", "round_started_at",
    "respond_by", "handle_by", "due_by", "due_kind", "next_step_at", "lead_kind", "lead_ref",
    "assignees", "lead_accepted_at", "progress_reports", "last_progress_at", "resolved_at",
    "resolved_via", "outcome", "court_reference", "resolved_by", "rejections", "closed_at",
    "stars", "repeat_count", "repeat_against", "refusals", "breaches", "urgings",
    "last_instrument", "last_urged_at", "escalated_to", "origin_case", "origin_tenant",
    "origin_direction", "linked_cases", "merged_into", "division", "lat", "lon", "last_at",
    "version",
)

DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    case_id uuid PRIMARY KEY,
    tenant text COLLATE "C" NOT NULL,
    case_number text NOT NULL,
    channel text NOT NULL,
    category text NOT NULL,
    summary text NOT NULL,
    status text NOT NULL,
    is_open boolean NOT NULL,
    severity text,
    handling text,
    group_matter boolean NOT NULL,
    received_at timestamptz NOT NULL,
    round_started_at timestamptz NOT NULL,
    respond_by timestamptz,
    handle_by timestamptz,
    due_by timestamptz,
    due_kind text,
    next_step_at timestamptz,
    lead_kind text,
    lead_ref text,
    assignees text[] NOT NULL,
    lead_accepted_at timestamptz,
    progress_reports integer NOT NULL,
    last_progress_at timestamptz,
    resolved_at timestamptz,
    resolved_via uuid,
    outcome text,
    court_reference text,
    resolved_by text,
    rejections integer NOT NULL,
    closed_at timestamptz,
    stars smallint,
    repeat_count integer NOT NULL,
    repeat_against text,
    refusals jsonb NOT NULL,
    breaches jsonb NOT NULL,
    urgings integer NOT NULL,
    last_instrument text,
    last_urged_at timestamptz,
    escalated_to text,
    origin_case uuid,
    origin_tenant text COLLATE "C",
    origin_direction text,
    linked_cases uuid[] NOT NULL,
    merged_into uuid,
    division text COLLATE "C" NOT NULL,
    lat float8,
    lon float8,
    last_at timestamptz NOT NULL,
    version bigint NOT NULL
)"""

#: (name suffix, definition) of each index; the queries in ``projections.queries``
#: are written to use them (tenant equality or a prefix range under "C" collation).
INDEXES = (
    ("received", "(tenant, received_at DESC, case_id DESC)"),
    ("due", "(tenant, due_by, case_id) WHERE due_by IS NOT NULL"),
    # A subtree's overdue and due-soon lists in deadline order: walked in order and
    # filtered by the subtree's prefix inside the index (its last column), the first
    # page is found without a sort and without visiting other subtrees' rows.
    ("due_scope", "(due_by, case_id, tenant) WHERE due_by IS NOT NULL"),
    ("inbox", "(tenant, received_at, case_id) WHERE status IN ('received', 'triaged') "
              "OR (status = 'dispatched' AND origin_direction = 'up')"),
    ("board", "(tenant, lead_ref, received_at, case_id) "
              "WHERE status IN ('dispatched', 'accepted')"),
)
# No index on assignees or origins: a filter on them runs inside a scope's rows, and
# every index is paid for at each of the many rewrites of a row.


class PersonalUnread(Transcoding):
    """A personal field left as ciphertext: the view never reads a party, so it
    never decrypts one; the decoded value is an unreadable ``Personal(None)``."""

    type = Personal
    name = "personal"

    def encode(self, obj: Personal) -> str:
        raise TypeError("the case view only reads events")

    def decode(self, data: str) -> Personal:
        return Personal(None)


def view_transcoder() -> JSONTranscoder:
    """The application's transcodings, with personal fields left unread."""
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        transcoder.register(transcoding)
    register_domain_transcodings(transcoder)
    transcoder.register(PersonalUnread())
    return transcoder


@dataclass
class Fold:
    """A case as its events so far left it, and what the view derives on the way."""

    case: Case
    lead_accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_via: UUID | None = None
    breaches: dict[str, int] = field(default_factory=dict)
    breached: set[tuple[datetime, str]] = field(default_factory=set)

    @classmethod
    def start(cls, event: Any) -> Fold:
        case = cast(CanMutateAggregate[UUID], event).mutate(None)
        assert isinstance(case, Case)
        return cls(case)

    def apply(self, event: Any, calendar: WorkingCalendar) -> None:
        """Evolve the case by one event (never its first), noting a deadline the
        event came after."""
        case = self.case
        at: datetime | None = getattr(event, "at", None)
        due = due_at(case, calendar)
        if at is not None and due is not None and at > due[0] and due not in self.breached:
            self.breached.add(due)
            lead = case.lead
            unit = lead.assignee.ref if lead else case.tenant
            self.breaches[unit] = self.breaches.get(unit, 0) + 1
        cast(CanMutateAggregate[UUID], event).mutate(case)
        kind = type(event).__name__
        if kind == "Reopened":
            self.lead_accepted_at = None
            self.breaches, self.breached = {}, set()
        elif kind == "Accepted" and event.lead and self.lead_accepted_at is None:
            self.lead_accepted_at = event.at
        if case.outcome is None:
            self.resolved_at = self.resolved_via = None
        elif kind == "Resolved":
            self.resolved_at, self.resolved_via = event.at, None
        elif kind == "LinkedOutcomeNoted" and event.resolves:
            self.resolved_at, self.resolved_via = event.at, event.linked_case

    def record(self, calendar: WorkingCalendar) -> dict[str, Any]:
        """The case's row, as JSON values (times ISO 8601 with their offset)."""
        c = self.case
        lead = c.lead
        due = due_at(c, calendar)
        last = c.urgings[-1] if c.urgings else None
        origin = c.origin
        return {
            "case_id": str(c.id), "tenant": c.tenant, "case_number": c.case_number,
            "channel": c.channel.value, "category": c.category, "summary": c.summary,
            "status": c.status.value, "is_open": c.is_open, "severity": _value(c.severity),
            "handling": _value(c.handling), "group_matter": c.group_matter,
            "received_at": _time(c.received_at), "round_started_at": _time(c.round_started_at),
            "respond_by": _time(c.respond_by.by if c.respond_by else None),
            "handle_by": _time(c.handle_by.by if c.handle_by else None),
            "due_by": _time(due[0] if due else None),
            "due_kind": DUE_KINDS.get(due[1], due[1]) if due else None,
            "next_step_at": _time(next_step_at(c, calendar)),
            "lead_kind": lead.assignee.kind.value if lead else None,
            "lead_ref": lead.assignee.ref if lead else None,
            "assignees": [a.assignee.ref for a in c.assignments],
            "lead_accepted_at": _time(self.lead_accepted_at),
            "progress_reports": c.progress_reports,
            "last_progress_at": _time(c.last_progress_at),
            "resolved_at": _time(self.resolved_at),
            "resolved_via": str(self.resolved_via) if self.resolved_via else None,
            "outcome": _value(c.outcome), "court_reference": c.court_reference,
            "resolved_by": c.resolved_by_unit, "rejections": c.rejections,
            "closed_at": _time(c.closed_at), "stars": c.stars, "repeat_count": c.repeat_count,
            "repeat_against": c.repeat_against, "refusals": c.refusals,
            "breaches": self.breaches, "urgings": len(c.urgings),
            "last_instrument": last.instrument.value if last else None,
            "last_urged_at": _time(last.at if last else None),
            "escalated_to": c.escalated_to,
            "origin_case": str(origin.case_id) if origin else None,
            "origin_tenant": origin.tenant if origin else None,
            "origin_direction": origin.direction.value if origin else None,
            "linked_cases": [str(k.case_id) for k in c.links],
            "merged_into": str(c.merged_into) if c.merged_into else None,
            "division": c.place.division, "lat": c.place.lat, "lon": c.place.lon,
            "last_at": _time(c.last_at), "version": c.version,
        }


def _time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _value(member: Any) -> str | None:
    return None if member is None else str(member.value)


class CaseView(Projector):
    """Writes ``case_view`` in the log group's schema (a subclass may name another
    table, e.g. to compare a second copy)."""

    name = "case_view"
    table = "case_view"
    topics = CASE_TOPICS
    tables: Sequence[str] = ("case_view",)
    version = 2  # 2: deadline-ordered index (due_order, now due_scope: no rebuild needed)
    #: Folds kept between batches; a miss costs one read of the case's events.
    cache_size: ClassVar[int] = 20_000
    #: Notifications per transaction when following (``batch``) and when rebuilding
    #: (``rebuild_batch``): a case touched in a batch is written once in it, so a
    #: rebuild's larger batches write each case fewer times.
    batch: int = 4 * BATCH
    rebuild_batch: int = 40 * BATCH

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.tables = (cls.table,)

    def __init__(self, tenants: Tenants, city: str) -> None:
        super().__init__(tenants, city)
        factory = Factory({**tenants.env, LOG_GROUP: city})
        self.mapper: Mapper[UUID] = factory.mapper(transcoder=view_transcoder())
        self.folds: OrderedDict[UUID, Fold] = OrderedDict()  # least recently used first
        self.hits = self.misses = 0
        qualified = Identifier(self.schema, self.table)
        columns = SQL(", ").join(Identifier(c) for c in COLUMNS)
        # One statement a batch: the rows travel as one JSON array of records.
        self.upsert = SQL(
            "INSERT INTO {0} ({1}) SELECT {1} FROM json_populate_recordset(NULL::{0}, %s) "
            "ON CONFLICT (case_id) DO UPDATE SET {2} WHERE {0}.version < excluded.version"
        ).format(qualified, columns, SQL(", ").join(
            SQL("{0} = excluded.{0}").format(Identifier(c)) for c in COLUMNS[1:]))

    def run_once(self, limit: int | None = None) -> int:
        return super().run_once(limit or self.batch)

    def rebuild(self) -> int:
        following, self.batch = self.batch, self.rebuild_batch
        try:
            return super().rebuild()
        finally:
            self.batch = following

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        qualified = Identifier(self.schema, self.table)
        curs.execute(SQL(DDL).format(table=qualified))
        # replaced by due_scope (same order, the tenant inside the index)
        curs.execute(SQL("DROP INDEX IF EXISTS {0}").format(
            Identifier(self.schema, f"{self.table}_due_order")))
        for suffix, definition in INDEXES:
            curs.execute(Composed([
                SQL("CREATE INDEX IF NOT EXISTS {0} ON {1} ").format(
                    Identifier(f"{self.table}_{suffix}"), qualified),
                SQL(definition),
            ]))

    def clear(self, curs: Cursor[DictRow]) -> None:
        """Empty the table (TRUNCATE: no dead rows left for the rebuild to wade through;
        readers wait only for this short transaction)."""
        curs.execute(SQL("TRUNCATE {0}").format(Identifier(self.schema, self.table)))
        self.folds.clear()

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        calendar = self.tenants.calendar()
        touched: dict[UUID, Fold] = {}
        decode = self.mapper.to_domain_event
        for n in notifications:
            case_id = n.originator_id
            assert isinstance(case_id, UUID)
            version = n.originator_version - 1
            fold = touched.get(case_id)
            if fold is None or fold.case.version != version:
                fold = self._fold_at(case_id, version, calendar)
            event = decode(n)
            if fold is None:
                fold = Fold.start(event)
            else:
                fold.apply(event, calendar)
            touched[case_id] = fold
        for case_id, fold in touched.items():
            self._remember(case_id, fold)
        records = [fold.record(calendar) for fold in touched.values()]
        curs.execute(self.upsert, (json.dumps(records, ensure_ascii=False),))

    def _fold_at(self, case_id: UUID, version: int, calendar: WorkingCalendar) -> Fold | None:
        """The fold of the case at ``version`` (None before its first event)."""
        if version == 0:
            return None
        fold = self.folds.get(case_id)
        if fold is not None and fold.case.version == version:
            self.hits += 1
            return fold
        self.misses += 1
        stored = self.reader.select_events(case_id, lte=version)
        return self.replay(stored, calendar)

    def replay(self, stored: Sequence[StoredEvent], calendar: WorkingCalendar) -> Fold:
        """Fold a case's stored events from its first."""
        events = [self.mapper.to_domain_event(s) for s in stored]
        fold = Fold.start(events[0])
        for event in events[1:]:
            fold.apply(event, calendar)
        return fold

    def _remember(self, case_id: UUID, fold: Fold) -> None:
        self.folds[case_id] = fold
        self.folds.move_to_end(case_id)
        while len(self.folds) > self.cache_size:
            self.folds.popitem(last=False)


__all__ = ["COLUMNS", "CaseView", "Fold", "PersonalUnread", "view_transcoder"]
