"""The training augmentation of build_transform, applied to a whole batch at once.

build_transform's augmented branch runs torchvision's RandomResizedCrop,
RandomHorizontalFlip and ColorJitter (brightness, contrast, saturation) image by
image: about 1.2 ms per 48-px face, mostly per-op overhead, several times the shard
decode itself (bench/README.md). Here the per-sample work is the draws and one resize;
the flips and the jitter are a few tensor ops per batch.

Parameters are drawn per sample (`BatchAugment.draw`) from the seed the Dataset
derives from (seed, epoch, index), in torchvision's own draw order: a sample gets the
very crop box, flip and jitter factors (and jitter order) that the per-image
transforms drew for it under the same seed, and its pixels never depend on its batch
mates or on the worker that loaded it.

Pixels (`augment_batch`) follow torchvision's float formulas, in float32 from the
decoded uint8 on: each sample's box resized by torch's antialiased bilinear kernel
(what RandomResizedCrop calls), the flips as one indexing op, the jitter as three
per-sample blends over the whole batch. The per-image path rounds to uint8 after the
resize and after each jitter op, so the two differ by those roundings (a few 1/255),
not by the augmentation.

The draws themselves are torch's (SeededDraws repeats torch's CPU generator without
a torch op per number): what took the time per image was never the arithmetic but the
~30 small torch calls a sample made.
"""

from __future__ import annotations

import functools
import math
import struct
import threading
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# RandomResizedCrop's default aspect-ratio range, which build_transform keeps.
RATIO = (3.0 / 4.0, 4.0 / 3.0)
# Jitter op ids, as ColorJitter numbers them; its 4th (hue) is drawn in the order but
# never applied (hue=None), so it is dropped from a sample's order.
BRIGHTNESS, CONTRAST, SATURATION, _HUE = 0, 1, 2, 3
# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma).
GRAY = (0.2989, 0.587, 0.114)


@dataclass(frozen=True)
class FaceAugment:
    """One sample's augmentation: crop box (pixels of the decoded image), horizontal
    flip, the jitter ops in the order they apply, and the three jitter factors (1 = unchanged)."""

    top: int
    left: int
    height: int
    width: int
    flip: bool
    order: tuple[int, ...]
    factors: tuple[float, float, float]
    size: int


@dataclass(frozen=True)
class RawFace:
    """A decoded uint8 C x H x W face waiting for its augmentation (done per batch, in the collate)."""

    image: torch.Tensor
    params: FaceAugment


