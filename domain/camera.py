"""Cameras as data: a camera of a center, its place, and its zones with their rules.

A camera belongs to one tenant (the center that watches it) and has a ``ref``
unique inside that center (``cam-017``); the ref is also the camera's token in
the detections' NATS subjects, so it is limited to letters, digits, ``-`` and
``_``. Its zones are named polygons in normalised frame coordinates (0..1, x to
the right, y down), each with the rules the alert service applies to it
(DOMAIN.md "Camera and sensor alerts"):

- ``crowd``: more than ``people`` people in the zone for ``seconds``;
- ``fire-lane``: a vehicle or object held in the zone for ``seconds``;
- ``street-vending``: a person stationary in the zone (a stall) for ``seconds``;
- ``loitering``: a person in the zone for ``seconds`` during quiet hours
  (``after`` .. ``until``, China time, may wrap midnight).

The camera also keeps, per zone and rule, which alert is open and the start of
the last detection episode it has recorded (``AlertNoted``): the alert service
consults it so that a redelivered detection never raises a second alert and a
storm of repeats bumps one open alert's counter (domain/alert.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.checks import require_aware, require_member, require_text
from domain.codes import is_within, stream_id, tier_of
from domain.errors import IllegalTransition, ValidationError
from domain.values import Place

__all__ = [
    "MAX_RULE_SECONDS",
    "Camera",
    "RuleKind",
    "Zone",
    "ZoneRule",
    "check_zones",
    "rule_key",
]

#: A rule waits at most a day: longer is a configuration mistake, not a rule.
MAX_RULE_SECONDS = 86_400.0
_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CLOCK = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_MAX_POINTS = 64


class RuleKind(StrEnum):
    """What a zone rule watches for; also the alert's kind in NATS subjects."""

    CROWD = "crowd"  # 人员聚集
    FIRE_LANE = "fire-lane"  # 消防通道堵塞
    STREET_VENDING = "street-vending"  # 占道经营
    LOITERING = "loitering"  # 夜间逗留


@dataclass(frozen=True)
class ZoneRule:
    """One rule of a zone: its kind, how long the condition must hold, its figures."""

    kind: str
    seconds: float
    people: int = 0  # crowd: more than this many people
    after: str | None = None  # loitering: quiet hours start, "HH:MM" China time
    until: str | None = None  # loitering: quiet hours end

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", require_member(RuleKind, self.kind, "a rule's kind"))


@dataclass(frozen=True)
class Zone:
    """A named polygon of the frame (normalised points ``[x, y]``) and its rules."""

    name: str
    polygon: list[list[float]]
    rules: list[ZoneRule] = field(default_factory=list)


def rule_key(zone: str, kind: str) -> str:
    """The key of one zone's rule (a zone has each kind at most once)."""
    return f"{zone}/{kind}"


# -- checks (pure geometry) -------------------------------------------------------------


def _cross(o: list[float], a: list[float], b: list[float]) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: list[float], q: list[float], r: list[float]) -> bool:
    return min(p[0], r[0]) <= q[0] <= max(p[0], r[0]) and \
        min(p[1], r[1]) <= q[1] <= max(p[1], r[1])


def _segments_meet(p1: list[float], p2: list[float], p3: list[float],
                   p4: list[float]) -> bool:
    d1, d2 = _cross(p3, p4, p1), _cross(p3, p4, p2)
    d3, d4 = _cross(p1, p2, p3), _cross(p1, p2, p4)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return any((d == 0 and _on_segment(a, b, c)) for d, a, b, c in (
        (d1, p3, p1, p4), (d2, p3, p2, p4), (d3, p1, p3, p2), (d4, p1, p4, p2)))


def _points(zone_name: str, polygon: object) -> list[list[float]]:
    if not isinstance(polygon, list | tuple) or not 3 <= len(polygon) <= _MAX_POINTS:
        raise ValidationError(
            f"zone {zone_name!r}: a polygon has 3 to {_MAX_POINTS} points [x, y]")
    points: list[list[float]] = []
    for p in polygon:
        if not isinstance(p, list | tuple) or len(p) != 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in p):
            raise ValidationError(f"zone {zone_name!r}: a point is [x, y]; got {p!r}")
        x, y = float(p[0]), float(p[1])
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValidationError(
                f"zone {zone_name!r}: a polygon must stay inside the frame (coordinates "
                f"0..1, normalised); [{x}, {y}] leaves it")
        points.append([x, y])
    return points


