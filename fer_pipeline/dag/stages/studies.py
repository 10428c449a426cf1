"""Optional long studies, each its own target: Face2Exp's Tables 4 and 6
(`snakemake report_spatial`), one job per seed, then the tables."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.data import prepared
from fer_pipeline.dag.stages.train import PRODUCED_INITS

SPATIAL_PLOTS = ("table4", "table6", "pseudo_label_accuracy", "mining")


def study_init_source(params: dict) -> str | None:
    """The input the study's networks start from (`spatial.init`): train.pretrain_fr's
    output folder for fr_pretrained, None for seeded random weights (scratch)."""
    spatial = params["spatial"]
    if spatial["init"] == "scratch":
        return None
    fr = params["train"]["pretrain_fr"]
    if spatial["arch"] != fr["arch"]:
        raise ValueError(f"spatial.init is fr_pretrained, but spatial.arch {spatial['arch']!r} is not "
                         f"train.pretrain_fr.arch {fr['arch']!r}: the backbone would not fit. Set spatial.arch "
                         f"to {fr['arch']!r}, or spatial.init to scratch")
    return fr["out_dir"]


def study_init_weights(params: dict) -> str | None:
    """The weights file `spatial.init` names (None: seeded random weights)."""
    source = study_init_source(params)
    return None if source is None else f"{source}/{PRODUCED_INITS['fr_pretrained'][1]}"


def stages(params: dict) -> list[Stage]:
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
