"""The alert service: detections from NATS JetStream → zone rules → ``CameraAlert``.

It reads ``ZZ_DETECTIONS`` with one durable pull consumer (``zz-alerts``), so a
restarted service goes on where the last acknowledged message left it and
several copies share the work. For every message it:

1. decodes it (a malformed message, one whose subject does not match its
   body, or one of an unknown center or camera is logged with the reason and
   terminated: never redelivered, and the next message goes on);
2. feeds the frame to the camera's rules (``vision.rules``; one set per camera
   and model, reloaded when the camera's zones change; a retired camera's frames
   are acknowledged and ignored);
3. records each firing in the camera's center (``CameraApp.record_firing``): a
   new alert, a repeat of the open one, or nothing when the episode is recorded
   already, the alert's id being fixed by camera, zone, rule and episode start;
4. publishes the batch's alerts on ``zz.alerts.<kind>.<city>.<county>.<township>.<village>``
   in ``ZZ_ALERTS`` with ``Nats-Msg-Id`` ``<alert>:<repeats>`` (JetStream drops a
   republished one), retrying until NATS takes them;
   and keeps the alert's evidence: the key of the frame that fired it in the
   frames bucket (``vision.messages.FRAMES_BUCKET``), that frame's detection
   boxes and the zone's polygon (``lg_<city>.alert_frames``, the first frame of
   the alert wins);
5. checkpoints the rules' state of every camera the batch moved
   (``lg_<city>.alert_rule_state``, with the last stream sequence folded in), then
   acknowledges the batch.

NATS going away makes the fetch and publish fail; the client reconnects, the
service retries, and the durable consumer redelivers whatever was not
acknowledged: a message the checkpoint covers changes nothing, one it does not is
folded again into the checkpointed state and gives the same episodes, which the
camera has recorded already (republished, dropped as duplicates). A killed
service resumes from the checkpoints, so an episode lasting through the restart
stays one episode.

Run it with ``zongzhi alerts`` (or ``python -m vision.alerts``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError

from domain import CameraAlert, DomainError, Tier, ValidationError, Zone, tier_of
from tenants.cameras import CameraApp, CameraNotFound, Cameras, Recorded
from tenants.persistence import DDL_LOCK, log_group_schema
from tenants.registry import UnknownTenant
from tenants.service import Tenants
from vision.messages import (
    ALERTS_STREAM,
    ALERTS_SUBJECTS,
    DETECTIONS_STREAM,
    DETECTIONS_SUBJECTS,
    AlertMessage,
    Detection,
    FrameDetections,
    MessageError,
    ensure_stream,
    frame_key,
)
from vision.rules import CameraRules, Firing, dump_state, load_state

__all__ = ["DURABLE", "AlertFrame", "AlertFrames", "AlertService", "Rejected", "alert_frames",
           "alert_message", "ensure_streams", "main"]

log = logging.getLogger(__name__)

DURABLE = "zz-alerts"
SERVICE = "alert-service"  # the actor of raised alerts
RELOAD_EVERY = 5.0  # seconds between re-reads of a camera (zones changed, retired)
RETRY_PAUSE = 0.5


class Rejected(ValueError):
    """A detections message the service cannot use; the reason says why."""


@dataclass
class _Watched:
    city: str
    key: str  # "<tenant>/<camera>/<model>": one set of rules, one checkpoint
    camera_id: UUID
    zones: list[Zone]
    retired: bool
    rules: CameraRules
    read_at: float
    applied: int = 0  # the last stream sequence folded into ``rules``
    dirty: bool = False  # applied more than the checkpoint holds


class _CityTable:
    """A table in every log group's schema, created (once per process) on first use."""

    name: ClassVar[str]
    columns: ClassVar[str]

    def __init__(self, tenants: Tenants) -> None:
        self.tenants = tenants
        self._ready: set[str] = set()

    def _table(self, city: str) -> str:
        return f'"{log_group_schema(city)}".{self.name}'

    def _ensure(self, city: str) -> None:
        if city in self._ready:
            return
        self.tenants.center(city)  # the log group's schema exists
        with self.tenants.datastore_for(city).transaction(commit=True) as curs:
            curs.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
            curs.execute(f"CREATE TABLE IF NOT EXISTS {self._table(city)} ({self.columns})")
        self._ready.add(city)


