"""Triton Python-backend model: SSDLite person detector on onnxruntime (CPU).

Runs inside Triton's Python stub, not in the product's process: it imports only
numpy, onnxruntime and Triton's ``triton_python_backend_utils``.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

ROWS = 100


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("threads", {}).get("string_value", "2"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # the weights are the production repository's ONNX file (one copy in the repo);
        # "onnx" is relative to this model's directory
        relative = config.get("parameters", {}).get("onnx", {}).get("string_value", "")
        path = os.path.normpath(os.path.join(args["model_repository"], relative))
        if not os.path.isfile(path):
            raise pb_utils.TritonModelException(f"ssdlite-person: weights not found at {path}")
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        images = [pb_utils.get_input_tensor_by_name(r, "IMAGE").as_numpy() for r in requests]
        batch = np.concatenate(images) if len(images) > 1 else images[0]
        num, boxes, scores, classes = self.session.run(None, {"image_tensor:0": batch})
        out = np.zeros((batch.shape[0], ROWS, 6), dtype=np.float32)
        n = min(ROWS, boxes.shape[1])
        out[:, :n, 0] = boxes[:, :n, 1]  # the TF detection API's boxes are (y1, x1, y2, x2)
        out[:, :n, 1] = boxes[:, :n, 0]
        out[:, :n, 2] = boxes[:, :n, 3]
        out[:, :n, 3] = boxes[:, :n, 2]
        out[:, :n, 4] = scores[:, :n]
        out[:, :n, 5] = classes[:, :n]
        valid = np.arange(ROWS)[None, :] < num.astype(np.int64)[:, None]
        out[~valid] = 0.0
        responses, start = [], 0
        for image in images:
            end = start + image.shape[0]
            tensor = pb_utils.Tensor("DETECTIONS", out[start:end])
            responses.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
            start = end
        return responses
