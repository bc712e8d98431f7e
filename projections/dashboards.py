"""Dashboards of the upper tiers: a center's KPIs and rollup, kept computed.

A county's KPIs aggregate every case of its subtree (110,000 of them in a
county of a 1,000,000-case city): hundreds of milliseconds to seconds of
server time each, far too much to pay on every screen refresh of every
dispatcher. So the dashboard of each city, county and township center is
computed ahead by the projection worker and stored as one row; a reader gets
that row, stamped with the instant it describes (``computed_at``) and the view
position it covers.

* **Exact, not estimated.** A snapshot is ``kpis(scope, computed_at)`` and
  ``rollup(scope, computed_at)`` over the case view at ``position``: the same
  figures, by the same definitions (docs/kpis.md), as a live query then.
* **Bounded staleness.** :func:`refresh` recomputes a city's snapshots when its
  case view moved, or when they are half ``DEFAULT_MAX_AGE`` old (what is
  overdue changes with the clock alone), at most once every ``every`` (the
  projection worker calls it, default 30 s). :func:`dashboard` serves a snapshot no older
  than ``max_age`` and covering no more than the view has (a rebuilt view
  drops it); otherwise it computes live and stores the result.
* **Villages are computed live**: a village's subtree is itself, a few hundred
  rows, cheaper to aggregate than to keep.
* A snapshot table is a cache: dropping it loses nothing (``rebuild`` clears it).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import logging
import threading
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from psycopg.sql import SQL, Identifier

from domain import Tier, city_of, tier_of
from projections.kpis import Kpis, kpis
from projections.queries import PROJECTOR, Rollup, fetch, rollup, view_position
from tenants.persistence import log_group_schema
from tenants.service import Tenants
from tenants.supervision import pause as wait

log = logging.getLogger(__name__)

TABLE = "dashboards"
#: How old a snapshot :func:`dashboard` still serves, by default.
DEFAULT_MAX_AGE = timedelta(seconds=120)
#: How often the projection worker refreshes a city's snapshots, at most.
REFRESH_EVERY = timedelta(seconds=30)
KEPT_TIERS = (Tier.CITY, Tier.COUNTY, Tier.TOWNSHIP)

DDL = """
CREATE TABLE IF NOT EXISTS {0} (
    scope text COLLATE "C" PRIMARY KEY,
    computed_at timestamptz NOT NULL,
    position bigint NOT NULL,
    body jsonb NOT NULL
)"""


@dataclass(frozen=True)
class Dashboard:
    """A center's subtree KPIs and rollup, all time, as they stood at ``computed_at``
    with the case view at ``position``."""

    scope: str
    computed_at: datetime
    position: int
    kpis: Kpis
    rollup: Rollup
    live: bool  # computed for this request rather than read from a snapshot


def compute(tenants: Tenants, scope: str, now: datetime) -> Dashboard:
    """The dashboard of ``scope`` computed now from the case view."""
    position, _ = view_position(tenants, scope)
    return Dashboard(scope, now, position, kpis(tenants, scope, now), rollup(tenants, scope, now),
                     live=True)


def dashboard(tenants: Tenants, scope: str, now: datetime, *,
              max_age: timedelta = DEFAULT_MAX_AGE) -> Dashboard:
    """The dashboard of ``scope``: its snapshot when one is fresh enough, else
    computed now (and kept, for a city, county or township). A snapshot this
    process read less than :data:`RECHECK_S` ago is served without asking the
    database again (another process's newer snapshot shows that much later)."""
    if tier_of(scope) in KEPT_TIERS:
        kept = _recently_read(tenants, scope)
        if kept is None or not now - max_age <= kept.computed_at <= now:
            kept = _read(tenants, scope)
        if kept is not None and now - max_age <= kept.computed_at <= now:
            return kept
    found = compute(tenants, scope, now)
    if tier_of(scope) in KEPT_TIERS:
        _write(tenants, [found])
    return found


def refresh(tenants: Tenants, city: str, now: datetime, *,
            every: timedelta = REFRESH_EVERY) -> int:
    """Recompute the snapshots of ``city``'s city, county and township centers
    whose case view moved since they were computed, unless computed less than
    ``every`` ago. Returns how many were written."""
    ensure_table(tenants, city)
    covered, _ = view_position(tenants, city)
    kept = {r["scope"]: (r["computed_at"], r["position"]) for r in fetch(
        tenants, city, SQL("SELECT scope, computed_at, position FROM {0}").format(
            _table(city)), [])}
    scopes = [c.code for c in tenants.registry.subtree(city)
              if c.tier in KEPT_TIERS and not c.retired]
    written = 0
    for scope in scopes:
        at, position = kept.get(scope, (None, -1))
        if at is not None and at <= now and (
                now - at < every  # computed a moment ago
                or (position == covered and now - at < DEFAULT_MAX_AGE / 2)):  # nothing new
            continue
        _write(tenants, [compute(tenants, scope, now)])
        written += 1
    return written


def refresh_forever(tenants: Tenants, cities: Sequence[str], stop: Callable[[], bool], *,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                    every: timedelta = REFRESH_EVERY, pause: float = 1.0) -> None:
    """What the projection worker runs: refresh every city, again and again."""
    while not stop():
        for city in cities:
            try:
                refresh(tenants, city, clock(), every=every)
            except Exception:
                log.exception("dashboards of %s: refresh failed; trying again", city)
            if stop():
                return
        wait(stop, pause)


def clear(tenants: Tenants, city: str) -> None:
    """Forget every snapshot of ``city`` (after a rebuild of its view)."""
    ensure_table(tenants, city)
    with tenants.datastore_for(city).transaction(commit=True) as curs:
        curs.execute(SQL("DELETE FROM {0}").format(_table(city)))
    _forget(tenants, city)


def ensure_table(tenants: Tenants, city: str) -> None:
    store = tenants.datastore_for(city)
    key = (log_group_schema(city), TABLE)
    if key in store.ensured:
        return
    tenants.center(city)  # the log group's schema exists
    with store.transaction(commit=True) as curs:
        curs.execute(SQL(DDL).format(_table(city)))
    store.ensured.add(key)


# -- storage --------------------------------------------------------------------------


def _table(city: str) -> Identifier:
    return Identifier(log_group_schema(city), TABLE)


#: How long this process serves a snapshot it read without reading it again: a
#: dashboard changes at most every ``REFRESH_EVERY``, and a screen asks for it at every
#: change below; the round trip was two fifths of a county dashboard request's CPU
#: (bench/dashboard.py). Writes and clears made by this process drop what it holds.
RECHECK_S = 1.0

#: The snapshots this process read last, by (database, scope), with when
#: (``time.monotonic``): a reader asks for the body only when the stored one is not the
#: one held (``IS DISTINCT FROM``), and not at all within ``RECHECK_S``.
_decoded: dict[tuple[str, str], tuple[Dashboard, float]] = {}
_decoded_lock = threading.Lock()
_monotonic = time.monotonic


def _key(tenants: Tenants, scope: str) -> tuple[str, str]:
    return tenants.datastore_for(city_of(scope)).url, scope


def _recently_read(tenants: Tenants, scope: str) -> Dashboard | None:
    held = _decoded.get(_key(tenants, scope))
    return held[0] if held is not None and _monotonic() - held[1] < RECHECK_S else None


def _forget(tenants: Tenants, city: str, scopes: Sequence[str] | None = None) -> None:
    """Drop what this process holds of ``city``'s snapshots (``scopes``, or all)."""
    url = tenants.datastore_for(city).url
    with _decoded_lock:
        for key in [k for k in _decoded if k[0] == url and city_of(k[1]) == city
                    and (scopes is None or k[1] in scopes)]:
            del _decoded[key]


def _read(tenants: Tenants, scope: str) -> Dashboard | None:
    """The kept snapshot of ``scope``, None if there is none, it is unreadable, or it
    covers more than the city's case view does (a view since rebuilt): the snapshot and
    the view's position in one round trip."""
    city = city_of(scope)
    ensure_table(tenants, city)
    key = _key(tenants, scope)
    entry = _decoded.get(key)
    held = entry[0] if entry is not None else None
    rows = fetch(tenants, scope, SQL(
        "SELECT (SELECT max(notification_id) FROM {0}.tracking "
        "WHERE application_name = %s) AS covered, d.computed_at, d.position, "
        "CASE WHEN (d.computed_at, d.position) "
        "IS NOT DISTINCT FROM (%s::timestamptz, %s::bigint) THEN NULL ELSE d.body END AS body "
        "FROM (SELECT 1) AS one LEFT JOIN {1} AS d ON d.scope = %s").format(
            Identifier(log_group_schema(city)), _table(city)),
        [PROJECTOR, held.computed_at if held else None, held.position if held else None,
         scope], prepare=None)
    if not rows:
        return None
    r = rows[0]
    if r["computed_at"] is None or r["position"] > int(r["covered"] or 0):
        return None
    if r["body"] is None and held is not None:
        with _decoded_lock:
            _decoded[key] = (held, _monotonic())
        return held
    try:
        found = Dashboard(scope, r["computed_at"], r["position"],
                          decode(Kpis, r["body"]["kpis"]), decode(Rollup, r["body"]["rollup"]),
                          live=False)
    except (KeyError, TypeError, ValueError) as e:  # a shape from an older release
        log.info("dashboard of %s: stored snapshot unreadable (%s); recomputing", scope, e)
        return None
    with _decoded_lock:
        _decoded[key] = (found, _monotonic())
    return found


def _write(tenants: Tenants, found: Sequence[Dashboard]) -> None:
    for d in found:
        city = city_of(d.scope)
        ensure_table(tenants, city)
        body = json.dumps({"kpis": encode(d.kpis), "rollup": encode(d.rollup)})
        with tenants.datastore_for(city).transaction(commit=True) as curs:
            # never replace a snapshot with one of an older view or instant
            curs.execute(SQL(
                "INSERT INTO {0} (scope, computed_at, position, body) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (scope) DO UPDATE SET computed_at = excluded.computed_at, "
                "position = excluded.position, body = excluded.body "
                "WHERE {0}.position <= excluded.position "
                "AND {0}.computed_at <= excluded.computed_at").format(_table(city)),
                (d.scope, d.computed_at, d.position, body))
        _forget(tenants, city, [d.scope])  # committed: this process reads it next


# -- a plain JSON codec for the figures' frozen dataclasses --------------------------------


def encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [encode(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind)


def decode(kind: Any, value: Any) -> Any:
    """``value`` (from :func:`encode`) as an instance of ``kind``."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(kind) if a is not type(None)]
        return decode(inner, value)
    if origin is tuple:
        (inner, _) = typing.get_args(kind)
        return tuple(decode(inner, v) for v in value)
    if dataclasses.is_dataclass(kind):
        hints = _hints(cast(type, kind))
        return cast(Any, kind)(**{f.name: decode(hints[f.name], value[f.name])
                       for f in dataclasses.fields(kind)})
    if kind is datetime:
        return None if value is None else datetime.fromisoformat(value)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(value)
    if kind is float and isinstance(value, int):
        return float(value)
    if kind in (int, str, bool, float) and not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {value!r}")
    return value


__all__ = ["DEFAULT_MAX_AGE", "RECHECK_S", "REFRESH_EVERY", "Dashboard", "clear", "compute",
           "dashboard", "refresh", "refresh_forever"]
