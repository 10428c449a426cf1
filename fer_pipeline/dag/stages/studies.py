"""Optional long studies, each its own target: Face2Exp's Tables 4 and 6
(`snakemake report_spatial`) and LNSU's Table 3 with ABAW4-LSD's modules (`snakemake
report_imbalance`), one job per seed, then the tables. The imbalance target also holds seed
001's dataset distillation and cross-dataset matrix: one distillation, one training job per
model, one evaluation job per (model, test set)."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.data import prepared
from fer_pipeline.dag.stages.train import PRODUCED_INITS

SPATIAL_PLOTS = ("table4", "table6", "pseudo_label_accuracy", "mining")
# What `fer report-imbalance` writes (reporting/imbalance.py): the table, every number, the
# headline metrics (the stage's metrics file) and the plot.
IMBALANCE_TABLE, IMBALANCE_JSON = "table3.md", "tables.json"
IMBALANCE_HEADLINE, IMBALANCE_PLOT = "headline.json", "table3.png"
# The distillation grid (`fer distill`) and the two tables `fer report-imbalance` adds
# (reporting/distill.py), all in imbalance.report_dir.
DISTILL_GRID = "distilled_images.png"
DISTILL_TABLE, CROSS_TABLE, DISTILL_JSON = "distillation.md", "cross_dataset.md", "distill_tables.json"
DISTILL_HEADLINE, DISTILL_PLOT, CROSS_PLOT = "distill_headline.json", "distillation.png", "cross_dataset.png"


def study_init_source(params: dict, section: str = "spatial") -> str | None:
    """The input a study's networks start from (`<section>.init`, section spatial or
    imbalance): train.pretrain_fr's output folder for fr_pretrained, None for seeded
    random weights (scratch)."""
    study = params[section]
    if study["init"] == "scratch":
        return None
    fr = params["train"]["pretrain_fr"]
    if study["arch"] != fr["arch"]:
        raise ValueError(f"{section}.init is fr_pretrained, but {section}.arch {study['arch']!r} is not "
                         f"train.pretrain_fr.arch {fr['arch']!r}: the backbone would not fit. Set {section}.arch "
                         f"to {fr['arch']!r}, or {section}.init to scratch")
    return fr["out_dir"]


def study_init_weights(params: dict, section: str = "spatial") -> str | None:
    """The weights file `<section>.init` names (None: seeded random weights)."""
    source = study_init_source(params, section)
    return None if source is None else f"{source}/{PRODUCED_INITS['fr_pretrained'][1]}"


def stages(params: dict) -> list[Stage]:
    return spatial_stages(params) + distill_stages(params) + imbalance_stages(params)


def spatial_stages(params: dict) -> list[Stage]:
    spatial, meta = params["spatial"], params["train"]["meta"]
    deps = [prepared(params, meta["labeled"]), prepared(params, meta["pool"])]
    deps += [path for path in {meta["pool_truth"], params["mine"]["truth"], study_init_source(params)} if path]
    seed_dir = f"{spatial['out_dir']}/seed{{seed}}"
    return [
        Stage(
            name="spatial_study",
            cmd="fer spatial-study --seed {seed} --log-file {log}",
            deps=tuple(sorted(deps)),
            outs=(seed_dir,),
            params=("spatial", "train.supervised", "train.meta", "train.finetune", "mine", "evaluate"),
            log="logs/spatial/seed{seed}.log",
            stamp=f"{seed_dir}/_stage.json",
            item_name="seed",
            items={str(seed): {} for seed in spatial["seeds"]},
            group="spatial",
        ),
        Stage(
            name="report_spatial",
            cmd="fer report-spatial --log-file {log}",
            deps=tuple(f"{spatial['out_dir']}/seed{seed}" for seed in spatial["seeds"]),
            outs=(f"{spatial['report_dir']}/tables.md",),
            params=("spatial",),
            log="logs/report_spatial.log",
            stamp=f"{spatial['report_dir']}/_stage.json",
            metrics=(f"{spatial['report_dir']}/tables.json",),
            plots=tuple(f"{spatial['report_dir']}/{name}.png" for name in SPATIAL_PLOTS),
            group="spatial",
        ),
    ]


def imbalance_stages(params: dict) -> list[Stage]:
    """LNSU's Table 3 and ABAW4-LSD's modules on long-tailed subsets (`snakemake
    report_imbalance`): one job per seed, then the table."""
    imbalance = params["imbalance"]
    seed_dir = f"{imbalance['out_dir']}/seed{{seed}}"
    report_dir = imbalance["report_dir"]
    return [
        Stage(
            name="imbalance_study",
            cmd="fer imbalance-study --seed {seed} --log-file {log}",
            deps=tuple(path for path in (prepared(params, params["train"]["supervised"]["dataset"]),
                                         study_init_source(params, "imbalance")) if path),
            outs=(seed_dir,),
            params=("imbalance", "train.supervised", "evaluate.batch_size"),
            log="logs/imbalance/seed{seed}.log",
            stamp=f"{seed_dir}/_stage.json",
            item_name="seed",
            items={str(seed): {} for seed in imbalance["seeds"]},
            group="imbalance",
        ),
        Stage(
            name="report_imbalance",
            cmd="fer report-imbalance --log-file {log}",
            # The seeds first: a missing input is named in this order.
            deps=tuple(f"{imbalance['out_dir']}/seed{seed}" for seed in imbalance["seeds"])
            + (distilled_dir(params),) + tuple(cross_metrics_files(params)),
            outs=tuple(f"{report_dir}/{name}" for name in (IMBALANCE_TABLE, IMBALANCE_JSON, DISTILL_TABLE,
                                                            CROSS_TABLE, DISTILL_JSON)),
            params=("imbalance", "distill.models", "distill.test_sets"),
            log="logs/report_imbalance.log",
            stamp=f"{report_dir}/_stage.json",
            metrics=(f"{report_dir}/{IMBALANCE_HEADLINE}", f"{report_dir}/{DISTILL_HEADLINE}"),
            plots=tuple(f"{report_dir}/{name}" for name in (IMBALANCE_PLOT, DISTILL_PLOT, CROSS_PLOT)),
            group="imbalance",
        ),
    ]


# ---- seed 001: dataset distillation and the cross-dataset matrix ----

def distilled_dir(params: dict) -> str:
    return f"{params['distill']['out_dir']}/distilled"


def auxiliary_model_dir(params: dict, model: str) -> str:
    return f"{params['distill']['out_dir']}/models/{model}"


def cross_pair(model: str, test_set: str) -> str:
    """A cross_evaluate job's item: `rafdb-on-affectnet` (model names have no dash)."""
    return f"{model}-on-{test_set}"


