"""Face2Exp's augmentations (section 3.3, Figure 3), on uint8 CHW tensors.

* conventional, for every image: random resized crop, small rotation, flip;
* extensive, for the FR strong view: RandAugment and random erasing;
* the expression-specific **cover**: one region of the face, chosen at random
  among forehead, left eye, right eye, nose and mouth, is covered by a grey patch
  centred on the crop's own landmarks, sized as in the paper at 224 px (eyes
  50x20, nose 50x40, mouth 50x40, forehead 224x50) and scaled to the crop size.
  Covering one region at a time makes the network read the expression from the
  others, and the teacher's consistency loss L_c compares the covered view with
  the uncovered one. The cover is applied before any geometric transform, while
  the landmarks still describe the pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from fer_pipeline.data.datasets import MEAN, STD

# (width, height) at a 224 px crop.
PATCHES_224 = {"eyes": (50, 20), "nose": (50, 40), "mouth": (50, 40), "forehead": (224, 50)}
REGIONS = ("forehead", "left_eye", "right_eye", "nose", "mouth")
COVER_VALUE = 128


def region_box(region: str, landmarks: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a region's patch in a `size` x `size` crop."""
    scale = size / 224.0
    left_eye, right_eye, nose, mouth_l, mouth_r = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if region in ("left_eye", "right_eye"):
        centre, (w, h) = (left_eye if region == "left_eye" else right_eye), PATCHES_224["eyes"]
    elif region == "nose":
        centre, (w, h) = nose, PATCHES_224["nose"]
    elif region == "mouth":
        centre, (w, h) = (mouth_l + mouth_r) / 2, PATCHES_224["mouth"]
    elif region == "forehead":
        eyes = (left_eye + right_eye) / 2
        eye_to_mouth = float(((mouth_l + mouth_r) / 2 - eyes)[1])
        # Above the brows: about half the eye-mouth distance above the eye line.
        centre, (w, h) = np.array([size / 2, eyes[1] - 0.55 * eye_to_mouth]), PATCHES_224["forehead"]
    else:
        raise ValueError(f"unknown region {region!r}; choose one of {REGIONS}")
    w, h = w * scale, h * scale
    x0, y0 = int(round(centre[0] - w / 2)), int(round(centre[1] - h / 2))
    x1, y1 = int(round(centre[0] + w / 2)), int(round(centre[1] + h / 2))
    return max(0, x0), max(0, y0), min(size, x1), min(size, y1)


def cover(image: torch.Tensor, landmarks: np.ndarray, region: str) -> torch.Tensor:
    """A copy of `image` (uint8, C x H x W, square) with one region covered."""
    x0, y0, x1, y1 = region_box(region, landmarks, image.shape[-1])
    out = image.clone()
    out[:, y0:y1, x0:x1] = COVER_VALUE
    return out


def conventional(input_size: int, crop_scale=(0.8, 1.0), degrees: float = 10.0) -> v2.Compose:
    return v2.Compose([v2.RandomResizedCrop(input_size, scale=tuple(crop_scale), antialias=True),
                       v2.RandomRotation(degrees), v2.RandomHorizontalFlip()])


def to_input() -> v2.Compose:
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)])


class WeakStrongViews:
    """(weak, strong) views of an unlabelled face for the teacher and the student."""

    def __init__(self, input_size: int, crop_scale=(0.8, 1.0), randaugment_ops: int = 2,
                 randaugment_magnitude: int = 9, cover_probability: float = 1.0):
        self.weak = conventional(input_size, crop_scale)
        self.extensive = v2.RandAugment(num_ops=randaugment_ops, magnitude=randaugment_magnitude)
        self.erase = v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0)
        self.finish = to_input()
        self.cover_probability = cover_probability

    def __call__(self, image: torch.Tensor, landmarks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        weak = self.finish(self.weak(image))
        strong = image
        if torch.rand(()) < self.cover_probability:
            region = REGIONS[int(torch.randint(len(REGIONS), ()))]
            strong = cover(strong, landmarks, region)
        strong = self.erase(self.finish(self.weak(self.extensive(strong))))
        return weak, strong


def cover_grid(images: list[torch.Tensor], landmarks: list[np.ndarray]) -> np.ndarray:
    """One row per face: the crop, then each region covered (RGB uint8 H x W x 3),
    logged with every meta-training run so the cover can be checked by eye."""
    rows = []
    for image, lm in zip(images, landmarks):
        tiles = [image] + [cover(image, lm, region) for region in REGIONS]
        rows.append(torch.cat(tiles, dim=2))
    return torch.cat(rows, dim=1).permute(1, 2, 0).numpy()
