"""`fer train-meta`: Face2Exp meta-training of a teacher and a student.

Labelled batches come from the Smp subset (balanced, at the labelled fraction
from params, saved as an index file); unlabelled batches (mu x batch size) from
the face-recognition pool, each with a weak and a strong view. Both networks
use `optimizer` (paper: SGD, teacher 1e-2, student 1e-3), a linear warm-up and
cosine decay. Inference and
evaluation use the student only; the teacher is saved beside it for study.

When the pool's true expressions are known (FaceSynth writes them outside the
dataset folder), the run audits the teacher's pseudo labels against them.

Multi-process: `torchrun --nproc_per_node N $(which fer) train-meta` wraps both
networks in DistributedDataParallel (NCCL on GPUs, gloo on CPU); each rank draws
its own slice of every global batch, and f is averaged over the ranks so all of
them apply the same feedback. The audit covers rank 0's slice.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from fer_pipeline.common.atomic import write_bytes, write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.meta.augment import WeakStrongViews, cover_grid
from fer_pipeline.meta.data import PoolViews, StepBatchSampler
from fer_pipeline.meta.smp import labelled_subset, write_index
from fer_pipeline.meta.step import MetaLossConfig, meta_step
from fer_pipeline.models.factory import build_model
from fer_pipeline.train import checkpoint, distributed
from fer_pipeline.data.datasets import FaceShardDataset, collate_faces, decode_rgb
from fer_pipeline.train.device import autocast, memory_format, start_training
from fer_pipeline.train.supervised import make_optimizer, make_scheduler
from fer_pipeline.models.bundle import save_bundle

log = logging.getLogger(__name__)


def read_pool_truth(path: str | None, sources: list[str], class_set: ClassSet) -> torch.Tensor | None:
    """True class id of every pool image (-1: outside the class set), or None."""
    if not path:
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        # A `source` column names the shard row directly (WebFace); MS1M's truth is keyed by record.
        truth = {row["source"] if "source" in row else f"train.rec#{row['key']}": row["expression"]
                 for row in csv.DictReader(fh)}
    missing = [s for s in sources if s not in truth]
    if missing:
        raise ValueError(f"{path}: no true expression for {len(missing)} pool images, e.g. {missing[0]}")
    ids = [class_set.index(truth[s]) for s in sources]
    return torch.tensor([-1 if i is None else i for i in ids])


class PseudoLabelAudit:
    """Running audit of the teacher's pseudo labels and of the feedback f."""

    def __init__(self, truth: torch.Tensor | None, classes: tuple[str, ...]):
        self.truth, self.classes = truth, classes
        self.reset()

    def reset(self) -> None:
        self.hist, self.true_hist = Counter(), Counter()
        self.correct = self.known = 0
        self.feedback: list[float] = []

    def update(self, pseudo: torch.Tensor, indices: torch.Tensor, feedback: float) -> None:
        self.hist.update(pseudo.tolist())
        self.feedback.append(feedback)
        if self.truth is not None:
            true = self.truth[indices]
            known = true >= 0
            self.correct += int((pseudo[known] == true[known]).sum())
            self.known += int(known.sum())
            self.true_hist.update(true[known].tolist())

    def state_dict(self) -> str:
        """JSON of the running counters, so a resumed run's next record covers the same steps."""
        return json.dumps({"hist": dict(self.hist), "true_hist": dict(self.true_hist), "correct": self.correct,
                           "known": self.known, "feedback": self.feedback})

    def load_state_dict(self, state: str) -> None:
        data = json.loads(state)
        self.hist = Counter({int(k): v for k, v in data["hist"].items()})
        self.true_hist = Counter({int(k): v for k, v in data["true_hist"].items()})
        self.correct, self.known, self.feedback = data["correct"], data["known"], data["feedback"]

    def summary(self) -> dict:
        total = max(1, sum(self.hist.values()))
        out = {
            "feedback_mean": float(np.mean(self.feedback)) if self.feedback else 0.0,
            "feedback_positive_rate": float(np.mean([f > 0 for f in self.feedback])) if self.feedback else 0.0,
        }
        out.update({f"pseudo_share.{c}": self.hist[i] / total for i, c in enumerate(self.classes)})
        if self.truth is not None and self.known:
            out["pseudo_label_accuracy"] = self.correct / self.known
            known = max(1, sum(self.true_hist.values()))
            out.update({f"true_share.{c}": self.true_hist[i] / known for i, c in enumerate(self.classes)})
        return out


