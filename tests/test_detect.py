"""Detection for photos without landmarks: the pack check and the Haar fallback on a real photo."""

from pathlib import Path

import cv2
import insightface
import numpy as np
import pytest

from fer_pipeline.data.prep.align import align_face
from fer_pipeline.data.prep.detect import HaarDetector, ScrfdDetector, find_scrfd_model

SAMPLE = Path(insightface.__file__).parent / "data/images/t1.jpg"  # a group photo shipped with insightface


def test_missing_model_pack_is_a_clear_error_before_insightface_is_touched(tmp_path):
    (tmp_path / "models/buffalo_l").mkdir(parents=True)  # an empty folder: FaceAnalysis would assert
    with pytest.raises(FileNotFoundError, match=r"det_\*\.onnx.*never downloads"):
        ScrfdDetector(tmp_path, "buffalo_l")
    (tmp_path / "models/buffalo_l/det_10g.onnx").write_bytes(b"")
    assert find_scrfd_model(tmp_path, "buffalo_l").name == "det_10g.onnx"


def test_haar_fallback_aligns_a_real_photo_to_a_centred_face():
    photo = cv2.imread(str(SAMPLE))
    assert photo is not None, f"insightface's sample photo is missing: {SAMPLE}"
    detector = HaarDetector()
    faces = detector.detect(photo)
    assert len(faces) >= 3, "t1.jpg shows a group of people"
    box, five = faces[0]
    assert (box[2] - box[0]) >= (faces[-1][0][2] - faces[-1][0][0]), "largest face first"
    crop, mapped = align_face(photo, five, 112)
    assert crop.shape == (112, 112, 3)
    # The aligned crop holds one face-sized region in its middle: the detector finds it again there.
    again = detector.detect(cv2.resize(crop, (224, 224)))
    assert again, "no face found in the aligned crop"
    x0, y0, x1, y1 = again[0][0] / 2
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    assert np.abs(centre - 56).max() < 14 and (x1 - x0) > 0.45 * 112
