"""GraphQL of cameras and camera alerts: types, queries, mutations, the live feed.

``AlertQuery``, ``AlertMutation`` and ``AlertSubscription`` are bases of the
schema's ``Query``, ``Mutation`` and ``Subscription`` (``api.schema``). Every
resolver authorizes first through ``api.authz`` (``camera:manage``,
``alert:read``, ``alert:dispose``, and ``kpi:read`` for the precision KPI; the
subtree rule as for cases), then calls one ``tenants.cameras`` method or one
``projections.alerts`` query.

``alertRaised`` streams alerts from NATS JetStream (``ZZ_ALERTS``, the subjects
``zz.alerts.<kind>.<city>.<county>.<township>.<village>``): the subscriber's
scope becomes the subject filter, so NATS itself delivers only that subtree, and
each message is checked against the subscriber's reach once more. ``since``
replays what was raised from that time on (an ordered consumer started at it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.types import Info

from api.authz import Action
from api.context import Context
from api.errors import ApiError, not_found
from api.guards import check_first, require_reach
from api.ids import center_of, stream_id
from domain import (
    AlertStatus,
    Camera,
    CameraAlert,
    Place,
    RuleKind,
    ValidationError,
    Zone,
    ZoneRule,
    is_within,
    tenant_of,
    tier_of,
)
from projections import alerts as views
from tenants.cameras import AlertNotFound, CameraApp, CameraNotFound, Cameras
from vision.alerts import AlertFrame, alert_frames
from vision.messages import ALERTS_STREAM, AlertMessage, MessageError

__all__ = ["AlertFeed", "AlertMutation", "AlertQuery", "AlertSubscription"]

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
GInfo = Info[Context, None]

strawberry.enum(RuleKind, description="What a zone rule watches for (an alert's kind).")
strawberry.enum(AlertStatus, description="Where an alert stands in its disposition.")


def field(description: str) -> Callable[[F], F]:
    """``strawberry.field`` with a description, typed for mypy."""
    return cast("Callable[[F], F]", strawberry.field(description=description))


def mutation(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.mutation(description=description))


def subscription(description: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", strawberry.subscription(description=description))


# -- the live feed ---------------------------------------------------------------------


class AlertFeed:
    """Raised alerts from NATS JetStream, one ordered consumer per subscriber
    (filtered by subject) over one connection per process."""

    def __init__(self, nats_url: str) -> None:
        self.nats_url = nats_url
        self._nc: Any = None
        self._lock = asyncio.Lock()

    async def _js(self) -> Any:
        import nats

        from vision.alerts import ensure_streams

        async with self._lock:
            if self._nc is None or self._nc.is_closed:
                self._nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1,
                                              reconnect_time_wait=0.5, connect_timeout=5,
                                              name="zongzhi-api")
                await ensure_streams(self._nc.jetstream())
            return self._nc.jetstream()

    async def follow(self, subject: str, since: datetime | None) -> AsyncIterator[AlertMessage]:
        """Alerts on ``subject`` from ``since`` (default: from now), forever."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        js = await self._js()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW) if since is None else \
            ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=since)
        sub = await js.subscribe(subject, stream=ALERTS_STREAM, ordered_consumer=True,
                                 config=config)
        try:
            async for message in sub.messages:
                try:
                    yield AlertMessage.decode(message.data)
                except MessageError as e:
                    log.error("an alert message on %s is malformed: %s", message.subject, e)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def close(self) -> None:
        async with self._lock:
            if self._nc is not None:
                with contextlib.suppress(Exception):
                    await self._nc.close()
                self._nc = None


def scope_subject(scope: str, subtree: bool, kind: str = "*") -> str:
    """The NATS subject of alerts of ``scope`` (alone, or with its subtree)."""
    lengths = (4, 6, 9, 12)
    segments = [scope[:n] if len(scope) >= n else "_" for n in lengths]
    if subtree:
        keep = [s for s in segments if s != "_"]
        tail = [">"] if len(keep) < len(lengths) else []
        return ".".join(("zz", "alerts", kind, *keep, *tail))
    return ".".join(("zz", "alerts", kind, *segments))


