"""Cost of one Face2Exp meta step against one supervised step (issue: <= 5x).

Same backbone, labelled batch size and resolution, mu = 1 (so the unlabelled
batch equals the labelled one), random inputs. Prints JSON: seconds per step for
the supervised step and for the meta step in both feedback modes, their ratio,
the meta step's breakdown by phase, and peak memory (CUDA: max allocated; CPU:
the process's peak RSS, measured in a fresh subprocess per mode).

    python bench/meta_step.py [--arch resnet18] [--size 48] [--batch 32] [--steps 10] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from fer_pipeline.meta.step import MetaLossConfig, PhaseTimer, meta_step
from fer_pipeline.models.factory import build_model
from fer_pipeline.train.device import autocast, pick_device


def run_mode(mode: str, args) -> dict:
    device = pick_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    torch.manual_seed(0)
    shape = (args.batch, 3, args.size, args.size)
    x, y = torch.randn(shape, device=device), torch.randint(0, 7, (args.batch,), device=device)
    weak, strong = torch.randn(shape, device=device), torch.randn(shape, device=device)
    amp = (lambda: autocast(device, True))
    teacher = build_model(args.arch, 7).to(device)
    opt_t = torch.optim.SGD(teacher.parameters(), lr=1e-2, momentum=0.9)
    if mode != "supervised":
        student = build_model(args.arch, 7).to(device)
        opt_s = torch.optim.SGD(student.parameters(), lr=1e-3, momentum=0.9)
        cfg = MetaLossConfig(feedback=mode)
    timer = PhaseTimer(sync)

    def one_step(t):
        if mode == "supervised":
            with amp():
                loss = F.cross_entropy(teacher(x).float(), y)
            opt_t.zero_grad()
            loss.backward()
            opt_t.step()
        else:
            meta_step(teacher, student, opt_t, opt_s, x, y, weak, strong, cfg, autocast=amp, timer=t)

    for _ in range(2):  # warm-up (allocator, cudnn autotune)
        one_step(lambda phase: PhaseTimer()(phase))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if sync:
        sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        one_step(timer)
    if sync:
        sync()
    per_step = (time.perf_counter() - t0) / args.steps
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"seconds_per_step": per_step, "peak_memory_mb": round(peak / 2**20, 1),
            "phases_seconds_per_step": {k: round(v / args.steps, 4) for k, v in timer.seconds.items()}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--mode")
    args = ap.parse_args()
    if args.mode:  # child process: one mode, so peak RSS is that mode's own
        print(json.dumps(run_mode(args.mode, args)))
        return
    results = {}
    for mode in ("supervised", "first_order", "exact"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode] + sys.argv[1:], capture_output=True,
                             text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    sup = results["supervised"]["seconds_per_step"]
    print(json.dumps({
        "device": str(pick_device(args.device)), "arch": args.arch, "input_size": args.size,
        "labelled_batch": args.batch, "mu": 1, "steps_timed": args.steps,
        "supervised": results["supervised"],
        "meta_first_order": results["first_order"], "meta_exact": results["exact"],
        "ratio_first_order_vs_supervised": round(results["first_order"]["seconds_per_step"] / sup, 2),
        "ratio_exact_vs_supervised": round(results["exact"]["seconds_per_step"] / sup, 2),
        "target_ratio": 5.0,
    }, indent=2))


if __name__ == "__main__":
    main()
