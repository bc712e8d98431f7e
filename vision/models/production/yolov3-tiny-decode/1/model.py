"""Decode YOLOv3-tiny's raw heads into the detector contract (Triton Python backend).

Matches OpenCV DNN's region layer (what the local model runs): box centre
``(sigmoid(tx) + col) / grid``, size ``anchor * exp(tw) / 416``, class score
``sigmoid(class) * sigmoid(objectness)``; then per-class greedy NMS. numpy only.
"""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

ROWS = 100
SIDE = 416.0
# anchors of the cfg's [yolo] layers (mask 3,4,5 on the 13x13 grid; 0,1,2 on 26x26)
ANCHORS = {13: ((81, 82), (135, 169), (344, 319)), 26: ((10, 14), (23, 27), (37, 58))}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def decode_head(head, anchors):
    """One frame's head [255, g, g] → rows (cx, cy, w, h, class scores...) [3*g*g, 84]."""
    grid = head.shape[-1]
    head = head.reshape(len(anchors), -1, grid, grid)  # [3, 85, g, g]
    cols, rows = np.meshgrid(np.arange(grid), np.arange(grid))
    cx = (_sigmoid(head[:, 0]) + cols) / grid
    cy = (_sigmoid(head[:, 1]) + rows) / grid
    aw = np.array([a[0] for a in anchors], np.float32)[:, None, None]
    ah = np.array([a[1] for a in anchors], np.float32)[:, None, None]
    w = np.exp(head[:, 2]) * aw / SIDE
    h = np.exp(head[:, 3]) * ah / SIDE
    scores = _sigmoid(head[:, 5:]) * _sigmoid(head[:, 4])[:, None]
    out = np.concatenate([np.stack([cx, cy, w, h], 1), scores], 1)  # [3, 84, g, g]
    return out.transpose(0, 2, 3, 1).reshape(-1, out.shape[1])


def _iou(box, boxes):
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def frame_detections(rows, min_score, nms_iou):
    out = np.zeros((ROWS, 6), dtype=np.float32)
    best = rows[:, 4:].argmax(axis=1)
    score = rows[np.arange(len(rows)), 4 + best]
    keep = score >= min_score
    rows, best, score = rows[keep], best[keep], score[keep]
    boxes = np.stack([rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2,
                      rows[:, 0] + rows[:, 2] / 2, rows[:, 1] + rows[:, 3] / 2], 1)
    chosen = []
    for cls in np.unique(best):
        idx = np.where(best == cls)[0]
        idx = idx[np.argsort(-score[idx], kind="stable")]
        while len(idx):
            chosen.append(idx[0])
            idx = idx[1:][_iou(boxes[idx[0]], boxes[idx[1:]]) <= nms_iou]
    chosen = sorted(chosen, key=lambda i: -score[i])[:ROWS]
    for r, i in enumerate(chosen):
        out[r, :4] = np.clip(boxes[i], 0, 1)
        out[r, 4], out[r, 5] = score[i], best[i]
    return out


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.min_score = float(params.get("min_score", {}).get("string_value", "0.05"))
        self.nms_iou = float(params.get("nms_iou", {}).get("string_value", "0.45"))

    def execute(self, requests):
        responses = []
        for request in requests:
            h13 = pb_utils.get_input_tensor_by_name(request, "HEAD_13").as_numpy()
            h26 = pb_utils.get_input_tensor_by_name(request, "HEAD_26").as_numpy()
            out = np.stack([
                frame_detections(np.concatenate([decode_head(a, ANCHORS[13]),
                                                 decode_head(b, ANCHORS[26])]),
                                 self.min_score, self.nms_iou)
                for a, b in zip(h13, h26, strict=True)])
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("DETECTIONS", out)]))
        return responses
