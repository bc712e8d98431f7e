"""Callbacks (回访): a reproducible random sample of closed cases, and their results.

**The sample.** The population is every case of a subtree whose party's loop is
closed now and closed (business time of its current closure) in ``[start,
end)`` — the same cases the inspection reads. The seed is

    SHA-256("zongzhi-callback-sample/1\\n" scope "\\n" start "\\n" end "\\n" salt)

with ``start``/``end`` in UTC ISO 8601 (so the same instants written in another
zone give the same seed). Each case is ranked by SHA-256(seed || the case id's
16 bytes) and the ``size`` lowest ranks are the sample. Anyone holding the
case ids can recompute it without this code; a second inspector with the same
inputs gets the same cases, another period or salt a different draw; a case
closed late into the period does not reshuffle the others' ranks.

**A result** is a ``CallbackRecorded`` event on the case, in the case's own
center (:func:`record_callback`). The :class:`CallbackResults` projector keeps
one row per callback in ``lg_<city>.callback_results``; the repeat-complaint
figure counts a case with a dissatisfied callback as a repeat complaint
(docs/kpis.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from audit.chain import AuditError
from audit.inspection import _mapper, _period, closed_streams
from domain import Case, Status, is_within, tenant_of
from domain.case import CallbackResult
from projections.follower import Projector
from tenants.center import CaseNotFound
from tenants.service import Tenants

__all__ = [
    "CALLBACK_TOPIC",
    "SEED_FORMAT",
    "CallbackResults",
    "CallbackSample",
    "SampledCase",
    "record_callback",
    "sample",
    "sample_seed",
]

SEED_FORMAT = "zongzhi-callback-sample/1"
CALLBACK_TOPIC = get_topic(getattr(Case, "CallbackRecorded"))  # noqa: B009 (made by @event)
MAX_SAMPLE = 5000


@dataclass(frozen=True)
class SampledCase:
    case_id: UUID
    case_number: str
    tenant: str
    closed_at: datetime
    rank: str  # hex SHA-256(seed || case id): the sample is the lowest ranks
    callbacks: int  # callbacks already recorded since its current closure
    satisfied: bool | None  # the last such callback's answer, if the party was reached


@dataclass(frozen=True)
class CallbackSample:
    scope: str
    start: datetime
    end: datetime
    salt: str
    seed: str  # hex
    population: int  # closed cases in the scope and period
    cases: tuple[SampledCase, ...]  # in rank order


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def sample_seed(scope: str, start: datetime, end: datetime, salt: str) -> bytes:
    """The sample's seed (module docstring): the same inputs, the same seed."""
    text = "\n".join((SEED_FORMAT, scope, _utc(start), _utc(end), salt))
    return hashlib.sha256(text.encode()).digest()


def rank(seed: bytes, case_id: UUID) -> str:
    return hashlib.sha256(seed + case_id.bytes).hexdigest()


def sample(tenants: Tenants, scope: str, start: datetime, end: datetime, size: int,
           salt: str = "") -> CallbackSample:
    """``size`` closed cases of ``scope``'s subtree closed in ``[start, end)``,
    drawn reproducibly (all of them when fewer)."""
    _period(start, end)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SAMPLE:
        raise AuditError(f"a callback sample holds 1 to {MAX_SAMPLE} cases; got {size!r}")
    if not isinstance(salt, str):
        raise AuditError("a sample's salt is text (it may be empty)")
    seed = sample_seed(scope, start, end, salt)
    population: list[SampledCase] = []
    for events in closed_streams(tenants, scope):
        case: Any = None
        for e in events:
            case = e.mutate(case)
        if not isinstance(case, Case) or case.status is not Status.CLOSED \
                or case.closed_at is None or not start <= case.closed_at < end:
            continue
        since = [c for c in case.callbacks if c.closed_at == case.closed_at]
        population.append(SampledCase(
            case.id, case.case_number, case.tenant, case.closed_at, rank(seed, case.id),
            len(since), since[-1].satisfied if since else None))
    population.sort(key=lambda c: c.rank)
    return CallbackSample(scope, start, end, salt, seed.hex(), len(population),
                          tuple(population[:size]))


def record_callback(tenants: Tenants, case_id: UUID, result: CallbackResult,
                    satisfied: bool | None, note: str, by: str, at: datetime,
                    scope: str | None = None) -> Case:
    """Record a callback's result on a closed case, in the case's center.
    ``scope``: the subtree the caller may work in (a case outside it is refused)."""
    tenant = tenant_of(case_id) if isinstance(case_id, UUID) else None
    if tenant is None:
        raise CaseNotFound(f"{case_id!r} is not a case id")
    if scope is not None and not is_within(tenant, scope):
        raise AuditError(f"a callback is recorded only on a case inside the inspector's "
                         f"subtree {scope}; case {case_id} belongs to center {tenant}")
    app = tenants.center(tenant)
    case = app.get_case(case_id)
    case.record_callback(result, satisfied, note, by, at)
    return app.save_case(case)


class CallbackResults(Projector):
    """One row per recorded callback, for the repeat-complaint figure."""

    name = "callback_results"
    topics: Sequence[str] = (CALLBACK_TOPIC,)
    tables: Sequence[str] = ("callback_results",)
    version = 1

    def __init__(self, tenants: Tenants, city: str) -> None:
        super().__init__(tenants, city)
        self.mapper: Mapper[UUID] = _mapper(tenants, city)
        self.table = Identifier(self.schema, "callback_results")

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        curs.execute(SQL(
            "CREATE TABLE IF NOT EXISTS {0} (case_id uuid NOT NULL, version bigint NOT NULL, "
            'tenant text COLLATE "C" NOT NULL, called_at timestamptz NOT NULL, '
            "called_by text NOT NULL, result text NOT NULL, satisfied boolean, "
            "PRIMARY KEY (case_id, version))").format(
                Identifier(self.schema, "callback_results")))

    def clear(self, curs: Cursor[DictRow]) -> None:
        curs.execute(SQL("DELETE FROM {0}").format(self.table))

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        for n in notifications:
            e: Any = self.mapper.to_domain_event(n)
            curs.execute(SQL(
                "INSERT INTO {0} VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (case_id, version) DO NOTHING").format(self.table),
                (e.originator_id, n.originator_version, tenant_of(e.originator_id),
                 e.at, e.by, str(CallbackResult(e.result).value), e.satisfied))
