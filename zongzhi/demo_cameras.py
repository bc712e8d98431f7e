"""The demo's cameras: real photos replayed through Triton, so alerts arrive live.

Two cameras in the demo city's first village, each replaying (in a loop) a
sequence that ``scripts/compose_sequences.py`` composes from photos shipped in
scikit-image: a crowd forming on a square (SSDLite, crowd rule: more than 3
people for 3 s) and a motorbike parked in a fire lane (YOLOv3-tiny, 2 s). They
run in the serving process: a vision worker publishing detections to NATS,
which the camera alert service (``zongzhi.serve.Workers``) turns into alerts
that the web client's alerts wall receives over ``alertRaised``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from domain import Place, RuleKind, Tier, ValidationError, Zone, ZoneRule
from domain.calendar import CHINA
from tenants.cameras import Cameras
from tenants.service import Tenants
from tenants.supervision import supervised
from vision.worker import CameraConfig, VisionWorker
from zongzhi.serve import first_child

log = logging.getLogger(__name__)

COMPOSE = Path(__file__).resolve().parents[1] / "scripts" / "compose_sequences.py"
LOWER_HALF = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
LOWER_RIGHT = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]


@dataclass(frozen=True)
class DemoCamera:
    ref: str
    name: str
    sequence: str  # a folder written by scripts/compose_sequences.py
    model: str
    zone: Zone


CAMERAS = (
    DemoCamera("demo-square", "村口广场", "crowd-forming", "ssdlite-person",
               Zone("square", LOWER_HALF, [ZoneRule(RuleKind.CROWD, 3, people=3)])),
    DemoCamera("demo-lane", "消防通道", "fire-lane", "yolov3-tiny",
               Zone("lane", LOWER_RIGHT, [ZoneRule(RuleKind.FIRE_LANE, 2)])),
)


def frames(data_dir: Path) -> Path:
    """The composed sequences under ``data_dir`` (composed once, deterministically)."""
    out = data_dir / "camera-frames"
    if not all((out / c.sequence).is_dir() for c in CAMERAS):
        subprocess.run([sys.executable, str(COMPOSE), str(out)], check=True,
                       stdout=subprocess.DEVNULL)
    return out


def register(tenants: Tenants, city: str) -> str:
    """The demo cameras, registered in the city's first village (once)."""
    county = first_child(tenants, city, Tier.COUNTY)
    village = first_child(tenants, first_child(tenants, county, Tier.TOWNSHIP), Tier.VILLAGE)
    app = Cameras(tenants).center(village)
    for c in CAMERAS:
        with contextlib.suppress(ValidationError):  # registered by an earlier demo run
            app.register_camera(c.ref, c.name, Place(village, c.name), [c.zone], "demo",
                                datetime.now(CHINA))
    return village


class CameraDemo:
    """The demo cameras' vision worker, in a thread of its own."""

    def __init__(self, tenants: Tenants, city: str, nats_url: str, triton_url: str,
                 data_dir: Path) -> None:
        village = register(tenants, city)
        folder = frames(data_dir)
        self.village = village
        self.configs = [CameraConfig(c.ref, village, str(folder / c.sequence), model=c.model,
                                     fps=2.0, loop=True) for c in CAMERAS]
        self.nats_url, self.triton_url = nats_url, triton_url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-cameras", daemon=True)

    def start(self) -> CameraDemo:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        async def run() -> None:
            async with VisionWorker(self.configs, nats_url=self.nats_url,
                                    triton_url=self.triton_url):
                while not self._stop.is_set():
                    await asyncio.sleep(0.2)

        supervised(lambda: asyncio.run(run()), self._stop.is_set, what="demo cameras",
                   retry_after=5.0, log=log)


__all__ = ["CAMERAS", "CameraDemo"]
