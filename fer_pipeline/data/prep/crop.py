"""One record's bytes -> an aligned face crop (JPEG) and its five landmarks.

Run inside prepare's worker processes; errors carry a reject reason code."""

from __future__ import annotations

import cv2
import numpy as np

from fer_pipeline.data.prep.align import BadLandmarksError, align_face, template_landmarks


class CropError(ValueError):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


# OpenCV logs each undecodable buffer on stderr although prepare rejects it with a reason.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

_JPEG_SOI, _JPEG_SOS, _JPEG_EOI = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def truncated(data: bytes) -> bool:
    """A JPEG whose last scan has no end-of-image marker after it, or a PNG without its
    IEND chunk: a cut-off copy, which the decoder would fill with grey instead of
    refusing. (Neither marker can occur inside JPEG scan data; bytes after the end are
    allowed. A JPEG cut before its first scan does not decode: corrupt_image.)"""
    if data[:2] == _JPEG_SOI:
        sos = data.rfind(_JPEG_SOS)
        return sos >= 0 and data.find(_JPEG_EOI, sos) < 0
    if data[:8] == _PNG_SIGNATURE:
        return data.rfind(b"IEND") < 0
    return False


def _decode(data: bytes) -> np.ndarray:
    if len(data) == 0:
        raise CropError("empty_file", "the image file has 0 bytes")
    if truncated(data):
        raise CropError("truncated_image", "the image ends before its end marker (a cut-off copy)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV asserts on some malformed headers instead of returning None
        raise CropError("corrupt_image", f"OpenCV could not decode the image bytes ({str(exc).strip()[-120:]})") from None
    if image is None:
        raise CropError("corrupt_image", "OpenCV could not decode the image bytes")
    return image


def _encode(image: np.ndarray, quality: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CropError("encode_failed", "OpenCV could not encode the crop")
    return encoded.tobytes()


def crop_aligned(data: bytes, size: int, quality: int) -> tuple[bytes, np.ndarray]:
    """Decode an already aligned face, resize it to `size` and re-encode it.

    Datasets shipped aligned (RAF-DB aligned, MS1M, Aff-Wild2 cropped_aligned) only
    need a resize; their five landmarks are the template's.
    """
    image = _decode(data)
    if image.shape[:2] != (size, size):
        interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
        image = cv2.resize(image, (size, size), interpolation=interp)
    return _encode(image, quality), template_landmarks(size)


def crop_with_landmarks(data: bytes, landmarks5, size: int, quality: int) -> tuple[bytes, np.ndarray]:
    """Decode a full photo and warp its face onto the template by its 5 landmarks.

    Returns the crop and the landmarks mapped into it, which stay close to, but are
    not forced onto, the template."""
    image = _decode(data)
    try:
        crop, mapped = align_face(image, landmarks5, size)
    except BadLandmarksError as exc:
        raise CropError("bad_landmarks", str(exc)) from None
    return _encode(crop, quality), mapped
