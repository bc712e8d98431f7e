"""What crosses NATS between the vision workers and the alert service.

Detections: one message per analysed frame, on
``zz.detections.<city>.<tenant>.<camera>``, with ``Nats-Msg-Id`` set to
``<camera>:<seq>`` so that JetStream drops a republished frame (the stream's
duplicate window) and a consumer can tell a redelivery by its id.

Alerts: one message per raised (or re-counted) alert, on
``zz.alerts.<kind>.<city>.<county>.<township>.<village>`` where the tier
segments below the alert's tenant are ``_``; a subscriber narrows to a
subtree and kind with wildcards, e.g. ``zz.alerts.*.3301.330102.>``.

Frames: the JPEG of each analysed frame with detections, put by the worker in
JetStream's object store (bucket ``zz-frames``, kept ``FRAMES_TTL_S``) under
``<tenant>-<camera>-<seq>`` before its detections are published, so the frame
that fired an alert can be shown with its boxes while the bucket keeps it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ALERTS_STREAM",
    "DETECTIONS_STREAM",
    "DUPLICATE_WINDOW_S",
    "FRAMES_BUCKET",
    "FRAMES_TTL_S",
    "AlertMessage",
    "Detection",
    "FrameDetections",
    "MessageError",
    "alert_msg_id",
    "alerts_subject",
    "detection_msg_id",
    "detections_subject",
    "ensure_frames_bucket",
    "ensure_stream",
    "frame_key",
]

DETECTIONS_STREAM = "ZZ_DETECTIONS"
DETECTIONS_SUBJECTS = "zz.detections.>"
ALERTS_STREAM = "ZZ_ALERTS"
ALERTS_SUBJECTS = "zz.alerts.>"
FRAMES_BUCKET = "zz-frames"
FRAMES_TTL_S = 3600.0  # an hour: long enough to dispose of an alert, short for privacy


class MessageError(ValueError):
    """A message that does not follow this contract."""


@dataclass(frozen=True)
class Detection:
    """One object found in a frame; the box is normalised to 0..1 (x1, y1, x2, y2)."""

    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameDetections:
    """Everything one model found in one frame of one camera."""

    camera: str
    tenant: str  # the camera's center (division code)
    seq: int  # the frame's number in this camera's stream, from 0
    at: datetime  # when the frame was captured, tz-aware
    width: int
    height: int
    model: str  # e.g. "ssdlite-person", "yolov3-tiny"
    inference_ms: float
    detections: tuple[Detection, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        body = asdict(self)
        body["at"] = self.at.isoformat()
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> FrameDetections:
        try:
            body = json.loads(data)
            at = datetime.fromisoformat(body["at"])
            if at.tzinfo is None:
                raise MessageError("a frame's time must carry its zone")
            return cls(
                camera=str(body["camera"]), tenant=str(body["tenant"]), seq=int(body["seq"]),
                at=at, width=int(body["width"]), height=int(body["height"]),
                model=str(body["model"]), inference_ms=float(body["inference_ms"]),
                detections=tuple(
                    Detection(str(d["label"]), float(d["score"]),
                              (float(d["box"][0]), float(d["box"][1]),
                               float(d["box"][2]), float(d["box"][3])))
                    for d in body["detections"]
                ),
            )
        except MessageError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise MessageError(f"not a detections message: {e!r}") from e

    @property
    def msg_id(self) -> str:
        return detection_msg_id(self.camera, self.seq)

    @property
    def subject(self) -> str:
        return detections_subject(self.tenant, self.camera)


def detection_msg_id(camera: str, seq: int) -> str:
    return f"{camera}:{seq}"


def detections_subject(tenant: str, camera: str) -> str:
    return f"zz.detections.{tenant[:4]}.{tenant}.{camera}"


def frame_key(tenant: str, camera: str, seq: int) -> str:
    """The object-store name of a camera's frame (camera refs hold no '.' or space)."""
    return f"{tenant}-{camera}-{seq}"


DUPLICATE_WINDOW_S = 120.0  # seconds JetStream remembers message ids
STREAM_MAX_AGE_S = 7 * 86400.0  # detections and alerts are kept a week


async def ensure_stream(js: Any, name: str, subjects: str) -> None:
    """Create the stream if missing (file storage, message-id de-duplication over
    ``DUPLICATE_WINDOW_S``); an existing stream is left as its owner configured it."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    with contextlib.suppress(BadRequestError):  # created by someone else meanwhile
        await js.add_stream(StreamConfig(
            name=name, subjects=[subjects], storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S, max_age=STREAM_MAX_AGE_S))


async def ensure_frames_bucket(js: Any, ttl_s: float = FRAMES_TTL_S) -> Any:
    """The frames bucket (file storage, objects dropped after ``ttl_s``), created if
    missing; an existing bucket is used as its owner configured it."""
    from nats.js.api import ObjectStoreConfig, StorageType
    from nats.js.errors import BadRequestError, NotFoundError

    try:
        return await js.object_store(FRAMES_BUCKET)
    except NotFoundError:
        pass
    try:
        return await js.create_object_store(FRAMES_BUCKET, config=ObjectStoreConfig(
            bucket=FRAMES_BUCKET, ttl=ttl_s, storage=StorageType.FILE,
            description="analysed camera frames with detections, kept briefly"))
    except BadRequestError:  # created by someone else meanwhile
        return await js.object_store(FRAMES_BUCKET)


# -- alerts (added by the alert service) ---------------------------------------------------

_TIER_LENGTHS = (4, 6, 9, 12)


def alerts_subject(kind: str, tenant: str) -> str:
    """``zz.alerts.<kind>.<city>.<county>.<township>.<village>``, ``_`` below the tenant."""
    if len(tenant) not in _TIER_LENGTHS or not tenant.isdigit():
        raise MessageError(f"an alert's tenant is a division code; {tenant!r} is not one")
    segments = [tenant[:n] if len(tenant) >= n else "_" for n in _TIER_LENGTHS]
    return ".".join(("zz", "alerts", kind, *segments))


def alert_msg_id(alert_id: str, repeats: int) -> str:
    """One message per alert and count: a republished one is dropped by JetStream."""
    return f"{alert_id}:{repeats}"


@dataclass(frozen=True)
class AlertMessage:
    """An alert raised (``repeats`` 0) or counted again, as pushed to subscribers."""

    alert_id: str
    tenant: str
    camera_id: str
    camera: str  # the camera's ref
    zone: str
    kind: str
    model: str
    confidence: float
    repeats: int
    status: str
    first_at: datetime
    last_at: datetime
    episode_at: datetime

    def encode(self) -> bytes:
        body = asdict(self)
        for key in ("first_at", "last_at", "episode_at"):
            body[key] = getattr(self, key).isoformat()
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> AlertMessage:
        try:
            body = json.loads(data)
            times = {k: datetime.fromisoformat(body[k])
                     for k in ("first_at", "last_at", "episode_at")}
            return cls(
                alert_id=str(body["alert_id"]), tenant=str(body["tenant"]),
                camera_id=str(body["camera_id"]), camera=str(body["camera"]),
                zone=str(body["zone"]), kind=str(body["kind"]), model=str(body["model"]),
                confidence=float(body["confidence"]), repeats=int(body["repeats"]),
                status=str(body["status"]), **times)
        except (KeyError, TypeError, ValueError) as e:
            raise MessageError(f"not an alert message: {e!r}") from e

    @property
    def subject(self) -> str:
        return alerts_subject(self.kind, self.tenant)

    @property
    def msg_id(self) -> str:
        return alert_msg_id(self.alert_id, self.repeats)
