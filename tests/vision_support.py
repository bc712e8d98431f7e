"""Helpers for the camera pipeline's suites: real photos, the broken test model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vision.inference import ModelSpec

TEST_MODELS = Path(__file__).resolve().parent / "vision" / "models"
# a detector that answers in the wrong shape (tests/vision/models/bad-shape)
BAD_SHAPE = ModelSpec("bad-shape", 300, {1: "person"}, min_score=0.5)


def photo(name: str) -> np.ndarray:
    """A real photo shipped in scikit-image's data module, as H x W x 3 RGB."""
    from skimage import data

    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3], dtype=np.uint8)
