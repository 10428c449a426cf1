"""Optional long studies, each its own target: Face2Exp's Tables 4 and 6
(`snakemake report_spatial`) and LNSU's Table 3 with ABAW4-LSD's modules (`snakemake
report_imbalance`), one job per seed, then the tables."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.data import prepared
from fer_pipeline.dag.stages.train import PRODUCED_INITS

SPATIAL_PLOTS = ("table4", "table6", "pseudo_label_accuracy", "mining")
# What `fer report-imbalance` writes (reporting/imbalance.py): the table, every number, the
# headline metrics (the stage's metrics file) and the plot.
IMBALANCE_TABLE, IMBALANCE_JSON = "table3.md", "tables.json"
IMBALANCE_HEADLINE, IMBALANCE_PLOT = "headline.json", "table3.png"


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
    return spatial_stages(params) + imbalance_stages(params)


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
            deps=tuple(f"{imbalance['out_dir']}/seed{seed}" for seed in imbalance["seeds"]),
            outs=(f"{report_dir}/{IMBALANCE_TABLE}", f"{report_dir}/{IMBALANCE_JSON}"),
            params=("imbalance",),
            log="logs/report_imbalance.log",
            stamp=f"{report_dir}/_stage.json",
            metrics=(f"{report_dir}/{IMBALANCE_HEADLINE}",),
            plots=(f"{report_dir}/{IMBALANCE_PLOT}",),
            group="imbalance",
        ),
    ]
