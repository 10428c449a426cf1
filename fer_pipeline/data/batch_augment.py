"""The training augmentation of build_transform, applied to a whole batch at once.

build_transform's augmented branch runs torchvision's RandomResizedCrop,
RandomHorizontalFlip and ColorJitter (brightness, contrast, saturation) image by
image: about 1.2 ms per 48-px face, mostly per-op overhead, several times the shard
decode itself (bench/README.md). Here a batch costs a few tensor ops whatever its size.

Parameters are drawn per sample (`BatchAugment.draw`) from a generator the Dataset
seeds with (seed, epoch, index), in torchvision's own draw order: a sample gets the
very crop box, flip and jitter factors (and jitter order) that the per-image
transforms drew for it under the same seed, and its pixels never depend on its batch
mates or on the worker that loaded it.

Pixels (`augment_batch`) follow torchvision's float formulas, in float32 from the
decoded uint8 on. The per-image path rounds to uint8 after the resize and after each
jitter op, so the two differ by those roundings (a few 1/255), not by the augmentation.

Crop + resize: RandomResizedCrop(antialias=True) is torch's antialiased bilinear
resize of the cropped box, a separable filter (a triangle stretched by the scale when
shrinking, normalised per output pixel). Its weights are written here over the whole
image, zero outside the sample's box, so out = Wy @ image @ Wx^T crops and resizes
every sample in two batched matmuls; a flip is Wx with its rows reversed. roi_align
(a box average per bin) or grid_sample (no antialiasing: 112 -> 48 px would alias)
would have changed the training pixels, and the demo's numbers with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

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

    def draw(self, height: int, width: int, generator: torch.Generator) -> FaceAugment:
        """One sample's parameters, drawn in the order (and with the same calls) as
        RandomResizedCrop, RandomHorizontalFlip and ColorJitter draw them."""
        top, left, h, w = self._crop_box(height, width, generator)
        # RandomHorizontalFlip skips when rand >= p (p = 0.5).
        flip = self.hflip and bool(torch.rand(1, generator=generator) < 0.5)
        order: tuple[int, ...] = ()
        factors = (1.0, 1.0, 1.0)
        if self.jitter is not None:
            perm = torch.randperm(4, generator=generator).tolist()
            lo, hi = self.jitter
            factors = tuple(float(torch.empty(1).uniform_(lo, hi, generator=generator).item()) for _ in range(3))
            order = tuple(op for op in perm if op != _HUE)
        return FaceAugment(top, left, h, w, flip, order, factors, self.size)

    def _crop_box(self, height: int, width: int, gen: torch.Generator) -> tuple[int, int, int, int]:
        """RandomResizedCrop's box: 10 tries at a random area share and log-uniform aspect
        ratio, then its fallback (the central crop closest to the ratio range)."""
        area = height * width
        lr0, lr1 = float(self._log_ratio[0]), float(self._log_ratio[1])
        for _ in range(10):
            target_area = area * torch.empty(1).uniform_(self.scale[0], self.scale[1], generator=gen).item()
            aspect = torch.exp(torch.empty(1).uniform_(lr0, lr1, generator=gen)).item()
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, size=(1,), generator=gen).item())
                left = int(torch.randint(0, width - w + 1, size=(1,), generator=gen).item())
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < min(RATIO):
            w, h = width, int(round(width / min(RATIO)))
        elif in_ratio > max(RATIO):
            w, h = int(round(height * max(RATIO))), height
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w


def resample_weights(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """N x out_size x in_size weights of torch's antialiased bilinear resize of the span
    [start, start + length) of each sample's axis to out_size pixels (zero outside it).

    Output pixel i's centre sits at scale * (i + 0.5) in the span (scale = length / out);
    input pixel p weighs max(0, 1 - |p - centre + 0.5| / support), support = max(scale, 1),
    normalised over the span: torch's upsample_bilinear2d_aa filter, which is plain
    bilinear when enlarging. Float64 here, so the weights are those of torch's kernel to float32 precision."""
    start, length = start.double(), length.double()
    scale = length / out_size
    support = scale.clamp(min=1.0)
    centre = scale[:, None] * (torch.arange(out_size, dtype=torch.float64) + 0.5)        # N x out
    pos = torch.arange(in_size, dtype=torch.float64)[None, :] - start[:, None]            # N x in, span coords
    dist = (pos[:, None, :] - centre[:, :, None] + 0.5) / support[:, None, None]
    weights = (1.0 - dist.abs()).clamp_(min=0.0)
    weights *= ((pos >= 0) & (pos < length[:, None]))[:, None, :]
    return (weights / weights.sum(-1, keepdim=True)).float()


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    """N x C x H x W float32 in [0, 1]; images of other sizes are zero-padded at the
    bottom right (their crop boxes lie inside them, so the padding gets no weight)."""
    heights, widths = {im.shape[-2] for im in images}, {im.shape[-1] for im in images}
    if len(heights) == 1 and len(widths) == 1:
        batch = torch.stack(images)
    else:
        batch = torch.zeros((len(images), images[0].shape[0], max(heights), max(widths)), dtype=images[0].dtype)
        for k, im in enumerate(images):
            batch[k, :, :im.shape[-2], :im.shape[-1]] = im
    return batch.float().div_(255.0)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """N x 1 x H x W luma, summed in torchvision's order (the same float32 rounding)."""
    return (x[:, 0] * GRAY[0]).add_(x[:, 1], alpha=GRAY[1]).add_(x[:, 2], alpha=GRAY[2]).unsqueeze(1)


