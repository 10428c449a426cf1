"""`fer pretrain-fr`: face-recognition pretraining. An ArcFace identity classifier on
the train identities of the FR pools; its backbone (less the embedding layer) is the
initialisation FER networks start from (`init: fr_pretrained`), and its embeddings are
checked by verification on the held-out identities.

Checkpoints as in train/supervised.py: every epoch, in a work folder keyed by the
stage key, resumed to the same weights.
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
from fer_pipeline.data.datasets import EpochSampler
from fer_pipeline.data.identities import IdentityDataset, read_pools, split_identities
from fer_pipeline.eval.verification import make_pairs, verify
from fer_pipeline.models.arcface import ArcFaceHead, EmbeddingNet
from fer_pipeline.train import checkpoint
from fer_pipeline.train.device import autocast, memory_format, pick_device, set_threads
from fer_pipeline.train.supervised import make_optimizer, make_scheduler

log = logging.getLogger(__name__)

BACKBONE = "backbone.pt"


class _Run:
    """The networks, optimiser and schedule of one pretraining run, saved and restored together."""

    def __init__(self, cfg: dict, num_identities: int, steps_per_epoch: int, device: torch.device):
        self.fmt = memory_format(device, cfg["channels_last"])
        self.net = EmbeddingNet(cfg["arch"], cfg["embedding_dim"]).to(device, memory_format=self.fmt)
        self.head = ArcFaceHead(cfg["embedding_dim"], num_identities, cfg["scale"], cfg["margin"]).to(device)
        both = torch.nn.ModuleDict({"net": self.net, "head": self.head})
        self.optimizer = make_optimizer(cfg, both)
        self.scheduler = make_scheduler(cfg, self.optimizer, cfg["epochs"] * steps_per_epoch,
                                        round(cfg["warmup_epochs"] * steps_per_epoch))

    def state(self) -> dict:
        return {"net": self.net.state_dict(), "head": self.head.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def restore(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def _epoch(run: _Run, loader: DataLoader, device: torch.device, cfg: dict, epoch: int, step: int,
           tracker) -> tuple[dict, int]:
    run.net.train()
    seen, loss_sum, correct, t0 = 0, 0.0, 0, time.time()
    for images, targets in tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="batch", mininterval=5.0):
        images = images.to(device, non_blocking=True, memory_format=run.fmt)
        targets = targets.to(device, non_blocking=True)
        with autocast(device, cfg["amp"]):
            logits = run.head(run.net(images), targets)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"ArcFace loss is {loss.item()} at epoch {epoch + 1}, step {step}")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.scheduler.step()
        step += 1
        seen += len(targets)
        loss_sum += loss.item() * len(targets)
        correct += (logits.argmax(1) == targets).sum().item()  # with the margin: a strict accuracy
        if tracker is not None and step % 10 == 0:
            tracker.log_metrics({"train_loss_step": loss.item(), "lr": run.scheduler.get_last_lr()[0]}, step=step)
    seconds = time.time() - t0
    return {"epoch": epoch + 1, "step": step, "train_loss": loss_sum / seen, "train_acc": correct / seen,
            "seconds": round(seconds, 2), "images_per_s": round(seen / seconds, 1)}, step


def _datasets(cfg: dict, pool_dirs: dict[str, str]) -> tuple[IdentityDataset, IdentityDataset, dict]:
    faces = read_pools(pool_dirs)
    train_ids, held_ids = split_identities(faces.identities, cfg["held_out_fraction"], cfg["seed"])
    train_set = IdentityDataset(faces, train_ids, cfg["input_size"], cfg["augment"], cfg["seed"])
    held_set = IdentityDataset(faces, held_ids, cfg["input_size"], None, cfg["seed"])
    split = {"train_identities": train_ids, "held_out_identities": held_ids,
             "train_images": len(train_set), "held_out_images": len(held_set)}
    log.info("FR pools %s: %d faces; %d train identities (%d faces), %d held out (%d faces)", sorted(pool_dirs),
             len(faces.images), len(train_ids), len(train_set), len(held_ids), len(held_set))
    return train_set, held_set, split


def pretrain_fr(cfg: dict, pool_dirs: dict[str, str], out_dir: str | Path, work_dir: str | Path,
                tracker=None, stop_after_epochs: int | None = None) -> dict:
    """Train, checkpointing every epoch in `work_dir`; write `backbone.pt`, the identity
    split and the history to `out_dir`; return the verification metrics with the result.
    `stop_after_epochs` ends the run early (as a crash would), for resume tests."""
    set_threads(cfg["threads"])
    device = pick_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    torch.use_deterministic_algorithms(device.type == "cpu", warn_only=True)
    train_set, held_set, split = _datasets(cfg, pool_dirs)
    sampler = EpochSampler(train_set.targets, cfg["seed"], balanced=False)
    loader = DataLoader(train_set, batch_size=cfg["batch_size"], sampler=sampler,
                        drop_last=len(train_set) >= cfg["batch_size"], num_workers=cfg["num_workers"],
                        pin_memory=device.type == "cuda")
    run = _Run(cfg, len(split["train_identities"]), len(loader), device)

    ckpt_path, start, step, history = Path(work_dir) / "last.pt", 0, 0, []
    state = checkpoint.load(ckpt_path) if cfg["resume"] else None
    if state is not None:
        run.restore(state)
        checkpoint.restore_rng(state["rng"])
        start, step, history = state["epoch"], state["step"], json.loads(state["history"])
        log.info("resumed from %s at epoch %d (step %d)", ckpt_path, start, step)
        checkpoint.tag_resumed(tracker, step)
    for epoch in range(start, cfg["epochs"]):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            return {"stopped_at_epoch": epoch}
        train_set.set_epoch(epoch)
        sampler.set_epoch(epoch)
        record, step = _epoch(run, loader, device, cfg, epoch, step, tracker)
        history.append(record)
        log.info("epoch %d: %s", epoch + 1, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k not in ("epoch", "step")}, step=epoch + 1)
        checkpoint.save(ckpt_path, **run.state(), rng=checkpoint.rng_state(), epoch=epoch + 1, step=step,
                        history=json.dumps(history))
    pairs = make_pairs(held_set.identities, cfg["verification"]["pairs"], cfg["seed"])
    metrics = verify(run.net, held_set, pairs, cfg["verification"]["far"], cfg["batch_size"], device)
    log.info("verification on %d held-out identities: %s", len(split["held_out_identities"]), metrics)
    return _export(run.net, cfg, split, history, metrics, Path(out_dir), ckpt_path)


def _export(net: EmbeddingNet, cfg: dict, split: dict, history: list, metrics: dict, out_dir: Path,
            ckpt_path: Path) -> dict:
    # `model` holds a plain state_dict: build_model(arch, n, "backbone.pt") reads it.
    checkpoint.save(out_dir / BACKBONE, model=net.backbone_state(), arch=cfg["arch"], input_size=cfg["input_size"])
    write_json(out_dir / "identity_split.json", split)
    write_json(out_dir / "history.json", history)
    ckpt_path.unlink(missing_ok=True)  # finished: nothing left to resume
    return {"epochs": len(history), "final": history[-1] if history else None, "verification": metrics}
