"""Spatial training phase: the supervised baseline, Face2Exp's meta-training and the
student's finetuning, and the omni-supervised mining that reads the baseline."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.data import prepared


def stages(params: dict) -> list[Stage]:
    sup, meta, finetune, mine = (params["train"]["supervised"], params["train"]["meta"], params["train"]["finetune"],
                                 params["mine"])
    if sup["dataset"] == mine["out_name"]:
        raise ValueError(f"train.supervised.dataset {sup['dataset']!r} is the mined set, and mining needs the "
                         "supervised model: a cycle. Train on the mined set with train.meta.labeled instead.")
    meta_deps = [prepared(params, meta["labeled"]), prepared(params, meta["pool"])]
    if meta["init"] == "supervised":
        meta_deps.append(sup["out_dir"])
    if meta["pool_truth"]:
        meta_deps.append(meta["pool_truth"])
    mine_deps = [sup["out_dir"], prepared(params, sup["dataset"]), prepared(params, mine["pool"])]
    return [
        Stage(
            name="train_supervised",
            cmd="fer train-supervised --log-file {log}",
            deps=(prepared(params, sup["dataset"]),),
            outs=(sup["out_dir"],),
            params=("train.supervised",),
            log="logs/train_supervised.log",
            stamp=f"{sup['out_dir']}/_stage.json",
        ),
        Stage(
            name="train_meta",
            cmd="fer train-meta --log-file {log}",
            deps=tuple(meta_deps),
            outs=(meta["out_dir"],),
            params=("train.meta",),
            log="logs/train_meta.log",
            stamp=f"{meta['out_dir']}/_stage.json",
        ),
        Stage(
            name="finetune",
            cmd="fer finetune --log-file {log}",
            deps=(meta["out_dir"], prepared(params, meta["labeled"])),
            outs=(finetune["out_dir"],),
            # Finetuning reuses the supervised recipe's augmentation and device settings.
            params=("train.finetune", "train.supervised"),
            log="logs/finetune.log",
            stamp=f"{finetune['out_dir']}/_stage.json",
        ),
        Stage(
            name="mine_pseudo",
            cmd="fer mine-pseudo --log-file {log}",
            deps=tuple(mine_deps + ([mine["truth"]] if mine["truth"] else [])),
            outs=(prepared(params, mine["out_name"]),),
            params=("mine",),
            log="logs/mine_pseudo.log",
            stamp=f"{prepared(params, mine['out_name'])}/_stage.json",
        ),
    ]
