"""Darknet (``.cfg`` + ``.weights``) → ONNX with numpy and onnx alone, for the layers
YOLOv3-tiny uses: convolutional (batch norm folded in), maxpool, route, upsample, yolo.

The graph takes the detector contract's input (``IMAGE``: uint8 RGB, NHWC, 416×416) and
returns the raw YOLO heads (``head_<layer>``, float32 NCHW, one per ``[yolo]`` layer) in
the order of the cfg; decoding (sigmoid, anchors, non-maximum suppression) happens in
the production repository's decode step. Used by ``scripts/convert_models.py yolo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["DarknetError", "YoloHead", "darknet_to_onnx", "parse_cfg", "yolo_heads"]


class DarknetError(ValueError):
    """A cfg or weights file this converter cannot read."""


@dataclass
class Section:
    kind: str
    options: dict[str, str] = field(default_factory=dict)

    def int(self, key: str, default: int) -> int:
        return int(self.options.get(key, default))


def parse_cfg(text: str) -> list[Section]:
    sections: list[Section] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            sections.append(Section(line.strip("[]").strip()))
        elif "=" in line and sections:
            key, value = line.split("=", 1)
            sections[-1].options[key.strip()] = value.strip()
    if not sections or sections[0].kind not in ("net", "network"):
        raise DarknetError("a Darknet cfg starts with a [net] section")
    return sections


@dataclass(frozen=True)
class YoloHead:
    """One ``[yolo]`` layer: its output name, grid stride and anchors (pixels)."""

    output: str
    anchors: tuple[tuple[float, float], ...]
    classes: int


def yolo_heads(text: str) -> list[YoloHead]:
    heads = []
    for index, section in enumerate(parse_cfg(text)[1:]):
        if section.kind != "yolo":
            continue
        values = [float(v) for v in section.options["anchors"].split(",")]
        pairs = [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
        mask = [int(m) for m in section.options["mask"].split(",")]
        heads.append(YoloHead(f"head_{index}", tuple(pairs[m] for m in mask),
                              section.int("classes", 80)))
    return heads


class _Weights:
    def __init__(self, data: bytes) -> None:
        header = np.frombuffer(data[:12], dtype="<i4")
        if len(header) < 3:
            raise DarknetError("the weights file is too short for its header")
        major, minor = int(header[0]), int(header[1])
        seen = 8 if major * 10 + minor >= 2 else 4
        body = data[12 + seen:]
        if len(body) % 4:
            raise DarknetError("the weights file ends before the cfg's layers do "
                               f"(a partial float32 at its end: {len(body) % 4} bytes)")
        self.values = np.frombuffer(body, dtype="<f4")
        self.at = 0

    def take(self, count: int) -> npt.NDArray[np.float32]:
        if self.at + count > len(self.values):
            raise DarknetError("the weights file ends before the cfg's layers do")
        out = self.values[self.at:self.at + count].astype(np.float32)
        self.at += count
        return out


def darknet_to_onnx(cfg: str, weights: bytes, *, opset: int = 17) -> bytes:
    """The serialized ONNX model (deterministic: same inputs, same bytes)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    sections = parse_cfg(cfg)
    net = sections[0]
    side, channels = net.int("height", 416), net.int("channels", 3)
    w = _Weights(weights)
    nodes: list[Any] = []
    inits: list[Any] = []
    outputs: list[Any] = []

    def const(name: str, array: npt.NDArray[Any]) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    nodes += [
        helper.make_node("Cast", ["IMAGE"], ["image_f"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["image_f", const("c255", np.array(255.0, np.float32))],
                         ["image_n"]),
        helper.make_node("Transpose", ["image_n"], ["x_input"], perm=[0, 3, 1, 2]),
    ]
    names: list[str] = []  # output tensor of each layer
    depth: list[int] = []  # its channel count
    current, c = "x_input", channels
    for index, s in enumerate(sections[1:]):
        out = f"l{index}"
        if s.kind == "convolutional":
            n, size = s.int("filters", 1), s.int("size", 1)
            stride, pad = s.int("stride", 1), (size // 2 if s.int("pad", 0) else 0)
            if s.int("batch_normalize", 0):
                beta, gamma = w.take(n), w.take(n)
                mean, var = w.take(n), w.take(n)
                kernel = w.take(n * c * size * size).reshape(n, c, size, size)
                scale = gamma / (np.sqrt(var) + 1e-6)  # darknet's normalisation
                kernel = kernel * scale[:, None, None, None]
                bias = beta - mean * scale
            else:
                bias = w.take(n)
                kernel = w.take(n * c * size * size).reshape(n, c, size, size)
            conv = out if s.options.get("activation") == "linear" else f"{out}_conv"
            nodes.append(helper.make_node(
                "Conv", [current, const(f"{out}_w", kernel.astype(np.float32)),
                         const(f"{out}_b", bias.astype(np.float32))], [conv],
                kernel_shape=[size, size], strides=[stride, stride], pads=[pad] * 4))
            activation = s.options.get("activation", "linear")
            if activation == "leaky":
                nodes.append(helper.make_node("LeakyRelu", [conv], [out], alpha=0.1))
            elif activation != "linear":
                raise DarknetError(f"layer {index}: activation {activation} not supported")
            c = n
        elif s.kind == "maxpool":
            size, stride = s.int("size", 2), s.int("stride", 2)
            total = s.int("padding", size - 1)
            nodes.append(helper.make_node(
                "MaxPool", [current], [out], kernel_shape=[size, size], strides=[stride] * 2,
                pads=[total // 2, total // 2, total - total // 2, total - total // 2]))
        elif s.kind == "upsample":
            factor = float(s.int("stride", 2))
            nodes.append(helper.make_node(
                "Resize", [current, "", const(f"{out}_scales",
                                              np.array([1, 1, factor, factor], np.float32))],
                [out], mode="nearest"))
        elif s.kind == "route":
            layers = [int(v) for v in s.options["layers"].split(",")]
            picked = [index + i if i < 0 else i for i in layers]
            if len(picked) == 1:
                nodes.append(helper.make_node("Identity", [names[picked[0]]], [out]))
            else:
                nodes.append(helper.make_node("Concat", [names[i] for i in picked], [out],
                                              axis=1))
            c = sum(depth[i] for i in picked)
        elif s.kind == "yolo":
            head = f"head_{index}"
            nodes.append(helper.make_node("Identity", [current], [head]))
            outputs.append(helper.make_tensor_value_info(head, TensorProto.FLOAT,
                                                         ["batch", c, None, None]))
            out = current
        else:
            raise DarknetError(f"layer {index}: [{s.kind}] is not supported")
        names.append(out)
        depth.append(c)
        current = out
    if w.at != len(w.values):
        raise DarknetError(f"{len(w.values) - w.at} weights left over: cfg and weights differ")
    graph = helper.make_graph(
        nodes, "yolov3-tiny",
        [helper.make_tensor_value_info("IMAGE", TensorProto.UINT8,
                                       ["batch", side, side, channels])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="zongzhi scripts/convert_models.py")
    model.ir_version = 8
    checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data
