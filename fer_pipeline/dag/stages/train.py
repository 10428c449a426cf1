"""Spatial training phase: face-recognition pretraining, the supervised baseline,
Face2Exp's meta-training, the student's finetuning and its control, and the omni-supervised mining
that reads the baseline."""

from __future__ import annotations

from fer_pipeline.dag.resources import launch
from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.data import prepared


# Inits that start from another stage's output: (the producing section, its weights file).
PRODUCED_INITS = {"fr_pretrained": ("pretrain_fr", "backbone.pt"), "supervised": ("supervised", "model.pt")}


def init_source(params: dict, section: str) -> tuple[str, str] | None:
    """What `train.<section>.init` starts a network from: (the input the stage depends
    on, the weights file in it), or None for a random initialisation. Any other value
    is a local state_dict (train.supervised only: the schema keeps meta's to the names)."""
    cfg = params["train"][section]
    init = cfg["init"]
    if init == "scratch":
        return None
    if init not in PRODUCED_INITS or PRODUCED_INITS[init][0] == section:
        return init, init
    producer, name = PRODUCED_INITS[init]
    if init == "fr_pretrained" and cfg["arch"] != params["train"]["pretrain_fr"]["arch"]:
        raise ValueError(f"train.{section}.init is fr_pretrained, but train.{section}.arch {cfg['arch']!r} is not "
                         f"train.pretrain_fr.arch {params['train']['pretrain_fr']['arch']!r}: the backbone would "
                         "not fit")
    out = params["train"][producer]["out_dir"]
    return out, f"{out}/{name}"


def init_weights(params: dict, section: str) -> str | None:
    """The weights file `train.<section>.init` names (None: from scratch)."""
    source = init_source(params, section)
    return None if source is None else source[1]


def pretrain_fr(params: dict) -> Stage:
    fr = params["train"]["pretrain_fr"]
    unknown = [p for p in fr["pools"] if p not in params["datasets"]]
    if unknown:
        raise ValueError(f"train.pretrain_fr.pools names {unknown}, not in params.yaml `datasets`")
    return Stage(
        name="pretrain_fr",
        cmd="fer pretrain-fr --log-file {log}",
        deps=tuple(prepared(params, pool) for pool in fr["pools"]),
        outs=(fr["out_dir"],),
        params=("train.pretrain_fr",),
        log="logs/pretrain_fr.log",
        stamp=f"{fr['out_dir']}/_stage.json",
        metrics=(fr["metrics_file"],),
    )


# What the finetune subset and recipe read from train.meta (its other keys, the meta
# run's own settings, must not rerun the control).
FINETUNE_META_KEYS = ("seed", "labeled", "class_set", "arch", "input_size", "labeled_fraction", "balanced")


def finetune_starts(params: dict) -> dict[str, str]:
    """The two networks put through the same finetune: the meta-trained student, and
    the supervised baseline (the control), by the folder holding their model.pt."""
    return {"student": params["train"]["meta"]["out_dir"], "control": params["train"]["supervised"]["out_dir"]}


def finetune_stage(params: dict) -> Stage:
    meta, finetune = params["train"]["meta"], params["train"]["finetune"]
    if meta["arch"] != params["train"]["supervised"]["arch"]:
        raise ValueError(f"train.meta.arch {meta['arch']!r} is not train.supervised.arch "
                         f"{params['train']['supervised']['arch']!r}: the control (the baseline put through the "
                         "student's finetune) needs one architecture")
    return Stage(
        name="finetune",
        cmd="fer finetune --model {model} --log-file {log}",
        deps=("{start_dir}", prepared(params, meta["labeled"])),
        outs=(f"{finetune['out_dir']}/{{model}}",),
        # Finetuning reuses the supervised recipe's augmentation and device settings.
        params=("train.finetune", "train.supervised") + tuple(f"train.meta.{k}" for k in FINETUNE_META_KEYS),
        log="logs/finetune/{model}.log",
        stamp=f"{finetune['out_dir']}/{{model}}/_stage.json",
        item_name="model",
        items={name: {"start_dir": start} for name, start in finetune_starts(params).items()},
    )


def stages(params: dict) -> list[Stage]:
    sup, meta, mine = params["train"]["supervised"], params["train"]["meta"], params["mine"]
    if sup["dataset"] == mine["out_name"]:
        raise ValueError(f"train.supervised.dataset {sup['dataset']!r} is the mined set, and mining needs the "
                         "supervised model: a cycle. Train on the mined set with train.meta.labeled instead.")
    sup_init, meta_init = init_source(params, "supervised"), init_source(params, "meta")
    meta_deps = [prepared(params, meta["labeled"]), prepared(params, meta["pool"])]
    if meta_init is not None:
        meta_deps.append(meta_init[0])
    if meta["pool_truth"]:
        meta_deps.append(meta["pool_truth"])
    mine_deps = [sup["out_dir"], prepared(params, sup["dataset"]), prepared(params, mine["pool"])]
    return [
        pretrain_fr(params),
        Stage(
            name="train_supervised",
            cmd="fer train-supervised --log-file {log}",
            deps=(prepared(params, sup["dataset"]),) + ((sup_init[0],) if sup_init else ()),
            outs=(sup["out_dir"],),
            params=("train.supervised",),
            log="logs/train_supervised.log",
            stamp=f"{sup['out_dir']}/_stage.json",
        ),
        Stage(
            name="train_meta",
            # Several GPUs: one DistributedDataParallel process per GPU (train/distributed.py).
            cmd=launch(params, "train_meta", "fer train-meta --log-file {log}"),
            deps=tuple(meta_deps),
            outs=(meta["out_dir"],),
            params=("train.meta",),
            log="logs/train_meta.log",
            stamp=f"{meta['out_dir']}/_stage.json",
        ),
        finetune_stage(params),
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
