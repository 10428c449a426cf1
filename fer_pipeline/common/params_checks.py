"""Checks across params keys that the JSON schema cannot express, run wherever params
are validated (every `fer` command, the Snakefile through orchestrators/snakemake_rules.py), so a
bad combination stops before any job starts, with the keys it involves named.

Each check returns message lines; `params.validate` raises them as one ParamsError.
This module imports nothing from the rest of the package: it is in every stage's code
closure (dag/codedeps.py), and whatever it imported would be too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

# Values of train.supervised.init that name a network, not a file (dag/stages/train.py, PRODUCED_INITS).
INIT_NAMES = ("fr_pretrained", "scratch")

# Keys naming the dataset a stage reads -> None when the mined set (mine.out_name) may
# stand there, else why it may not.
DATASET_KEYS: dict[str, str | None] = {
    "train.supervised.dataset": "mining needs the supervised model, a cycle (train on the mined set with "
                                "train.meta.labeled)",
    "train.meta.labeled": None,
    "train.meta.pool": None,
    "mine.pool": "mining would read its own output, a cycle",
    "train.pretrain_fr.pools": "pretraining reads pools prepared from `datasets`",
    "temporal.features.dataset": "the temporal phase reads a video dataset prepared from `datasets`",
}


def cross_field_errors(params: dict, source: str = "params.yaml", base_dir: str | Path | None = None,
                       work_dir: str | Path | None = None) -> list[str]:
    """Every cross-field problem of `params`, one line each. `base_dir` is the params
    file's folder (relative dataset roots are read from it, as `fer prepare` does);
    `work_dir` the folder the jobs run in (outputs and init files are relative to it).
    Both default to the working directory."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    work = Path(work_dir) if work_dir is not None else Path.cwd()
    return [f"{source}: {line}" for line in (
        *range_errors(params),
        *dataset_name_errors(params),
        *distill_dataset_errors(params),
        *init_path_errors(params, work),
        *supervised_switch_errors(params),
        *output_overlap_errors(params, base, work),
        *gpu_errors(params),
    )]


# ---- ranges ----