# -- helpers -----------------------------------------------------------------------------


def _ctx(info: GInfo) -> Context:
    return info.context


async def _off(function: Callable[..., T], *args: Any) -> T:
    try:
        return await run_in_threadpool(function, *args)
    except (CameraNotFound, AlertNotFound) as e:
        raise not_found(str(e)) from None


_id = stream_id
_tenant = center_of


def _aware(value: datetime | None, what: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValidationError(f"{what} needs a time zone (e.g. +08:00); got {value.isoformat()}")
    return value


# -- types --------------------------------------------------------------------------------


@strawberry.type(name="ZoneRule")
class ZoneRuleType:
    kind: RuleKind
    seconds: float = strawberry.field(description="How long the condition must hold.")
    people: int | None = strawberry.field(description="crowd: alert above this many people.")
    after: str | None = strawberry.field(description="loitering: quiet hours start (HH:MM).")
    until: str | None = strawberry.field(description="loitering: quiet hours end (HH:MM).")


@strawberry.type(name="Zone")
class ZoneType:
    name: str
    polygon: list[list[float]] = strawberry.field(
        description="Points [x, y] normalised to the frame (0..1, y down).")
    rules: list[ZoneRuleType]

    @staticmethod
    def of(zone: Zone | dict[str, Any]) -> ZoneType:
        if isinstance(zone, dict):
            return ZoneType(name=zone["name"], polygon=zone["polygon"], rules=[
                ZoneRuleType(kind=RuleKind(r["kind"]), seconds=r["seconds"],
                             people=r["people"] or None, after=r["after"], until=r["until"])
                for r in zone["rules"]])
        return ZoneType(name=zone.name, polygon=zone.polygon, rules=[
            ZoneRuleType(kind=RuleKind(r.kind), seconds=r.seconds, people=r.people or None,
                         after=r.after, until=r.until) for r in zone.rules])


@strawberry.type(name="Camera")
class CameraNode:
    id: strawberry.ID
    ref: str
    name: str
    center_code: str
    division: str
    address: str
    zones: list[ZoneType]
    retired_at: datetime | None
    registered_at: datetime
    open_alerts: int
    version: int

    @staticmethod
    def of_camera(c: Camera) -> CameraNode:
        return CameraNode(id=strawberry.ID(str(c.id)), ref=c.ref, name=c.name,
                          center_code=c.tenant, division=c.place.division,
                          address=c.place.address, zones=[ZoneType.of(z) for z in c.zones],
                          retired_at=c.retired_at, registered_at=c.registered_at,
                          open_alerts=len(c.open_alerts), version=c.version)

    @staticmethod
    def of_row(r: views.CameraRow) -> CameraNode:
        return CameraNode(id=strawberry.ID(str(r.camera_id)), ref=r.ref, name=r.name,
                          center_code=r.tenant, division=r.division, address=r.address,
                          zones=[ZoneType.of(z) for z in r.zones], retired_at=r.retired_at,
                          registered_at=r.registered_at, open_alerts=r.open_alerts,
                          version=r.version)


@strawberry.type(name="Detection")
class DetectionType:
    label: str
    score: float
    box: list[float] = strawberry.field(description="x1, y1, x2, y2 normalised to 0..1.")


@strawberry.type(name="CameraAlert")
class AlertNode:
    id: strawberry.ID
    center_code: str
    camera_id: strawberry.ID
    camera_ref: str
    zone: str
    kind: RuleKind
    model: str
    confidence: float
    status: AlertStatus
    repeats: int = strawberry.field(description="Later episodes counted on this open alert.")
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
    case_id: strawberry.ID | None
    case_created: bool
    version: int
    _evidence: strawberry.Private[list[AlertFrame | None]] = dataclasses.field(
        default_factory=list)

    async def _frame(self, info: GInfo) -> AlertFrame | None:
        if not self._evidence:  # one read per alert and request, whatever is asked
            tenants = _ctx(info).services.tenants
            aid, center = UUID(str(self.id)), self.center_code
            self._evidence.append(await _off(lambda: alert_frames(tenants).get(center, aid)))
        return self._evidence[0]

    @field("The frame that fired the alert (JPEG, GET with the bearer token; alert:read); "
           "null for an alert raised before frames were recorded. The frames bucket keeps "
           "a frame for an hour (and only frames with detections): after that, or when the "
           "worker could not keep it, the URL answers 404 NOT_FOUND.")
    async def frame_url(self, info: GInfo) -> str | None:
        return f"/api/alerts/{self.id}/frame" if await self._frame(info) else None

    @field("What the model found in that frame: boxes normalised to 0..1 (x1, y1, x2, y2).")
    async def detections(self, info: GInfo) -> list[DetectionType]:
        frame = await self._frame(info)
        return [DetectionType(label=d.label, score=d.score, box=list(d.box))
                for d in (frame.detections if frame else ())]

    @field("The zone's polygon as it was when the frame fired the alert (normalised "
           "points [x, y]); empty when no frame was kept.")
    async def zone_polygon(self, info: GInfo) -> list[list[float]]:
        frame = await self._frame(info)
        return frame.zone_polygon if frame else []

    @field("The fired frame's size in pixels [width, height]; null when none was kept.")
    async def frame_size(self, info: GInfo) -> list[int] | None:
        frame = await self._frame(info)
        return [frame.width, frame.height] if frame else None

    @staticmethod
    def of(a: CameraAlert | views.AlertRow) -> AlertNode:
        if isinstance(a, CameraAlert):
            ident, camera_id, kind, status = a.id, a.camera_id, a.kind, a.status
            center = a.tenant
        else:
            ident, camera_id = a.alert_id, a.camera_id
            kind, status, center = RuleKind(a.kind), AlertStatus(a.status), a.tenant
        return AlertNode(
            id=strawberry.ID(str(ident)), center_code=center,
            camera_id=strawberry.ID(str(camera_id)), camera_ref=a.camera_ref, zone=a.zone,
            kind=kind, model=a.model, confidence=a.confidence, status=status,
            repeats=a.repeats, first_frame=a.first_frame, first_at=a.first_at,
            last_frame=a.last_frame, last_at=a.last_at, episode_at=a.episode_at,
            raised_at=a.raised_at, acknowledged_by=a.acknowledged_by,
            acknowledged_at=a.acknowledged_at, disposed_by=a.disposed_by,
            disposed_at=a.disposed_at, reason=a.reason,
            case_id=strawberry.ID(str(a.case_id)) if a.case_id else None,
            case_created=a.case_created, version=a.version)


@strawberry.type
class CursorPage:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class CameraConnection:
    nodes: list[CameraNode]
    page_info: CursorPage


@strawberry.type
class AlertConnection:
    nodes: list[AlertNode]
    page_info: CursorPage


@strawberry.type
class AlertPrecisionFigure:
    key: str = strawberry.field(description="The camera's id, or the model's name.")
    label: str = strawberry.field(description="center/ref of a camera, or the model.")
    confirmed: int
    dismissed: int
    precision: float | None = strawberry.field(
        description="confirmed / (confirmed + dismissed); null without dispositions.")

    @staticmethod
    def of(p: views.Precision) -> AlertPrecisionFigure:
        return AlertPrecisionFigure(key=p.key, label=p.label, confirmed=p.confirmed,
                                    dismissed=p.dismissed, precision=p.precision)


@strawberry.type
class AlertPrecision:
    scope: str
    overall: AlertPrecisionFigure
    cameras: list[AlertPrecisionFigure]
    models: list[AlertPrecisionFigure]


@strawberry.type
class AlertRaised:
    """An alert raised, or counted again (``repeats`` > 0), as it happens."""

    alert_id: strawberry.ID
    center_code: str
    camera_id: strawberry.ID
    camera_ref: str
    zone: str
    kind: RuleKind
    model: str
    confidence: float
    repeats: int
    status: AlertStatus
    first_at: datetime
    last_at: datetime
    episode_at: datetime


# -- inputs ---------------------------------------------------------------------------------


@strawberry.input
class ZoneRuleInput:
    kind: RuleKind
    seconds: float
    people: int | None = None
    after: str | None = None
    until: str | None = None

    def to_rule(self) -> ZoneRule:
        return ZoneRule(self.kind, self.seconds, self.people or 0, self.after, self.until)


@strawberry.input
class ZoneInput:
    name: str
    polygon: list[list[float]]
    rules: list[ZoneRuleInput]

    def to_zone(self) -> Zone:
        return Zone(self.name, [list(p) for p in self.polygon], [r.to_rule() for r in self.rules])


@strawberry.input
class CameraPlaceInput:
    address: str
    division: str | None = None
    lat: float | None = None
    lon: float | None = None


# -- queries --------------------------------------------------------------------------------


@strawberry.type
class AlertQuery:
    @field("Cameras of a center (the asker's by default), and with "
           "subtree of every center below (alert:read).")
    async def cameras(self, info: GInfo, scope: str | None = None, subtree: bool = False,
                      include_retired: bool = False, first: int = 50,
                      after: str | None = None) -> CameraConnection:
        ctx = _ctx(info)
        code = scope or ctx.principal.tenant
        require_reach(ctx, Action.ALERT_READ, code, subtree)
        page = await _off(lambda: views.cameras(
            ctx.services.tenants, code, subtree=subtree, include_retired=include_retired,
            first=check_first(first), after=after))
        return CameraConnection(nodes=[CameraNode.of_row(r) for r in page.rows],
                                page_info=CursorPage(has_next_page=page.has_next_page,
                                                     end_cursor=page.end_cursor))

    @field("Camera alerts of a center (and its subtree), newest first "
           "(alert:read).")
    async def alerts(self, info: GInfo, scope: str | None = None, subtree: bool = False,
                     statuses: list[AlertStatus] | None = None,
                     kinds: list[RuleKind] | None = None,
                     camera_id: strawberry.ID | None = None, first: int = 50,
                     after: str | None = None) -> AlertConnection:
        ctx = _ctx(info)
        code = scope or ctx.principal.tenant
        require_reach(ctx, Action.ALERT_READ, code, subtree)
        camera = _id(camera_id, "camera") if camera_id is not None else None
        page = await _off(lambda: views.alerts(
            ctx.services.tenants, code, subtree=subtree,
            statuses=[s.value for s in statuses or []], kinds=[k.value for k in kinds or []],
            camera_id=camera, first=check_first(first), after=after))
        return AlertConnection(nodes=[AlertNode.of(r) for r in page.rows],
                               page_info=CursorPage(has_next_page=page.has_next_page,
                                                    end_cursor=page.end_cursor))

    @field("A camera alert by its id, as recorded now (alert:read on its center).")
    async def alert(self, info: GInfo, id: strawberry.ID) -> AlertNode:
        ctx = _ctx(info)
        aid = _id(id, "alert")
        ctx.services.authorizer.require(ctx.principal, Action.ALERT_READ, _tenant(aid))
        found = await _off(lambda: _cameras(ctx).center(_tenant(aid)).get_alert(aid))
        return AlertNode.of(found)

    @field("Alert precision, confirmed / (confirmed + dismissed as "
           "false), of alerts dispositioned in [start, end): overall, "
           "per camera and per model (kpi:read).")
    async def alert_precision(self, info: GInfo, scope: str | None = None,
                              subtree: bool = True, start: datetime | None = None,
                              end: datetime | None = None) -> AlertPrecision:
        ctx = _ctx(info)
        code = scope or ctx.principal.tenant
        require_reach(ctx, Action.KPI_READ, code, subtree)
        since, until = _aware(start, "start"), _aware(end, "end")
        overall, cameras, models = await _off(lambda: views.alert_precision(
            ctx.services.tenants, code, subtree=subtree, start=since, end=until))
        return AlertPrecision(scope=code, overall=AlertPrecisionFigure.of(overall),
                              cameras=[AlertPrecisionFigure.of(p) for p in cameras],
                              models=[AlertPrecisionFigure.of(p) for p in models])


# -- mutations ------------------------------------------------------------------------------


_CAMERAS: weakref.WeakKeyDictionary[Any, Cameras] = weakref.WeakKeyDictionary()


async def _in_center(info: GInfo, raw_id: strawberry.ID, kind: str, action: Action,
                     command: Callable[[CameraApp, UUID, str, datetime], T]) -> T:
    """A camera or alert command: the id parsed, ``action`` authorized at its center,
    then ``command(app, id, by, at)`` run off the event loop."""
    ctx = _ctx(info)
    sid = _id(raw_id, kind)
    tenant = _tenant(sid)
    ctx.services.authorizer.require(ctx.principal, action, tenant)
    return await _off(lambda: command(_cameras(ctx).center(tenant), sid,
                                      ctx.principal.subject, ctx.services.clock()))


def _cameras(ctx: Context) -> Cameras:
    """The camera apps over the process's tenants (one cache per ``Tenants``)."""
    tenants = ctx.services.tenants
    found = _CAMERAS.get(tenants)
    if found is None:
        found = _CAMERAS[tenants] = Cameras(tenants)
    return found


@strawberry.type
class AlertMutation:
    @mutation("Register a camera of a center with its zones "
              "(camera:manage).")
    async def register_camera(self, info: GInfo, center: str, ref: str, name: str,
                              place: CameraPlaceInput, zones: list[ZoneInput]) -> CameraNode:
        ctx = _ctx(info)
        principal = ctx.principal
        tier_of(center)
        ctx.services.authorizer.require(principal, Action.CAMERA_MANAGE, center)
        where = Place(place.division or center, place.address, place.lat, place.lon)
        domain_zones = [z.to_zone() for z in zones]
        camera = await _off(lambda: _cameras(ctx).center(center).register_camera(
            ref, name, where, domain_zones, principal.subject, ctx.services.clock()))
        return CameraNode.of_camera(camera)

    @mutation("Replace a camera's zones (camera:manage).")
    async def change_camera_zones(self, info: GInfo, camera_id: strawberry.ID,
                                  zones: list[ZoneInput]) -> CameraNode:
        domain_zones = [z.to_zone() for z in zones]
        return CameraNode.of_camera(await _in_center(
            info, camera_id, "camera", Action.CAMERA_MANAGE,
            lambda app, cid, by, at: app.change_camera_zones(cid, domain_zones, by, at)))

    @mutation("Retire a camera: its frames raise nothing more "
              "(camera:manage).")
    async def retire_camera(self, info: GInfo, camera_id: strawberry.ID,
                            reason: str) -> CameraNode:
        return CameraNode.of_camera(await _in_center(
            info, camera_id, "camera", Action.CAMERA_MANAGE,
            lambda app, cid, by, at: app.retire_camera(cid, reason, by, at)))

    @mutation("Someone is looking at the alert (alert:dispose).")
    async def acknowledge_alert(self, info: GInfo, alert_id: strawberry.ID,
                                note: str | None = None) -> AlertNode:
        return AlertNode.of(await _in_center(
            info, alert_id, "alert", Action.ALERT_DISPOSE,
            lambda app, aid, by, at: app.acknowledge_alert(aid, note, by, at)))

    @mutation("The alert is real: confirm it into a new case (category "
              "and summary; channel camera) or an existing case of "
              "the center (caseId) (alert:dispose).")
    async def confirm_alert(self, info: GInfo, alert_id: strawberry.ID, reason: str,
                            case_id: strawberry.ID | None = None, category: str | None = None,
                            summary: str | None = None) -> AlertNode:
        ctx = _ctx(info)
        aid = _id(alert_id, "alert")
        tenant = _tenant(aid)
        ctx.services.authorizer.require(ctx.principal, Action.ALERT_DISPOSE, tenant)
        case = _id(case_id, "case") if case_id is not None else None
        if case is not None and tenant_of(case) != tenant:
            raise ValidationError(f"an alert is confirmed into a case of its own center "
                                  f"{tenant}")

        def work() -> CameraAlert:
            alert, _ = _cameras(ctx).center(tenant).confirm_alert(
                aid, reason, ctx.principal.subject, ctx.services.clock(), case_id=case,
                category_code=category, summary=summary)
            return alert

        try:
            alert = await _off(work)
        except LookupError as e:  # the linked case is not there
            raise not_found(str(e)) from None
        if case is None and alert.case_id is not None:
            ctx.loaders.forget(alert.case_id)
        return AlertNode.of(alert)

    @mutation("The alert is false: dismiss it with the reason "
              "(alert:dispose).")
    async def dismiss_alert(self, info: GInfo, alert_id: strawberry.ID,
                            reason: str) -> AlertNode:
        return AlertNode.of(await _in_center(
            info, alert_id, "alert", Action.ALERT_DISPOSE,
            lambda app, aid, by, at: app.dismiss_alert(aid, reason, by, at)))


# -- subscription ---------------------------------------------------------------------------


def _feed(ctx: Context) -> AlertFeed:
    feed = getattr(ctx.services, "alerts", None)
    if not isinstance(feed, AlertFeed):
        raise ApiError("INTERNAL", "this API process has no NATS server for alerts "
                                   "(set ZONGZHI_NATS_URL)")
    return feed


@strawberry.type
class AlertSubscription:
    @subscription(
        "Camera alerts as they are raised (and counted again) in a center (the asker's by "
        "default) and, with subtree, every center below it (alert:read); only the kinds "
        "asked for; with since, from that time on.")
    async def alert_raised(self, info: GInfo, scope: str | None = None, subtree: bool = True,
                           kinds: list[RuleKind] | None = None,
                           since: datetime | None = None) -> AsyncGenerator[AlertRaised, None]:
        ctx = _ctx(info)
        code = scope or ctx.principal.tenant
        principal = require_reach(ctx, Action.ALERT_READ, code, subtree)
        _aware(since, "since")
        wanted = {k.value for k in kinds or []}
        kind = next(iter(wanted)) if len(wanted) == 1 else "*"
        auth = ctx.services.authorizer
        async for alert in _feed(ctx).follow(scope_subject(code, subtree, kind), since):
            inside = alert.tenant == code or (subtree and _within(alert.tenant, code))
            if not inside or (wanted and alert.kind not in wanted) or \
                    not auth.can(principal, Action.ALERT_READ, alert.tenant):
                continue
            yield AlertRaised(
                alert_id=strawberry.ID(alert.alert_id), center_code=alert.tenant,
                camera_id=strawberry.ID(alert.camera_id), camera_ref=alert.camera,
                zone=alert.zone, kind=RuleKind(alert.kind), model=alert.model,
                confidence=alert.confidence, repeats=alert.repeats,
                status=AlertStatus(alert.status), first_at=alert.first_at,
                last_at=alert.last_at, episode_at=alert.episode_at)


def _within(code: str, scope: str) -> bool:
    try:
        return is_within(code, scope)
    except ValidationError:
        return False

