"""Detections from Triton: the only module that talks to ``tritonclient`` (gRPC).

Every served detector has the same contract (``vision/models/*/config.pbtxt``): input
``IMAGE``, RGB uint8 frames resized to the model's square side, batched on the first
axis; output ``DETECTIONS``, float32 ``[batch, rows, 6]`` with rows
``(x1, y1, x2, y2, score, class)`` normalised to 0..1. The server's dynamic batcher
merges concurrent requests (one per camera frame) into one model execution.

Errors carry a stable ``code``: ``TRITON_UNAVAILABLE`` (the server cannot be reached:
the caller drops the frame and retries on the next), ``MODEL_OUTPUT`` (a model answered
in an unexpected shape: that model's frames fail, the others go on), ``INFERENCE``
(anything else the server refused, e.g. an unknown model).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from vision.messages import Detection

__all__ = [
    "MODELS",
    "SSDLITE_PERSON",
    "YOLOV3_TINY",
    "InferenceError",
    "ModelOutputError",
    "ModelSpec",
    "TritonDetector",
    "TritonUnavailable",
    "decode_detections",
    "local_model_repository",
    "preprocess",
]

Frame = npt.NDArray[np.uint8]  # H x W x 3, RGB

_MODELS_DIR = Path(__file__).resolve().parent / "models"


def local_model_repository() -> Path:
    """The model repository the embedded (CPU, Python backend) Triton serves."""
    return _MODELS_DIR / "local"


class InferenceError(RuntimeError):
    """Triton refused a request; ``code`` is stable, the message says what happened."""

    code = "INFERENCE"


class TritonUnavailable(InferenceError):
    """Triton cannot be reached (stopped, restarting, network)."""

    code = "TRITON_UNAVAILABLE"


class ModelOutputError(InferenceError):
    """A model answered, but not in the detector contract's shape."""

    code = "MODEL_OUTPUT"


@dataclass(frozen=True)
class ModelSpec:
    """A served detector: its Triton name (also ``FrameDetections.model``), its input
    side, its class labels, and the score below which a box is not reported."""

    name: str
    side: int
    labels: Mapping[int, str]
    min_score: float
    report: frozenset[str] | None = None  # labels worth publishing; None = every label

    def label(self, cls: int) -> str | None:
        label = self.labels.get(cls)
        if label is None or (self.report is not None and label not in self.report):
            return None
        return label


def _coco_labels() -> dict[int, str]:
    names = (_MODELS_DIR / "coco.names").read_text().split("\n")
    return {i: name.strip() for i, name in enumerate(names) if name.strip()}


SSDLITE_PERSON = ModelSpec("ssdlite-person", 300, {1: "person"}, min_score=0.5)
YOLOV3_TINY = ModelSpec(
    "yolov3-tiny", 416, _coco_labels(), min_score=0.25,
    # what the zone rules look at: vehicles and objects left in fire lanes or stalls
    report=frozenset({"person", "bicycle", "car", "motorbike", "bus", "truck", "backpack",
                      "handbag", "suitcase", "umbrella", "chair", "bench", "bottle"}))
MODELS: dict[str, ModelSpec] = {m.name: m for m in (SSDLITE_PERSON, YOLOV3_TINY)}


def preprocess(spec: ModelSpec, frame: Frame) -> Frame:
    """Resize one RGB frame to the model's input (boxes stay normalised to the frame)."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"a frame must be H x W x 3 uint8 RGB, not {frame.shape} {frame.dtype}")
    if frame.shape[:2] == (spec.side, spec.side):
        return frame
    return np.asarray(cv2.resize(frame, (spec.side, spec.side), interpolation=cv2.INTER_LINEAR),
                      dtype=np.uint8)


def decode_detections(spec: ModelSpec, out: Any, frames: int) -> list[tuple[Detection, ...]]:
    """The contract's ``DETECTIONS`` output → detections per frame, checked for shape."""
    if out is None:
        raise ModelOutputError(f"model {spec.name} returned no DETECTIONS output")
    shape = tuple(int(d) for d in np.shape(out))
    if len(shape) != 3 or shape[0] != frames or shape[2] != 6:
        raise ModelOutputError(
            f"model {spec.name} returned DETECTIONS of shape {list(shape)}; "
            f"expected [{frames}, rows, 6] (x1, y1, x2, y2, score, class)")
    result: list[tuple[Detection, ...]] = []
    for rows in np.asarray(out, dtype=np.float32):
        found: list[Detection] = []
        for x1, y1, x2, y2, score, cls in rows.tolist():
            if score < spec.min_score:
                continue
            label = spec.label(round(cls))
            if label is None:
                continue
            box = (min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0),
                   min(max(x2, 0.0), 1.0), min(max(y2, 0.0), 1.0))
            found.append(Detection(label, round(float(score), 4),
                                   (round(box[0], 4), round(box[1], 4),
                                    round(box[2], 4), round(box[3], 4))))
        found.sort(key=lambda d: -d.score)
        result.append(tuple(found))
    return result


_UNAVAILABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED")


class TritonDetector:
    """Batched object detection through one Triton server's gRPC endpoint.

    ``detect`` sends one request per call; callers that run concurrently (one per
    camera) are merged into batches by the server's dynamic batcher.
    """

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._client: grpcclient.InferenceServerClient | None = None

    def _connect(self) -> grpcclient.InferenceServerClient:
        if self._client is None:
            # reconnect quickly after Triton comes back (gRPC's default backoff grows to
            # 2 minutes); keep tritonclient's own unlimited message sizes
            self._client = grpcclient.InferenceServerClient(self.url, channel_args=[
                ("grpc.max_send_message_length", 2**31 - 1),
                ("grpc.max_receive_message_length", 2**31 - 1),
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.min_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 1000)])
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def ready(self, model: str | None = None) -> bool:
        """Whether the server (and the model, if named) answers as ready."""
        try:
            client = self._connect()
            if model is None:
                return bool(await client.is_server_ready(client_timeout=self.timeout_s))
            return bool(await client.is_model_ready(model, client_timeout=self.timeout_s))
        except InferenceServerException:
            return False

    async def infer_tensors(self, model: str, inputs: Mapping[str, npt.NDArray[Any]],
                            outputs: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        """Any model's named tensors in and out (for the decode steps and diagnostics)."""
        tensors = []
        for name, array in inputs.items():
            tensor = grpcclient.InferInput(name, list(array.shape),
                                           "FP32" if array.dtype == np.float32 else "UINT8")
            tensor.set_data_from_numpy(array)
            tensors.append(tensor)
        try:
            result = await self._connect().infer(
                model, tensors, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                client_timeout=self.timeout_s)
        except InferenceServerException as e:
            raise InferenceError(f"Triton refused {model} ({e.status()}): {e.message()}") from e
        return {o: np.asarray(result.as_numpy(o)) for o in outputs}

    async def detect(self, spec: ModelSpec,
                     frames: Sequence[Frame]) -> tuple[list[tuple[Detection, ...]], float]:
        """Detections for each frame, and the request's round trip in milliseconds."""
        if not frames:
            return [], 0.0
        batch = np.stack([preprocess(spec, f) for f in frames])
        image = grpcclient.InferInput("IMAGE", list(batch.shape), "UINT8")
        image.set_data_from_numpy(batch)
        started = time.perf_counter()
        try:
            result = await self._connect().infer(
                spec.name, [image], outputs=[grpcclient.InferRequestedOutput("DETECTIONS")],
                client_timeout=self.timeout_s)
        except InferenceServerException as e:
            status = str(e.status() or "")
            if any(s in status for s in _UNAVAILABLE):
                raise TritonUnavailable(
                    f"Triton at {self.url} is unreachable ({status}): {e.message()}") from e
            if "INVALID_ARGUMENT" in status or "error" in str(e.message()).lower():
                text = str(e.message())
                if "unexpected shape" in text or "DETECTIONS" in text:
                    raise ModelOutputError(f"model {spec.name}: {text}") from e
            raise InferenceError(f"Triton refused {spec.name} ({status}): {e.message()}") from e
        elapsed_ms = (time.perf_counter() - started) * 1000
        return decode_detections(spec, result.as_numpy("DETECTIONS"), len(frames)), elapsed_ms