class RuleStates(_CityTable):
    """Checkpoints of the rules' state, per log group (``lg_<city>.alert_rule_state``):
    one row per consumer and camera/model with the last stream sequence it covers.
    Written after a batch's alerts are recorded and published, before the batch is
    acknowledged, so a restarted service resumes the same episodes."""

    name = "alert_rule_state"
    columns = ("consumer text NOT NULL, camera text NOT NULL, stream_seq bigint NOT NULL, "
               "zones text NOT NULL, state jsonb NOT NULL, PRIMARY KEY (consumer, camera)")

    def __init__(self, tenants: Tenants, consumer: str) -> None:
        super().__init__(tenants)
        self.consumer = consumer

    def load(self, city: str, key: str) -> tuple[int, str, dict[str, Any]] | None:
        self._ensure(city)
        with self.tenants.datastore_for(city).get_connection() as conn:
            row = conn.execute(f"SELECT stream_seq, zones, state "
                               f"FROM {self._table(city)} WHERE consumer = %s AND camera = %s",
                               (self.consumer, key)).fetchone()
        if row is None:
            return None
        return int(row["stream_seq"]), str(row["zones"]), dict(row["state"])

    def save(self, watched: Sequence[_Watched]) -> None:
        by_city: dict[str, list[_Watched]] = {}
        for w in watched:
            by_city.setdefault(w.city, []).append(w)
        for city, items in by_city.items():
            self._ensure(city)
            with self.tenants.datastore_for(city).transaction(commit=True) as curs:
                curs.executemany(
                    f"INSERT INTO {self._table(city)} VALUES (%s, %s, %s, %s, %s) "
                    "ON CONFLICT (consumer, camera) DO UPDATE SET stream_seq = "
                    "excluded.stream_seq, zones = excluded.zones, state = excluded.state",
                    [(self.consumer, w.key, w.applied, _zones_key(w.zones),
                      json.dumps(dump_state(w.rules))) for w in items])


@dataclass(frozen=True)
class AlertFrame:
    """The evidence of an alert: the frame that fired it (a key in the frames
    bucket, which drops it after its TTL), its detections and the zone's polygon."""

    alert_id: UUID
    tenant: str
    frame_key: str
    seq: int
    at: datetime
    width: int
    height: int
    detections: tuple[Detection, ...]
    zone_polygon: list[list[float]]


class AlertFrames(_CityTable):
    """Alerts' evidence, per log group (``lg_<city>.alert_frames``), one row per alert."""

    name = "alert_frames"
    columns = ("alert_id uuid PRIMARY KEY, tenant text NOT NULL, frame_key text NOT NULL, "
               "seq bigint NOT NULL, at timestamptz NOT NULL, width integer NOT NULL, "
               "height integer NOT NULL, detections jsonb NOT NULL, "
               "zone_polygon jsonb NOT NULL")

    def save(self, frame: AlertFrame) -> None:
        """Keep an alert's evidence; an alert keeps the first frame recorded for it."""
        city = frame.tenant[:4]
        self._ensure(city)
        detections = [{"label": d.label, "score": d.score, "box": list(d.box)}
                      for d in frame.detections]
        with self.tenants.datastore_for(city).transaction(commit=True) as curs:
            curs.execute(f"INSERT INTO {self._table(city)} VALUES "
                         "(%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                         "ON CONFLICT (alert_id) DO NOTHING",
                         (frame.alert_id, frame.tenant, frame.frame_key, frame.seq, frame.at,
                          frame.width, frame.height, json.dumps(detections),
                          json.dumps(frame.zone_polygon)))

    def get(self, tenant: str, alert_id: UUID) -> AlertFrame | None:
        """The evidence kept for an alert of ``tenant``, if any."""
        city = tenant[:4]
        self._ensure(city)
        with self.tenants.datastore_for(city).get_connection() as conn:
            row = conn.execute(f"SELECT * FROM {self._table(city)} "
                               "WHERE alert_id = %s AND tenant = %s",
                               (alert_id, tenant)).fetchone()
        if row is None:
            return None
        return AlertFrame(
            alert_id=row["alert_id"], tenant=row["tenant"], frame_key=row["frame_key"],
            seq=int(row["seq"]), at=row["at"], width=int(row["width"]),
            height=int(row["height"]),
            detections=tuple(Detection(d["label"], float(d["score"]),
                                       (float(d["box"][0]), float(d["box"][1]),
                                        float(d["box"][2]), float(d["box"][3])))
                             for d in row["detections"]),
            zone_polygon=[[float(x), float(y)] for x, y in row["zone_polygon"]])


_FRAMES: weakref.WeakKeyDictionary[Tenants, AlertFrames] = weakref.WeakKeyDictionary()


def alert_frames(tenants: Tenants) -> AlertFrames:
    """The alerts' evidence over ``tenants`` (one per ``Tenants``: its DDL runs once)."""
    found = _FRAMES.get(tenants)
    if found is None:
        found = _FRAMES[tenants] = AlertFrames(tenants)
    return found


