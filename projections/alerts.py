"""The camera and alert views of a log group, and the alert precision KPI.

:class:`AlertViews` follows a city's log group (the :class:`Projector` pattern:
rows and position in one transaction, rebuildable from zero) and keeps

- ``camera_view``: one row per camera (center, ref, name, place, zones,
  retired, how many alerts are open);
- ``alert_view``: one row per alert (camera, zone, kind, model, confidence,
  status, repeats, when it was raised, who acknowledged and dispositioned it,
  when and why, the case it was confirmed into).

Each row is the aggregate as of the last of its events covered, loaded from
the event store at that version (as the case index does).

**Alert precision** (docs/kpis.md): confirmed / (confirmed + dismissed as
false), per camera and per model, over alerts dispositioned in a period;
alerts not yet dispositioned do not count. DOMAIN.md: "those dispositions *are*
the precision figure".
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier

from domain import Camera, CameraAlert, ValidationError, city_of, tenant_of, tier_of
from projections.follower import Projector
from projections.queries import fetch
from tenants.persistence import log_group_schema

__all__ = [
    "ALERT_TOPICS",
    "AlertRow",
    "AlertViews",
    "CameraRow",
    "Precision",
    "alert_precision",
    "alerts",
    "cameras",
]

ALERT_TOPICS = sorted(
    get_topic(v) for cls in (Camera, CameraAlert) for v in vars(cls).values()
    if isinstance(v, type) and issubclass(v, CanMutateAggregate)
)

CAMERA_COLUMNS = ("camera_id", "tenant", "ref", "name", "division", "address", "zones",
                  "retired_at", "registered_at", "open_alerts", "version")
ALERT_COLUMNS = ("alert_id", "tenant", "camera_id", "camera_ref", "zone", "kind", "model",
                 "confidence", "status", "repeats", "first_frame", "first_at", "last_frame",
                 "last_at", "episode_at", "raised_at", "acknowledged_by", "acknowledged_at",
                 "disposed_by", "disposed_at", "reason", "case_id", "case_created", "version")


class AlertViews(Projector):
    name = "alert_views"
    topics = ALERT_TOPICS
    tables = ("camera_view", "alert_view")
    version = 1

    def create_tables(self, curs: Cursor[DictRow]) -> None:
        schema = Identifier(self.schema)
        curs.execute(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.camera_view ("
            "camera_id uuid PRIMARY KEY, tenant text COLLATE \"C\" NOT NULL, "
            "ref text NOT NULL, name text NOT NULL, division text NOT NULL, "
            "address text NOT NULL, zones jsonb NOT NULL, retired_at timestamptz, "
            "registered_at timestamptz NOT NULL, open_alerts integer NOT NULL, "
            "version bigint NOT NULL)").format(schema))
        curs.execute(SQL("CREATE INDEX IF NOT EXISTS camera_view_tenant ON {0}.camera_view "
                         "(tenant, ref)").format(schema))
        curs.execute(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.alert_view ("
            "alert_id uuid PRIMARY KEY, tenant text COLLATE \"C\" NOT NULL, "
            "camera_id uuid NOT NULL, camera_ref text NOT NULL, zone text NOT NULL, "
            "kind text NOT NULL, model text NOT NULL, confidence float8 NOT NULL, "
            "status text NOT NULL, repeats integer NOT NULL, first_frame bigint NOT NULL, "
            "first_at timestamptz NOT NULL, last_frame bigint NOT NULL, "
            "last_at timestamptz NOT NULL, episode_at timestamptz NOT NULL, "
            "raised_at timestamptz NOT NULL, acknowledged_by text, "
            "acknowledged_at timestamptz, disposed_by text, disposed_at timestamptz, "
            "reason text, case_id uuid, case_created boolean NOT NULL, "
            "version bigint NOT NULL)").format(schema))
        curs.execute(SQL("CREATE INDEX IF NOT EXISTS alert_view_tenant ON {0}.alert_view "
                         "(tenant, raised_at DESC, alert_id DESC)").format(schema))
        curs.execute(SQL("CREATE INDEX IF NOT EXISTS alert_view_disposed ON {0}.alert_view "
                         "(tenant, disposed_at) WHERE disposed_at IS NOT NULL").format(schema))

    def clear(self, curs: Cursor[DictRow]) -> None:
        for table in self.tables:
            curs.execute(SQL("DELETE FROM {0}.{1}").format(Identifier(self.schema),
                                                           Identifier(table)))

    def project(self, curs: Cursor[DictRow], notifications: Sequence[Notification]) -> None:
        latest: dict[UUID, int] = {}
        for n in notifications:
            assert isinstance(n.originator_id, UUID)
            latest[n.originator_id] = max(latest.get(n.originator_id, 0), n.originator_version)
        cameras: list[tuple[Any, ...]] = []
        alerts: list[tuple[Any, ...]] = []
        for stream, version in latest.items():
            tenant = tenant_of(stream)
            assert tenant is not None
            item: object = self.tenants.center(tenant).repository.get(stream,
                                                                      version=version)
            if isinstance(item, Camera):
                cameras.append(_camera_row(item))
            elif isinstance(item, CameraAlert):
                alerts.append(_alert_row(item))
        for table, columns, rows in (("camera_view", CAMERA_COLUMNS, cameras),
                                     ("alert_view", ALERT_COLUMNS, alerts)):
            if rows:
                curs.executemany(_upsert(self.schema, table, columns), rows)


def _upsert(schema: str, table: str, columns: Sequence[str]) -> Composed:
    return SQL(
        "INSERT INTO {0}.{1} ({2}) VALUES ({3}) ON CONFLICT ({4}) DO UPDATE SET {5} "
        "WHERE {0}.{1}.version < excluded.version").format(
        Identifier(schema), Identifier(table),
        SQL(", ").join(Identifier(c) for c in columns),
        SQL(", ").join(SQL("%s") for _ in columns), Identifier(columns[0]),
        SQL(", ").join(SQL("{0} = excluded.{0}").format(Identifier(c)) for c in columns[1:]))


def _zones_json(camera: Camera) -> str:
    return json.dumps([
        {"name": z.name, "polygon": z.polygon,
         "rules": [{"kind": r.kind.value if hasattr(r.kind, "value") else r.kind,
                    "seconds": r.seconds, "people": r.people, "after": r.after,
                    "until": r.until} for r in z.rules]}
        for z in camera.zones], ensure_ascii=False)


def _camera_row(c: Camera) -> tuple[Any, ...]:
    return (c.id, c.tenant, c.ref, c.name, c.place.division, c.place.address, _zones_json(c),
            c.retired_at, c.registered_at, len(c.open_alerts), c.version)


def _alert_row(a: CameraAlert) -> tuple[Any, ...]:
    return (a.id, a.tenant, a.camera_id, a.camera_ref, a.zone, a.kind.value, a.model,
            a.confidence, a.status.value, a.repeats, a.first_frame, a.first_at, a.last_frame,
            a.last_at, a.episode_at, a.raised_at, a.acknowledged_by, a.acknowledged_at,
            a.disposed_by, a.disposed_at, a.reason, a.case_id, a.case_created, a.version)


# -- queries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraRow:
    camera_id: UUID
    tenant: str
    ref: str
    name: str
    division: str
    address: str
    zones: list[dict[str, Any]]
    retired_at: datetime | None
    registered_at: datetime
    open_alerts: int
    version: int


@dataclass(frozen=True)
class AlertRow:
    alert_id: UUID
    tenant: str
    camera_id: UUID
    camera_ref: str
    zone: str
    kind: str
    model: str
    confidence: float
    status: str
    repeats: int
    first_frame: int
    first_at: datetime
    last_frame: int
    last_at: datetime
    episode_at: datetime
    raised_at: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    disposed_by: str | None
    disposed_at: datetime | None
    reason: str | None
    case_id: UUID | None
    case_created: bool
    version: int


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    end_cursor: str | None
    has_next_page: bool


def _table(scope: str, table: str) -> Identifier:
    tier_of(scope)
    return Identifier(log_group_schema(city_of(scope)), table)


def _scope_where(scope: str, subtree: bool) -> tuple[Composable, list[Any]]:
    if subtree:
        return SQL("tenant >= %s AND tenant < %s"), [scope, scope + "~"]
    return SQL("tenant = %s"), [scope]


def _cursor(kind: str, key: list[str]) -> str:
    raw = json.dumps([kind, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _uncursor(kind: str, cursor: str, size: int) -> list[str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, list) or len(data) != size + 1 or data[0] != kind or \
                not all(isinstance(v, str) for v in data[1:]):
            raise ValueError(cursor)
        return data[1:]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise ValidationError(f"not a cursor of the {kind} list: {cursor!r}") from e


def cameras(tenants: Any, scope: str, *, subtree: bool = False, include_retired: bool = False,
            first: int = 50, after: str | None = None) -> Page:
    """The cameras of a center (and its subtree), by center and ref."""
    where, params = _scope_where(scope, subtree)
    parts: list[Composable] = [SQL("SELECT * FROM {0} WHERE ").format(
        _table(scope, "camera_view")), where]
    if not include_retired:
        parts.append(SQL(" AND retired_at IS NULL"))
    if after is not None:
        tenant, ref = _uncursor("cameras", after, 2)
        parts.append(SQL(" AND (tenant, ref) > (%s, %s)"))
        params += [tenant, ref]
    parts.append(SQL(" ORDER BY tenant, ref LIMIT %s"))
    params.append(first + 1)
    rows = fetch(tenants, scope, Composed(parts), params)
    found = [CameraRow(**{c: r[c] for c in CAMERA_COLUMNS}) for r in rows[:first]]
    end = _cursor("cameras", [found[-1].tenant, found[-1].ref]) if found else None
    return Page(found, end, len(rows) > first)


def alerts(tenants: Any, scope: str, *, subtree: bool = False,
           statuses: Sequence[str] = (), kinds: Sequence[str] = (),
           camera_id: UUID | None = None, first: int = 50, after: str | None = None) -> Page:
    """A center's (and its subtree's) alerts, newest first."""
    where, params = _scope_where(scope, subtree)
    parts: list[Composable] = [SQL("SELECT * FROM {0} WHERE ").format(
        _table(scope, "alert_view")), where]
    if statuses:
        parts.append(SQL(" AND status = ANY(%s)"))
        params.append(list(statuses))
    if kinds:
        parts.append(SQL(" AND kind = ANY(%s)"))
        params.append(list(kinds))
    if camera_id is not None:
        parts.append(SQL(" AND camera_id = %s"))
        params.append(camera_id)
    if after is not None:
        raised, alert = _uncursor("alerts", after, 2)
        try:
            key = (datetime.fromisoformat(raised), UUID(alert))
        except ValueError as e:
            raise ValidationError(f"not a cursor of the alerts list: {after!r}") from e
        parts.append(SQL(" AND (raised_at, alert_id) < (%s, %s)"))
        params += list(key)
    parts.append(SQL(" ORDER BY raised_at DESC, alert_id DESC LIMIT %s"))
    params.append(first + 1)
    rows = fetch(tenants, scope, Composed(parts), params)
    found = [AlertRow(**{c: r[c] for c in ALERT_COLUMNS}) for r in rows[:first]]
    end = _cursor("alerts", [found[-1].raised_at.isoformat(), str(found[-1].alert_id)]) \
        if found else None
    return Page(found, end, len(rows) > first)


@dataclass(frozen=True)
class Precision:
    """Confirmed / (confirmed + dismissed) of one camera or model; None without any."""

    key: str  # the camera's id, or the model's name
    label: str  # the camera's center and ref, or the model's name
    confirmed: int
    dismissed: int

    @property
    def precision(self) -> float | None:
        total = self.confirmed + self.dismissed
        return self.confirmed / total if total else None


def alert_precision(tenants: Any, scope: str, *, subtree: bool = True,
                    start: datetime | None = None, end: datetime | None = None
                    ) -> tuple[Precision, list[Precision], list[Precision]]:
    """The precision of alerts dispositioned in ``[start, end)``: overall, per camera,
    per model."""
    where, params = _scope_where(scope, subtree)
    parts: list[Composable] = [SQL(
        "SELECT camera_id, tenant, camera_ref, model, "
        "count(*) FILTER (WHERE status = 'confirmed') AS confirmed, "
        "count(*) FILTER (WHERE status = 'dismissed') AS dismissed "
        "FROM {0} WHERE disposed_at IS NOT NULL AND ").format(_table(scope, "alert_view")),
        where]
    if start is not None:
        parts.append(SQL(" AND disposed_at >= %s"))
        params.append(start)
    if end is not None:
        parts.append(SQL(" AND disposed_at < %s"))
        params.append(end)
    parts.append(SQL(" GROUP BY camera_id, tenant, camera_ref, model"))
    rows = fetch(tenants, scope, Composed(parts), params)
    per_camera: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    per_model: dict[str, list[int]] = {}
    for r in rows:
        key = str(r["camera_id"])
        labels[key] = f"{r['tenant']}/{r['camera_ref']}"
        for bucket, k in ((per_camera, key), (per_model, r["model"])):
            counts = bucket.setdefault(k, [0, 0])
            counts[0] += int(r["confirmed"])
            counts[1] += int(r["dismissed"])
    total = Precision(scope, scope, sum(c for c, _ in per_camera.values()),
                      sum(d for _, d in per_camera.values()))
    return (total,
            [Precision(k, labels[k], c, d) for k, (c, d) in sorted(per_camera.items(),
                                                                   key=lambda i: labels[i[0]])],
            [Precision(k, k, c, d) for k, (c, d) in sorted(per_model.items())])
