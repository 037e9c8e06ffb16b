"""Five face landmarks from an SCRFD detector ONNX the user already has (insightface's `det_*.onnx`).

Loaded through `insightface.model_zoo.get_model` on the CPU (onnxruntime), so no download
happens: pass the file of a model pack you have (e.g. `~/.insightface/models/buffalo_l/det_10g.onnx`).
SCRFD's five key points are already in ArcFace order (left eye, right eye, nose, left/right mouth).
"""
import os

import numpy as np

from ..errors import DataError
from .dlib_landmarks import pick_face
from .face_finding import FaceFinder, Finding


class ScrfdLandmarker(FaceFinder):
    """An SCRFD detector with key points: ``find(photo)`` -> Finding (score: SCRFD's, source "scrfd").

    det_size: square input size of the detector (640 as insightface's FaceAnalysis);
    threshold: detection score threshold; pick: "largest" or "center" among several faces.
    """

    name = "scrfd"

    def __init__(self, onnx_path, det_size=640, threshold=0.5, pick="largest"):
        onnx_path = os.fspath(onnx_path)
        if not os.path.isfile(onnx_path):
            raise DataError(f"detector file {onnx_path} not found; pass an SCRFD det_*.onnx from an insightface "
                            "model pack (e.g. ~/.insightface/models/buffalo_l/det_10g.onnx) or --detector dlib")
        pick_face(np.zeros((0, 4)), (1, 1), pick)  # validates `pick`
        self.pick = pick
        try:
            from insightface.model_zoo import get_model

            model = get_model(onnx_path, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnx/onnxruntime/insightface errors of many kinds
            raise DataError(f"cannot load detector {onnx_path} with insightface.model_zoo: "
                            f"{type(err).__name__}: {err}") from None
        if model is None or not hasattr(model, "detect") or getattr(model, "taskname", "detection") != "detection":
            raise DataError(f"{onnx_path} is not a face detector insightface recognises (got "
                            f"{type(model).__name__}); pass an SCRFD det_*.onnx")
        model.prepare(ctx_id=-1, input_size=(int(det_size), int(det_size)), det_thresh=float(threshold))
        self.model = model
        self.det_size = int(det_size)

    def _find(self, img):
        det, kps = self.model.detect(np.ascontiguousarray(img[..., ::-1]),  # insightface works in BGR
                                     input_size=(self.det_size, self.det_size))
        if kps is None:
            raise DataError("this detector gives no key points; use an SCRFD model with key points (det_*.onnx)")
        det = np.asarray(det, np.float64).reshape(-1, 5)
        k = pick_face(det[:, :4], img.shape, self.pick)
        if k is None:
            return Finding(reason="no face found by the SCRFD detector")
        return Finding(np.asarray(kps[k], np.float32).reshape(5, 2), float(det[k, 4]), len(det),
                       tuple(float(v) for v in det[k, :4]), "scrfd", outcome="found")
