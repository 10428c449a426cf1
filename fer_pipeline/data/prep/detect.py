"""Face detection for photos that come without landmarks: a face box and 5 points.

Two detectors behind one call, `detector.detect(image_bgr) -> [(box, five), ...]`
(largest face first):

* insightface's SCRFD from a model pack the user provides (`prepare.insightface_root`
  layout: `<root>/models/<pack>/det_*.onnx`). The pack is checked *before* any
  insightface object is built: `FaceAnalysis()` would start a download when the
  pack is missing and fail with a bare AssertionError on an empty folder, and
  nothing may be downloaded at run time.
* OpenCV's bundled Haar cascade, the fallback that needs no downloaded weights.
  It gives a box only; the 5 points are the ArcFace template laid onto the box
  (a coarse alignment, fine for frontal faces).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_pipeline.data.prep.align import ARCFACE_TEMPLATE_112

# Where the template sits in a Haar box: Haar boxes run from the brows to the chin,
# tighter than the 112 crop, so the template is shrunk about the box centre.
HAAR_TEMPLATE_SCALE = 1.15


def find_scrfd_model(insightface_root: str | Path, pack: str) -> Path:
    """The pack's detector file, or a FileNotFoundError that says what to put where."""
    pack_dir = Path(insightface_root) / "models" / pack
    found = sorted(pack_dir.glob("det_*.onnx"))
    if not found:
        raise FileNotFoundError(
            f"insightface model pack {pack!r} has no detector in {pack_dir}: expected a det_*.onnx file there "
            f"(e.g. det_10g.onnx from buffalo_l). Unzip the pack into {pack_dir}; fer-pipeline never downloads it.")
    return found[0]


class ScrfdDetector:
    def __init__(self, insightface_root: str | Path, pack: str = "buffalo_l", det_size: int = 640):
        from insightface.model_zoo import get_model  # imported only once the pack is known to exist

        self.model = get_model(str(find_scrfd_model(insightface_root, pack)))
        self.model.prepare(ctx_id=-1, input_size=(det_size, det_size))

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        boxes, points = self.model.detect(image, max_num=0)
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        return [(boxes[i, :4], points[i]) for i in order]


class HaarDetector:
    def __init__(self, min_face: int = 40):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"OpenCV's Haar cascade could not be loaded from {path}")
        self.min_face = min_face

    def detect(self, image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        found = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                              minSize=(self.min_face, self.min_face))
        faces = sorted((tuple(f) for f in found), key=lambda f: -f[2] * f[3])
        return [(np.array([x, y, x + w, y + h], dtype=np.float32), template_in_box(x, y, w, h))
                for x, y, w, h in faces]


def template_in_box(x: float, y: float, w: float, h: float) -> np.ndarray:
    """The ArcFace template's 5 points laid onto a face box."""
    unit = (ARCFACE_TEMPLATE_112 - 56.0) / 112.0 * HAAR_TEMPLATE_SCALE
    return (np.array([x + w / 2, y + h / 2]) + unit * np.array([w, h])).astype(np.float32)


def make_detector(insightface_root: str | None, pack: str = "buffalo_l"):
    """SCRFD when a model pack is configured, else the Haar fallback."""
    return ScrfdDetector(insightface_root, pack) if insightface_root else HaarDetector()
