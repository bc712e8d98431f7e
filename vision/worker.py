"""The vision worker: camera sources → batched Triton calls → ``FrameDetections`` on
JetStream (stream ``ZZ_DETECTIONS``), one message per analysed frame.

Each camera has a feed thread (``vision.sources``) and an asyncio task that takes the
latest frame, asks Triton (one request per frame; the server's dynamic batcher merges
the cameras' concurrent requests) and publishes the answer with ``Nats-Msg-Id`` =
``<camera>:<seq>``, so a frame published twice is stored once. A camera's frame numbers
continue after a restart from the last one in the stream.

Failures stay with what failed: Triton unreachable → the frame is dropped and counted,
health turns ``degraded: triton unreachable since ...``, and the next frame tries again
(recovery is automatic); a model answering in the wrong shape, an unreadable frame, a
source that cannot be opened → counted and reported on that camera, the others go on.

A frame with detections is also kept, as a JPEG, in the object store (bucket
``zz-frames``, an hour) under ``<tenant>-<camera>-<seq>`` before its detections go
out, so an alert it fires can be shown with its boxes; failing to keep it is
counted (``frame_errors``) and never holds the detections back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import nats
from nats.js.errors import NotFoundError

from vision.inference import (
    MODELS,
    InferenceError,
    ModelOutputError,
    ModelSpec,
    TritonDetector,
    TritonUnavailable,
)
from vision.messages import (
    DETECTIONS_STREAM,
    DETECTIONS_SUBJECTS,
    FrameDetections,
    MessageError,
    detections_subject,
    ensure_frames_bucket,
    ensure_stream,
    frame_key,
)
from vision.sources import (
    CameraFeed,
    FeedStats,
    Frame,
    FrameSource,
    LatestFrameSlot,
    UnreadableFrame,
    open_source,
)

__all__ = ["CameraConfig", "CameraStats", "Health", "VisionWorker", "ensure_detections_stream",
           "write_health"]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class CameraConfig:
    """One camera as the worker sees it. A camera is analysed by one model (its frames'
    message ids are per camera); watch a scene with two models as two cameras."""

    camera: str
    tenant: str
    source: str  # folder, video file or rtsp:// URL
    model: str = "ssdlite-person"
    fps: float = 2.0
    loop: bool = False

    def __post_init__(self) -> None:
        if not self.camera or any(c in self.camera for c in ".*> \t"):
            raise ValueError(f"camera id {self.camera!r} must be a non-empty NATS token "
                             "(no '.', '*', '>' or spaces)")
        if not (self.tenant.isdigit() and len(self.tenant) in (4, 6, 9, 12)):
            raise ValueError(f"camera {self.camera}: tenant {self.tenant!r} is not a division "
                             "code of 4, 6, 9 or 12 digits")
        if not self.fps > 0:
            raise ValueError(f"camera {self.camera}: the frame-rate cap must be above 0")


@dataclass
class CameraStats:
    """One camera's counters (they only grow) and its last problem."""

    camera: str
    captured: int = 0
    analysed: int = 0
    published: int = 0
    dropped_backpressure: int = 0
    dropped_unavailable: int = 0
    unreadable: int = 0
    model_errors: int = 0
    publish_errors: int = 0
    frames_kept: int = 0
    frame_errors: int = 0
    state: str = "starting"
    last_error: str = ""
    inference_ms: list[float] = field(default_factory=list, repr=False)
    latency_ms: list[float] = field(default_factory=list, repr=False)  # capture → published


@dataclass(frozen=True)
class Health:
    """``healthy``, or ``degraded`` with the reason and since when."""

    status: str
    reason: str
    since: datetime | None
    cameras: dict[str, dict[str, Any]]

    @property
    def line(self) -> str:
        if self.status == "healthy":
            return "healthy"
        since = f" since {self.since.isoformat(timespec='seconds')}" if self.since else ""
        return f"{self.status}: {self.reason}{since}"


async def ensure_detections_stream(js: Any) -> None:
    """Create ``ZZ_DETECTIONS`` if missing (see ``vision.messages.ensure_stream``)."""
    await ensure_stream(js, DETECTIONS_STREAM, DETECTIONS_SUBJECTS)


