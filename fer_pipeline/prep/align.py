"""Face geometry shared by prepare and the augmentations: the ArcFace 5-point template."""

from __future__ import annotations

import numpy as np

# Left eye, right eye, nose tip, left mouth corner, right mouth corner at 112x112.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def template_landmarks(size: int) -> np.ndarray:
    """The template at `size` x `size`: the landmarks of an already aligned crop."""
    return ARCFACE_TEMPLATE_112 * (size / 112.0)
