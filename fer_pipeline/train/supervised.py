"""`fer train-supervised`: the supervised baseline (a backbone trained on labelled faces).

In-progress checkpoints live in a work folder keyed by the stage key, not in the
stage output: Snakemake and DVC delete a stage's outputs before rerunning it, and
a checkpoint from other parameters must never be resumed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fer_pipeline.common.atomic import write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.meta.smp import read_index
from fer_pipeline.models.bundle import save_bundle
from fer_pipeline.models.factory import build_model
from fer_pipeline.train import checkpoint
from fer_pipeline.data.datasets import EpochSampler, FaceShardDataset
from fer_pipeline.train.device import autocast, memory_format, pick_device, set_threads

log = logging.getLogger(__name__)


def make_optimizer(cfg: dict, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                               weight_decay=cfg["weight_decay"], nesterov=cfg["momentum"] > 0)
    return torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])


def make_scheduler(cfg: dict, optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int):
    """Linear warm-up (keeps a from-scratch network from collapsing onto the majority
    class in its first steps), then cosine decay or a constant rate; stepped per batch."""
    warmup_steps = min(warmup_steps, max(0, total_steps - 1))
    main_steps = max(1, total_steps - warmup_steps)
    if cfg["scheduler"] == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=main_steps)
    else:
        main = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup_steps == 0:
        return main
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warmup_steps])


def train_supervised(cfg: dict, dataset_dir: str | Path, out_dir: str | Path, work_dir: str | Path,
                     tracker=None, stop_after_epochs: int | None = None, subset_index: str | Path | None = None,
                     init_weights: str | Path | None = None) -> dict:
    """Train, checkpointing every epoch in `work_dir`; write the final model to `out_dir`.

    `init_weights` is the state_dict the network starts from (None: random); the caller
    resolves `init` to it (dag/stages/train.py), this function does not read `cfg["init"]`.

    `subset_index` (an Smp index file) limits training to those images: the student's
    finetuning must not see labels its meta-training did not have.
    `stop_after_epochs` ends the run early (as a crash would), for resume tests.
    """
    set_threads(cfg["threads"])
    device = pick_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)
    class_set = ClassSet.named(cfg["class_set"])
    train_set = FaceShardDataset(dataset_dir, "train", class_set, cfg["input_size"], cfg["augment"], cfg["seed"])
    if subset_index is not None:
        train_set.restrict_to(read_index(subset_index), str(subset_index))
    counts = train_set.class_counts().tolist()
    log.info("train: %d images, per class %s", len(train_set), dict(zip(class_set.classes, counts)))
    sampler = EpochSampler(train_set.targets, cfg["seed"], cfg["balanced_sampling"])
    # A labelled subset smaller than one batch (1 % of a small set) still trains: one partial batch.
    loader = DataLoader(train_set, batch_size=cfg["batch_size"], sampler=sampler,
                        drop_last=len(train_set) >= cfg["batch_size"],
                        num_workers=cfg["num_workers"], pin_memory=device.type == "cuda",
                        persistent_workers=False)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"batch_size {cfg['batch_size']} exceeds the {len(train_set)} training images")

    fmt = memory_format(device, cfg["channels_last"])
    model = build_model(cfg["arch"], len(class_set), init_weights).to(device, memory_format=fmt)
    optimizer = make_optimizer(cfg, model)
    scheduler = make_scheduler(cfg, optimizer, cfg["epochs"] * steps_per_epoch,
                               round(cfg["warmup_epochs"] * steps_per_epoch))
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])

    work_dir = Path(work_dir)
    ckpt_path = work_dir / "last.pt"
    start_epoch, step, history = 0, 0, []
    state = checkpoint.load(ckpt_path) if cfg["resume"] else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.restore_rng(state["rng"])
        start_epoch, step, history = state["epoch"], state["step"], json.loads(state["history"])
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, start_epoch, step)

    for epoch in range(start_epoch, cfg["epochs"]):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return {"stopped_at_epoch": epoch}
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        model.train()
        seen, loss_sum, correct, t0 = 0, 0.0, 0, time.time()
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="batch", mininterval=5.0)
        for images, targets in bar:
            images = images.to(device, non_blocking=True, memory_format=fmt)
            targets = targets.to(device, non_blocking=True)
            with autocast(device, cfg["amp"]):
                logits = model(images)
                loss = criterion(logits.float(), targets)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(targets)
            loss_sum += loss.item() * len(targets)
            correct += (logits.argmax(1) == targets).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            if tracker is not None and step % 10 == 0:
                tracker.log_metrics({"train_loss_step": loss.item(), "lr": scheduler.get_last_lr()[0]}, step=step)
        record = {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "seconds": round(time.time() - t0, 2), "images_per_s": round(seen / (time.time() - t0), 1)}
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k not in ("epoch", "step")}, step=epoch + 1)
        checkpoint.save(ckpt_path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=checkpoint.rng_state(), epoch=epoch + 1,
                        step=step, history=json.dumps(history))

    return _export(model, cfg, class_set, history, Path(out_dir), ckpt_path)


def _export(model: torch.nn.Module, cfg: dict, class_set: ClassSet, history: list, out_dir: Path,
            ckpt_path: Path) -> dict:
    """Write the inference bundle (weights + what evaluation needs to rebuild the model)."""
    save_bundle(model, cfg["arch"], class_set, cfg["input_size"], out_dir / "model.pt")
    write_json(out_dir / "history.json", history)
    ckpt_path.unlink(missing_ok=True)  # finished: nothing left to resume
    return {"epochs": len(history), "final": history[-1] if history else None}