def _loader(dataset, sampler, workers: int, device) -> DataLoader:
    # collate_faces: the labelled faces' crop and flip run per batch; the pool's items are
    # ready tensors (per-sample RandAugment and cover) and go through the default collate.
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
                      collate_fn=collate_faces)


def train_meta(cfg: dict, labeled_dir: str | Path, pool_dir: str | Path, out_dir: str | Path,
               work_dir: str | Path, init_weights: str | Path | None = None, truth_csv: str | None = None,
               tracker=None, stop_after_steps: int | None = None) -> dict:
    """Meta-train teacher and student for `cfg["steps"]` steps, checkpointing in `work_dir`;
    rank 0 writes the student (model.pt), the teacher, the history, the Smp index and the
    cover examples to `out_dir`. `stop_after_steps` ends the run early (as a crash would)."""
    device, world = _start(cfg)
    main = world.is_main  # only rank 0 writes files, logs records and tracks
    tracker = tracker if main else None
    class_set = ClassSet.named(cfg["class_set"])
    out_dir, work_dir = Path(out_dir), Path(work_dir)
    labeled, subset = _labelled_subset(cfg, labeled_dir, class_set, out_dir if main else None)
    pool, audit = _pool(cfg, pool_dir, truth_csv, class_set, out_dir if main else None)
    run = MetaRun.build(cfg, len(class_set), init_weights, world, device, audit)
    ckpt_path = work_dir / "last.pt"
    if cfg["resume"] and run.resume(ckpt_path):
        checkpoint.tag_resumed(tracker, run.step)
    start = run.step
    labeled_batches, pool_batches = _batches(cfg, labeled, subset, pool, start, world, device)
    for net in run.nets.values():
        net.train()
    t0 = time.time()
    for step in tqdm(range(start, cfg["steps"]), desc="meta", unit="step", mininterval=5.0,
                     initial=start, total=cfg["steps"], disable=not main):
        if stop_after_steps is not None and step >= stop_after_steps:
            return {"stopped_at_step": step}
        losses = run.train_step(next(labeled_batches), next(pool_batches))
        if run.step % cfg["log_every"] == 0 or run.step == cfg["steps"]:
            record = run.record(losses, time.time() - t0)
            if main:
                log.info("step %d: %s", run.step, {k: round(v, 4) for k, v in record.items() if k != "step"})
            if tracker is not None:
                tracker.log_metrics({k: v for k, v in record.items() if k != "step"}, step=run.step)
        if main and run.step % cfg["checkpoint_every"] == 0 and run.step < cfg["steps"]:
            run.save(ckpt_path)
    return _finish(run, class_set, world, out_dir, ckpt_path, start, t0)


def _start(cfg: dict) -> tuple[torch.device, distributed.World]:
    """Threads, seed and device; the process group when launched by torchrun."""
    device = start_training(cfg)
    world = distributed.init(device.type)  # a world of one unless launched by torchrun
    if world.distributed and device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device, world


def _labelled_subset(cfg: dict, labeled_dir: str | Path, class_set: ClassSet,
                     index_dir: Path | None) -> tuple[FaceShardDataset, np.ndarray]:
    """The labelled train split and the Smp subset drawn from it (its index file written
    to `index_dir`, when given)."""
    labeled = FaceShardDataset(labeled_dir, "train", class_set, cfg["input_size"],
                               # Crop and flip per batch (collate_faces), as train.supervised's default.
                               {"crop_scale": cfg["crop_scale"], "hflip": True, "color_jitter": 0.0, "batched": True},
                               cfg["seed"])
    subset = labelled_subset(labeled.targets.numpy(), cfg, len(class_set))
    counts = Counter(labeled.targets[subset].tolist())
    log.info("labelled subset: %d of %d images, per class %s", len(subset), len(labeled),
             {class_set.classes[c]: n for c, n in sorted(counts.items())})
    if index_dir is not None:
        write_index(index_dir / "smp_index.json", labeled.sources, subset,
                    {"dataset": str(labeled_dir), "fraction": cfg["labeled_fraction"], "balanced": cfg["balanced"],
                     "seed": cfg["seed"]})
    return labeled, subset


