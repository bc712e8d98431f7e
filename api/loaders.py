"""Batched reads for one GraphQL request (strawberry ``DataLoader``s).

Nested lists ask for many things of the same kind at once: the origin and the
linked cases of every case on a page, the figures of every child of a center.
Each loader collects the keys one resolver pass asks for and answers them with
one query per city (log group), so a page of 100 cases costs as many queries
as a page of one:

- :meth:`Loaders.case` — the case aggregate *and* its events (for the
  timeline), read from the event store: one ``SELECT`` per city for all the
  ids, then decoded with each center's own mapper (its data key);
- :meth:`Loaders.row` — the case view's row (``projections.queries.cases_by_ids``);
- :meth:`Loaders.figures` — a center's figures for a period
  (``projections.queries.figures_for``, one query per city and period);
- :meth:`Loaders.children` — the centers one tier below each center asked
  for, from the registry (one pass over it for all of them).

Loaders live for one request (one operation over a websocket); ``batches``
counts the batch calls, for tests and traces.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate
from eventsourcing.persistence import StoredEvent
from psycopg.sql import SQL, Identifier
from starlette.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader

from domain import Case, city_of, tenant_of
from projections.queries import CaseRow, Figures, Period, cases_by_ids, figures_for
from tenants.persistence import log_group_schema
from tenants.registry import CenterInfo
from tenants.service import Tenants

__all__ = ["CaseRecord", "FiguresKey", "Loaders", "load_case_records"]


@dataclass(frozen=True)
class CaseRecord:
    """A case as its events make it, and those events (oldest first)."""

    case: Case
    events: tuple[Any, ...]


@dataclass(frozen=True)
class FiguresKey:
    code: str
    start: datetime | None
    end: datetime | None
    subtree: bool


def load_case_records(tenants: Tenants, ids: Sequence[UUID]) -> list[CaseRecord | None]:
    """The cases of ``ids`` in the order given (None where there is none): one
    query per city, each event decoded by its own center's mapper."""
    by_city: dict[str, set[tuple[UUID, str]]] = defaultdict(set)
    for case_id in ids:
        tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
        if tenant is not None:
            by_city[city_of(tenant)].add((case_id, tenant))
    found: dict[UUID, CaseRecord] = {}
    for city, wanted in by_city.items():
        pairs = sorted(wanted)
        statement = SQL(
            "SELECT e.originator_id, e.originator_version, e.topic, e.state, e.tenant "
            "FROM {0}.events e JOIN unnest(%s::uuid[], %s::text[]) AS w(id, tenant) "
            "ON e.originator_id = w.id AND e.tenant = w.tenant "
            "ORDER BY e.originator_id, e.originator_version").format(
            Identifier(log_group_schema(city)))
        with tenants.datastore_for(city).get_connection() as conn:
            rows = conn.execute(statement, ([p[0] for p in pairs],
                                            [p[1] for p in pairs])).fetchall()
        streams: dict[UUID, list[Any]] = defaultdict(list)
        for r in rows:
            app = tenants.center(r["tenant"])
            streams[r["originator_id"]].append(app.mapper.to_domain_event(StoredEvent(
                originator_id=r["originator_id"], originator_version=r["originator_version"],
                topic=r["topic"], state=bytes(r["state"]))))
        for case_id, events in streams.items():
            aggregate = project_aggregate(None, events)
            if isinstance(aggregate, Case):
                found[case_id] = CaseRecord(aggregate, tuple(events))
    return [found.get(case_id) for case_id in ids]


class Loaders:
    """The request's loaders; ``batches`` counts batch calls by loader."""

    def __init__(self, tenants: Tenants, now: datetime) -> None:
        self.tenants = tenants
        self.now = now
        self.batches: Counter[str] = Counter()
        self.case: DataLoader[UUID, CaseRecord | None] = DataLoader(self._cases)
        self.row: DataLoader[UUID, CaseRow | None] = DataLoader(self._rows)
        self.figures: DataLoader[FiguresKey, Figures] = DataLoader(self._figures)
        self.children: DataLoader[str, list[CenterInfo]] = DataLoader(self._children)

    async def _cases(self, ids: list[UUID]) -> list[CaseRecord | None]:
        self.batches["case"] += 1
        return await run_in_threadpool(load_case_records, self.tenants, ids)

    async def _rows(self, ids: list[UUID]) -> list[CaseRow | None]:
        self.batches["row"] += 1
        return await run_in_threadpool(cases_by_ids, self.tenants, ids)

    async def _children(self, codes: list[str]) -> list[list[CenterInfo]]:
        self.batches["children"] += 1

        registry = self.tenants.registry
        held = [registry.cached_children(code) for code in codes]  # no I/O, no thread
        if all(h is not None for h in held):
            return [h for h in held if h is not None]
        return await run_in_threadpool(lambda: [registry.children(code) for code in codes])

    async def _figures(self, keys: list[FiguresKey]) -> list[Figures]:
        self.batches["figures"] += 1

        def work() -> list[Figures]:
            groups: dict[tuple[datetime | None, datetime | None, bool], list[str]] = \
                defaultdict(list)
            for key in keys:
                groups[(key.start, key.end, key.subtree)].append(key.code)
            answers: dict[FiguresKey, Figures] = {}
            for (start, end, subtree), codes in groups.items():
                figures = figures_for(self.tenants, codes, self.now,
                                      period=Period(start, end), subtree=subtree)
                for code in codes:
                    answers[FiguresKey(code, start, end, subtree)] = figures[code]
            return [answers[key] for key in keys]

        return await run_in_threadpool(work)

    def forget(self, case_id: UUID) -> None:
        """Drop what this request read of a case (after a command changed it)."""
        for loader in (self.case, self.row):
            with contextlib.suppress(KeyError):  # not read in this request
                loader.clear(case_id)
