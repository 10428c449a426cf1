"""Data phase: FaceSynth (demo only), then prepare (one job per input partition) and
gather (one job per dataset)."""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages.common import PARTS_DIR, SYNTH_AUDIT_FILES, SYNTH_DATASETS, uses_facesynth


def stages(params: dict) -> list[Stage]:
    gen_dir, prep_dir, datasets = params["generate"]["out_dir"], params["prepare"]["out_dir"], params["datasets"]
    found: list[Stage] = []
    # FaceSynth runs only when some dataset is read from its output (the demo);
    # pointed at real data, the DAG has no generate stage at all.
    if uses_facesynth(params):
        found.append(Stage(
            name="generate",
            cmd="fer generate --log-file {log}",
            deps=(),
            # The audit file is declared by name: a later stage reads it, and Snakemake
            # cannot match a file inside a directory output.
            outs=tuple(f"{gen_dir}/{name}" for name in SYNTH_DATASETS)
            + tuple(f"{gen_dir}/audit/{name}" for name in SYNTH_AUDIT_FILES),
            params=("generate",),
            log="logs/generate.log",
            stamp=f"{gen_dir}/audit/_stage.json",
        ))
    found.append(Stage(
        name="prepare",
        cmd="fer prepare --dataset {dataset} --part {index} --log-file {log}",
        deps=("{root}",),
        outs=(f"{prep_dir}/{PARTS_DIR}/{{dataset}}/{{index}}",),
        params=("prepare", "datasets.{dataset}"),
        log="logs/prepare/{dataset}-{index}.log",
        stamp=f"{prep_dir}/{PARTS_DIR}/{{dataset}}/{{index}}/_stage.json",
        item_name="part",
        items={f"{name}-{k}": {"dataset": name, "index": str(k), "root": ds["root"]}
               for name, ds in datasets.items() for k in range(ds["parts"])},
    ))
    found.append(Stage(
        name="gather",
        cmd="fer gather --dataset {dataset} --log-file {log}",
        # The folder holding the dataset's partitions: DVC links it to every
        # prepare job writing inside it; Snakemake gets those outputs listed.
        deps=(f"{prep_dir}/{PARTS_DIR}/{{dataset}}",),
        outs=(f"{prep_dir}/{{dataset}}",),
        params=("datasets.{dataset}.parts",),
        log="logs/gather/{dataset}.log",
        stamp=f"{prep_dir}/{{dataset}}/_stage.json",
        item_name="dataset",
        items={name: {} for name in datasets},
    ))
    return found


def prepared(params: dict, dataset: str) -> str:
    """The folder of a prepared dataset."""
    return f"{params['prepare']['out_dir']}/{dataset}"
