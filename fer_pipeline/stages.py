"""The stage list: the single source of truth for both Snakemake and DVC.

Every stage of the DAG is declared once here, as data: the `fer` command it runs,
the paths it reads and writes, the params.yaml keys and package code it depends on.
`workflow/rules/*.smk` read their inputs, outputs and shell lines from these
specs, and `fer dvc-yaml` renders `dvc.yaml` from the same specs, so the two
tools cannot drift apart (tests/test_dag_agreement.py proves it).

A stage may be *scattered* over items (one `prepare` job per dataset): its
templates then contain `{<item_name>}` and per-item values such as `{root}`.
Snakemake sees the item as a wildcard; DVC as a `foreach` stage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fer_pipeline.params import select


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str                      # shell line; `{log}` is the log file, `{<item_name>}` the item
    deps: tuple[str, ...]         # data inputs (paths)
    outs: tuple[str, ...]         # directories or files written
    params: tuple[str, ...]       # dotted params.yaml keys whose change reruns the stage
    code: tuple[str, ...]         # package paths whose change reruns the stage
    log: str
    stamp: str                    # provenance record the command writes (see provenance.py)
    metrics: tuple[str, ...] = ()  # small JSON files, not cached by DVC
    plots: tuple[str, ...] = ()
    item_name: str | None = None
    items: dict[str, dict[str, str]] = field(default_factory=dict)
    group: str = "main"           # "main": `make run`; another group is a separate target (see GROUPS)
    # Source folders whose *contents* are part of the job's identity (a raw dataset
    # root): checked by content fingerprint, since Snakemake sees only mtimes.
    fingerprinted: tuple[str, ...] = ()

    @property
    def scattered(self) -> bool:
        return self.item_name is not None

    def outs_with_stamp(self) -> list[str]:
        """Outputs, plus the stamp when it does not already live inside one of them."""
        inside = any(is_under(self.stamp, out) for out in self.outs)
        return list(self.outs) + ([] if inside else [self.stamp])

    def declared_outputs(self) -> list[str]:
        """Every path the stage writes (templates unfilled): outs, stamp, metrics, plots."""
        return self.outs_with_stamp() + list(self.metrics) + list(self.plots)

    def instances(self) -> list["StageInstance"]:
        if not self.scattered:
            return [StageInstance(self, None, {})]
        return [StageInstance(self, item, values) for item, values in self.items.items()]


@dataclass(frozen=True)
class StageInstance:
    """A stage with its item filled in: one job of the DAG."""

    stage: Stage
    item: str | None
    values: dict[str, str]

    @property
    def name(self) -> str:
        """DVC's name for the job (`prepare@rafdb` for a foreach stage)."""
        return self.stage.name if self.item is None else f"{self.stage.name}@{self.item}"

    def field(self, key: str) -> str:
        """The value a template field takes in this job (the item itself, or one of its values)."""
        return self.item if key == self.stage.item_name else self.values[key]

    def fill(self, template: str) -> str:
        subs = dict(self.values)
        if self.stage.item_name:
            subs[self.stage.item_name] = self.item
        subs["log"] = _substitute(self.stage.log, subs)
        return _substitute(template, subs)

    @property
    def cmd(self) -> str:
        return self.fill(self.stage.cmd)

    @property
    def deps(self) -> list[str]:
        return [self.fill(d) for d in self.stage.deps]

    @property
    def outs(self) -> list[str]:
        return [self.fill(o) for o in self.stage.outs]

    @property
    def params(self) -> list[str]:
        return [self.fill(p) for p in self.stage.params]

    @property
    def stamp(self) -> str:
        return self.fill(self.stage.stamp)

    @property
    def fingerprinted(self) -> list[str]:
        return [self.fill(p) for p in self.stage.fingerprinted]

    @property
    def all_outputs(self) -> list[str]:
        return [self.fill(p) for p in self.stage.declared_outputs()]


_FIELD = re.compile(r"\{(\w+)\}")


