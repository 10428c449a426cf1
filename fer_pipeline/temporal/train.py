"""`fer train-temporal`: per seed, the temporal encoder over windows of L frames and
the same network over single frames (the frame-level baseline of the table).

Both variants see the same number of labelled frame positions per step
(`batch_frames`) for the same number of steps, so the comparison isolates
temporal context. Checkpoints (model, optimizer, scheduler, step, RNG) are written
atomically to a work folder every `checkpoint_every` steps; a killed run resumes
to the same result (window order is a function of seed and epoch).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fer_pipeline.common.atomic import building_dir, write_json
from fer_pipeline.temporal.feature_table import read_videos
from fer_pipeline.temporal.model import TemporalEncoder
from fer_pipeline.temporal.windows import MASKED, VideoFeatures, cut_windows
from fer_pipeline.train import checkpoint
from fer_pipeline.train.device import pick_device, set_threads

log = logging.getLogger(__name__)

# variant name -> how it windows the video; "frame" is the frame-level baseline.
VARIANTS = ("frame", "temporal")


def variant_window(cfg: dict, variant: str) -> tuple[int, int]:
    """(window, stride) of a variant."""
    return (1, 1) if variant == "frame" else (cfg["window"], cfg["stride"])


def stack_windows(videos: list[VideoFeatures], window: int, stride: int, labelled_only: bool):
    """All windows of the videos as tensors: features W x L x D, present W x L, labels W x L."""
    wins = [w for v in videos for w in cut_windows(v, window, stride)]
    if labelled_only:
        wins = [w for w in wins if np.any(w.labels != MASKED)]
    if not wins:
        raise ValueError("no window with a labelled frame: nothing to train on")
    return (torch.from_numpy(np.stack([w.features for w in wins])),
            torch.from_numpy(np.stack([w.present for w in wins])),
            torch.from_numpy(np.stack([w.labels for w in wins])))


def class_weights(labels: torch.Tensor, num_classes: int, mode: str) -> torch.Tensor | None:
    """Inverse-frequency weights (mean 1 over the classes present), or None for plain CE.
    ABAW's measure is macro-F1, so every class matters as much as the frequent ones."""
    if mode == "none":
        return None
    counts = torch.bincount(labels[labels != MASKED], minlength=num_classes).double()
    weights = torch.where(counts > 0, 1.0 / counts.clamp(min=1), torch.zeros_like(counts))
    return (weights / weights[counts > 0].mean()).float()


def build_encoder(cfg: dict, in_dim: int, num_classes: int, window: int) -> TemporalEncoder:
    return TemporalEncoder(in_dim, num_classes, window, cfg["d_model"], cfg["layers"], cfg["heads"], cfg["ff_dim"],
                           cfg["dropout"])