def _check_polygon(zone_name: str, points: list[list[float]]) -> None:
    n = len(points)
    area2 = sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
                for i in range(n))
    for i in range(n):
        a1, a2 = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or j == (i + 1) % n:
                continue  # adjacent edges share a corner
            b1, b2 = points[j], points[(j + 1) % n]
            if _segments_meet(a1, a2, b1, b2):
                raise ValidationError(
                    f"zone {zone_name!r}: a polygon must not intersect itself; edge {i + 1} "
                    f"crosses edge {j + 1}")
    if abs(area2) < 1e-9:
        raise ValidationError(f"zone {zone_name!r}: a polygon must enclose an area")


def _check_rule(zone_name: str, rule: object) -> ZoneRule:
    if not isinstance(rule, ZoneRule):
        raise ValidationError(f"zone {zone_name!r}: its rules must be ZoneRule values")
    seconds = rule.seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or \
            not 0 < seconds <= MAX_RULE_SECONDS:
        raise ValidationError(
            f"zone {zone_name!r}: a {rule.kind} rule holds for more than 0 and at most "
            f"{MAX_RULE_SECONDS:.0f} seconds; got {seconds!r}")
    if rule.kind is RuleKind.CROWD:
        if isinstance(rule.people, bool) or not isinstance(rule.people, int) or \
                rule.people < 1:
            raise ValidationError(
                f"zone {zone_name!r}: a crowd rule names at least 1 person (alert above "
                f"that many); got {rule.people!r}")
    elif rule.people:
        raise ValidationError(f"zone {zone_name!r}: only a crowd rule counts people")
    if rule.kind is RuleKind.LOITERING:
        for what, value in (("after", rule.after), ("until", rule.until)):
            if not isinstance(value, str) or not _CLOCK.fullmatch(value):
                raise ValidationError(
                    f"zone {zone_name!r}: a loitering rule's quiet hours need {what} as "
                    f"HH:MM (China time); got {value!r}")
        if rule.after == rule.until:
            raise ValidationError(f"zone {zone_name!r}: quiet hours must not be empty")
    elif rule.after is not None or rule.until is not None:
        raise ValidationError(f"zone {zone_name!r}: only a loitering rule has quiet hours")
    return ZoneRule(rule.kind, float(seconds), rule.people, rule.after, rule.until)


def check_zones(zones: object) -> list[Zone]:
    """The zones, checked and normalised; ValidationError names the broken rule."""
    if not isinstance(zones, list) or not zones:
        raise ValidationError("a camera has at least one zone")
    checked: list[Zone] = []
    names: set[str] = set()
    for zone in zones:
        if not isinstance(zone, Zone):
            raise ValidationError("a camera's zones must be Zone values")
        require_text(zone.name, "a zone's name")
        if zone.name in names:
            raise ValidationError(f"zone names are unique on a camera; {zone.name!r} repeats")
        names.add(zone.name)
        points = _points(zone.name, zone.polygon)
        _check_polygon(zone.name, points)
        if not isinstance(zone.rules, list) or not zone.rules:
            raise ValidationError(f"zone {zone.name!r}: a zone has at least one rule")
        rules = [_check_rule(zone.name, r) for r in zone.rules]
        kinds = [r.kind for r in rules]
        if len(set(kinds)) != len(kinds):
            raise ValidationError(f"zone {zone.name!r}: each rule kind appears once per zone")
        checked.append(Zone(zone.name, points, rules))
    return checked


def _check_ref(ref: object) -> str:
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        raise ValidationError(
            f"a camera's ref is 1-64 letters, digits, '-' or '_' (it names the camera in "
            f"NATS subjects); {ref!r} is not one")
    return ref


# -- the aggregate -------------------------------------------------------------------------


