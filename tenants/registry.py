"""The tenant registry: an event-sourced list of centers, and the calendar.

Its events live in their own log group (``lg_registry``). The ``centers``
table beside them is written in the same transaction as the events that
change it, so a center is visible exactly when its registration is recorded,
and a crash mid-import leaves every center either fully registered or absent.
``rebuild_centers()`` recomputes the table from the events alone.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder, StoredEvent
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from domain import Tier, WorkingCalendar, city_of
from domain.registry import CalendarYear, Center
from tenants.calendar import Schedule, bundled_calendar
from tenants.divisions import read_divisions
from tenants.persistence import TenantRecorder
from tenants.transcodings import register_domain_transcodings

REGISTRY = "registry"
#: Seconds a process trusts its copy of the centers before reading them again: a
#: center retired (or renamed) by another process is seen within this time.
REFRESH_AFTER = 30.0
BATCH = 500  # larger batches stalled psycopg pipeline mode here (see docs/decisions.md)
T = TypeVar("T")


class UnknownTenant(LookupError):
    """No center is registered under this code."""


@dataclass(frozen=True)
class CenterInfo:
    code: str
    name: str
    tier: Tier
    parent: str | None
    retired: bool
    key_shredded: bool


@dataclass
class ImportReport:
    registered: int = 0
    renamed: int = 0
    retired: int = 0
    reinstated: int = 0
    unchanged: int = 0
    cities: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.registered} registered, {self.renamed} renamed, {self.retired} retired, "
                f"{self.reinstated} reinstated, {self.unchanged} unchanged")


class RegistryRecorder(TenantRecorder):
    """Writes the ``centers`` rows passed to ``save(..., centers=[...])`` in
    the same transaction as the registry's events."""

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.centers_table = SQL("{0}.centers").format(Identifier(self.datastore.schema))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {0} (code text PRIMARY KEY, name text NOT NULL, "
            "tier text NOT NULL, parent text, retired boolean NOT NULL, "
            "key_shredded boolean NOT NULL)").format(self.centers_table))

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        rows: list[CenterInfo] = kwargs.get("centers", [])
        if rows:  # one statement: a long executemany stalls psycopg's pipeline
            curs.execute(SQL(
                "INSERT INTO {0} SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::boolean[], %s::boolean[]) ON CONFLICT (code) DO UPDATE "
                "SET name = excluded.name, tier = excluded.tier, parent = excluded.parent, "
                "retired = excluded.retired, key_shredded = excluded.key_shredded"
            ).format(self.centers_table), (
                [c.code for c in rows], [c.name for c in rows], [c.tier.value for c in rows],
                [c.parent for c in rows], [c.retired for c in rows],
                [c.key_shredded for c in rows]))


def _info(center: Center) -> CenterInfo:
    return CenterInfo(center.code, center.name, center.tier, center.parent, center.retired,
                      center.key_shredded)


def _row_info(r: dict[str, Any]) -> CenterInfo:
    return CenterInfo(r["code"], r["name"], Tier(r["tier"]), r["parent"], r["retired"],
                      r["key_shredded"])