def template_fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def _substitute(template: str, subs: dict[str, str]) -> str:
    def repl(match: re.Match) -> str:
        key = match.group(1)
        if key not in subs:
            raise KeyError(f"template {template!r} uses {{{key}}} but only {sorted(subs)} are defined")
        return str(subs[key])

    return _FIELD.sub(repl, template)


def is_under(path: str, root: str) -> bool:
    """`path` is `root` or inside it (relative POSIX paths, as params and dvc.yaml write them).

    On strings, not PurePosixPath: the DAG asks this ~17 000 times per `fer` call, which
    cost every stage over half a second."""
    path, root = _normalized(path), _normalized(root)
    if root in (".", "/"):  # the working folder holds every relative path, "/" every absolute one
        return path.startswith("/") == (root == "/")
    return path == root or path.startswith(root + "/")


@lru_cache(maxsize=4096)
def _normalized(path: str) -> str:
    # PurePosixPath's reading of a path: no empty or "." parts, no trailing slash; ".." kept.
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "."


# Stage groups beyond the main DAG: the Snakemake target that builds each, and the
# dvc.yaml that holds its stages (`dvc repro` alone reproduces ./dvc.yaml only, so a
# long study kept in its own file never runs by accident).
GROUPS = {
    "main": {"target": "all", "dvc_file": "dvc.yaml"},
    "spatial": {"target": "report_spatial", "dvc_file": "workflow/studies/spatial/dvc.yaml"},
}


PARTS_DIR = "_parts"  # data/prepared/_parts/<dataset>/<k>: one input partition, prepared
SYNTH_DATASETS = ("rafdb", "ms1m", "affectnet", "affwild2", "webface")  # folders `fer generate` writes
# FaceSynth's ground truth for audits, kept outside the datasets (no training code reads it).
SYNTH_AUDIT_FILES = ("ms1m_truth.csv", "webface_truth.csv", "affwild2_conditions.csv")


def uses_facesynth(params: dict) -> bool:
    """True when some dataset is read from FaceSynth's output (numbers are then demo numbers)."""
    gen_dir = params["generate"]["out_dir"]
    synth_roots = {f"{gen_dir}/{name}" for name in SYNTH_DATASETS}
    return any(ds["root"] in synth_roots for ds in params["datasets"].values())


