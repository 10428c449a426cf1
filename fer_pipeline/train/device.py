"""Device, precision and thread settings shared by training and evaluation."""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.*.device is 'cuda' but no CUDA device is available")
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(requested)


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def start_training(cfg: dict) -> torch.device:
    """Threads, device, seed and (on CPU) deterministic kernels: how every training run
    starts, so two runs with one seed end with the same weights."""
    set_threads(cfg["threads"])
    device = pick_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)
    return device


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA (no loss scaling needed); plain fp32 on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_format(device: torch.device, channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format
