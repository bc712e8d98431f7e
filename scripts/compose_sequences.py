#!/usr/bin/env python3
"""Compose camera test sequences from real photos (deterministic: same bytes every run).

    python scripts/compose_sequences.py OUT_DIR [--frames N]

Writes one folder of PNG frames per sequence (the ``ImageFolder`` source reads them in
name order) and a ``sequences.json`` describing what each frame shows:

- ``crowd-forming``: the launch site of scikit-image's ``rocket`` photo as the scene; the
  people are real people cut from ``astronaut`` (Eileen Collins) and ``camera`` (the
  cameraman), some mirrored, pasted one after another (four in front, one behind) until five
  stand there, then they stay.
- ``fire-lane``: the same scene with the motorbike cut from the stereo pair
  ``motorcycle_left`` parked in the lower right (the "fire lane") for the middle third of
  the sequence; empty before and after.
- ``empty``: the scene alone (nothing may be detected).

Nothing is random and nothing is fetched: the photos ship inside scikit-image.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]


def _rgb(image: npt.NDArray[np.generic]) -> Image:
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[..., :3], dtype=np.uint8)


def _crop(image: Image, box: tuple[float, float, float, float]) -> Image:
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    return image[int(y1 * h):int(y2 * h), int(x1 * w):int(x2 * w)]


def _height(image: Image, height: int) -> Image:
    h, w = image.shape[:2]
    return np.asarray(cv2.resize(image, (max(1, round(w * height / h)), height),
                                 interpolation=cv2.INTER_AREA), dtype=np.uint8)


@dataclass(frozen=True)
class Cutouts:
    scene: Image
    people: tuple[Image, ...]
    motorbike: Image


def cutouts() -> Cutouts:
    from skimage import data

    astronaut = _crop(_rgb(data.astronaut()), (0.0, 0.05, 0.73, 1.0))
    cameraman = _crop(_rgb(data.camera()), (0.0, 0.12, 0.60, 1.0))
    bike = _crop(_rgb(data.stereo_motorcycle()[0]), (0.06, 0.12, 0.94, 0.88))
    people = (cameraman, astronaut, cameraman[:, ::-1], astronaut[:, ::-1], cameraman)
    return Cutouts(_rgb(data.rocket()), tuple(np.ascontiguousarray(p) for p in people), bike)


def paste(scene: Image, piece: Image, x: int, y: int) -> None:
    h, w = piece.shape[:2]
    h, w = min(h, scene.shape[0] - y), min(w, scene.shape[1] - x)
    scene[y:y + h, x:x + w] = piece[:h, :w]


# where the k-th person stands in the 640 x 427 scene: (left, top, height in px); four
# in front, the fifth behind them
PEOPLE_AT = ((330, 200, 200), (170, 200, 200), (490, 200, 200), (10, 200, 200),
             (250, 40, 170))
BIKE_AT, BIKE_HEIGHT = (380, 225), 170


def crowd_forming(c: Cutouts, frames: int) -> list[tuple[Image, dict[str, object]]]:
    """One more person every ``frames // 8`` frames, up to five, then they stay."""
    step = max(1, frames // 8)
    out = []
    for i in range(frames):
        n = min(len(PEOPLE_AT), i // step)
        frame = c.scene.copy()
        for k in range(n):
            x, y, height = PEOPLE_AT[k]
            paste(frame, _height(c.people[k], height), x, y)
        out.append((frame, {"people": n, "vehicles": 0}))
    return out


def fire_lane(c: Cutouts, frames: int) -> list[tuple[Image, dict[str, object]]]:
    """The motorbike stands in the lane for the middle third of the frames."""
    bike = _height(c.motorbike, BIKE_HEIGHT)
    out = []
    for i in range(frames):
        frame = c.scene.copy()
        parked = frames // 3 <= i < 2 * frames // 3
        if parked:
            paste(frame, bike, *BIKE_AT)
        out.append((frame, {"people": 0, "vehicles": int(parked)}))
    return out


def empty(c: Cutouts, frames: int) -> list[tuple[Image, dict[str, object]]]:
    return [(c.scene.copy(), {"people": 0, "vehicles": 0}) for _ in range(frames)]


SEQUENCES = {"crowd-forming": crowd_forming, "fire-lane": fire_lane, "empty": empty}


def compose(out: Path, frames: int = 24) -> dict[str, list[dict[str, object]]]:
    """Write every sequence under ``out``; returns what each frame shows."""
    c = cutouts()
    described: dict[str, list[dict[str, object]]] = {}
    for name, make in SEQUENCES.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        described[name] = []
        for i, (frame, truth) in enumerate(make(c, frames)):
            path = folder / f"{i:04d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            described[name].append({"file": path.name, **truth})
    (out / "sequences.json").write_text(json.dumps(described, indent=1))
    return described


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args(argv)
    described = compose(args.out, args.frames)
    for name, frames in described.items():
        print(f"{args.out / name}: {len(frames)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
