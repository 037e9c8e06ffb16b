"""The landmark network as ONNX on onnxruntime (a deployment bundle's front end: no PyTorch).

``OnnxLandmarkNet(path).predict(views)`` is ``LandmarkNet.predict``: uint8 [N, INPUT, INPUT, 3] RGB
views -> (points float64 [N, 5, 2] in view pixels, face probability float64 [N]). The file comes
from ``landmark_net.export_landmark_onnx`` (``g2d-face export``).
"""
import os

import numpy as np

from ..errors import DataError
from .landmark_views import INPUT

MAX_ONNX_BYTES = 64 << 20   # the shipped network is 2.4 MB as float32 ONNX; room for larger widths
INPUT_NAME, OUTPUT_NAMES = "views", ("points", "logit")


class OnnxLandmarkNet:
    def __init__(self, path):
        path = os.fspath(path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise DataError("the front end's landmarks.onnx needs onnxruntime: pip install onnxruntime") from None
        try:
            size = os.path.getsize(path)
        except OSError as err:
            raise DataError(f"cannot read landmark network {path}: {err.strerror}") from None
        if size > MAX_ONNX_BYTES:
            raise DataError(f"landmark network {path} is {size} bytes, more than a landmark network holds "
                            f"({MAX_ONNX_BYTES}); export it again with g2d-face export")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # a small network: one thread, as the PyTorch front end runs it
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for damaged or foreign files
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise DataError(f"onnxruntime cannot load landmark network {path}: {first}; export it again with "
                            "g2d-face export") from None
        inputs = [(i.name, list(i.shape)) for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or inputs[0][0] != INPUT_NAME or inputs[0][1][1:] != [3, INPUT, INPUT] \
                or tuple(outputs) != OUTPUT_NAMES:
            raise DataError(f"{path} is not the front end's landmark network (input {INPUT_NAME} [batch, 3, {INPUT}, "
                            f"{INPUT}], outputs {', '.join(OUTPUT_NAMES)}; it has {inputs} -> {outputs}); export it "
                            "again with g2d-face export")
        self.path = path

    def predict(self, views):
        """uint8 [N, INPUT, INPUT, 3] RGB views -> (points float64 [N, 5, 2] view px, face probability [N])."""
        if not len(views):
            return np.zeros((0, 5, 2)), np.zeros(0)
        x = np.ascontiguousarray(np.asarray(views).transpose(0, 3, 1, 2), dtype=np.float32)
        points, logit = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        prob = np.float32(1.0) / (np.float32(1.0) + np.exp(-np.asarray(logit, np.float32)))
        return np.asarray(points, np.float64), prob.astype(np.float64)