def _pool(cfg: dict, pool_dir: str | Path, truth_csv: str | None, class_set: ClassSet,
          examples_dir: Path | None) -> tuple[PoolViews, PseudoLabelAudit]:
    """The unlabelled pool with its weak/strong views, the audit of its pseudo labels, and
    (in `examples_dir`, when given) a picture of the cover augmentation on a few faces."""
    views = WeakStrongViews(cfg["input_size"], cfg["crop_scale"], cfg["randaugment_ops"],
                            cfg["randaugment_magnitude"], cfg["cover_probability"])
    pool = PoolViews(pool_dir, "unlabeled", views, cfg["seed"] + 1)
    audit = PseudoLabelAudit(read_pool_truth(truth_csv, pool.sources, class_set), class_set.classes)
    examples = range(min(4, len(pool)))
    grid = cover_grid([decode_rgb(pool.images[i], pool.sources[i]) for i in examples],
                      [pool.landmarks[i] for i in examples])
    if examples_dir is not None:
        examples_dir.mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", grid[:, :, ::-1])
        if not ok:
            raise ValueError(f"{examples_dir / 'cover_examples.png'}: cv2 could not encode the cover examples")
        write_bytes(examples_dir / "cover_examples.png", png.tobytes())
    return pool, audit


def _batches(cfg: dict, labeled: FaceShardDataset, subset: np.ndarray, pool: PoolViews, start: int,
             world: distributed.World, device: torch.device):
    """Endless labelled and unlabelled batch iterators, positioned at step `start`; each
    rank draws its own slice of every global batch."""
    shard = {"rank": world.rank, "world_size": world.size}
    labeled_batches = iter(_loader(labeled, StepBatchSampler(subset, cfg["batch_size"], cfg["seed"], start, **shard),
                                   cfg["num_workers"], device))
    pool_batches = iter(_loader(pool, StepBatchSampler(np.arange(len(pool)), cfg["mu"] * cfg["batch_size"],
                                                       cfg["seed"] + 1, start, **shard), cfg["num_workers"], device))
    return labeled_batches, pool_batches


