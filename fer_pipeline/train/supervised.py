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
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fer_pipeline.common.atomic import write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.meta.smp import read_index
from fer_pipeline.methods.upsampling import UpsampledDataset, upsample_plan, write_upsample_index
from fer_pipeline.models.bundle import save_bundle
from fer_pipeline.models.factory import build_model
from fer_pipeline.train import checkpoint
from fer_pipeline.data.datasets import EpochSampler, FaceShardDataset, collate_faces
from fer_pipeline.train.device import autocast, memory_format, start_training
from fer_pipeline.train.losses import Objective, build_objective, upsampling, wrap_network

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

    `init_weights` is the state_dict the network starts from (None: random): the
    face-recognition backbone, a local file, or the student for its finetuning.

    `subset_index` (an Smp index file) limits training to those images: the student's
    finetuning must not see labels its meta-training did not have.
    `stop_after_epochs` ends the run early (as a crash would), for resume tests.
    The objective, up-sampling and deviation module come from the config's `loss`,
    `upsampling` and `deviation` keys (train/losses.py; absent: plain CE).
    """
    device = start_training(cfg)
    class_set = ClassSet.named(cfg["class_set"])
    train_set, sampler, loader, counts = training_data(cfg, dataset_dir, class_set, subset_index, device,
                                                       Path(out_dir))
    run = SupervisedRun.build(cfg, len(class_set), len(loader), device, init_weights, counts)
    ckpt_path = Path(work_dir) / "last.pt"
    if cfg["resume"] and run.resume(ckpt_path):
        checkpoint.tag_resumed(tracker, run.step)
    for epoch in range(run.epoch, cfg["epochs"]):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return {"stopped_at_epoch": epoch}
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        record = run.train_epoch(loader, tracker)
        log.info("epoch %d: %s", epoch + 1, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k not in ("epoch", "step")}, step=epoch + 1)
        run.save(ckpt_path)
    return _export(run.model, cfg, class_set, run.history, Path(out_dir), ckpt_path)


def training_data(cfg: dict, dataset_dir: str | Path, class_set: ClassSet, subset_index: str | Path | None,
                  device: torch.device, out_dir: Path) -> tuple[Dataset, EpochSampler, DataLoader, list[int]]:
    """The train split (or its Smp subset), up-sampled when train.supervised.upsampling
    says so, its per-epoch sampler, the batch loader and the class counts before up-sampling."""
    train_set = FaceShardDataset(dataset_dir, "train", class_set, cfg["input_size"], cfg["augment"], cfg["seed"])
    if subset_index is not None:
        train_set.restrict_to(read_index(subset_index), str(subset_index))
    counts = train_set.class_counts().tolist()
    log.info("train: %d images, per class %s", len(train_set), dict(zip(class_set.classes, counts)))
    if upsampling(cfg) == "randaugment":
        train_set = _upsampled(train_set, cfg["seed"], out_dir / "upsample_index.json")
    sampler = EpochSampler(train_set.targets, cfg["seed"], cfg["balanced_sampling"])
    # A labelled subset smaller than one batch (1 % of a small set) still trains: one partial batch.
    # collate_faces runs the batched augmentation in the loader's workers (augment.batched).
    loader = DataLoader(train_set, batch_size=cfg["batch_size"], sampler=sampler,
                        drop_last=len(train_set) >= cfg["batch_size"],
                        num_workers=cfg["num_workers"], pin_memory=device.type == "cuda",
                        persistent_workers=False, collate_fn=collate_faces)
    if len(loader) == 0:
        raise ValueError(f"batch_size {cfg['batch_size']} exceeds the {len(train_set)} training images")
    return train_set, sampler, loader, counts


def _upsampled(train_set: FaceShardDataset, seed: int, index_path: Path) -> UpsampledDataset:
    """ABAW4-LSD's up-sampling: every class repeated up to the largest class's count, the
    repeats RandAugmented; the index of repeats is kept beside the model."""
    plan = upsample_plan(train_set.targets.numpy(), seed)
    write_upsample_index(index_path, train_set.sources, plan, {"seed": seed, "images": len(train_set)})
    data = UpsampledDataset(train_set, [(train_set.sources[row], copy) for row, copy in plan])
    log.info("train.supervised.upsampling randaugment: %d images -> %d", len(train_set), len(data))
    return data


@dataclass
class SupervisedRun:
    """One supervised run's training state: what a checkpoint holds (network, optimiser,
    schedule, progress) and the settings its steps need."""

    cfg: dict
    device: torch.device
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    objective: Objective
    epoch: int = 0  # epochs finished
    step: int = 0
    history: list = field(default_factory=list)

    @classmethod
    def build(cls, cfg: dict, num_classes: int, steps_per_epoch: int, device: torch.device,
              init_weights: str | Path | None = None, class_counts: list[int] | None = None) -> "SupervisedRun":
        """`class_counts`: the training images per class, for the objectives that re-weight classes."""
        fmt = memory_format(device, cfg["channels_last"])
        objective = build_objective(cfg, num_classes, class_counts)
        model = wrap_network(cfg, build_model(cfg["arch"], num_classes, init_weights), num_classes, init_weights)
        model = model.to(device, memory_format=fmt)
        optimizer = make_optimizer(cfg, model)
        scheduler = make_scheduler(cfg, optimizer, cfg["epochs"] * steps_per_epoch,
                                   round(cfg["warmup_epochs"] * steps_per_epoch))
        return cls(cfg, device, model, optimizer, scheduler, objective)

    @property
    def fmt(self) -> torch.memory_format:
        return memory_format(self.device, self.cfg["channels_last"])

    def _parts(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def save(self, path: Path) -> None:
        checkpoint.save_state(path, self._parts(), epoch=self.epoch, step=self.step,
                              history=json.dumps(self.history))

    def resume(self, path: Path) -> bool:
        """Restore the checkpoint at `path`, if there is one; True when there was."""
        state = checkpoint.load_state(path, self._parts())
        if state is None:
            return False
        self.epoch, self.step, self.history = state["epoch"], state["step"], json.loads(state["history"])
        log.info("resumed from %s at epoch %d (step %d)", path, self.epoch, self.step)
        return True

    def train_epoch(self, loader: DataLoader, tracker=None) -> dict:
        """One pass over `loader`; appends the epoch's record to the history and returns it."""
        self.model.train()
        fmt, device = self.fmt, self.device
        seen, loss_sum, correct, t0 = 0, 0.0, 0, time.time()
        bar = tqdm(loader, desc=f"epoch {self.epoch + 1}/{self.cfg['epochs']}", unit="batch", mininterval=5.0)
        for images, targets in bar:
            images = images.to(device, non_blocking=True, memory_format=fmt)
            targets = targets.to(device, non_blocking=True)
            loss, logits = self._step(images, targets)
            seen += len(targets)
            loss_sum += loss * len(targets)
            correct += (logits.argmax(1) == targets).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
            if tracker is not None and self.step % 10 == 0:
                tracker.log_metrics({"train_loss_step": loss, "lr": self.scheduler.get_last_lr()[0]}, step=self.step)
        self.epoch += 1
        record = {"epoch": self.epoch, "step": self.step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
                  "seconds": round(time.time() - t0, 2), "images_per_s": round(seen / (time.time() - t0), 1)}
        self.history.append(record)
        return record

    def _step(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, torch.Tensor]:
        """One optimiser step; returns the batch loss and the logits."""
        with autocast(self.device, self.cfg["amp"]):
            loss, logits = self.objective(self.model, images, targets)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {self.epoch + 1}, step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return loss.item(), logits


def _export(model: torch.nn.Module, cfg: dict, class_set: ClassSet, history: list, out_dir: Path,
            ckpt_path: Path) -> dict:
    """Write the inference bundle (weights + what evaluation needs to rebuild the model)."""
    save_bundle(model, cfg["arch"], class_set, cfg["input_size"], out_dir / "model.pt")
    write_json(out_dir / "history.json", history)
    ckpt_path.unlink(missing_ok=True)  # finished: nothing left to resume
    return {"epochs": len(history), "final": history[-1] if history else None}
