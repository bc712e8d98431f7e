"""An alert's evidence on real NATS JetStream and PostgreSQL: the worker keeps the
analysed frame in the object store, the alert service records which frame fired
the alert with its boxes and zone, and the API serves both to those who may read
the alert, until the bucket drops the frame."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
from camera_alerts_support import (
    CST,
    LEFT,
    cam,
    crowd,
    crowd_zone,
    frames,
    publish,
    raised_alerts,
    register,
    service_running,
    wait_until,
)
from fastapi.testclient import TestClient
from vision_support import photo

from api.app import create_app
from api.auth import Role, TokenService, TokenSettings
from tenants.service import Tenants
from vision.messages import FRAMES_BUCKET, FrameDetections, frame_key
from vision.worker import CameraStats, VisionWorker

START = datetime(2026, 5, 2, 9, 0, tzinfo=CST)
QUERY = """query($id: ID!) { alert(id: $id) { id zone frameUrl frameSize zonePolygon
  detections { label score box } } }"""


def bearer(tokens: TokenService, role: Role, tenant: str) -> str:
    return "Bearer " + tokens.issue(tenant, [role], subject=f"{role.value}@{tenant}")


def keep_frames(nats_url: str, batch: list[FrameDetections], image: np.ndarray) -> None:
    """Keep each frame of the batch as the worker does (its own code path)."""
    async def run() -> None:
        worker = VisionWorker([], nats_url=nats_url, triton_url="127.0.0.1:1")
        await worker.start()
        try:
            stats = CameraStats(batch[0].camera)
            for message in batch:
                await worker.keep_frame(message, image, stats)
            assert (stats.frames_kept, stats.frame_errors) == (len(batch), 0)
        finally:
            await worker.stop()
    asyncio.run(run())


def drop_frame(nats_url: str, key: str) -> None:
    """What the bucket's TTL does to a frame after an hour, done now."""
    async def run() -> None:
        import nats

        nc = await nats.connect(nats_url)
        try:
            store = await nc.jetstream().object_store(FRAMES_BUCKET)
            await store.delete(key)
        finally:
            await nc.close()
    asyncio.run(run())


@pytest.fixture
def api(tenants: Tenants, nats_url: str) -> Iterator[tuple[TestClient, Any]]:
    tokens = TokenService(TokenSettings(secret=b"alert-frames-test-secret-of-32-bytes-or-more"),
                          tenants.registry)
    with TestClient(create_app(tenants, tokens=tokens, web=None, open311=False,
                               nats_url=nats_url)) as client:
        yield client, tokens


def test_an_alert_serves_the_frame_that_fired_it_with_its_boxes_and_zone(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]],
        api: tuple[TestClient, Any]) -> None:
    client, tokens = api
    village = city_tree["village"][0]
    camera = register(tenants, village, cam("cam-frames"), [crowd_zone(seconds=3, people=3)])
    # given a crowd's frames kept by the worker (a real picture) and their detections
    batch = frames(cam("cam-frames"), village, crowd(6, size=5), START)
    image = photo("astronaut")
    keep_frames(nats_url, batch, image)
    # when the alert service consumes the detections
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, batch)
        wait_until(lambda: service.stats["frames"] >= len(batch), what="frames consumed")
    (alert,) = raised_alerts(tenants, camera)
    fired = next(f for f in batch if f.seq == alert.last_frame)
    # then the API shows the frame that fired it, its boxes and the zone
    who = {"Authorization": bearer(tokens, Role.DISPATCHER, village)}
    body = client.post("/graphql", json={"query": QUERY, "variables": {"id": str(alert.id)}},
                       headers=who).json()
    shown = body["data"]["alert"]
    assert shown["frameUrl"] == f"/api/alerts/{alert.id}/frame"
    assert shown["frameSize"] == [fired.width, fired.height]
    assert shown["zonePolygon"] == LEFT
    assert [(d["label"], d["score"], tuple(d["box"])) for d in shown["detections"]] == [
        (d.label, d.score, d.box) for d in fired.detections]
    # and the frame itself is that frame's JPEG, the picture the worker kept
    served = client.get(shown["frameUrl"], headers=who)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    decoded = cv2.imdecode(np.frombuffer(served.content, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == image.shape
    assert float(np.abs(decoded[..., ::-1].astype(int) - image.astype(int)).mean()) < 8
    # a sibling village may not see it
    sibling = {"Authorization": bearer(tokens, Role.DISPATCHER, city_tree["village"][1])}
    refused = client.get(shown["frameUrl"], headers=sibling)
    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")
    # once the bucket drops the frame, the route says so (boxes stay recorded)
    drop_frame(nats_url, frame_key(village, fired.camera, fired.seq))
    gone = client.get(shown["frameUrl"], headers=who)
    assert (gone.status_code, gone.json()["code"]) == (404, "NOT_FOUND")
    assert "no longer kept" in gone.json()["message"]


def test_an_alert_without_a_kept_frame_has_no_frame_url_and_the_route_says_why(
        tenants: Tenants, nats_url: str, city_tree: dict[str, list[str]],
        api: tuple[TestClient, Any]) -> None:
    client, tokens = api
    township = city_tree["township"][0]
    camera = register(tenants, township, cam("cam-noframe"), [crowd_zone(seconds=3)])
    batch = frames(cam("cam-noframe"), township, crowd(6), START + timedelta(hours=1))
    with service_running(tenants, nats_url, city_tree["city"][0]) as service:
        publish(nats_url, batch)
        wait_until(lambda: service.stats["frames"] >= len(batch), what="frames consumed")
    (alert,) = raised_alerts(tenants, camera)
    who = {"Authorization": bearer(tokens, Role.DIRECTOR, township)}
    shown = client.post("/graphql", json={"query": QUERY, "variables": {"id": str(alert.id)}},
                        headers=who).json()["data"]["alert"]
    # the boxes are recorded even though no picture was kept
    assert shown["frameUrl"] == f"/api/alerts/{alert.id}/frame"
    assert len(shown["detections"]) == 6
    gone = client.get(shown["frameUrl"], headers=who)
    assert (gone.status_code, gone.json()["code"]) == (404, "NOT_FOUND")
    unknown = client.get(f"/api/alerts/{camera.id}/frame", headers=who)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "NOT_FOUND")