def build_stages(params: dict) -> list[Stage]:
    """The pipeline's stages, in topological order, for these parameters."""
    gen_dir = params["generate"]["out_dir"]
    prep_dir = params["prepare"]["out_dir"]
    sup = params["train"]["supervised"]
    eval_root = params["evaluate"]["out_dir"]
    report_dir = params["report"]["out_dir"]
    datasets = params["datasets"]

    stages: list[Stage] = []
    # FaceSynth runs only when some dataset is read from its output (the demo);
    # pointed at real data, the DAG has no generate stage at all.
    if uses_facesynth(params):
        stages.append(
            Stage(
                name="generate",
                cmd="fer generate --log-file {log}",
                deps=(),
                # The audit file is declared by name: a later stage reads it, and Snakemake
                # cannot match a file inside a directory output.
                outs=tuple(f"{gen_dir}/{name}" for name in SYNTH_DATASETS)
                + tuple(f"{gen_dir}/audit/{name}" for name in SYNTH_AUDIT_FILES),
                params=("generate",),
                code=("fer_pipeline/synth", "fer_pipeline/io", "fer_pipeline/labels.py"),
                log="logs/generate.log",
                stamp=f"{gen_dir}/audit/_stage.json",
            )
        )
    # Scatter: one job per input partition of each dataset; gather: one per dataset.
    stages.append(
        Stage(
            name="prepare",
            cmd="fer prepare --dataset {dataset} --part {index} --log-file {log}",
            deps=("{root}",),
            outs=(f"{prep_dir}/{PARTS_DIR}/{{dataset}}/{{index}}",),
            params=("prepare", "datasets.{dataset}"),
            code=("fer_pipeline/io", "fer_pipeline/prep", "fer_pipeline/labels.py"),
            log="logs/prepare/{dataset}-{index}.log",
            stamp=f"{prep_dir}/{PARTS_DIR}/{{dataset}}/{{index}}/_stage.json",
            item_name="part",
            items={f"{name}-{k}": {"dataset": name, "index": str(k), "root": ds["root"]}
                   for name, ds in datasets.items() for k in range(ds["parts"])},
            fingerprinted=("{root}",),
        )
    )
    stages.append(
        Stage(
            name="gather",
            cmd="fer gather --dataset {dataset} --log-file {log}",
            # The folder holding the dataset's partitions: DVC links it to every
            # prepare job writing inside it; Snakemake gets those outputs listed.
            deps=(f"{prep_dir}/{PARTS_DIR}/{{dataset}}",),
            outs=(f"{prep_dir}/{{dataset}}",),
            params=("datasets.{dataset}.parts",),
            code=("fer_pipeline/prep/gather.py", "fer_pipeline/prep/shards.py"),
            log="logs/gather/{dataset}.log",
            stamp=f"{prep_dir}/{{dataset}}/_stage.json",
            item_name="dataset",
            # The root is not read here; DVC declares it (see dvcgen) so that a changed
            # raw file makes `dvc status` name this gather job and no other.
            items={name: {"root": ds["root"]} for name, ds in datasets.items()},
        )
    )
    if sup["dataset"] == params["mine"]["out_name"]:
        raise ValueError(f"train.supervised.dataset {sup['dataset']!r} is the mined set, and mining needs the "
                         "supervised model: a cycle. Train on the mined set with train.meta.labeled instead.")
    stages.append(
        Stage(
            name="train_supervised",
            cmd="fer train-supervised --log-file {log}",
            deps=(f"{prep_dir}/{sup['dataset']}",),
            outs=(sup["out_dir"],),
            params=("train.supervised",),
            code=("fer_pipeline/train", "fer_pipeline/models"),
            log="logs/train_supervised.log",
            stamp=f"{sup['out_dir']}/_stage.json",
        )
    )
    meta, finetune = params["train"]["meta"], params["train"]["finetune"]
    meta_deps = [f"{prep_dir}/{meta['labeled']}", f"{prep_dir}/{meta['pool']}"]
    if meta["init"] == "supervised":
        meta_deps.append(sup["out_dir"])
    if meta["pool_truth"]:
        meta_deps.append(meta["pool_truth"])
    stages.append(
        Stage(
            name="train_meta",
            cmd="fer train-meta --log-file {log}",
            deps=tuple(meta_deps),
            outs=(meta["out_dir"],),
            params=("train.meta",),
            code=("fer_pipeline/meta", "fer_pipeline/train", "fer_pipeline/models"),
            log="logs/train_meta.log",
            stamp=f"{meta['out_dir']}/_stage.json",
        )
    )
    stages.append(
        Stage(
            name="finetune",
            cmd="fer finetune --log-file {log}",
            deps=(meta["out_dir"], f"{prep_dir}/{meta['labeled']}"),
            outs=(finetune["out_dir"],),
            # Finetuning reuses the supervised recipe's augmentation and device settings.
            params=("train.finetune", "train.supervised"),
            code=("fer_pipeline/train", "fer_pipeline/models"),
            log="logs/finetune.log",
            stamp=f"{finetune['out_dir']}/_stage.json",
        )
    )
    mine = params["mine"]
    mine_deps = [sup["out_dir"], f"{prep_dir}/{sup['dataset']}", f"{prep_dir}/{mine['pool']}"]
    stages.append(
        Stage(
            name="mine_pseudo",
            cmd="fer mine-pseudo --log-file {log}",
            deps=tuple(mine_deps + ([mine["truth"]] if mine["truth"] else [])),
            outs=(f"{prep_dir}/{mine['out_name']}",),
            params=("mine",),
            code=("fer_pipeline/mining.py",),
            log="logs/mine_pseudo.log",
            stamp=f"{prep_dir}/{mine['out_name']}/_stage.json",
        )
    )
    models = evaluated_models(params)
    stages.append(
        Stage(
            name="evaluate",
            cmd="fer evaluate --model {model} --log-file {log}",
            deps=("{model_dir}", "{dataset_dir}"),
            outs=(f"{eval_root}/{{model}}/predictions.csv",),
            params=("evaluate",),
            code=("fer_pipeline/eval",),
            log="logs/evaluate/{model}.log",
            stamp=f"{eval_root}/{{model}}/_stage.json",
            metrics=(f"{eval_root}/{{model}}/metrics.json",),
            plots=(f"{eval_root}/{{model}}/confusion_matrix.png", f"{eval_root}/{{model}}/per_class_accuracy.png"),
            item_name="model",
            items={name: {"model_dir": m["model_dir"], "dataset_dir": m["dataset_dir"]} for name, m in models.items()},
        )
    )
    temporal = temporal_stages(params)
    stages += temporal
    stages.append(
        Stage(
            name="report",
            cmd="fer report --log-file {log}",
            deps=tuple(f"{eval_root}/{name}/metrics.json" for name in models) + temporal[-1].metrics,
            outs=(f"{report_dir}/summary.md",),
            params=("report",),
            code=("fer_pipeline/report.py", "fer_pipeline/temporal/report.py"),
            log="logs/report.log",
            stamp=f"{report_dir}/_stage.json",
            metrics=(f"{report_dir}/summary.json",),
        )
    )
    return stages + spatial_stages(params)