def color_jitter(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Brightness / contrast / saturation with per-sample factors, each sample's ops in its
    own order. `order` N x K (op ids, -1: no op at that position), `factors` N x 3.

    torchvision's float formulas: every op blends with a reference and clamps to [0, 1],
    factor * x + (1 - factor) * ref, ref = 0 (brightness), the mean of the grayscale
    image (contrast) or the grayscale image (saturation). Round k applies every sample's
    k-th op in one blend."""
    for k in range(order.shape[1]):
        op = order[:, k]
        if bool((op < 0).all()):
            continue
        f = factors.gather(1, op.clamp(min=0)[:, None]).view(-1, 1, 1, 1)
        gray = _gray(x)
        mean = gray.mean(dim=(1, 2, 3), keepdim=True)
        sel = op.view(-1, 1, 1, 1)
        ref = torch.where(sel == BRIGHTNESS, torch.zeros_like(gray), torch.where(sel == CONTRAST, mean, gray))
        blended = (x * f).add_(ref * (1.0 - f)).clamp_(0.0, 1.0)
        x = torch.where(sel >= 0, blended, x)
    return x


def augment_batch(images: list[torch.Tensor], params: list[FaceAugment]) -> torch.Tensor:
    """uint8 C x H x W images + their parameters -> N x C x S x S float32 in [0, 1]
    (not normalised: the caller's constants)."""
    if len(images) != len(params) or not images:
        raise ValueError(f"{len(images)} images for {len(params)} parameter sets")
    sizes = {p.size for p in params}
    if len(sizes) != 1:
        raise ValueError(f"one batch, several output sizes: {sorted(sizes)}")
    size = sizes.pop()
    x = _stack(images)
    box = torch.tensor([(p.top, p.left, p.height, p.width) for p in params], dtype=torch.long)
    wy = resample_weights(box[:, 0], box[:, 2], x.shape[-2], size)
    wx = resample_weights(box[:, 1], box[:, 3], x.shape[-1], size)
    flip = torch.tensor([p.flip for p in params])
    # Reversing the output columns of a sample = reversing the rows of its Wx.
    wx = torch.where(flip[:, None, None], wx.flip(1), wx)
    out = wy.unsqueeze(1) @ x @ wx.transpose(1, 2).unsqueeze(1)
    depth = max(len(p.order) for p in params)
    if depth:
        order = torch.full((len(params), depth), -1, dtype=torch.long)
        for k, p in enumerate(params):
            order[k, :len(p.order)] = torch.tensor(p.order, dtype=torch.long)
        factors = torch.tensor([p.factors for p in params], dtype=torch.float32)
        out = color_jitter(out, order, factors)
    return out
