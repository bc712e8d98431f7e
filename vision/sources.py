"""Frame sources (OpenCV): a folder of images, a video file, an RTSP stream.

A :class:`CameraFeed` reads one source on its own thread at no more than the camera's
frame-rate cap and leaves each frame in a :class:`LatestFrameSlot`: one frame, no queue.
When inference falls behind, a new frame replaces the one still waiting and the
replaced one is counted as dropped — memory stays bounded whatever the camera count.
A frame that cannot be decoded is counted and reported (``last_error``) and the feed
goes on with the next; a source that cannot be opened fails that camera alone.

A source whose frames can be decoded apart from reading them (a folder of images: a
frame is a file) hands the feed a *deferred* frame instead (:class:`DeferredSource`):
the consumer decodes only the frames it takes, so a frame dropped by back-pressure
costs no decoding. A video or RTSP frame is decoded as it is read (each depends on
the ones before it).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "IMAGE_SUFFIXES",
    "CameraFeed",
    "CapturedFrame",
    "DeferredSource",
    "FeedStats",
    "FrameSource",
    "ImageFolder",
    "LatestFrameSlot",
    "RtspStream",
    "SourceError",
    "UnreadableFrame",
    "VideoFile",
    "open_source",
]

Frame = npt.NDArray[np.uint8]  # H x W x 3, RGB
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class SourceError(RuntimeError):
    """A source that cannot be opened at all (missing folder, unreadable video)."""

    code = "SOURCE"


class UnreadableFrame(RuntimeError):
    """One frame that cannot be decoded; the source goes on with the next."""

    code = "UNREADABLE_FRAME"


class FrameSource(Protocol):
    """Frames of one camera, in order. ``read`` returns ``None`` at the end."""

    name: str
    live: bool  # frames come at the camera's pace (RTSP), not on demand

    def open(self) -> None: ...
    def read(self) -> Frame | None: ...
    def close(self) -> None: ...


@runtime_checkable
class DeferredSource(Protocol):
    """A source that can give the next frame undecoded: ``read_deferred`` returns a
    function that decodes it (raising :class:`UnreadableFrame`), or ``None`` at the end."""

    def read_deferred(self) -> Callable[[], Frame] | None: ...


def _rgb(bgr: npt.NDArray[Any]) -> Frame:
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


class ImageFolder:
    """The images of a folder in name order (optionally over and over)."""

    live = False

    def __init__(self, folder: Path | str, *, loop: bool = False) -> None:
        self.folder = Path(folder)
        self.name = str(self.folder)
        self.loop = loop
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise SourceError(f"image folder {self.folder} does not exist")
        self._files = sorted(p for p in self.folder.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"image folder {self.folder} holds no images "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        self._next = 0

    def read(self) -> Frame | None:
        decode = self.read_deferred()
        return None if decode is None else decode()

    def read_deferred(self) -> Callable[[], Frame] | None:
        if self._next >= len(self._files):
            if not self.loop:
                return None
            self._next = 0
        path = self._files[self._next]
        self._next += 1
        return partial(self._decode, path)

    def _decode(self, path: Path) -> Frame:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UnreadableFrame(f"{path.name} in {self.folder} is not a readable image")
        return _rgb(image)

    def close(self) -> None:
        self._files = []


class VideoFile:
    """The frames of a video file (optionally replayed from the start at its end)."""

    live = False

    def __init__(self, path: Path | str, *, loop: bool = False) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        self.loop = loop
        self._capture: cv2.VideoCapture | None = None
        self._position = 0

    def _capture_or_fail(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"video {self.path} cannot be opened (missing, or not a video "
                              "OpenCV can decode)")
        return capture

    def open(self) -> None:
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist")
        self._capture = self._capture_or_fail()
        self._position = 0

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"video {self.path} is not open")
        ok, image = self._capture.read()
        if not ok:
            if not self.loop or self._position == 0:
                return None
            self._capture.release()
            self._capture = self._capture_or_fail()
            self._position = 0
            ok, image = self._capture.read()
            if not ok:
                return None
        self._position += 1
        if image is None or image.ndim != 3:
            raise UnreadableFrame(f"frame {self._position} of {self.path} cannot be decoded")
        return _rgb(image)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class RtspStream:
    """A live camera over RTSP (TCP); a lost stream is reopened on the next read."""

    live = True

    def __init__(self, url: str, *, open_timeout_s: float = 5.0) -> None:
        self.url = url
        self.name = url.split("@")[-1]  # never log credentials
        self.open_timeout_s = open_timeout_s
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
        capture = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.open_timeout_s * 1000)])
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"RTSP stream {self.name} cannot be opened")
        self._capture = capture

    def read(self) -> Frame | None:
        if self._capture is None:
            self.open()
        assert self._capture is not None
        ok, image = self._capture.read()
        if not ok or image is None:
            self.close()  # reopened on the next read
            raise UnreadableFrame(f"RTSP stream {self.name} lost a frame; reconnecting")
        return _rgb(image)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def open_source(uri: str, *, loop: bool = False) -> FrameSource:
    """``rtsp://...`` → :class:`RtspStream`; a folder (or a path without a suffix) →
    :class:`ImageFolder`; a file → :class:`VideoFile`. Nothing is opened yet."""
    if uri.startswith(("rtsp://", "rtsps://")):
        return RtspStream(uri)
    path = Path(uri)
    if path.is_dir() or not path.suffix:
        return ImageFolder(path, loop=loop)
    return VideoFile(path, loop=loop)


@dataclass(frozen=True)
class CapturedFrame:
    """One frame as it left its source: its number in the camera's stream (frames
    skipped as unreadable keep their numbers), when it was captured, and either the RGB
    image or, from a :class:`DeferredSource`, the function that decodes it."""

    seq: int
    at: datetime
    image: Frame | None = None
    captured_monotonic: float = 0.0
    decode: Callable[[], Frame] | None = None

    def __post_init__(self) -> None:
        if (self.image is None) == (self.decode is None):
            raise ValueError("a captured frame has an image or a decode function, one")

    def decoded(self) -> Frame:
        """The RGB image, decoding it now if it was deferred (:class:`UnreadableFrame`)."""
        if self.image is not None:
            return self.image
        assert self.decode is not None
        return self.decode()


@dataclass
class FeedStats:
    """What one camera's feed did; counters only grow."""

    captured: int = 0
    dropped_backpressure: int = 0
    unreadable: int = 0
    state: str = "starting"  # starting | running | finished | failed: <why>
    last_error: str = ""