def _keys_named(node: Any, name: str, path: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every key called `name`, at any depth."""
    if isinstance(node, dict):
        for key, value in node.items():
            dotted = f"{path}{key}"
            if key == name:
                yield dotted, value
            else:
                yield from _keys_named(value, name, dotted + ".")


def _pair(value: Any) -> tuple[float, float] | None:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    return (value[0], value[1]) if ok else None


def range_errors(params: dict) -> list[str]:
    """Every `crop_scale` is an ordered pair within (0, 1] (a crop of zero area is no
    image); every `intensity` range is ordered."""
    lines = []
    for key, value in _keys_named(params, "crop_scale"):
        pair = _pair(value)
        if pair is None:
            continue  # the schema names a malformed pair
        lo, hi = pair
        if lo > hi:
            lines.append(f"key '{key}': [{lo}, {hi}] is not in order (want [low, high], low <= high)")
        if not (0 < lo <= 1 and 0 < hi <= 1):
            lines.append(f"key '{key}': [{lo}, {hi}] must lie within (0, 1]: a share of the image's area")
    for key, value in _keys_named(params, "intensity"):
        pair = _pair(value)
        if pair is not None and pair[0] > pair[1]:
            lines.append(f"key '{key}': [{pair[0]}, {pair[1]}] is not in order (want [low, high], low <= high)")
    return lines


# ---- dataset names ----

def _named_datasets(params: dict) -> Iterator[tuple[str, str]]:
    """(dotted key, dataset name) for every key of DATASET_KEYS present in `params`."""
    for key in DATASET_KEYS:
        node: Any = params
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        for name in (node if isinstance(node, list) else [node]):
            if isinstance(name, str):
                yield key, name


def dataset_name_errors(params: dict) -> list[str]:
    """Every dataset a stage reads is a key of `datasets`, or the mined set where a
    stage may read it; the mined set does not share a name with a prepared dataset."""
    prepared = list(params.get("datasets") or {})
    mined = (params.get("mine") or {}).get("out_name")
    listing = ", ".join(prepared) or "none"
    lines = []
    for key, name in _named_datasets(params):
        if name in prepared:
            continue
        why_not_mined = DATASET_KEYS[key]
        if name == mined and why_not_mined is None:
            continue
        if name == mined:
            lines.append(f"key '{key}' names {name!r}, the mined set (mine.out_name), which it cannot name: "
                         f"{why_not_mined}; prepared datasets: {listing}")
            continue
        produced = f"; or the mined set {mined!r} (mine.out_name)" if why_not_mined is None and mined else ""
        lines.append(f"key '{key}' names dataset {name!r}, which is not a key of `datasets`; "
                     f"prepared datasets: {listing}{produced}")
    if mined in prepared:
        lines.append(f"key 'mine.out_name' is {mined!r}, also a key of `datasets`: both would be written to "
                     f"the same prepared folder; give the mined set another name")
    return lines


def distill_dataset_errors(params: dict) -> list[str]:
    """Every dataset `distill.models` trains on and every `distill.test_sets` entry is a
    labelled dataset of `datasets` (the mined set is an auxiliary set there: aux mined)."""
    distill = params.get("distill") or {}
    prepared = list(params.get("datasets") or {})
    named = [(f"distill.models.{model}.dataset", (cfg or {}).get("dataset"))
             for model, cfg in (distill.get("models") or {}).items()]
    named += [("distill.test_sets", name) for name in distill.get("test_sets") or []]
    return [f"key '{key}' names dataset {name!r}, which is not a key of `datasets`; prepared datasets: "
            f"{', '.join(prepared) or 'none'}" for key, name in named if isinstance(name, str) and name not in prepared]


# ---- the supervised baseline's initial weights ----

def init_path_errors(params: dict, work: Path) -> list[str]:
    """A `train.supervised.init` that is not a network's name is a local state_dict
    file: it must exist (the job reads it relative to the folder it runs in)."""
    init = ((params.get("train") or {}).get("supervised") or {}).get("init")
    if not isinstance(init, str) or init in INIT_NAMES:
        return []
    path = Path(os.path.normpath(work / init))
    if path.is_file():
        return []
    what = "is a folder, not a state_dict file" if path.is_dir() else "does not exist"
    return [f"key 'train.supervised.init' is {init!r}: not {' or '.join(INIT_NAMES)}, so a local state_dict "
            f"file, and {path} {what}"]


# ---- the supervised trainer's switches (train/losses.py) ----

def supervised_switch_errors(params: dict) -> list[str]:
    """train.supervised.deviation makes the baseline a deviation network, which the
    control's finetune and train.meta (init: supervised) cannot start from: the switch is
    for the imbalance study's runs (imbalance.rows: deviation)."""
    sup = (params.get("train") or {}).get("supervised") or {}
    if not sup.get("deviation"):
        return []
    return ["key 'train.supervised.deviation' is true: the baseline would be a deviation network, and the "
            "control's finetune (train.finetune) and train.meta start from a plain backbone; keep it false (the "
            "imbalance study sets it for its deviation row, imbalance.rows: deviation)"]


# ---- cluster resources (dag/resources.py) ----

# Stages whose trainer runs data-parallel under torchrun (train/distributed.py): only
# these may ask for more than one GPU; another trainer would run N identical copies.
DDP_STAGES = ("train_meta",)


def gpu_errors(params: dict) -> list[str]:
    """More than one GPU only for a stage that trains data-parallel."""
    lines = []
    for stage, res in (params.get("resources") or {}).items():
        gpus = (res or {}).get("gpus", 0)
        if isinstance(gpus, int) and gpus > 1 and stage not in DDP_STAGES:
            lines.append(f"key 'resources.{stage}.gpus' is {gpus}: only {', '.join(DDP_STAGES)} trains on several "
                         f"GPUs (DistributedDataParallel under torchrun); {stage} uses one, so ask for 0 or 1")
    return lines


# ---- outputs vs dataset roots ----

def _absolute(path: str, base: Path) -> Path:
    """`path` as an absolute path with symlinks resolved: two spellings of one folder,
    or a symlink into another, must compare equal."""
    return Path(os.path.realpath(base / os.path.expanduser(path)))


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def output_paths(params: dict) -> dict[str, str]:
    """Every folder or file a stage writes, by its params key (generate.out_dir excepted)."""
    outs: dict[str, str] = {}
    for section in ("prepare", "evaluate", "report"):
        outs[f"{section}.out_dir"] = params[section]["out_dir"]
    for group in ("train", "temporal"):
        for name, cfg in params[group].items():
            if isinstance(cfg, dict) and "out_dir" in cfg:
                outs[f"{group}.{name}.out_dir"] = cfg["out_dir"]
    outs["train.pretrain_fr.metrics_file"] = params["train"]["pretrain_fr"]["metrics_file"]
    outs["spatial.out_dir"] = params["spatial"]["out_dir"]
    outs["spatial.report_dir"] = params["spatial"]["report_dir"]
    outs["imbalance.out_dir"] = params["imbalance"]["out_dir"]
    outs["imbalance.report_dir"] = params["imbalance"]["report_dir"]
    outs["distill.out_dir"] = params["distill"]["out_dir"]
    outs["tracking.artifact_root"] = params["tracking"]["artifact_root"]
    outs["tracking.server.dir"] = params["tracking"]["server"]["dir"]
    return outs


def _overlap_line(key_a: str, a: str, key_b: str, b: str, why: str) -> str:
    return f"keys '{key_a}' ({a}) and '{key_b}' ({b}) overlap (the same folder, or one inside the other): {why}"


def output_overlap_errors(params: dict, base: Path, work: Path) -> list[str]:
    """No stage writes into, or around, a dataset root or FaceSynth's folder: a stage's
    outputs are deleted before it reruns (data loss), and a root inside the prepared
    folder makes the stage list a cycle."""
    gen_key, gen_dir = "generate.out_dir", params["generate"]["out_dir"]
    gen = _absolute(gen_dir, work)
    roots = {f"datasets.{name}.root": ds["root"] for name, ds in params["datasets"].items()}
    lines = []
    for out_key, out in output_paths(params).items():
        out_abs = _absolute(out, work)
        if _overlap(out_abs, gen):
            lines.append(_overlap_line(out_key, out, gen_key, gen_dir, "FaceSynth rewrites that folder"))
            continue
        for root_key, root in roots.items():
            if _overlap(out_abs, _absolute(root, base)):
                lines.append(_overlap_line(out_key, out, root_key, root,
                                           "a stage's outputs are deleted before it reruns"))
    # FaceSynth writes the roots inside its folder; any other root must stay clear of it.
    for root_key, root in roots.items():
        root_abs = _absolute(root, base)
        if gen not in root_abs.parents and _overlap(root_abs, gen):
            lines.append(_overlap_line(gen_key, gen_dir, root_key, root,
                                       "FaceSynth would overwrite a dataset it did not write"))
    return lines