def _batch_order(num_windows: int, batch: int, seed: int, epoch: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(num_windows, generator=gen)
    steps = max(1, num_windows // batch)
    return [order[i * batch:(i + 1) * batch] for i in range(steps)]


def train_variant(cfg: dict, videos: list[VideoFeatures], classes: list[str], seed: int, variant: str,
                  work_dir: Path, device: torch.device, tracker=None) -> tuple[TemporalEncoder, list[dict]]:
    window, stride = variant_window(cfg, variant)
    feats, present, labels = stack_windows(videos, window, stride, labelled_only=True)
    torch.manual_seed(seed * 10 + VARIANTS.index(variant))
    model = build_encoder(cfg, feats.shape[2], len(classes), window).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps, warmup = cfg["steps"], cfg["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / max(1, warmup)) * 0.5 *
                                                 (1 + math.cos(math.pi * min(s, steps) / steps)))
    weights = class_weights(labels, len(classes), cfg["class_weighting"])
    weights = None if weights is None else weights.to(device)
    batch = max(1, cfg["batch_frames"] // window)
    ckpt_path = work_dir / f"seed{seed}_{variant}.pt"
    parts = {"model": model, "optimizer": optimizer, "scheduler": schedule}
    state = checkpoint.load_state(ckpt_path, parts) if cfg["resume"] else None
    step, history = (state["step"], state["history"]) if state is not None else (0, [])
    if state is not None:
        log.info("seed %d %s: resumed at step %d", seed, variant, step)
        checkpoint.tag_resumed(tracker, step)
    per_epoch = max(1, len(feats) // batch)
    model.train()
    while step < steps:
        epoch, position = divmod(step, per_epoch)
        idx = _batch_order(len(feats), batch, seed, epoch)[position]
        x, p, y = feats[idx].to(device), present[idx].to(device), labels[idx].to(device)
        logits = model(x, p)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), weight=weights,
                               ignore_index=MASKED)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        if step % cfg["log_every"] == 0 or step == steps:
            scored = y != MASKED
            acc = float((logits.argmax(-1)[scored] == y[scored]).float().mean())
            history.append({"step": step, "loss": loss.item(), "train_accuracy": acc, "lr": schedule.get_last_lr()[0]})
            if tracker is not None:
                tracker.log_metrics({f"seed{seed}.{variant}.loss": loss.item(),
                                     f"seed{seed}.{variant}.train_accuracy": acc}, step=step)
        if step % cfg["checkpoint_every"] == 0 and step < steps:
            checkpoint.save_state(ckpt_path, parts, step=step, history=history)
    ckpt_path.unlink(missing_ok=True)
    log.info("seed %d %s: %d windows of %d frames, final loss %.3f", seed, variant, len(feats), window,
             history[-1]["loss"])
    return model.eval(), history


def save_encoder(model: TemporalEncoder, cfg: dict, variant: str, meta: dict, path: Path) -> None:
    """The inference bundle: weights and everything needed to rebuild the encoder and
    its student (predict-video embeds frames with the same student)."""
    window, _ = variant_window(cfg, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.save(path, model={k: v.cpu() for k, v in model.state_dict().items()}, variant=variant, window=window,
                    arch={k: cfg[k] for k in ("d_model", "layers", "heads", "ff_dim", "dropout")},
                    in_dim=meta["dim"], classes=meta["classes"], class_set=meta["class_set"],
                    student=meta["student"], image_size=meta.get("image_size"))


def load_encoder(path: str | Path) -> tuple[TemporalEncoder, dict]:
    bundle = checkpoint.load(Path(path))
    if bundle is None:
        raise FileNotFoundError(f"{path} not found: run `fer train-temporal` first")
    model = TemporalEncoder(bundle["in_dim"], len(bundle["classes"]), bundle["window"], **bundle["arch"])
    model.load_state_dict(bundle["model"])
    return model.eval(), bundle


def train_temporal(cfg: dict, features_dir: str | Path, out_dir: str | Path, work_dir: str | Path,
                   meta: dict, tracker=None) -> dict:
    """Train every (seed, variant); bundles go to out_dir/seed<n>/<variant>.pt.

    Finished bundles wait in `work_dir` until all are done, so a killed job resumes
    at the variant it was in; the output folder is then swapped in whole."""
    set_threads(cfg["threads"])
    device = pick_device(cfg["device"])
    videos = read_videos(features_dir, "train")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    summary = {}
    for seed in cfg["seeds"]:
        for variant in VARIANTS:
            bundle = work_dir / "done" / f"seed{seed}" / f"{variant}.pt"
            history_file = bundle.with_suffix(".history.json")
            if not bundle.exists():
                model, history = train_variant(cfg, videos, meta["classes"], seed, variant, work_dir, device, tracker)
                write_json(_mkdir(history_file), history)
                save_encoder(model, cfg, variant, meta, bundle)  # last: its presence marks the variant done
            summary[f"seed{seed}.{variant}"] = json.loads(history_file.read_text(encoding="utf-8"))[-1]
    with building_dir(out_dir) as tmp:
        shutil.copytree(work_dir / "done", tmp, dirs_exist_ok=True)
        write_json(tmp / "summary.json", summary)
    shutil.rmtree(work_dir, ignore_errors=True)
    return summary


def _mkdir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