def _zones_key(zones: Sequence[Zone]) -> str:
    return json.dumps([[z.name, z.polygon, [[str(r.kind), r.seconds, r.people, r.after,
                                             r.until] for r in z.rules]] for z in zones])


def alert_message(alert: CameraAlert) -> AlertMessage:
    return AlertMessage(
        alert_id=str(alert.id), tenant=alert.tenant, camera_id=str(alert.camera_id),
        camera=alert.camera_ref, zone=alert.zone, kind=alert.kind.value, model=alert.model,
        confidence=alert.confidence, repeats=alert.repeats, status=alert.status.value,
        first_at=alert.first_at, last_at=alert.last_at, episode_at=alert.episode_at)


async def ensure_streams(js: Any) -> None:
    """Create ``ZZ_DETECTIONS`` and ``ZZ_ALERTS`` if missing (file storage, message-id
    de-duplication); an existing stream is left as its owner configured it."""
    await ensure_stream(js, DETECTIONS_STREAM, DETECTIONS_SUBJECTS)
    await ensure_stream(js, ALERTS_STREAM, ALERTS_SUBJECTS)


class AlertService:
    """Consumes detections, raises alerts in the cameras' centers, publishes them."""

    def __init__(self, tenants: Tenants, nats_url: str, *, durable: str | None = None,
                 cities: Sequence[str] = (), batch: int = 64, ack_wait: float = 30.0,
                 reload_every: float = RELOAD_EVERY) -> None:
        self.tenants = tenants
        self.cameras = Cameras(tenants)
        self.nats_url = nats_url
        self.durable = durable or durable_for(cities)
        #: the detections this consumer takes: every city's, or only the cities named
        self.subjects = [f"zz.detections.{c}.>" for c in cities] or [DETECTIONS_SUBJECTS]
        self.batch = batch
        self.ack_wait = ack_wait
        self.reload_every = reload_every
        self.states = RuleStates(tenants, self.durable)
        self.frames = AlertFrames(tenants)
        self.stats: Counter[str] = Counter()
        self._watched: dict[tuple[str, str, str], _Watched] = {}
        self._stopping = False

    # -- one message (blocking: runs in a worker thread) ----------------------------

    def process(self, subject: str, data: bytes, stream_seq: int = 0) -> list[AlertMessage]:
        """The alerts to publish for one detections message (the ``stream_seq``-th of
        the stream); ``Rejected`` if unusable. A message the camera's rules have
        covered already (a redelivery) changes nothing."""
        try:
            frame = FrameDetections.decode(data)
            tier_of(frame.tenant)
        except (MessageError, DomainError) as e:
            raise Rejected(f"malformed detections message on {subject}: {e}") from None
        if subject != frame.subject:
            raise Rejected(f"detections of camera {frame.camera} of center {frame.tenant} "
                           f"arrived on {subject}, not on {frame.subject}")
        app = self._center(frame)
        watched = self._watch(app, frame)
        if watched.retired:
            self.stats["retired"] += 1
            return []
        if stream_seq and stream_seq <= watched.applied:
            self.stats["covered"] += 1
            return []
        firings = watched.rules.observe(frame)
        if stream_seq:
            watched.applied, watched.dirty = stream_seq, True
        self.stats["frames"] += 1
        published = []
        for firing in firings:
            recorded = self._record(app, watched.camera_id, frame, firing)
            if recorded is not None:
                self.stats[recorded.outcome] += 1
                self._keep_evidence(recorded.alert, frame, watched.zones, firing.zone)
                published.append(alert_message(recorded.alert))
        return published

    def checkpoint(self) -> None:
        """Save the state of every camera's rules that moved since the last one."""
        moved = [w for w in self._watched.values() if w.dirty]
        while moved:
            try:
                self.states.save(moved)
                break
            except (OperationalError, InterfaceError) as e:
                if self._stopping:
                    raise
                log.warning("the database is unavailable (%s); retrying", e)
                time.sleep(RETRY_PAUSE)
        for w in moved:
            w.dirty = False

    def _center(self, frame: FrameDetections) -> CameraApp:
        try:
            return self.cameras.center(frame.tenant)
        except UnknownTenant:
            raise Rejected(f"detections of camera {frame.camera} name center {frame.tenant}, "
                           "which is not registered") from None

    def _watch(self, app: CameraApp, frame: FrameDetections) -> _Watched:
        key = (frame.tenant, frame.camera, frame.model)
        watched = self._watched.get(key)
        now = time.monotonic()
        if watched is not None and now - watched.read_at < self.reload_every:
            return watched
        try:
            camera = app.camera_by_ref(frame.camera)
        except CameraNotFound:
            raise Rejected(f"detections name camera {frame.camera!r}, which center "
                           f"{frame.tenant} has not registered") from None
        if watched is None:
            watched = self._resume(frame, camera.id, camera.zones, now)
        elif watched.zones != camera.zones:  # zones changed: new rules, same frame clock
            rules = CameraRules(camera.zones)
            rules.last_at = watched.rules.last_at
            watched.zones, watched.rules, watched.dirty = list(camera.zones), rules, True
        watched.retired, watched.read_at = camera.retired, now
        self._watched[key] = watched
        return watched

    def _resume(self, frame: FrameDetections, camera_id: UUID, zones: list[Zone],
                now: float) -> _Watched:
        """The camera's rules as the last checkpoint left them (fresh ones if none)."""
        city, key = frame.tenant[:4], f"{frame.tenant}/{frame.camera}/{frame.model}"
        saved = self.states.load(city, key)
        if saved is not None and saved[1] == _zones_key(zones):
            applied, _, state = saved
            return _Watched(city, key, camera_id, list(zones), False,
                            load_state(zones, state), now, applied)
        return _Watched(city, key, camera_id, list(zones), False, CameraRules(zones), now,
                        saved[0] if saved else 0)

    def _keep_evidence(self, alert: CameraAlert, frame: FrameDetections, zones: list[Zone],
                       zone: str) -> None:
        """Keep the frame's key, boxes and the zone's polygon for the alert (waiting
        out a database outage, as recording does)."""
        polygon = next((z.polygon for z in zones if z.name == zone), [])
        evidence = AlertFrame(alert.id, alert.tenant,
                              frame_key(frame.tenant, frame.camera, frame.seq), frame.seq,
                              frame.at, frame.width, frame.height, frame.detections,
                              [list(p) for p in polygon])
        while True:
            try:
                self.frames.save(evidence)
                return
            except (OperationalError, InterfaceError) as e:
                if self._stopping:
                    raise
                log.warning("the database is unavailable (%s); retrying", e)
                time.sleep(RETRY_PAUSE)

    def _record(self, app: CameraApp, camera_id: UUID, frame: FrameDetections,
                firing: Firing) -> Recorded | None:
        """Record a firing, waiting out a database outage (the frame is not lost)."""
        while True:
            try:
                return app.record_firing(
                    camera_id, firing.zone, firing.kind, frame.model, firing.confidence,
                    firing.first_seq, firing.first_at, firing.last_seq, firing.last_at,
                    firing.episode_at, SERVICE)
            except DomainError as e:
                log.warning("camera %s of %s: %s %s not recorded: %s", frame.camera,
                            frame.tenant, firing.kind, firing.zone, e)
                self.stats["refused"] += 1
                return None
            except (OperationalError, InterfaceError) as e:
                if self._stopping:
                    raise
                log.warning("the database is unavailable (%s); retrying", e)
                time.sleep(RETRY_PAUSE)

    # -- NATS ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; ``ready`` is set once the consumer exists.

        Per batch: record (each message in order), publish the alerts, checkpoint the
        rules, then acknowledge; a crash anywhere redelivers the batch, whose
        messages the checkpoint has not covered are folded again into the same
        state, giving the same episodes (recorded already: republished, and dropped
        by JetStream's de-duplication)."""
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1,
                                reconnect_time_wait=RETRY_PAUSE, connect_timeout=5,
                                name=SERVICE)
        try:
            js = nc.jetstream()
            await ensure_streams(js)
            # a new consumer starts at new detections (old frames make stale alerts);
            # an existing one goes on from its own position
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait,
                                    max_deliver=-1, max_ack_pending=self.batch * 4,
                                    deliver_policy=DeliverPolicy.NEW)
            if len(self.subjects) > 1:
                config.filter_subjects = self.subjects
            await self._let_pending_expire(js)
            sub = await js.pull_subscribe(
                self.subjects[0] if len(self.subjects) == 1 else "", durable=self.durable,
                stream=DETECTIONS_STREAM, config=config)
            if ready is not None:
                ready.set()
            log.info("alert service consuming %s as %s", DETECTIONS_STREAM, self.durable)
            while not stop.is_set():
                try:
                    messages = await sub.fetch(self.batch, timeout=1)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except Exception as e:  # NATS restarting: the client reconnects by itself
                    log.warning("fetching detections failed (%s); retrying", e)
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                await self._handle(js, messages, stop)
        finally:
            self._stopping = True
            with contextlib.suppress(Exception):
                await nc.close()

    async def _let_pending_expire(self, js: Any) -> None:
        """A consumer left with unacknowledged messages (its last process died) gets
        them back only when ``ack_wait`` expires; fetched before, newer messages would
        come first and the rules would find the older ones stale. Wait that long, so
        the redeliveries come first, in order."""
        from nats.js.errors import NotFoundError

        try:
            info = await js.consumer_info(DETECTIONS_STREAM, self.durable)
        except NotFoundError:
            return
        if info.num_ack_pending:
            log.info("%d detections were in flight when the last %s stopped; waiting %.0f s "
                     "for their redelivery", info.num_ack_pending, self.durable, self.ack_wait)
            await asyncio.sleep(self.ack_wait + RETRY_PAUSE)

    async def _handle(self, js: Any, messages: list[Any], stop: asyncio.Event) -> None:
        alerts: list[AlertMessage] = []
        settled: list[Any] = []
        for message in messages:
            seq = message.metadata.sequence.stream
            try:
                alerts += await asyncio.to_thread(self.process, message.subject,
                                                  message.data, seq)
                settled.append(message.ack)
            except Rejected as e:
                log.error("%s; dropped", e)
                self.stats["rejected"] += 1
                settled.append(message.term)
            except Exception:  # a bug must not stop the other cameras: log, drop, go on
                log.exception("detections message %s on %s failed; dropped", seq,
                              message.subject)
                self.stats["failed"] += 1
                settled.append(message.term)
        for alert in alerts:
            await self._publish(js, alert, stop)
        await asyncio.to_thread(self.checkpoint)
        for settle in settled:
            await self._settle(settle)

    async def _publish(self, js: Any, alert: AlertMessage, stop: asyncio.Event) -> None:
        while True:
            try:
                await js.publish(alert.subject, alert.encode(), timeout=5,
                                 headers={"Nats-Msg-Id": alert.msg_id})
                self.stats["published"] += 1
                return
            except Exception as e:
                if stop.is_set():
                    raise
                log.warning("publishing alert %s failed (%s); retrying", alert.alert_id, e)
                await asyncio.sleep(RETRY_PAUSE)

    async def _settle(self, how: Any) -> None:
        try:
            await how()
        except Exception as e:  # redelivered later: covered by the checkpoint
            log.warning("acknowledging a detections message failed: %s", e)


