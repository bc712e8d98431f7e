"""Detections through a real Triton (the nvidia-pytriton wheel's server, CPU) with the
shipped pretrained weights, on real photos from scikit-image's data module."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from vision_support import BAD_SHAPE, photo

from vision.inference import (
    SSDLITE_PERSON,
    YOLOV3_TINY,
    InferenceError,
    ModelOutputError,
    ModelSpec,
    TritonDetector,
    TritonUnavailable,
)
from vision.messages import Detection
from zongzhi.servers import EmbeddedTriton, free_port

# Where the people are, labelled by hand (x1, y1, x2, y2 as fractions of the photo).
PEOPLE = {
    "astronaut": (0.0, 0.05, 0.73, 1.0),  # Eileen Collins, head to waist
    "camera": (0.0, 0.12, 0.60, 1.0),  # the cameraman and his tripod's left side
}
EMPTY_SCENES = ("coffee", "chelsea", "rocket", "brick", "hubble_deep_field")


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def detect(url: str, spec: ModelSpec, *frames: np.ndarray) -> list[tuple[Detection, ...]]:
    async def run() -> list[tuple[Detection, ...]]:
        detector = TritonDetector(url)
        try:
            found, _ = await detector.detect(spec, list(frames))
            return found
        finally:
            await detector.close()

    return asyncio.run(run())


@pytest.mark.parametrize("name", sorted(PEOPLE))
def test_the_person_detector_finds_the_person_where_the_person_is(
        triton_url: str, name: str) -> None:
    # given a real photo of one person
    # when Triton runs the SSDLite person detector on it
    [found] = detect(triton_url, SSDLITE_PERSON, photo(name))
    # then exactly one person is reported, boxed where the person stands
    assert [d.label for d in found] == ["person"]
    assert found[0].score >= 0.9
    assert iou(found[0].box, PEOPLE[name]) >= 0.8


def test_no_person_is_reported_on_photos_without_people(triton_url: str) -> None:
    # given real photos of a cup, a cat, a launch pad, a wall and a sky of galaxies
    frames = [photo(n) for n in EMPTY_SCENES]
    # when both detectors look at them
    people = detect(triton_url, SSDLITE_PERSON, *frames)
    objects = detect(triton_url, YOLOV3_TINY, *frames)
    # then no person and no vehicle is reported on any of them
    assert people == [()] * len(frames)
    assert [d for found in objects for d in found
            if d.label in {"person", "car", "motorbike", "bus", "truck", "bicycle"}] == []


def test_yolo_finds_the_motorbike_in_the_garage_photo(triton_url: str) -> None:
    # given the stereo pair's left photo: a motorbike in a garage
    # when YOLOv3-tiny looks at it
    [found] = detect(triton_url, YOLOV3_TINY, photo("motorcycle"))
    # then a motorbike is reported, boxed over the middle of the photo where it stands
    bikes = [d for d in found if d.label == "motorbike"]
    assert bikes, found
    x1, y1, x2, y2 = bikes[0].box
    assert x1 < 0.5 < x2 and y1 < 0.5 < y2


def test_a_batch_answers_each_frame_in_its_own_order(triton_url: str) -> None:
    # given three frames: a person, no one, a person
    # when they go to Triton as one batch
    found = detect(triton_url, SSDLITE_PERSON, photo("astronaut"), photo("coffee"),
                   photo("camera"))
    # then each frame gets its own answer, in order
    assert [[d.label for d in f] for f in found] == [["person"], [], ["person"]]


def test_concurrent_requests_from_many_cameras_are_answered_alike(triton_url: str) -> None:
    # given 12 cameras sending a frame each at the same moment (the server batches them)
    frames = [photo("astronaut") if i % 2 == 0 else photo("coffee") for i in range(12)]

    async def run() -> list[list[tuple[Detection, ...]]]:
        detector = TritonDetector(triton_url)
        try:
            answers = await asyncio.gather(
                *(detector.detect(SSDLITE_PERSON, [f]) for f in frames))
            return [found for found, _ in answers]
        finally:
            await detector.close()

    # when all are answered
    found = asyncio.run(run())
    # then every camera gets the answer its own frame deserves
    assert [len(f[0]) for f in found] == [1 if i % 2 == 0 else 0 for i in range(12)]


def test_a_frame_that_is_not_rgb_is_refused_before_it_reaches_triton(triton_url: str) -> None:
    # given a grey-scale frame (H x W, no colour axis)
    grey = photo("camera")[..., 0]
    # when it is sent, then the error names the rule
    with pytest.raises(ValueError, match="H x W x 3 uint8 RGB"):
        detect(triton_url, SSDLITE_PERSON, grey)


def test_an_unknown_model_is_a_clear_inference_error(triton_url: str) -> None:
    # given a detector name the server does not serve
    ghost = ModelSpec("no-such-model", 300, {1: "person"}, min_score=0.5)
    # when a frame is sent to it, then the error names the model
    with pytest.raises(InferenceError, match="no-such-model") as raised:
        detect(triton_url, ghost, photo("coffee"))
    assert raised.value.code == "INFERENCE"


def test_an_unreachable_triton_is_reported_as_unavailable() -> None:
    # given an address where no Triton listens
    url = f"127.0.0.1:{free_port()}"
    # when a frame is sent, then the error says Triton is unreachable
    with pytest.raises(TritonUnavailable, match="unreachable") as raised:
        detect(url, SSDLITE_PERSON, photo("coffee"))
    assert raised.value.code == "TRITON_UNAVAILABLE"


def test_a_model_answering_in_the_wrong_shape_is_a_clear_error_and_others_still_work(
        own_triton: EmbeddedTriton) -> None:
    # given a Triton serving a broken detector beside the good ones
    # when a frame goes to the broken one
    with pytest.raises(ModelOutputError, match=r"bad-shape.*\[1, 3, 5\].*expected") as raised:
        detect(own_triton.url, BAD_SHAPE, photo("astronaut"))
    assert raised.value.code == "MODEL_OUTPUT"
    # then the good detector on the same server still answers
    [found] = detect(own_triton.url, SSDLITE_PERSON, photo("astronaut"))
    assert [d.label for d in found] == ["person"]
