"""Both halves on real servers with real inference: composed frames of real photos →
vision worker → Triton (SSDLite / YOLOv3-tiny) → JetStream → alert service →
``CameraAlert`` in the camera's center."""

from __future__ import annotations

import asyncio
from pathlib import Path

from camera_alerts_support import cam, raised_alerts, register, service_running, wait_until

from domain import RuleKind, Zone, ZoneRule
from tenants.service import Tenants
from vision.worker import CameraConfig, VisionWorker

LOWER_HALF = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
LOWER_RIGHT = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]


def run_worker(config: CameraConfig, nats_url: str, triton_url: str) -> dict[str, int]:
    async def scenario() -> dict[str, int]:
        async with VisionWorker([config], nats_url=nats_url, triton_url=triton_url) as worker:
            await asyncio.wait_for(worker.wait(), 120)
        return {k: v for k, v in worker.health().cameras[config.camera].items()
                if isinstance(v, int)}

    return asyncio.run(scenario())


def test_a_crowd_forming_before_a_camera_raises_exactly_one_crowd_alert(
        tenants: Tenants, nats_url: str, triton_url: str, city_tree: dict[str, list[str]],
        sequences: Path) -> None:
    # given a village camera whose lower half alerts on more than 3 people for 3 s
    village = city_tree["village"][0]
    camera = register(tenants, village, cam("crowd-e2e"), [
        Zone("square", LOWER_HALF, [ZoneRule(RuleKind.CROWD, 3, people=3)])])
    config = CameraConfig(camera.ref, village, str(sequences / "crowd-forming"), fps=2)
    with service_running(tenants, nats_url, city_tree["city"][0]):
        # when the crowd-forming frames (0 → 5 people over 12 s) go through the worker
        stats = run_worker(config, nats_url, triton_url)
        # then exactly one crowd alert is raised in the camera's center
        alerts = wait_until(lambda: raised_alerts(tenants, camera), 30, "the crowd alert")
    assert stats["published"] == 24 and stats["dropped_backpressure"] == 0
    assert [(a.kind, a.zone, a.model) for a in alerts] == [
        (RuleKind.CROWD, "square", "ssdlite-person")]


def test_a_motorbike_parked_shorter_than_the_rule_s_time_raises_nothing(
        tenants: Tenants, nats_url: str, triton_url: str, city_tree: dict[str, list[str]],
        sequences: Path) -> None:
    # given two cameras on the same fire-lane frames (the bike stays 8 frames, 4 s):
    # one alerts after 2 s of obstruction, the other after 30 s
    village = city_tree["village"][1]
    quick = register(tenants, village, cam("lane-2s"), [
        Zone("lane", LOWER_RIGHT, [ZoneRule(RuleKind.FIRE_LANE, 2)])])
    patient = register(tenants, village, cam("lane-30s"), [
        Zone("lane", LOWER_RIGHT, [ZoneRule(RuleKind.FIRE_LANE, 30)])])
    with service_running(tenants, nats_url, city_tree["city"][0]):
        # when YOLOv3-tiny looks at the frames for both
        for camera in (quick, patient):
            run_worker(CameraConfig(camera.ref, village, str(sequences / "fire-lane"),
                                    model="yolov3-tiny", fps=2), nats_url, triton_url)
        # then the 2 s rule raised one fire-lane alert and the 30 s rule nothing
        alerts = wait_until(lambda: raised_alerts(tenants, quick), 30, "the fire-lane alert")
        assert raised_alerts(tenants, patient) == []
    assert [(a.kind, a.model) for a in alerts] == [(RuleKind.FIRE_LANE, "yolov3-tiny")]
