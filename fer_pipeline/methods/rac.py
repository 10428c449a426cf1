"""Re-balanced attention consistency (RAC): LNSU (Zhang et al., "Leave No Stone
Unturned", NeurIPS 2023) section 3.1, Eq. 3-6.

The CAMs of all classes for an image (A) and for its horizontal flip (A~) should
agree once the flipped map is flipped back; the per-class squared error is weighted by
the re-balancing weights B (class_weights.py) so minority classes' maps count more:
    l_cons = 1/(N L H W) sum_{i,l,h,w} B_l (A - Flip(A~))^2
The training loss is l_cls + lambda * l_cons (Eq. 6, lambda = 2 in the paper).

Departures: Eq. 3 multiplies the maps by B_l before the difference, which puts B_l^2
on the squared error; the default here weights the per-class mean squared error by
B_l (what the issue specifies), and `on="maps"` gives Eq. 3 + 5 literally. The paper's
"|| . ||_2" of a scalar difference is read as the squared error (a mean squared
error, as in EAC whose consistency loss LNSU builds on).

Flip-back is exact only at some input sizes. A stride-2 layer samples its input at
columns 0, 2, 4, ...: mirrored, those land on the same columns only when the input
width is odd. ResNets halve five times, so their last maps line up with the flipped
image's only at sizes 32k + 1 (33, 65, 225); at 48 px (2 x 2 maps) even a network
with mirror-symmetric kernels gives maps 43 % apart (relative norm) from its flipped
twin's, at 224 px 22 % (`flip_misalignment` measures it). There RAC asks for a
consistency the architecture cannot give, and mostly teaches it to shrink its maps.
"""

from __future__ import annotations

import copy

import torch

from fer_pipeline.methods.cam import MapsAndLogits, class_activation_maps

WEIGHT_ON = ("loss", "maps")


def flip_back(maps: torch.Tensor) -> torch.Tensor:
    """Undo a horizontal flip of the input on its maps (width is the last axis)."""
    return torch.flip(maps, dims=(-1,))


def rac_consistency(cams: torch.Tensor, cams_of_flipped: torch.Tensor, weights: torch.Tensor,
                    on: str = "loss") -> torch.Tensor:
    """l_cons for N x L x H x W maps of the images and of their flips, L class weights."""
    if cams.shape != cams_of_flipped.shape:
        raise ValueError(f"map shapes differ: {tuple(cams.shape)} vs {tuple(cams_of_flipped.shape)}")
    if weights.shape != (cams.shape[1],):
        raise ValueError(f"{tuple(weights.shape)} class weights for {cams.shape[1]} class maps")
    if on not in WEIGHT_ON:
        raise ValueError(f"unknown RAC weighting {on!r}; choose one of {WEIGHT_ON}")
    per_class = (cams - flip_back(cams_of_flipped)).pow(2).mean(dim=(0, 2, 3))  # L
    w = weights.to(per_class) if on == "loss" else weights.to(per_class).pow(2)
    return (w * per_class).mean()


def rac_loss(maps: torch.Tensor, maps_of_flipped: torch.Tensor, fc_weight: torch.Tensor,
             weights: torch.Tensor, on: str = "loss") -> torch.Tensor:
    """l_cons from the backbone's feature maps (before pooling) and the classifier weight."""
    return rac_consistency(class_activation_maps(maps, fc_weight), class_activation_maps(maps_of_flipped, fc_weight),
                           weights, on)


def flip_misalignment(model: torch.nn.Module, input_size: int, seed: int = 0) -> float:
    """How far flip-back is from exact for this architecture at this input size: the
    relative distance between the maps of an image and the flipped-back maps of its
    mirror image, for a copy of `model` whose kernels are made mirror-symmetric (so
    any distance left comes from where its layers sample, not from what it learned).
    0 (to float error) at sizes where RAC's consistency can be met."""
    twin = copy.deepcopy(model).eval().float()
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_((module.weight + module.weight.flip(-1)) / 2)
        net = MapsAndLogits(twin)
        x = torch.rand(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
        maps = net.maps(x)
        back = flip_back(net.maps(torch.flip(x, dims=(-1,))))
    return float((maps - back).norm() / maps.norm().clamp_min(1e-12))
