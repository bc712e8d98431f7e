"""Helpers of the camera-alert suites: frames, cameras, the alert service in a
thread, and reading what it raised from the store and from NATS (real servers)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

from domain import Camera, CameraAlert, Place, RuleKind, Zone, ZoneRule
from tenants.cameras import Cameras
from tenants.service import Tenants
from vision.alerts import AlertService, ensure_streams
from vision.messages import ALERTS_STREAM, AlertMessage, Detection, FrameDetections

CST = timezone(timedelta(hours=8))
#: This session's mark: NATS keeps its streams (and its duplicate window) across
#: test sessions while each session's database is new and reuses city codes.
RUN = secrets.token_hex(3)
FPS = 2
LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]  # the left half of the frame


def cam(name: str) -> str:
    """A camera ref unique to this session."""
    return f"{name}-{RUN}"


def person(x: float, y: float = 0.5, score: float = 0.9) -> Detection:
    return Detection("person", score, (x - 0.03, y - 0.2, x + 0.03, y))


def car(x: float, y: float = 0.8, score: float = 0.8) -> Detection:
    return Detection("car", score, (x - 0.1, y - 0.1, x + 0.1, y))


def frames(camera: str, tenant: str, detections: Iterable[Iterable[Detection]],
           start: datetime, first_seq: int = 0, model: str = "ssdlite-person"
           ) -> list[FrameDetections]:
    """One frame per item, at 2 fps from ``start``."""
    return [FrameDetections(camera, tenant, first_seq + i,
                            start + timedelta(seconds=(first_seq + i) / FPS), 640, 480, model,
                            21.5, tuple(dets))
            for i, dets in enumerate(detections)]


def crowd(seconds: float, size: int = 6) -> list[list[Detection]]:
    """``size`` people standing in the left half for ``seconds`` (2 fps)."""
    return [[person(0.05 + 0.07 * k) for k in range(size)]] * int(seconds * FPS)


def empty(seconds: float) -> list[list[Detection]]:
    return [[] for _ in range(int(seconds * FPS))]


def crowd_zone(seconds: float = 5, people: int = 3) -> Zone:
    return Zone("plaza", LEFT, [ZoneRule(RuleKind.CROWD, seconds, people=people)])


def fire_lane_zone(seconds: float = 30) -> Zone:
    return Zone("lane", LEFT, [ZoneRule(RuleKind.FIRE_LANE, seconds)])


def register(tenants: Tenants, tenant: str, ref: str, zones: list[Zone]) -> Camera:
    return Cameras(tenants).center(tenant).register_camera(
        ref, f"摄像头 {ref}", Place(tenant, "东门广场"), zones, "director-1",
        datetime.now(CST))


def raised_alerts(tenants: Tenants, camera: Camera) -> list[CameraAlert]:
    """Every alert raised for the camera, from its center's events."""
    app = Cameras(tenants).center(camera.tenant)
    schema = app.store.datastore.schema
    with app.store.datastore.get_connection() as conn:
        rows = conn.execute(
            f'SELECT originator_id FROM "{schema}".events WHERE tenant = %s '
            "AND topic LIKE %s ORDER BY notification_id",
            (camera.tenant, "%CameraAlert.Raised")).fetchall()
    alerts = [app.get_alert(UUID(str(r["originator_id"]))) for r in rows]
    return [a for a in alerts if a.camera_id == camera.id]


async def _publish(nats_url: str, batch: list[FrameDetections] | list[tuple[str, bytes]]
                   ) -> None:
    import nats

    nc = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        for item in batch:
            if isinstance(item, FrameDetections):
                await js.publish(item.subject, item.encode(),
                                 headers={"Nats-Msg-Id": item.msg_id})
            else:
                await js.publish(item[0], item[1])
    finally:
        await nc.close()


def publish(nats_url: str, batch: list[FrameDetections] | list[tuple[str, bytes]]) -> None:
    """Publish detections (or raw ``(subject, body)`` messages) to JetStream."""
    asyncio.run(_publish(nats_url, batch))


async def _alert_messages(nats_url: str, city: str) -> list[AlertMessage]:
    import nats
    from nats.js.api import ConsumerConfig, DeliverPolicy

    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        sub = await js.pull_subscribe(f"zz.alerts.*.{city}.>", stream=ALERTS_STREAM,
                                      config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
        found: list[AlertMessage] = []
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except Exception:
                break
            for m in batch:
                found.append(AlertMessage.decode(m.data))
                await m.ack()
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def alert_messages(nats_url: str, city: str, cameras: Iterable[str]) -> list[AlertMessage]:
    """Every alert message of these cameras (refs) of the city in ZZ_ALERTS, in order."""
    refs = set(cameras)
    return [m for m in asyncio.run(_alert_messages(nats_url, city)) if m.camera in refs]


def wait_until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.1)


@contextmanager
def service_running(tenants: Tenants, nats_url: str, city: str,
                    durable: str | None = None, **options: Any) -> Iterator[AlertService]:
    """The alert service, consuming the city's detections, in a thread of its own."""
    service = AlertService(tenants, nats_url, durable=durable or f"alerts-{city}-{RUN}",
                           cities=[city], **options)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    ready = threading.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(service.run(stop, started))
        await started.wait()
        ready.set()
        await task

    def target() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as e:
            failed.append(e)
            ready.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    assert ready.wait(20), "the alert service did not start"
    assert not failed, failed
    try:
        yield service
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(20)
        loop.close()
