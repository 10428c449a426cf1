"""Seed 001 ("Omni-supervised FER: a simple baseline") in the imbalance study's target:
distil the mined auxiliary set (section 3.4, Algorithm 1), and train one small network per
(model, seed) on a labelled train split plus nothing, the mined pool faces or the distilled
images, for the distillation table and the cross-dataset matrix.

Every model trains as the imbalance study's rows do (train.supervised's recipe, plain CE,
seeded random weights, distill.arch at distill.input_size) for the same number of steps:
distill.train.epochs epochs of distill.train.epoch_size samples, distill.train.aux_share of
each drawn from the auxiliary set (data/auxiliary.py). Only what the auxiliary samples are
(and, across datasets, the labelled split) differs.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fer_pipeline.common.atomic import write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.auxiliary import DistilledFaces, MixedSampler, as_tensors, mined_faces, mixed
from fer_pipeline.data.datasets import FaceShardDataset, collate_faces
from fer_pipeline.methods.distillation import DistillConfig, distill, initial_images, outer_loss
from fer_pipeline.models.bundle import save_bundle
from fer_pipeline.models.factory import build_model
from fer_pipeline.reporting.distilled_grid import save_grid
from fer_pipeline.studies.prefixed import PrefixedTracker
from fer_pipeline.train.device import set_threads, start_training
from fer_pipeline.train.supervised import SupervisedRun

log = logging.getLogger(__name__)

DISTILLED_FILE, DISTILLED_INFO, GRID_FILE = "distilled.pt", "distilled.json", "grid.png"
# What no model inherits from train.supervised: the imbalance study's baseline row (plain CE
# from seeded random weights). Not imported from studies/imbalance.py, whose code would then
# rerun these jobs on every change to it.
MODEL_DEFAULTS = {"label_smoothing": 0.0, "upsampling": "none", "deviation": False, "balanced_sampling": False,
                  "init": "scratch"}


# ---- Algorithm 1 on the mined pool faces ----

def distill_config(algorithm: dict) -> DistillConfig:
    return DistillConfig(**{k: algorithm[k] for k in ("images_per_class", "steps", "inits_per_step", "inner_steps",
                                                       "batch_size", "lr", "eta0", "seed", "optimizer")})


def distill_mined(distill_params: dict, mined_dir: str | Path, out_dir: str | Path, grid_copy: str | Path | None,
                  threads: int = 0, tracker=None) -> dict:
    """Distil the mined pool faces; write the images + eta (`distilled.pt`), what they are
    (`distilled.json`: classes, eta, outer losses, the mined set's class counts) and the grid."""
    set_threads(threads)
    class_set = ClassSet.named(distill_params["class_set"])
    arch, size, algorithm = distill_params["arch"], distill_params["input_size"], distill_params["algorithm"]
    real_images, real_labels = as_tensors(mined_faces(mined_dir, class_set, size))
    counts = torch.bincount(real_labels, minlength=len(class_set)).tolist()
    log.info("distilling %d mined pool faces, per class %s", len(real_labels), dict(zip(class_set.classes, counts)))

    def make_model() -> torch.nn.Module:
        return build_model(arch, len(class_set))

    cfg = distill_config(algorithm)
    t0 = time.time()
    result = distill(make_model, real_images, real_labels, len(class_set), cfg)
    seconds = time.time() - t0
    # Algorithm 1's own objective on initialisations it never drew, before (the noise it
    # starts from, at eta0) and after: did distilling teach a one-step network anything?
    held_out = range(10**6, 10**6 + algorithm["held_out_inits"])
    probe = torch.randperm(len(real_labels), generator=torch.Generator().manual_seed(cfg.seed + 2))[:512]
    start, start_labels = initial_images(real_images, len(class_set), cfg)
    before = outer_loss(make_model, start, start_labels, cfg.eta0, real_images[probe], real_labels[probe], held_out,
                        cfg.inner_steps)
    after = outer_loss(make_model, result.images, result.labels, result.eta, real_images[probe], real_labels[probe],
                       held_out, cfg.inner_steps)
    out = Path(out_dir)
    result.save(out / DISTILLED_FILE)
    info = {"classes": list(class_set.classes), "arch": arch, "input_size": size, "images": len(result.labels),
            "eta": result.eta, "mined_faces": len(real_labels), "mined_per_class": dict(zip(class_set.classes, counts)),
            "held_out_outer_loss": {"noise_start": before, "distilled": after}, "seconds": round(seconds, 1),
            "outer_loss_first": result.history[0], "outer_loss_last": result.history[-1]}
    write_json(out / DISTILLED_INFO, info)
    title = (f"Distilled images ({len(result.labels)}) from {len(real_labels)} mined faces; eta {result.eta:.3g}; "
             f"held-out loss {before:.2f} -> {after:.2f}")
    for path in [out / GRID_FILE] + ([Path(grid_copy)] if grid_copy else []):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(result.images, result.labels, list(class_set.classes), path, title)
    if tracker is not None:
        for step, loss in enumerate(result.history):
            tracker.log_metrics({"outer_loss": loss}, step=step)
        tracker.log_metrics({"eta": result.eta, "held_out_loss_noise_start": before, "held_out_loss_distilled": after,
                             "mined_faces": float(len(real_labels))})
    log.info("distilled in %.0f s: eta %.4f, held-out outer loss %.3f (noise start) -> %.3f", seconds, result.eta,
             before, after)
    return info


# ---- one model: a labelled split + an auxiliary set, every seed ----

def model_cfg(params: dict, seed: int) -> dict:
    """train.supervised's recipe with the study's defaults (plain CE, seeded random
    weights) at distill's arch, size and length."""
    distill = params["distill"]
    cfg = copy.deepcopy(params["train"]["supervised"])
    cfg.update(MODEL_DEFAULTS)
    cfg.update({"seed": seed, "arch": distill["arch"], "input_size": distill["input_size"],
                "class_set": distill["class_set"], "epochs": distill["train"]["epochs"],
                "batch_size": distill["train"]["batch_size"]})
    cfg["loss"] = {**cfg["loss"], "kind": "ce"}
    return cfg


def auxiliary_set(aux: str, aux_dir: str | Path, cfg: dict, class_set: ClassSet):
    if aux == "none":
        return None
    if aux == "mined":
        return mined_faces(aux_dir, class_set, cfg["input_size"], cfg["augment"], cfg["seed"])
    return DistilledFaces(Path(aux_dir) / DISTILLED_FILE, class_set)


def train_model(cfg: dict, dataset_dir: str | Path, aux: str, aux_dir: str | Path, aux_share: float,
                epoch_size: int, out_dir: str | Path, tracker=None) -> dict:
    """One network (one seed): `out_dir/model.pt` (an inference bundle) and `history.json`."""
    device = start_training(cfg)
    class_set = ClassSet.named(cfg["class_set"])
    labelled = FaceShardDataset(dataset_dir, "train", class_set, cfg["input_size"], cfg["augment"], cfg["seed"])
    auxiliary = auxiliary_set(aux, aux_dir, cfg, class_set)
    share = aux_share if auxiliary is not None else 0.0
    sampler = MixedSampler(len(labelled), 0 if auxiliary is None else len(auxiliary), share, cfg["seed"], epoch_size)
    loader = DataLoader(mixed(labelled, auxiliary), batch_size=cfg["batch_size"], sampler=sampler, drop_last=True,
                        num_workers=cfg["num_workers"], persistent_workers=False, collate_fn=collate_faces)
    run = SupervisedRun.build(cfg, len(class_set), len(loader), device)
    for epoch in range(cfg["epochs"]):
        for part in (labelled, auxiliary, sampler):
            if part is not None:
                part.set_epoch(epoch)
        record = run.train_epoch(loader)
        log.info("epoch %d: %s", epoch + 1, record)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in record.items() if k not in ("epoch", "step")}, step=epoch + 1)
    out = Path(out_dir)
    save_bundle(run.model, cfg["arch"], class_set, cfg["input_size"], out / "model.pt")
    summary = {"labelled_images": len(labelled), "auxiliary": aux,
               "auxiliary_images": 0 if auxiliary is None else len(auxiliary),
               "auxiliary_per_epoch": sampler.k, "steps": run.step, "history": run.history}
    write_json(out / "history.json", summary)
    return summary


def train_model_seeds(params: dict, model: str, dataset_dir: str, aux_dir: str, out_dir: str | Path,
                      tracker=None) -> dict:
    """Every seed of imbalance.seeds: `out_dir/seed<S>/`; returns the seconds each took."""
    aux = params["distill"]["models"][model]["aux"]
    seconds = {}
    for seed in params["imbalance"]["seeds"]:
        t0 = time.time()
        train = params["distill"]["train"]
        train_model(model_cfg(params, seed), dataset_dir, aux, aux_dir, train["aux_share"], train["epoch_size"],
                    Path(out_dir) / f"seed{seed}", PrefixedTracker(tracker, f"seed{seed}"))
        seconds[f"seed{seed}"] = round(time.time() - t0, 1)
    write_json(Path(out_dir) / "seconds.json", seconds)
    return seconds