class Camera(Aggregate):
    """A camera a center watches: registered, its zones changed, retired."""

    @staticmethod
    def create_id(tenant: str, ref: str) -> UUID:
        """One ref, one camera per center: registering it twice cannot make two."""
        return stream_id(tenant, "camera:" + ref)

    @classmethod
    def register(cls, tenant: str, ref: str, name: str, place: Place, zones: list[Zone],
                 by: str, at: datetime) -> Camera:
        tier_of(tenant)
        _check_ref(ref)
        require_text(name, "a camera's name")
        if not isinstance(place, Place) or not is_within(place.division, tenant):
            raise ValidationError(
                f"a camera's place must lie inside its center {tenant}; got {place!r}")
        checked = check_zones(zones)
        require_text(by, "the actor (by)")
        require_aware(at, "the time a camera was registered")
        return cls(tenant=tenant, ref=ref, name=name, place=place, zones=checked, by=by, at=at)

    @event("Registered")
    def __init__(self, tenant: str, ref: str, name: str, place: Place, zones: list[Zone],
                 by: str, at: datetime) -> None:
        self.tenant = tenant
        self.ref = ref
        self.name = name
        self.place = place
        self.zones = list(zones)
        self.registered_at = at
        self.retired_at: datetime | None = None
        self.open_alerts: dict[str, UUID] = {}  # rule key -> the open alert
        self.last_episode: dict[str, datetime] = {}  # rule key -> last episode recorded

    @property
    def retired(self) -> bool:
        return self.retired_at is not None

    def zone(self, name: str) -> Zone | None:
        return next((z for z in self.zones if z.name == name), None)

    def _require_active(self, what: str) -> None:
        if self.retired:
            raise IllegalTransition(f"a retired camera cannot {what}")

    def change_zones(self, zones: list[Zone], by: str, at: datetime) -> None:
        self._require_active("change its zones")
        checked = check_zones(zones)
        require_text(by, "the actor (by)")
        require_aware(at, "the time of the change")
        self._zones_changed(checked, by, at)

    @event("ZonesChanged")
    def _zones_changed(self, zones: list[Zone], by: str, at: datetime) -> None:
        self.zones = list(zones)

    def retire(self, reason: str, by: str, at: datetime) -> None:
        self._require_active("be retired again")
        require_text(reason, "the reason for retiring a camera")
        require_text(by, "the actor (by)")
        require_aware(at, "the time a camera was retired")
        self._retired(reason, by, at)

    @event("Retired")
    def _retired(self, reason: str, by: str, at: datetime) -> None:
        self.retired_at = at

    # -- what the alert service records beside an alert ---------------------------------

    def episode_recorded(self, zone: str, kind: str, episode_at: datetime) -> bool:
        """Whether an episode starting at ``episode_at`` (or a later one) was recorded."""
        last = self.last_episode.get(rule_key(zone, kind))
        return last is not None and episode_at <= last

    def note_alert(self, zone: str, kind: str, alert_id: UUID, episode_at: datetime,
                   opened: bool) -> None:
        """Record an episode of a zone's rule: a new alert (``opened``) or a repeat
        of the one open. Episodes are recorded in order, each once."""
        self._require_active("raise alerts")
        found = self.zone(zone)
        if found is None or not any(r.kind == kind for r in found.rules):
            raise ValidationError(f"camera {self.ref} has no {kind} rule in zone {zone!r}")
        require_aware(episode_at, "an episode's start")
        if self.episode_recorded(zone, kind, episode_at):
            raise IllegalTransition(
                f"an episode is recorded once and in order; {kind} in zone {zone!r} of "
                f"camera {self.ref} already has one from {self.last_episode[rule_key(zone, kind)]}")
        key = rule_key(zone, kind)
        open_alert = self.open_alerts.get(key)
        if opened and open_alert is not None:
            raise IllegalTransition(
                f"one alert is open per zone and rule: repeats bump alert {open_alert}")
        if not opened and open_alert != alert_id:
            raise IllegalTransition("a repeat is counted on the zone's open alert only")
        self._alert_noted(key, alert_id, episode_at, opened)

    @event("AlertNoted")
    def _alert_noted(self, key: str, alert_id: UUID, episode_at: datetime,
                     opened: bool) -> None:
        self.open_alerts[key] = alert_id
        self.last_episode[key] = episode_at

    def note_alert_closed(self, alert_id: UUID) -> None:
        """The alert was dispositioned (confirmed or dismissed): a new episode raises anew."""
        key = next((k for k, v in self.open_alerts.items() if v == alert_id), None)
        if key is None:
            raise IllegalTransition(f"alert {alert_id} is not open on camera {self.ref}")
        self._alert_closed(key, alert_id)

    @event("AlertClosed")
    def _alert_closed(self, key: str, alert_id: UUID) -> None:
        self.open_alerts.pop(key, None)