class LatestFrameSlot:
    """A one-frame hand-over between a feed thread and an asyncio consumer.

    ``put`` never blocks: a frame still waiting is replaced and counted as dropped.
    ``get`` waits for the next frame, or returns ``None`` once the feed is closed and
    the slot is empty.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_drop: Callable[[], None]) -> None:
        self._loop = loop
        self._on_drop = on_drop
        self._lock = threading.Lock()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, frame: CapturedFrame) -> None:
        with self._lock:
            if self._frame is not None:
                self._on_drop()
            self._frame = frame
        self._loop.call_soon_threadsafe(self._ready.set)

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> CapturedFrame | None:
        while True:
            with self._lock:
                frame, self._frame = self._frame, None
                closed = self._closed
                if frame is None and not closed:
                    self._ready.clear()
            if frame is not None or closed:
                return frame
            await self._ready.wait()


@dataclass
class CameraFeed:
    """Reads one source on a thread, at most ``fps`` frames a second, into a slot."""

    camera: str
    source: FrameSource
    fps: float
    slot: LatestFrameSlot
    stats: FeedStats = field(default_factory=FeedStats)
    first_seq: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if not self.fps > 0:
            raise ValueError(f"camera {self.camera}: the frame-rate cap must be above 0")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"feed-{self.camera}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            self.source.open()
        except SourceError as e:
            self.stats.state = f"failed: {e}"
            self.stats.last_error = str(e)
            self.slot.close()
            return
        self.stats.state = "running"
        interval = 1.0 / self.fps
        deferred = self.source if isinstance(self.source, DeferredSource) else None
        due = time.monotonic()
        seq = self.first_seq
        try:
            while not self._stop.is_set():
                if not self.source.live and self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                try:
                    image: Frame | None = None
                    decode = None
                    if deferred is not None:
                        decode = deferred.read_deferred()
                    else:
                        image = self.source.read()
                except UnreadableFrame as e:
                    self.stats.unreadable += 1
                    self.stats.last_error = str(e)
                    seq += 1
                    due = max(due + interval, time.monotonic())
                    if self.source.live:
                        self._stop.wait(min(interval, 1.0))  # back off before reconnecting
                    continue
                except SourceError as e:
                    self.stats.state = f"failed: {e}"
                    self.stats.last_error = str(e)
                    return
                if image is None and decode is None:
                    self.stats.state = "finished"
                    return
                now = time.monotonic()
                if self.source.live and now < due:
                    continue  # above the cap: read to stay current, but skip
                self.slot.put(CapturedFrame(seq, datetime.now(UTC), image, now, decode))
                self.stats.captured += 1
                seq += 1
                due = max(due + interval, now)  # never burst to catch up
        finally:
            self.source.close()
            self.slot.close()