def temporal_stages(params: dict) -> list[Stage]:
    """Seed 002's temporal phase: features of every frame of a video dataset from the
    frozen student, the encoders per seed, the whole-video evaluation."""
    temporal, prep_dir = params["temporal"], params["prepare"]["out_dir"]
    feat, train, evaluate = temporal["features"], temporal["train"], temporal["evaluate"]
    if feat["dataset"] not in params["datasets"]:
        raise ValueError(f"temporal.features.dataset {feat['dataset']!r} is not in params.yaml `datasets` "
                         f"({', '.join(params['datasets'])})")
    features_dir = f"{feat['out_dir']}/{feat['dataset']}"
    student_dir = evaluated_models(params)[feat["student"]]["model_dir"]
    report = evaluate["out_dir"]
    return [
        Stage(
            name="extract_features",
            cmd="fer extract-features --log-file {log}",
            deps=(student_dir, f"{prep_dir}/{feat['dataset']}"),
            outs=(features_dir,),
            params=("temporal.features",),
            code=("fer_pipeline/temporal/features.py", "fer_pipeline/train/data.py", "fer_pipeline/models"),
            log="logs/extract_features.log",
            stamp=f"{features_dir}/_stage.json",
        ),
        Stage(
            name="train_temporal",
            cmd="fer train-temporal --log-file {log}",
            deps=(features_dir,),
            outs=(train["out_dir"],),
            params=("temporal.train",),
            code=("fer_pipeline/temporal/train.py", "fer_pipeline/temporal/model.py", "fer_pipeline/temporal/windows.py"),
            log="logs/train_temporal.log",
            stamp=f"{train['out_dir']}/_stage.json",
        ),
        Stage(
            name="evaluate_temporal",
            cmd="fer evaluate-temporal --log-file {log}",
            deps=(train["out_dir"], features_dir) + ((evaluate["conditions"],) if evaluate["conditions"] else ()),
            outs=(f"{report}/predictions.csv", f"{report}/table.md"),
            params=("temporal.evaluate",),
            code=("fer_pipeline/temporal/evaluate.py", "fer_pipeline/temporal/postprocess.py",
                  "fer_pipeline/temporal/report.py"),
            log="logs/evaluate_temporal.log",
            stamp=f"{report}/_stage.json",
            metrics=(f"{report}/metrics.json",),
            plots=tuple(f"{report}/{name}.png" for name in TEMPORAL_PLOTS),
        ),
    ]


