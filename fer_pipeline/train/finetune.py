"""Face2Exp's last step: the meta-trained student finetuned on labelled data at a fixed
small rate, and its control: the supervised baseline put through exactly the same
finetune (same images, epochs, rate and seed), so a gain of the student over the
control is the meta-training's, not the finetune's."""

from __future__ import annotations

from pathlib import Path

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import FaceShardDataset
from fer_pipeline.meta.smp import finetune_subset, write_index


def finetune_config(supervised: dict, meta: dict, finetune: dict, out_dir: str) -> dict:
    """The supervised recipe (augmentation, device) at the finetune's fixed rate, on the
    meta run's labelled dataset; the caller picks the starting weights."""
    cfg = dict(supervised)
    cfg.update({"seed": meta["seed"], "dataset": meta["labeled"], "class_set": meta["class_set"],
                "arch": meta["arch"], "input_size": meta["input_size"],
                "epochs": finetune["epochs"], "batch_size": finetune["batch_size"], "optimizer": "sgd",
                "lr": finetune["lr"], "scheduler": "constant", "warmup_epochs": 0, "label_smoothing": 0.0,
                "balanced_sampling": False, "out_dir": out_dir,
                # Plain CE whatever train.supervised.loss says: student and control get the same finetune.
                "loss": {"kind": "ce"}, "upsampling": "none", "deviation": False})
    return cfg


def write_finetune_index(dataset_dir: str | Path, meta: dict, finetune: dict, out_dir: str | Path) -> Path:
    """Write `finetune_index.json` (the images the finetune trains on) to `out_dir`."""
    labelled = FaceShardDataset(dataset_dir, "train", ClassSet.named(meta["class_set"]), meta["input_size"],
                                augment=None)
    chosen = finetune_subset(labelled.targets.numpy(), meta, finetune, len(labelled.class_set))
    path = Path(out_dir) / "finetune_index.json"
    write_index(path, labelled.sources, chosen,
                {"dataset": str(dataset_dir), "meta_fraction": meta["labeled_fraction"],
                 "meta_balanced": meta["balanced"], "balanced": finetune["balanced"], "seed": meta["seed"]})
    return path
