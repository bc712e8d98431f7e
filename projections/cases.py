"""The case index: one row per case of a log group, for intake and the clock.

It serves what must be found without replaying streams: the candidates for a
duplicate at intake (keyed hashes of the parties' phone and id numbers, the
category, the place, when it came in and whether it is closed) and the cases
the scheduler must look at (``next_step_at``, from the supervision policy).
Each row is the case as of the last event the projector has covered.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from domain import Case, tenant_of
from domain.supervision import next_step_at
from projections.follower import CASE_TOPICS, Projector

COLUMNS = (
    "case_id", "tenant", "case_number", "category", "status", "severity", "match_keys",
    "division", "lat", "lon", "received_at", "round_started_at", "closed_at", "resolved_by",
    "origin_case", "last_at", "next_step_at", "version",
)


class CaseIndex(Projector):
    name = "case_index"
    topics = CASE_TOPICS
    tables = ("case_index",)
    version = 2

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        schema = Identifier(self.schema)
        curs.execute(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.case_index ("
            "case_id uuid PRIMARY KEY, tenant text NOT NULL, case_number text NOT NULL, "
            "category text NOT NULL, status text NOT NULL, severity text, "
            "match_keys text[] NOT NULL, division text NOT NULL, lat float8, lon float8, "
            "received_at timestamptz NOT NULL, round_started_at timestamptz NOT NULL, "
            "closed_at timestamptz, resolved_by text, "
            "origin_case uuid, last_at timestamptz NOT NULL, next_step_at timestamptz, "
            "version bigint NOT NULL)").format(schema))
        curs.execute(SQL(
            "CREATE INDEX IF NOT EXISTS case_index_next_step ON {0}.case_index "
            "(next_step_at) WHERE next_step_at IS NOT NULL").format(schema))
        curs.execute(SQL(
            "CREATE INDEX IF NOT EXISTS case_index_match ON {0}.case_index "
            "USING gin (match_keys)").format(schema))

    def clear(self, curs: Cursor[DictRow]) -> None:
        curs.execute(SQL("DELETE FROM {0}.case_index").format(Identifier(self.schema)))

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        latest: dict[UUID, int] = {}
        for n in notifications:
            assert isinstance(n.originator_id, UUID)
            latest[n.originator_id] = max(latest.get(n.originator_id, 0), n.originator_version)
        calendar = self.tenants.calendar()
        rows = []
        for case_id, version in latest.items():
            tenant = tenant_of(case_id)
            assert tenant is not None
            case: Case = self.tenants.center(tenant).repository.get(case_id, version=version)
            rows.append(_row(case, next_step_at(case, calendar)))
        statement = SQL(
            "INSERT INTO {0}.case_index ({1}) VALUES ({2}) ON CONFLICT (case_id) DO UPDATE "
            "SET {3} WHERE {0}.case_index.version < excluded.version").format(
            Identifier(self.schema),
            SQL(", ").join(Identifier(c) for c in COLUMNS),
            SQL(", ").join(SQL("%s") for _ in COLUMNS),
            SQL(", ").join(SQL("{0} = excluded.{0}").format(Identifier(c)) for c in COLUMNS[1:]),
        )
        curs.executemany(statement, rows)


def _row(case: Case, step_at: datetime | None) -> tuple[Any, ...]:
    return (
        case.id, case.tenant, case.case_number, case.category, case.status.value,
        case.severity.value if case.severity else None, case.match_keys,
        case.place.division, case.place.lat, case.place.lon, case.received_at,
        case.round_started_at, case.closed_at, case.resolved_by_unit,
        case.origin.case_id if case.origin else None, case.last_at, step_at, case.version,
    )


__all__ = ["CaseIndex"]
