"""Decode the SSDLite graph's outputs into the detector contract (Triton Python backend)."""

import numpy as np
import triton_python_backend_utils as pb_utils

ROWS = 100


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            boxes = pb_utils.get_input_tensor_by_name(request, "BOXES").as_numpy()
            scores = pb_utils.get_input_tensor_by_name(request, "SCORES").as_numpy()
            classes = pb_utils.get_input_tensor_by_name(request, "CLASSES").as_numpy()
            count = pb_utils.get_input_tensor_by_name(request, "COUNT").as_numpy().reshape(-1)
            out = np.zeros((boxes.shape[0], ROWS, 6), dtype=np.float32)
            n = min(ROWS, boxes.shape[1])
            # the TF detection API's boxes are (y1, x1, y2, x2)
            out[:, :n, 0], out[:, :n, 1] = boxes[:, :n, 1], boxes[:, :n, 0]
            out[:, :n, 2], out[:, :n, 3] = boxes[:, :n, 3], boxes[:, :n, 2]
            out[:, :n, 4], out[:, :n, 5] = scores[:, :n], classes[:, :n]
            out[~(np.arange(ROWS)[None, :] < count.astype(np.int64)[:, None])] = 0.0
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor("DETECTIONS", out)]))
        return responses
