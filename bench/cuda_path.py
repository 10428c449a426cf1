"""The CUDA path of training: bf16 autocast and channels_last, as the trainers use them
(fer_pipeline.train.device), on the papers' backbones and the temporal encoder.

    python bench/cuda_path.py [--steps 30] [--batch 128]

Prints one JSON object: images/s (or windows/s) for fp32 vs bf16 + channels_last,
and checks that would fail if the path were broken (finite losses, bf16 activations
under autocast, fp32 master weights, the encoder's padded positions leaving the
present frames' outputs unchanged). On a machine without CUDA it runs on the CPU,
where autocast and channels_last are off by design, and says so.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fer_pipeline.models.factory import build_model
from fer_pipeline.temporal.model import TemporalEncoder
from fer_pipeline.train.device import autocast, memory_format, pick_device


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_throughput(arch: str, size: int, batch: int, steps: int, device, amp: bool, channels_last: bool) -> dict:
    torch.manual_seed(0)
    fmt = memory_format(device, channels_last)
    model = build_model(arch, 8).to(device, memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=fmt)
    y = torch.randint(0, 8, (batch,), device=device)
    losses, logits_dtype = [], None
    for step in range(steps + 5):
        if step == 5:  # warm-up done (cuDNN autotune, allocator)
            _sync(device)
            start = time.perf_counter()
        with autocast(device, amp):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
        logits_dtype = str(logits.dtype)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    _sync(device)
    seconds = time.perf_counter() - start
    return {"images_per_s": round(batch * steps / seconds, 1), "logits_dtype": logits_dtype,
            "weights_dtype": str(next(model.parameters()).dtype),
            "losses_finite": all(map(lambda v: v == v and abs(v) < 1e4, losses)),
            "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)]}


def encoder_check(device, amp: bool, steps: int) -> dict:
    torch.manual_seed(0)
    enc = TemporalEncoder(512, 8, 32, 256, 4, 8, 1024, 0.0).to(device)
    feats = torch.randn(256, 32, 512, device=device)
    present = torch.rand(256, 32, device=device) > 0.2
    present[:, 0] = True
    enc.eval()
    with torch.no_grad(), autocast(device, amp):
        base = enc(feats, present).float()
        noisy = feats.clone()
        noisy[~present] = 1e3  # what sits at a gap must not reach the present frames
        moved = (enc(noisy, present).float() - base)[present].abs().max().item()
    enc.train()
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    y = torch.randint(0, 8, (256, 32), device=device)
    for step in range(steps + 3):
        if step == 3:
            _sync(device)
            start = time.perf_counter()
        with autocast(device, amp):
            logits = enc(feats, present)
            loss = torch.nn.functional.cross_entropy(logits[present].float(), y[present])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    return {"windows_per_s": round(256 * steps / (time.perf_counter() - start), 1),
            "gap_leak_max_abs": moved, "logits_dtype": str(logits.dtype), "loss_finite": bool(torch.isfinite(loss))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    device = pick_device("auto")
    torch.backends.cudnn.benchmark = True
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "batch": args.batch, "steps": args.steps}
    for arch, size in (("resnet18", 112), ("resnet50", 224)):
        result[f"{arch}@{size}"] = {
            "fp32": train_throughput(arch, size, args.batch, args.steps, device, amp=False, channels_last=False),
            "bf16_channels_last": train_throughput(arch, size, args.batch, args.steps, device, amp=True,
                                                   channels_last=True),
        }
    result["temporal_encoder"] = {"fp32": encoder_check(device, False, args.steps),
                                  "bf16": encoder_check(device, True, args.steps)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