def cross_metrics_files(params: dict) -> list[str]:
    """Every (model, test set) evaluation's metrics.json, models and test sets in params order."""
    out = params["distill"]["out_dir"]
    return [f"{out}/eval/{model}/{test}/metrics.json" for model in params["distill"]["models"]
            for test in params["distill"]["test_sets"]]


def auxiliary_dir(params: dict, model: str) -> str:
    """What a model's auxiliary set is read from; the labelled set itself for aux none
    (a scattered stage's jobs share one deps template)."""
    cfg = params["distill"]["models"][model]
    return {"none": prepared(params, cfg["dataset"]), "mined": prepared(params, params["mine"]["out_name"]),
            "distilled": distilled_dir(params)}[cfg["aux"]]


def distill_stages(params: dict) -> list[Stage]:
    """Seed 001's Algorithm 1 on mine_pseudo's mined pool faces, a training job per model of
    distill.models (its labelled set + its auxiliary set, every seed of imbalance.seeds),
    an evaluation job per (model, distill.test_sets entry)."""
    distill, report_dir = params["distill"], params["imbalance"]["report_dir"]
    out, models = distill["out_dir"], distill["models"]
    mined = prepared(params, params["mine"]["out_name"])
    common = ("distill.arch", "distill.input_size", "distill.class_set")
    return [
        Stage(
            name="distill",
            cmd="fer distill --log-file {log}",
            deps=(mined,),
            outs=(distilled_dir(params),),
            params=common + ("distill.algorithm",),
            log="logs/distill.log",
            stamp=f"{distilled_dir(params)}/_stage.json",
            plots=(f"{report_dir}/{DISTILL_GRID}",),
            group="imbalance",
        ),
        Stage(
            name="train_auxiliary",
            cmd="fer train-auxiliary --model {model} --log-file {log}",
            deps=("{dataset_dir}", "{aux_dir}"),
            outs=(f"{out}/models/{{model}}",),
            params=common + ("distill.train", "distill.models.{model}", "imbalance.seeds", "train.supervised"),
            log="logs/train_auxiliary/{model}.log",
            stamp=f"{out}/models/{{model}}/_stage.json",
            item_name="model",
            items={name: {"dataset_dir": prepared(params, cfg["dataset"]), "aux_dir": auxiliary_dir(params, name)}
                   for name, cfg in models.items()},
            group="imbalance",
        ),
        Stage(
            name="cross_evaluate",
            cmd="fer cross-evaluate --model {model} --test-set {test_set} --log-file {log}",
            deps=("{model_dir}", "{test_dir}"),
            outs=(f"{out}/eval/{{model}}/{{test_set}}/metrics.json",),
            params=("distill.class_set", "evaluate.batch_size"),
            log="logs/cross_evaluate/{model}-on-{test_set}.log",
            stamp=f"{out}/eval/{{model}}/{{test_set}}/_stage.json",
            item_name="pair",
            items={cross_pair(model, test): {"model": model, "test_set": test,
                                             "model_dir": auxiliary_model_dir(params, model),
                                             "test_dir": prepared(params, test)}
                   for model in models for test in distill["test_sets"]},
            group="imbalance",
        ),
    ]