class Registry(Application[UUID]):
    """Centers (tenants) by division code, and the loaded calendar years."""

    name = "Registry"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__({**env, "ZONGZHI_TENANT": REGISTRY, "ZONGZHI_LOG_GROUP": REGISTRY,
                          "APPLICATION_RECORDER_TOPIC": "tenants.registry:RegistryRecorder"})
        self._lock = threading.Lock()
        self._centers: dict[str, CenterInfo] | None = None
        self._loaded_at = 0.0  # time.monotonic() of the last full read
        self._ordered: list[CenterInfo] | None = None  # by code, derived from _centers
        self._children: dict[str | None, list[CenterInfo]] | None = None
        self._calendar: WorkingCalendar | None = None

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)

    def save_centers(self, centers: Sequence[Center]) -> None:
        self.save(*centers, centers=[_info(c) for c in centers])
        with self._lock:
            if self._centers is not None:
                self._centers.update((c.code, _info(c)) for c in centers)
                self._ordered = self._children = None

    # -- lookups -----------------------------------------------------------

    def _load(self) -> dict[str, CenterInfo]:
        """Every center, read again once ``REFRESH_AFTER`` has passed: a center
        another process retired or renamed is seen within that time."""
        with self._lock:
            if self._centers is None or time.monotonic() - self._loaded_at > REFRESH_AFTER:
                store = self.recorder
                assert isinstance(store, RegistryRecorder)
                with store.datastore.get_connection() as conn:
                    rows = conn.execute(SQL("SELECT * FROM {0}").format(
                        store.centers_table)).fetchall()
                self._centers = {r["code"]: _row_info(r) for r in rows}
                self._loaded_at = time.monotonic()
                self._ordered = self._children = None
            return self._centers

    def refresh(self) -> None:
        with self._lock:
            self._centers = None
            self._ordered = self._children = None
            self._calendar = None

    def cached(self, code: str) -> CenterInfo | None:
        """The center as this process holds it, when saying so needs no I/O: the
        table is loaded, not due for a refresh, and no other thread is reading it
        again. ``None`` otherwise, or for a code not held: ask :meth:`get`, which
        may read the database. For an event loop, which must not block."""
        return self._without_io(lambda centers: centers.get(code))

    def cached_children(self, code: str) -> list[CenterInfo] | None:
        """:meth:`children` when, as for :meth:`cached`, that needs no I/O (and the
        index of children is built); ``None`` otherwise: ask :meth:`children`."""
        return self._without_io(lambda _: None if self._children is None
                                else list(self._children.get(code, ())))

    def _without_io(self, read: Callable[[dict[str, CenterInfo]], T | None]) -> T | None:
        """``read`` of the centers held, under the lock, if the lock is free at once
        and the table is loaded and fresh; else ``None``."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._centers is None or time.monotonic() - self._loaded_at > REFRESH_AFTER:
                return None
            return read(self._centers)
        finally:
            self._lock.release()

    def get(self, code: str) -> CenterInfo:
        centers = self._load()
        info = centers.get(code) or self._fetch(code)  # registered by another process?
        if info is None:
            raise UnknownTenant(f"no center is registered under code {code!r}")
        return info

    def _fetch(self, code: str) -> CenterInfo | None:
        store = self.recorder
        assert isinstance(store, RegistryRecorder)
        with store.datastore.get_connection() as conn:
            r = conn.execute(SQL("SELECT * FROM {0} WHERE code = %s").format(
                store.centers_table), (code,)).fetchone()
        if r is None:
            return None
        info = _row_info(r)
        with self._lock:
            if self._centers is not None:
                self._centers[code] = info
                self._ordered = self._children = None
        return info

    def all(self) -> list[CenterInfo]:
        centers = self._load()
        with self._lock:
            if self._ordered is None:
                self._ordered = sorted(centers.values(), key=lambda c: c.code)
            return list(self._ordered)

    def children(self, code: str) -> list[CenterInfo]:
        ordered = self.all()
        with self._lock:
            if self._children is None:
                children: dict[str | None, list[CenterInfo]] = {}
                for c in ordered:
                    children.setdefault(c.parent, []).append(c)
                self._children = children
            return list(self._children.get(code, ()))

    def subtree(self, code: str) -> list[CenterInfo]:
        ordered = self.all()
        first = bisect.bisect_left(ordered, code, key=lambda c: c.code)
        return list(itertools.takewhile(lambda c: c.code.startswith(code),
                                        ordered[first:]))

    # -- import ------------------------------------------------------------

    def import_divisions(self, directory: Path, scope: str | None, by: str,
                         at: datetime) -> ImportReport:
        """Register, rename, retire or reinstate centers to match the files.

        Idempotent: a second import of the same files records nothing.
        """
        current = self._load()
        wanted = read_divisions(directory, scope, known=set(current))
        report = ImportReport()
        changed: list[Center] = []
        for code, division in sorted(wanted.items()):
            info = current.get(code)
            if info is None:
                changed.append(Center.register(code, division.name, by, at))
                report.registered += 1
                continue
            if info.name == division.name and not info.retired:
                report.unchanged += 1
                continue
            center = self._center(code)
            if info.retired:
                center.reinstate(by, at)
                report.reinstated += 1
            if info.name != division.name:
                center.rename(division.name, by, at)
                report.renamed += 1
            changed.append(center)
        in_scope = [c for c in current.values() if scope is None or c.code.startswith(scope)]
        for info in in_scope:
            if info.code not in wanted and not info.retired:
                center = self._center(info.code)
                center.retire("absent from the division files", by, at)
                report.retired += 1
                changed.append(center)
        for start in range(0, len(changed), BATCH):
            self.save_centers(changed[start:start + BATCH])
        report.cities = sorted({city_of(code) for code in wanted})
        return report

    def _center(self, code: str) -> Center:
        center: Center = self.repository.get(Center.create_id(code))
        assert isinstance(center, Center)
        return center

    def retire(self, code: str, reason: str, by: str, at: datetime) -> None:
        """Retire one center (merged away, abolished) outside a division import."""
        center = self._center(self.get(code).code)
        center.retire(reason, by, at)
        self.save_centers([center])

    def record_key_shredded(self, code: str, reason: str, by: str, at: datetime) -> None:
        center = self._center(self.get(code).code)
        center.record_key_shredded(reason, by, at)
        self.save_centers([center])

    # -- calendar ----------------------------------------------------------

    def load_calendar_year(self, schedule: Schedule, by: str, at: datetime) -> CalendarYear:
        try:
            year: CalendarYear = self.repository.get(CalendarYear.create_id(schedule.year))
            assert isinstance(year, CalendarYear)
            year.revise(schedule.holidays, schedule.makeup_workdays, schedule.source, by, at)
        except AggregateNotFoundError:
            year = CalendarYear.load(schedule.year, schedule.holidays, schedule.makeup_workdays,
                                     schedule.source, by, at)
        self.save(year)
        with self._lock:
            self._calendar = None
        return year

    def loaded_years(self) -> list[CalendarYear]:
        topic = "domain.registry:CalendarYear.Loaded"
        ids = {UUID(str(n.originator_id)) for n in self.recorder.select_notifications(
            start=None, limit=10_000, topics=[topic])}
        years: list[CalendarYear] = [self.repository.get(i) for i in ids]
        return sorted((y for y in years if isinstance(y, CalendarYear)), key=lambda y: y.year)

    def calendar(self) -> WorkingCalendar:
        with self._lock:
            cached = self._calendar
        if cached is None:
            cached = bundled_calendar(
                Schedule(y.year, y.holidays, y.makeup_workdays, y.source)
                for y in self.loaded_years())
            with self._lock:
                self._calendar = cached
        return cached

    # -- rebuild -----------------------------------------------------------

    def rebuild_centers(self) -> int:
        """Recompute the centers table from the registry's events alone."""
        store = self.recorder
        assert isinstance(store, RegistryRecorder)
        topic = "domain.registry:Center.Registered"
        ids = [UUID(str(n.originator_id)) for n in store.select_notifications(
            start=None, limit=10_000_000, topics=[topic])]
        infos = [_info(c) for c in self._centers_by_id(ids)]
        with store.datastore.transaction(commit=True) as curs:
            curs.execute(SQL("TRUNCATE {0}").format(store.centers_table))
            for start in range(0, len(infos), BATCH):
                curs.executemany(SQL("INSERT INTO {0} VALUES (%s, %s, %s, %s, %s, %s)").format(
                    store.centers_table), [(c.code, c.name, c.tier.value, c.parent, c.retired,
                                            c.key_shredded) for c in infos[start:start + BATCH]])
        self.refresh()
        return len(infos)

    def _centers_by_id(self, ids: Iterable[UUID]) -> Iterable[Center]:
        for i in ids:
            center: Center = self.repository.get(i)
            assert isinstance(center, Center)
            yield center