class BatchAugment:
    """build_transform's augmented recipe (`augment` = {crop_scale, hflip, color_jitter})."""

    def __init__(self, input_size: int, crop_scale, hflip: bool, color_jitter: float):
        self.size = int(input_size)
        self.scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.hflip = bool(hflip)
        c = float(color_jitter)
        # ColorJitter's range for a single number c: [max(0, 1 - c), 1 + c]; c = 0 is no jitter
        # (build_transform then leaves ColorJitter out, drawing nothing for it).
        self.jitter = (max(0.0, 1.0 - c), 1.0 + c) if c > 0 else None
        # In float32, as RandomResizedCrop keeps it: the draws must be the same numbers.
        self._log_ratio = torch.log(torch.tensor(RATIO))

    @classmethod
    def from_config(cls, input_size: int, augment: dict) -> "BatchAugment":
        return cls(input_size, augment["crop_scale"], augment["hflip"], augment["color_jitter"])

    def draw(self, height: int, width: int, source: int | torch.Generator) -> FaceAugment:
        """One sample's parameters, drawn in the order (and with the same calls) as
        RandomResizedCrop, RandomHorizontalFlip and ColorJitter draw them. `source`: a
        seed (what torch.Generator().manual_seed(seed) would draw, without a torch op
        per number) or a torch.Generator to draw from."""
        draws = SeededDraws(source) if isinstance(source, int) else GeneratorDraws(source)
        top, left, h, w = self._crop_box(height, width, draws)
        # RandomHorizontalFlip skips when rand >= p (p = 0.5).
        flip = self.hflip and draws.uniform(0.0, 1.0) < 0.5
        order: tuple[int, ...] = ()
        factors = (1.0, 1.0, 1.0)
        if self.jitter is not None:
            perm = draws.randperm(4)
            lo, hi = self.jitter
            factors = tuple(draws.uniform(lo, hi) for _ in range(3))
            order = tuple(op for op in perm if op != _HUE)
        return FaceAugment(top, left, h, w, flip, order, factors, self.size)

    def _crop_box(self, height: int, width: int, draws: "GeneratorDraws") -> tuple[int, int, int, int]:
        """RandomResizedCrop's box: 10 tries at a random area share and log-uniform aspect
        ratio, then its fallback (the central crop closest to the ratio range)."""
        area = height * width
        lr0, lr1 = float(self._log_ratio[0]), float(self._log_ratio[1])
        for _ in range(10):
            target_area = area * draws.uniform(self.scale[0], self.scale[1])
            aspect = draws.exp(draws.uniform(lr0, lr1))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = draws.randint(0, height - h + 1)
                left = draws.randint(0, width - w + 1)
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < min(RATIO):
            w, h = width, int(round(width / min(RATIO)))
        elif in_ratio > max(RATIO):
            w, h = int(round(height * max(RATIO))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w


class GeneratorDraws:
    """The draws torchvision's transforms make, as torch ops on a torch.Generator (one
    element each, as the transforms draw them): the reference that SeededDraws repeats."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def uniform(self, lo: float, hi: float) -> float:
        return torch.empty(1).uniform_(lo, hi, generator=self.generator).item()

    def randint(self, low: int, high: int) -> int:
        return int(torch.randint(low, high, size=(1,), generator=self.generator).item())

    def randperm(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.generator).tolist()

    @staticmethod
    def exp(value: float) -> float:
        # torch's float32 exp (SLEEF), not libm's: the two differ in the last bit now and then.
        return torch.exp(torch.tensor([value], dtype=torch.float32)).item()


def _float32(x: float) -> float:
    return _F32.unpack(_F32.pack(x))[0]


@functools.lru_cache(maxsize=64)
def _float32_range(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi - lo) as torch's float32 uniform kernel holds them."""
    return _float32(lo), _float32(_float32(hi) - _float32(lo))


_F32 = struct.Struct("f")
_MT = np.random.MT19937()   # re-seeded per sample; a DataLoader worker is one thread
_MT_LOCK = threading.Lock()
_RAW_PER_SAMPLE = 32        # a sample draws at most 10 x 2 + 2 + 1 + 3 + 3 = 29 numbers


class SeededDraws(GeneratorDraws):
    """What torch.Generator().manual_seed(seed) followed by GeneratorDraws would return,
    at ~1/10 of the cost: written by hand because a torch op per number (~5 us each,
    ~15 per sample) was a fifth of the training loader's time (bench/README.md), and no
    library exposes torch's CPU draws as plain numbers.

    torch's CPU generator is the standard 32-bit Mersenne Twister seeded with the low 32
    bits of the seed (init_genrand), which NumPy's MT19937 reproduces with its legacy
    seeding. On top of its 32-bit outputs torch's CPU kernels compute: a float32 uniform
    in [lo, hi) = float32((r & (2^24 - 1)) / 2^24 * float32(hi - lo) + lo); an integer in
    [low, high) = r % (high - low) + low; randperm(n) (small n) a Fisher-Yates pass,
    swapping i with i + r % (n - i). tests/test_batch_augment.py checks every draw against
    torch for thousands of seeds."""

    def __init__(self, seed: int):
        with _MT_LOCK:
            _MT._legacy_seeding(seed & 0xFFFFFFFF)
            self._raw = _MT.random_raw(_RAW_PER_SAMPLE).tolist()
        self._next = 0

    def _bits(self) -> int:
        value = self._raw[self._next]
        self._next += 1
        return value

    def uniform(self, lo: float, hi: float) -> float:
        lo, span = _float32_range(lo, hi)
        return _float32((self._bits() & 0xFFFFFF) * 2.0 ** -24 * span + lo)

    def randint(self, low: int, high: int) -> int:
        return self._bits() % (high - low) + low

    def randperm(self, n: int) -> list[int]:
        perm = list(range(n))
        for i in range(n - 1):
            z = i + self._bits() % (n - i)
            perm[i], perm[z] = perm[z], perm[i]
        return perm


def _gray(x: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W luma, summed in torchvision's order (the same float32 rounding)."""
    return (x[:, 0] * GRAY[0]).add_(x[:, 1], alpha=GRAY[1]).add_(x[:, 2], alpha=GRAY[2]).unsqueeze(1)


def color_jitter(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness / contrast / saturation with per-sample factors, each sample's ops in its
    own order. `order` N x K (op ids, -1: no op at that position), `factors` N x 3.

    torchvision's float formulas: every op blends with a reference and clamps to [0, 1],
    factor * x + (1 - factor) * ref, ref = 0 (brightness), the mean of the grayscale
    image (contrast) or the grayscale image (saturation). Round k applies every sample's
    k-th op in one blend; the reference is gray * [saturation] + mean * [contrast],
    which is exactly one of the three (x * 0 = 0, x * 1 = x)."""
    for k in range(order.shape[1]):
        op = order[:, k]
        if bool((op < 0).all()):
            continue
        f = factors.gather(1, op.clamp(min=0)[:, None]).view(-1, 1, 1, 1)
        gray = _gray(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        sel = op.view(-1, 1, 1, 1)
        ref = (gray * (sel == SATURATION)).add_(mean * (sel == CONTRAST))
        blended = (x * f).add_(ref.mul_(1.0 - f)).clamp_(0.0, 1.0)
        x = blended if bool((op >= 0).all()) else torch.where(sel >= 0, blended, x)
    return x


def resized_crop(image: torch.Tensor, params: FaceAugment) -> torch.Tensor:
    """One sample's crop box, resized to params.size x params.size, in 0-255 float:
    RandomResizedCrop on the float image (torch's antialiased bilinear resize, the kernel torchvision calls).
    Per sample, because the boxes differ: torch's kernel on a 3 x ~100 x ~100 box costs
    less than any batched formulation tried (two matmuls over whole images with per-sample
    filter weights were ~1.5x slower); roi_align or grid_sample would batch it but give
    other pixels (a box average; no antialiasing)."""
    box = image[:, params.top:params.top + params.height, params.left:params.left + params.width]
    return F.interpolate(box.unsqueeze(0).float(), size=(params.size, params.size), mode="bilinear",
                         antialias=True, align_corners=False)[0]


def augment_batch(images: list[torch.Tensor], params: list[FaceAugment]) -> torch.Tensor:
    """uint8 C x H x W images + their parameters -> N x C x S x S float32 in [0, 1]
    (not normalised: the caller's constants)."""
    if len(images) != len(params) or not images:
        raise ValueError(f"{len(images)} images for {len(params)} parameter sets")
    sizes = {p.size for p in params}
    if len(sizes) != 1:
        raise ValueError(f"one batch, several output sizes: {sorted(sizes)}")
    size = sizes.pop()
    out = torch.empty((len(images), images[0].shape[0], size, size))
    for k, (image, p) in enumerate(zip(images, params)):
        out[k] = resized_crop(image, p)
    out.div_(255.0)  # the resize is linear: scaling its output is scaling its input, once per batch
    flipped = [k for k, p in enumerate(params) if p.flip]
    if flipped:
        out[flipped] = out[flipped].flip(-1)
    depth = max(len(p.order) for p in params)
    if depth:
        order = torch.full((len(params), depth), -1, dtype=torch.long)
        for k, p in enumerate(params):
            order[k, :len(p.order)] = torch.tensor(p.order, dtype=torch.long)
        factors = torch.tensor([p.factors for p in params], dtype=torch.float32)
        out = color_jitter(out, order, factors)
    return out