def main(argv: Sequence[str] | None = None) -> int:
    """``zongzhi alerts``: run the alert service until SIGINT/SIGTERM."""
    from tenants.keys import load_master_key
    from zongzhi.servers import Servers

    p = argparse.ArgumentParser(prog="zongzhi alerts", description=__doc__.split("\n")[0])
    p.add_argument("--durable", default=None,
                   help=f"the JetStream consumer's name (default {DURABLE}, or "
                        f"{DURABLE}-<city>... for the cities taken)")
    p.add_argument("--city", action="append", default=[],
                   help="take only this city's detections (repeat; default: all)")
    p.add_argument("--ack-wait", type=float, default=30.0,
                   help="seconds before an unacknowledged message is redelivered")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    servers = Servers().start()
    tenants = Tenants.from_env(servers.database_url, load_master_key(servers.data_dir))
    try:
        for code in args.city:  # UnknownTenant names a code that is not registered
            if tenants.registry.get(code).tier is not Tier.CITY:
                raise ValidationError(f"{code} is not a city: the alert service takes a "
                                      "city's detections")
        asyncio.run(_serve(tenants, servers.nats_url, args.durable, args.city,
                           args.ack_wait))
        return 0
    finally:
        tenants.close()
        servers.stop()


def durable_for(cities: Sequence[str]) -> str:
    """The consumer of a service taking ``cities`` (all: ``zz-alerts``): one per set of
    cities, since a consumer's subject filter and the rules' saved state are its own; two
    services of different cities on one consumer would take each other's detections."""
    return "-".join([DURABLE, *sorted(set(cities))])


async def _serve(tenants: Tenants, nats_url: str, durable: str | None,
                 cities: Sequence[str], ack_wait: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = AlertService(tenants, nats_url, durable=durable, cities=cities,
                           ack_wait=ack_wait)
    ready = asyncio.Event()
    task = asyncio.create_task(service.run(stop, ready))
    await ready.wait()
    print(f"alert service: consuming {DETECTIONS_STREAM} as {service.durable}; stop with "
          "Ctrl-C",
          flush=True)
    await task


if __name__ == "__main__":
    raise SystemExit(main())