class VisionWorker:
    """Runs a set of cameras until stopped (or until every finite source has ended)."""

    def __init__(self, cameras: Sequence[CameraConfig], *, nats_url: str, triton_url: str,
                 sources: dict[str, FrameSource] | None = None, models: dict[str, ModelSpec]
                 | None = None, publish_timeout_s: float = 5.0,
                 keep_frames: bool = True) -> None:
        ids = [c.camera for c in cameras]
        if len(set(ids)) != len(ids):
            raise ValueError("camera ids must be unique within a worker")
        self.cameras = list(cameras)
        self.nats_url = nats_url
        self.detector = TritonDetector(triton_url)
        self._sources = dict(sources or {})
        self._models = {**MODELS, **(models or {})}
        for c in cameras:
            if c.model not in self._models:
                raise ValueError(f"camera {c.camera}: unknown model {c.model!r}; "
                                 f"known: {', '.join(sorted(self._models))}")
        self.publish_timeout_s = publish_timeout_s
        self.keep_frames = keep_frames
        self._frames: Any = None  # the object store bucket of kept frames
        self.stats = {c.camera: CameraStats(c.camera) for c in cameras}
        self._feeds: dict[str, CameraFeed] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._nc: Any = None
        self._js: Any = None
        self._unreachable_since: datetime | None = None
        self._unreachable_reason = ""

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        self._nc = await nats.connect(self.nats_url, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5)
        self._js = self._nc.jetstream()
        await ensure_detections_stream(self._js)
        if self.keep_frames:
            self._frames = await ensure_frames_bucket(self._js)
        loop = asyncio.get_running_loop()
        for config in self.cameras:
            stats = self.stats[config.camera]
            source = self._sources.get(config.camera) or open_source(config.source,
                                                                     loop=config.loop)
            feed_stats = FeedStats()

            def dropped(s: FeedStats = feed_stats) -> None:
                s.dropped_backpressure += 1

            slot = LatestFrameSlot(loop, dropped)
            feed = CameraFeed(config.camera, source, config.fps, slot, feed_stats,
                              first_seq=await self._next_seq(config))
            self._feeds[config.camera] = feed
            stats.state = "running"
            self._tasks.append(asyncio.create_task(self._camera(config, feed, slot, stats),
                                                   name=f"camera-{config.camera}"))
            feed.start()

    async def wait(self) -> None:
        """Until every camera's source has ended (finite sources) or failed."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for feed in self._feeds.values():
            await asyncio.to_thread(feed.stop)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), 10)
        for task in self._tasks:
            task.cancel()
        await self.detector.close()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()

    async def __aenter__(self) -> VisionWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- health ---------------------------------------------------------------------
    def health(self) -> Health:
        cameras: dict[str, dict[str, Any]] = {}
        failed = []
        for name, stats in self.stats.items():
            feed = self._feeds.get(name)
            if feed is not None:
                stats.captured = feed.stats.captured
                stats.dropped_backpressure = feed.stats.dropped_backpressure
                stats.unreadable = feed.stats.unreadable
                if feed.stats.state.startswith("failed") or feed.stats.state == "finished":
                    stats.state = feed.stats.state
                if feed.stats.last_error and not stats.last_error:
                    stats.last_error = feed.stats.last_error
            body = asdict(stats)
            body.pop("inference_ms")
            body.pop("latency_ms")
            cameras[name] = body
            if stats.state.startswith("failed"):
                failed.append(name)
        if self._unreachable_since is not None:
            return Health("degraded", f"triton unreachable ({self._unreachable_reason})",
                          self._unreachable_since, cameras)
        if failed:
            return Health("degraded", f"camera(s) failed: {', '.join(sorted(failed))}", None,
                          cameras)
        return Health("healthy", "", None, cameras)

    # -- per camera -----------------------------------------------------------------
    async def _next_seq(self, config: CameraConfig) -> int:
        """After the last frame this camera published (so a restart never reuses an id)."""
        try:
            last = await self._js.get_last_msg(DETECTIONS_STREAM,
                                               detections_subject(config.tenant, config.camera))
        except NotFoundError:
            return 0
        try:
            return FrameDetections.decode(last.data).seq + 1
        except MessageError:
            return 0

    async def _camera(self, config: CameraConfig, feed: CameraFeed, slot: LatestFrameSlot,
                      stats: CameraStats) -> None:
        spec = self._models[config.model]
        while True:
            frame = await slot.get()
            if frame is None:
                stats.state = feed.stats.state
                if feed.stats.last_error:
                    stats.last_error = feed.stats.last_error
                return
            try:
                image = frame.image if frame.image is not None else (
                    await asyncio.to_thread(frame.decoded))
            except UnreadableFrame as e:  # a deferred frame, decoded only now
                feed.stats.unreadable += 1
                feed.stats.last_error = str(e)
                continue
            try:
                [detections], inference_ms = await self.detector.detect(spec, [image])
            except TritonUnavailable as e:
                stats.dropped_unavailable += 1
                if self._unreachable_since is None:
                    self._unreachable_since = datetime.now(UTC)
                    log.warning("triton unreachable: %s", e)
                self._unreachable_reason = "frames dropped until it answers again"
                stats.last_error = str(e)
                continue
            except ModelOutputError as e:
                stats.model_errors += 1
                stats.last_error = str(e)
                log.error("camera %s: %s", config.camera, e)
                continue
            except InferenceError as e:
                stats.model_errors += 1
                stats.last_error = str(e)
                log.error("camera %s: %s", config.camera, e)
                continue
            if self._unreachable_since is not None:
                log.info("triton answers again (unreachable since %s)",
                         self._unreachable_since.isoformat())
                self._unreachable_since = None
            stats.analysed += 1
            stats.inference_ms.append(inference_ms)
            message = FrameDetections(
                camera=config.camera, tenant=config.tenant, seq=frame.seq, at=frame.at,
                width=int(image.shape[1]), height=int(image.shape[0]),
                model=spec.name, inference_ms=round(inference_ms, 2), detections=detections)
            if detections and self._frames is not None:
                await self.keep_frame(message, image, stats)
            if await self.publish(message):
                stats.published += 1
                stats.latency_ms.append((time.monotonic() - frame.captured_monotonic) * 1000)
            else:
                stats.publish_errors += 1

    async def keep_frame(self, message: FrameDetections, image: Frame,
                         stats: CameraStats) -> None:
        """Put the frame (RGB) as a JPEG in the frames bucket under its key."""
        key = frame_key(message.tenant, message.camera, message.seq)
        try:
            jpeg = await asyncio.to_thread(encode_jpeg, image)
            await asyncio.wait_for(self._frames.put(key, jpeg), self.publish_timeout_s)
            stats.frames_kept += 1
        except Exception as e:  # an unkept frame costs its picture, never its detections
            stats.frame_errors += 1
            stats.last_error = f"keeping frame {key} failed: {e!r}"
            log.warning("camera %s: keeping frame %s failed: %r", message.camera, key, e)

    async def publish(self, message: FrameDetections, *, attempts: int = 3) -> bool:
        """Publish with the frame's message id; a retry after a lost ack is stored once."""
        for attempt in range(attempts):
            try:
                await self._js.publish(message.subject, message.encode(),
                                       timeout=self.publish_timeout_s,
                                       headers={"Nats-Msg-Id": message.msg_id})
                return True
            except Exception as e:  # nats-py raises timeouts and connection errors alike
                log.warning("publishing %s failed (attempt %d): %r", message.msg_id,
                            attempt + 1, e)
                await asyncio.sleep(0.2 * (attempt + 1))
        self.stats[message.camera].last_error = f"publishing {message.msg_id} failed"
        return False


