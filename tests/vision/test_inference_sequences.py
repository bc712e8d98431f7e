"""The composed test sequences (scripts/compose_sequences.py) through the real models in
Triton: what the alert rules will see frame by frame."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from support import ROOT

from vision.inference import SSDLITE_PERSON, YOLOV3_TINY, ModelSpec, TritonDetector
from vision.messages import Detection


def compose_script() -> ModuleType:
    if "compose_sequences" in sys.modules:
        return sys.modules["compose_sequences"]
    spec = importlib.util.spec_from_file_location(
        "compose_sequences", ROOT / "scripts" / "compose_sequences.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compose_sequences"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def frames_of(folder: Path) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            for p in sorted(folder.glob("*.png"))]


def detect_all(url: str, spec: ModelSpec, frames: list[np.ndarray]) -> list[tuple[Detection, ...]]:
    async def run() -> list[tuple[Detection, ...]]:
        detector = TritonDetector(url)
        try:
            answers = await asyncio.gather(*(detector.detect(spec, [f]) for f in frames))
            return [found[0] for found, _ in answers]
        finally:
            await detector.close()

    return asyncio.run(run())


def test_composing_is_deterministic(tmp_path: Path) -> None:
    # given the script run twice
    compose = compose_script().compose
    compose(tmp_path / "a", 8)
    compose(tmp_path / "b", 8)
    # then every frame is byte for byte the same
    for a in sorted((tmp_path / "a").rglob("*.png")):
        assert a.read_bytes() == (tmp_path / "b" / a.relative_to(tmp_path / "a")).read_bytes()


def test_in_the_crowd_sequence_the_person_detector_sees_a_crowd_form(
        tmp_path: Path, triton_url: str) -> None:
    # given the crowd-forming sequence: 0 people, then one more every 3 frames, up to 5
    truth = compose_script().compose(tmp_path, 24)["crowd-forming"]
    # when every frame goes through the SSDLite person detector in Triton
    found = detect_all(triton_url, SSDLITE_PERSON, frames_of(tmp_path / "crowd-forming"))
    counts = [sum(d.label == "person" for d in f) for f in found]
    # then nobody is seen before anyone is there, and at least 4 once 4 or more stand there
    assert all(c == 0 for c, t in zip(counts, truth, strict=True) if t["people"] == 0)
    assert all(c >= 4 for c, t in zip(counts, truth, strict=True) if t["people"] >= 4)
    # and never more people than were pasted in
    assert all(c <= t["people"] for c, t in zip(counts, truth, strict=True))


def test_in_the_fire_lane_sequence_yolo_sees_the_motorbike_exactly_while_it_is_parked(
        tmp_path: Path, triton_url: str) -> None:
    # given the fire-lane sequence: the motorbike parked for the middle third only
    truth = compose_script().compose(tmp_path, 24)["fire-lane"]
    # when every frame goes through YOLOv3-tiny in Triton
    found = detect_all(triton_url, YOLOV3_TINY, frames_of(tmp_path / "fire-lane"))
    # then a motorbike is reported in exactly the parked frames, inside the lane's corner
    parked = [any(d.label == "motorbike" for d in f) for f in found]
    assert parked == [bool(t["vehicles"]) for t in truth]
    bikes = [d for f in found for d in f if d.label == "motorbike"]
    assert all(d.box[0] > 0.5 and d.box[1] > 0.5 for d in bikes)


def test_the_empty_scene_shows_nothing_to_either_detector(tmp_path: Path,
                                                          triton_url: str) -> None:
    compose_script().compose(tmp_path, 4)
    frames = frames_of(tmp_path / "empty")
    assert detect_all(triton_url, SSDLITE_PERSON, frames) == [()] * 4
    assert detect_all(triton_url, YOLOV3_TINY, frames) == [()] * 4
    assert json.loads((tmp_path / "sequences.json").read_text())["empty"][0]["people"] == 0