TEMPORAL_PLOTS = ("table", "confusion_matrix", "timeline")


def spatial_stages(params: dict) -> list[Stage]:
    """Face2Exp's Tables 4 and 6: one job per seed, then the tables (`snakemake report_spatial`)."""
    spatial, meta, prep_dir = params["spatial"], params["train"]["meta"], params["prepare"]["out_dir"]
    deps = [f"{prep_dir}/{meta['labeled']}", f"{prep_dir}/{meta['pool']}"]
    deps += [path for path in {meta["pool_truth"], params["mine"]["truth"]} if path]
    seed_dir = f"{spatial['out_dir']}/seed{{seed}}"
    return [
        Stage(
            name="spatial_study",
            cmd="fer spatial-study --seed {seed} --log-file {log}",
            deps=tuple(sorted(deps)),
            outs=(seed_dir,),
            params=("spatial", "train.supervised", "train.meta", "train.finetune", "mine", "evaluate"),
            code=("fer_pipeline/spatial_study.py", "fer_pipeline/meta", "fer_pipeline/train", "fer_pipeline/models",
                  "fer_pipeline/eval", "fer_pipeline/mining.py"),
            log="logs/spatial/seed{seed}.log",
            stamp=f"{seed_dir}/_stage.json",
            item_name="seed",
            items={str(seed): {} for seed in spatial["seeds"]},
            group="spatial",
        ),
        Stage(
            name="report_spatial",
            cmd="fer report --section spatial --log-file {log}",
            deps=tuple(f"{spatial['out_dir']}/seed{seed}" for seed in spatial["seeds"]),
            outs=(f"{spatial['report_dir']}/tables.md",),
            params=("spatial",),
            code=("fer_pipeline/spatial_report.py",),
            log="logs/report_spatial.log",
            stamp=f"{spatial['report_dir']}/_stage.json",
            metrics=(f"{spatial['report_dir']}/tables.json",),
            plots=tuple(f"{spatial['report_dir']}/{name}.png" for name in SPATIAL_PLOTS),
            group="spatial",
        ),
    ]


SPATIAL_PLOTS = ("table4", "table6", "pseudo_label_accuracy", "mining")


def evaluated_models(params: dict) -> dict[str, dict[str, str]]:
    """Every model the DAG evaluates: its bundle folder and its labelled dataset."""
    prep_dir = params["prepare"]["out_dir"]
    sup, meta = params["train"]["supervised"], params["train"]["meta"]
    return {
        "supervised": {"model_dir": sup["out_dir"], "dataset_dir": f"{prep_dir}/{sup['dataset']}"},
        "meta": {"model_dir": params["train"]["finetune"]["out_dir"], "dataset_dir": f"{prep_dir}/{meta['labeled']}"},
    }


def instances(params: dict, group: str | None = None) -> list[StageInstance]:
    """Every job (of one group, when given)."""
    return [inst for stage in build_stages(params) if group in (None, stage.group) for inst in stage.instances()]


def get_stage(params: dict, name: str) -> Stage:
    for stage in build_stages(params):
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r} in this pipeline")


def get_instance(params: dict, name: str, item: str | None = None) -> StageInstance:
    stage = get_stage(params, name)
    for inst in stage.instances():
        if inst.item == item:
            return inst
    raise KeyError(f"stage {name!r} has no item {item!r}; items: {sorted(stage.items)}")


def upstream(params: dict, inst: StageInstance) -> list[StageInstance]:
    """Jobs whose outputs this job reads (a dep equal to, inside, or holding one of their outputs).

    The jobs of a scattered stage share one lineage (the union over its items):
    DVC's foreach declares params once for all items, and both tools must agree."""
    by_name, ups, _ = _dag(_frozen(params))
    return [by_name[name] for name in ups[inst.name]]