@dataclass
class MetaRun:
    """One meta-training run's state: teacher and student with their optimisers and
    schedules, the optional EMA of the student, the pseudo-label audit and the progress
    (what a checkpoint holds), plus the settings a step needs."""

    cfg: dict
    world: distributed.World
    device: torch.device
    nets: dict[str, torch.nn.Module]
    opts: dict[str, torch.optim.Optimizer]
    scheds: dict[str, torch.optim.lr_scheduler.LRScheduler]
    ema: torch.optim.swa_utils.AveragedModel | None
    audit: PseudoLabelAudit
    loss_cfg: MetaLossConfig
    step: int = 0  # steps finished
    history: list = field(default_factory=list)

    @classmethod
    def build(cls, cfg: dict, num_classes: int, init_weights, world: distributed.World, device: torch.device,
              audit: PseudoLabelAudit) -> "MetaRun":
        fmt = memory_format(device, cfg["channels_last"])
        nets = {}
        for role in ("teacher", "student"):
            torch.manual_seed(cfg["seed"] + (role == "student"))  # independent weights when from scratch
            nets[role] = distributed.wrap(build_model(cfg["arch"], num_classes, init_weights).to(device, memory_format=fmt),
                                          world, device)
        # The supervised recipe's optimiser and schedule, per network at its own rate: a
        # linear warm-up keeps a network that starts from the trained baseline from being
        # thrown off it (and the pseudo labels from collapsing) in the first steps.
        recipe = {role: {"optimizer": cfg["optimizer"], "lr": cfg[f"lr_{role}"], "momentum": cfg["momentum"],
                         "weight_decay": cfg["weight_decay"], "scheduler": "cosine"} for role in nets}
        opts = {role: make_optimizer(recipe[role], nets[role]) for role in nets}
        scheds = {role: make_scheduler(recipe[role], opts[role], cfg["steps"], cfg["warmup_steps"]) for role in nets}
        # Optional EMA of the student (paper: none); when on, it is what gets exported.
        ema = (torch.optim.swa_utils.AveragedModel(
            distributed.unwrap(nets["student"]),
            multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg["ema_decay"]), use_buffers=True)
            if cfg["ema_decay"] > 0 else None)
        loss_cfg = MetaLossConfig(cfg["weights"]["s"], cfg["weights"]["c"], cfg["weights"]["f"], cfg["feedback"],
                                  cfg["threshold"], cfg["label_smoothing"], cfg["uda_warmup_steps"])
        return cls(cfg, world, device, nets, opts, scheds, ema, audit, loss_cfg)

    def _parts(self) -> dict:
        """What a checkpoint holds, by name (the key order is the file's)."""
        parts = {role: distributed.unwrap(net) for role, net in self.nets.items()}
        parts.update({f"{role}_optimizer": opt for role, opt in self.opts.items()})
        parts.update({f"{role}_scheduler": sched for role, sched in self.scheds.items()})
        if self.ema is not None:
            parts["ema"] = self.ema
        parts["audit"] = self.audit
        return parts

    def save(self, path: Path) -> None:
        checkpoint.save_state(path, self._parts(), step=self.step, history=json.dumps(self.history))

    def resume(self, path: Path) -> bool:
        """Restore the checkpoint at `path`, if there is one; True when there was."""
        state = checkpoint.load_state(path, self._parts())
        if state is None:
            return False
        self.step, self.history = state["step"], json.loads(state["history"])
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def train_step(self, labelled_batch, pool_batch) -> dict[str, float]:
        """One meta step (seed 000's teacher and student updates); returns its losses."""
        cfg, device = self.cfg, self.device
        fmt = memory_format(device, cfg["channels_last"])
        x_l, y_l = labelled_batch
        weak, strong, idx = pool_batch
        to = (lambda t: t.to(device, non_blocking=True, memory_format=fmt))
        stats = meta_step(self.nets["teacher"], self.nets["student"], self.opts["teacher"], self.opts["student"],
                          to(x_l), y_l.to(device), to(weak), to(strong), self.loss_cfg, self.step,
                          lambda: autocast(device, cfg["amp"]),
                          reduce_feedback=lambda f: distributed.mean_over_ranks(f, self.world, device))
        for sched in self.scheds.values():
            sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.nets["student"])
        losses = {k: v for k, v in stats.items() if k != "pseudo_labels"}
        if not all(math.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"non-finite meta losses at step {self.step}: {losses}")
        self.audit.update(stats["pseudo_labels"], idx, stats["feedback"])
        self.step += 1
        return losses

    def record(self, losses: dict[str, float], seconds: float) -> dict:
        """The history record of the steps since the last one (losses of this step, the
        audit over those steps); resets the audit."""
        record = {"step": self.step, **losses, **self.audit.summary(), "seconds": round(seconds, 1)}
        self.history.append(record)
        self.audit.reset()
        return record


def _finish(run: MetaRun, class_set: ClassSet, world: distributed.World, out_dir: Path, ckpt_path: Path,
            start: int, t0: float) -> dict:
    """Leave the process group; rank 0 writes the student (or its EMA) and the teacher."""
    cfg, history = run.cfg, run.history
    teacher, student = run.nets["teacher"], run.nets["student"]
    result = {"steps": cfg["steps"], "final": history[-1] if history else None, "world_size": world.size,
              "weights_digest": distributed.weights_digest(teacher, student)}
    distributed.shutdown(world)
    if not world.is_main:
        return result
    save_bundle(distributed.unwrap(student) if run.ema is None else run.ema.module, cfg["arch"], class_set,
                cfg["input_size"], out_dir / "model.pt")
    save_bundle(distributed.unwrap(teacher), cfg["arch"], class_set, cfg["input_size"], out_dir / "teacher.pt")
    write_json(out_dir / "history.json", history)
    ckpt_path.unlink(missing_ok=True)
    log.info("meta-training done: %d steps in %.1f s; last record %s", cfg["steps"] - start, time.time() - t0,
             history[-1] if history else None)
    return result
