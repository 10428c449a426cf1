"""Face2Exp's last step: the meta-trained student finetuned on its labelled data at a fixed small rate."""

from __future__ import annotations


def finetune_config(supervised: dict, meta: dict, finetune: dict, out_dir: str) -> dict:
    """The supervised recipe (augmentation, device) at the paper's fixed rate (1e-5),
    on the meta run's labelled dataset; the caller starts it from the student's weights."""
    cfg = dict(supervised)
    cfg.update({"seed": meta["seed"], "dataset": meta["labeled"], "class_set": meta["class_set"],
                "arch": meta["arch"], "input_size": meta["input_size"],
                "epochs": finetune["epochs"], "batch_size": finetune["batch_size"], "optimizer": "sgd",
                "lr": finetune["lr"], "scheduler": "constant", "warmup_epochs": 0, "label_smoothing": 0.0,
                "balanced_sampling": False, "out_dir": out_dir})
    return cfg