def encode_jpeg(image: Frame, quality: int = 80) -> bytes:
    """An RGB frame as JPEG bytes."""
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the frame could not be encoded as JPEG")
    return bytes(encoded.tobytes())


def write_health(health: Health, path: Path) -> None:
    """The health as JSON, replaced atomically (for an exec probe or an operator)."""
    body = {"status": health.status, "line": health.line,
            "at": datetime.now(UTC).isoformat(timespec="seconds"), "cameras": health.cameras}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(body, indent=1))
    tmp.replace(path)


async def _serve(cameras: list[CameraConfig], nats_url: str, triton_url: str,
                 health_every_s: float, health_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with VisionWorker(cameras, nats_url=nats_url, triton_url=triton_url) as worker:
        done = asyncio.create_task(worker.wait())
        while not stop.is_set() and not done.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), health_every_s)
            health = worker.health()
            print(health.line, flush=True)
            if health_file is not None:
                write_health(health, health_file)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vision.worker cameras.json``: a JSON list of camera configs."""
    from zongzhi.servers import NATS_URL, TRITON_URL

    parser = argparse.ArgumentParser(prog="vision.worker", description=main.__doc__)
    parser.add_argument("cameras", help="JSON file: [{camera, tenant, source, model, fps}]")
    parser.add_argument("--nats-url", default=None)
    parser.add_argument("--triton-url", default=None)
    parser.add_argument("--health-every", type=float, default=10.0)
    parser.add_argument("--health-file", type=Path, default=None,
                        help="also write the health as JSON here every --health-every s")
    args = parser.parse_args(argv)
    import os

    nats_url = args.nats_url or os.environ.get(NATS_URL)
    triton_url = args.triton_url or os.environ.get(TRITON_URL)
    if not nats_url or not triton_url:
        print(f"set {NATS_URL} and {TRITON_URL} (or pass --nats-url/--triton-url)",
              file=sys.stderr)
        return 2
    with open(args.cameras) as f:
        cameras = [CameraConfig(**c) for c in json.load(f)]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_serve(cameras, nats_url, triton_url, args.health_every, args.health_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