def _frozen(params: dict) -> str:
    return json.dumps(params)  # not sorted: the order of `datasets` is the order of their jobs


@lru_cache(maxsize=8)
def _dag(frozen_params: str):
    """Every job by name; the names of the jobs each one's stage reads from (the union
    over its items); and those its own deps read from. Computed once per params: the
    DVC renderer and the stage keys ask for every job's lineage."""
    jobs = instances(json.loads(frozen_params))
    outputs = {job.name: job.all_outputs for job in jobs}

    def reads(deps, exclude):
        return tuple(other for other, outs in outputs.items() if other not in exclude and any(
            is_under(d, out) or is_under(out, d) for d in deps for out in outs))

    ups, own_ups = {}, {}
    for job in jobs:
        siblings = job.stage.instances()
        names = {s.name for s in siblings}
        ups[job.name] = reads([d for sibling in siblings for d in sibling.deps], names)
        own_ups[job.name] = reads(job.deps, names)
    return {job.name: job for job in jobs}, ups, own_ups


def _transitive(params: dict, inst: StageInstance, own, per_item: bool = False) -> list[str]:
    """`own(job)` of every job upstream of `inst`, deepest first, each value once
    (`per_item`: following each job's own deps, not its stage's union)."""
    by_name, ups, own_ups = _dag(_frozen(params))
    seen: list[str] = []
    for name in (own_ups if per_item else ups)[inst.name]:
        up = by_name[name]
        for value in _transitive(params, up, own, per_item) + list(own(up)):
            if value not in seen:
                seen.append(value)
    return seen


def upstream_params(params: dict, inst: StageInstance) -> list[str]:
    """params.yaml keys of every job upstream of this one, in pipeline order.

    DVC declares them on the downstream stage too, so `dvc status` names a job
    whose inputs are about to change, not only the job whose own key changed
    (the same transitive answer the stage keys give Snakemake)."""
    jobs = list(_dag(_frozen(params))[0].values())
    first_use = {}
    for n, job in enumerate(jobs):
        for key in job.params:
            first_use.setdefault(key, n)
    return sorted(_transitive(params, inst, lambda job: job.params), key=lambda k: (first_use.get(k, 0), k))


def upstream_sources(params: dict, inst: StageInstance) -> list[str]:
    """Fingerprinted source folders (raw dataset roots) of every job upstream of this one.

    DVC declares them on the downstream stage too, as it does upstream params: a
    changed raw file then makes `dvc status` name prepare *and* everything that will
    consume its new output, the answer Snakemake gives from mtimes. Per item: gather@rafdb
    reads RAF-DB's partitions only."""
    return _transitive(params, inst, lambda job: job.fingerprinted, per_item=True)


def param_values(params: dict, inst: StageInstance) -> dict:
    return {key: select(params, key) for key in inst.params}


def expand_deps(params: dict, inst: StageInstance) -> list[str]:
    """The job's deps as files or folders some job writes (or raw sources): a dep on a
    folder that no job writes, but inside which jobs write (gather's partitions
    folder), stands for those jobs' outputs. DVC resolves such a dep itself;
    Snakemake needs the outputs named."""
    outputs = [out for other in instances(params) for out in other.all_outputs]
    expanded: list[str] = []
    for dep in inst.deps:
        inside = [out for out in outputs if is_under(out, dep) and out != dep]
        written = any(is_under(dep, out) for out in outputs)
        expanded += [dep] if written or not inside else inside
    return expanded


def code_files(stage: Stage, repo_root: Path) -> list[str]:
    """Code paths expanded to files (Snakemake compares files, not directories)."""
    files: list[str] = []
    for path in stage.code:
        full = repo_root / path
        if full.is_dir():
            files += sorted(str(p.relative_to(repo_root)) for p in full.rglob("*.py"))
        else:
            files.append(path)
    return files
