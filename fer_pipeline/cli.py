"""`fer`: one subcommand per pipeline stage, plus the tools that keep the DAG honest.

Snakemake rules and DVC stages call exactly these commands; every knob comes from
params.yaml (validated against workflow/schemas/params.schema.yaml first).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fer_pipeline import params as params_mod
from fer_pipeline.provenance import source_fingerprints, write_stamp
from fer_pipeline.stages import get_instance, get_stage, uses_facesynth

log = logging.getLogger("fer")


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    handlers[0].addFilter(lambda record: record.exc_info is None)  # tracebacks go to the log file only
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def _manifest_digest(dataset_dir: str) -> str:
    path = Path(dataset_dir) / "manifest.json"
    if not path.exists():
        name = Path(dataset_dir).name
        raise FileNotFoundError(f"prepared dataset not found: {path} (run `fer prepare --dataset {name} --part K` "
                                f"for each of its parts, then `fer gather --dataset {name}`; or `snakemake`)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    return manifest["content_digest"]


# ---- stages ----------------------------------------------------------------

def cmd_generate(params: dict, args) -> None:
    from fer_pipeline.synth.generate import generate
    from fer_pipeline.tracking import stage_run

    inst = get_instance(params, "generate")
    with stage_run(params, inst) as mlflow:
        summary = generate(params["generate"])
        mlflow.log_dict(summary, "facesynth_summary.json")
    write_stamp(params, inst, {"summary": summary})


def _check_dataset(params: dict, command: str, name: str) -> None:
    if name not in params["datasets"]:
        raise SystemExit(f"fer {command}: dataset {name!r} is not in params.yaml `datasets` "
                         f"({', '.join(params['datasets'])})")


def cmd_prepare(params: dict, args) -> None:
    from fer_pipeline.io.partition import Partition
    from fer_pipeline.prep.prepare import prepare_dataset
    from fer_pipeline.tracking import stage_run

    _check_dataset(params, "prepare", args.dataset)
    ds, prep = params["datasets"][args.dataset], params["prepare"]
    if not 0 <= args.part < ds["parts"]:
        raise SystemExit(f"fer prepare: --part {args.part} but datasets.{args.dataset}.parts is {ds['parts']} "
                         f"(parts are 0..{ds['parts'] - 1})")
    inst = get_instance(params, "prepare", f"{args.dataset}-{args.part}")
    out_dir = Path(inst.outs[0])
    # Taken before reading: a file changed while prepare runs makes the job outdated.
    fingerprints = source_fingerprints(inst)
    with stage_run(params, inst) as mlflow:
        manifest = prepare_dataset(args.dataset, ds["format"], ds["root"], out_dir, prep["image_size"],
                                   prep["jpeg_quality"], prep["row_group_size"], prep["rows_per_shard"],
                                   part=Partition(args.part, ds["parts"]), workers=prep["workers"])
        mlflow.log_metrics({"inputs": manifest["inputs"], "kept": manifest["kept"], "rejected": manifest["rejected"]})
        mlflow.log_artifact(str(out_dir / "manifest.json"))
    write_stamp(params, inst, {"content_digest": manifest["content_digest"], "source_fingerprints": fingerprints})


def cmd_gather(params: dict, args) -> None:
    from fer_pipeline.prep.gather import gather_parts
    from fer_pipeline.tracking import stage_run

    _check_dataset(params, "gather", args.dataset)
    inst = get_instance(params, "gather", args.dataset)
    parts = [p.outs[0] for p in get_stage(params, "prepare").instances() if p.values["dataset"] == args.dataset]
    with stage_run(params, inst) as mlflow:
        manifest = gather_parts(parts, inst.outs[0])
        # The data version every run trained on this dataset records.
        mlflow.set_tag(f"data_version.{args.dataset}", manifest["content_digest"])
        mlflow.log_metrics({"inputs": manifest["inputs"], "kept": manifest["kept"], "rejected": manifest["rejected"]})
        mlflow.log_artifact(str(Path(inst.outs[0]) / "manifest.json"))
    write_stamp(params, inst, {"content_digest": manifest["content_digest"]})


def _supervised_stage(params: dict, stage: str, cfg: dict, subset_index: str | None = None) -> None:
    """Run train_supervised for a stage (the baseline, or the student's finetuning)."""
    from fer_pipeline.provenance import expected_key
    from fer_pipeline.tracking import stage_run
    from fer_pipeline.train.supervised import train_supervised

    inst = get_instance(params, stage)
    dataset_dir = f"{params['prepare']['out_dir']}/{cfg['dataset']}"
    versions = {cfg["dataset"]: _manifest_digest(dataset_dir)}
    work_dir = Path(".fer/work") / stage / expected_key(params, inst)
    with stage_run(params, inst, versions) as mlflow:
        result = train_supervised(cfg, dataset_dir, cfg["out_dir"], work_dir, tracker=mlflow,
                                  subset_index=subset_index)
        mlflow.log_artifact(str(Path(cfg["out_dir"]) / "history.json"))
    write_stamp(params, inst, {"data_versions": versions, "result": result})


def cmd_train_supervised(params: dict, args) -> None:
    _supervised_stage(params, "train_supervised", params["train"]["supervised"])


def cmd_train_meta(params: dict, args) -> None:
    from fer_pipeline.meta.train import train_meta
    from fer_pipeline.provenance import expected_key
    from fer_pipeline.tracking import stage_run
    from fer_pipeline.train.distributed import launched_rank

    cfg = params["train"]["meta"]
    inst = get_instance(params, "train_meta")
    prep = params["prepare"]["out_dir"]
    labeled_dir, pool_dir = f"{prep}/{cfg['labeled']}", f"{prep}/{cfg['pool']}"
    versions = {cfg["labeled"]: _manifest_digest(labeled_dir), cfg["pool"]: _manifest_digest(pool_dir)}
    init_dir = params["train"]["supervised"]["out_dir"] if cfg["init"] == "supervised" else None
    work_dir = Path(".fer/work/train_meta") / expected_key(params, inst)
    if launched_rank() != 0:  # under torchrun, rank 0 alone tracks, writes and stamps
        train_meta(cfg, labeled_dir, pool_dir, cfg["out_dir"], work_dir, init_dir, cfg["pool_truth"])
        return
    with stage_run(params, inst, versions) as mlflow:
        result = train_meta(cfg, labeled_dir, pool_dir, cfg["out_dir"], work_dir, init_dir, cfg["pool_truth"],
                            tracker=mlflow)
        for name in ("history.json", "smp_index.json", "cover_examples.png"):
            mlflow.log_artifact(str(Path(cfg["out_dir"]) / name))
    write_stamp(params, inst, {"data_versions": versions, "result": result})


def cmd_finetune(params: dict, args) -> None:
    from fer_pipeline.train.finetune import finetune_config

    train = params["train"]
    meta_dir = train["meta"]["out_dir"]
    cfg = finetune_config(train["supervised"], train["meta"], train["finetune"], f"{meta_dir}/model.pt",
                          train["finetune"]["out_dir"])
    # Only the Smp subset the student was meta-trained with: at a labelled fraction
    # below 100 %, finetuning on the whole set would leak the withheld labels.
    _supervised_stage(params, "finetune", cfg, subset_index=f"{meta_dir}/smp_index.json")


def cmd_mine_pseudo(params: dict, args) -> None:
    from fer_pipeline.labels import ClassSet
    from fer_pipeline.mining import mine_pseudo_labels, pool_truth
    from fer_pipeline.tracking import stage_run

    cfg, sup, prep = params["mine"], params["train"]["supervised"], params["prepare"]
    inst = get_instance(params, "mine_pseudo")
    labeled_dir, pool_dir = f"{prep['out_dir']}/{sup['dataset']}", f"{prep['out_dir']}/{cfg['pool']}"
    out_dir = Path(prep["out_dir"]) / cfg["out_name"]
    versions = {sup["dataset"]: _manifest_digest(labeled_dir), cfg["pool"]: _manifest_digest(pool_dir)}
    truth = pool_truth(cfg["truth"], pool_dir, ClassSet.named(sup["class_set"]))
    with stage_run(params, inst, versions) as mlflow:
        manifest = mine_pseudo_labels(sup["out_dir"], labeled_dir, pool_dir, out_dir, cfg["delta"],
                                      cfg["audit_deltas"], cfg["batch_size"], prep["row_group_size"], truth,
                                      cfg["include_labeled"])
        mlflow.set_tag(f"data_version.{cfg['out_name']}", manifest["content_digest"])
        mlflow.log_metrics({"mined": manifest["mined"], "left_unlabelled": manifest["rejected"]})
        if (out_dir / "mining_audit.json").exists():
            audit = json.loads((out_dir / "mining_audit.json").read_text(encoding="utf-8"))
            for delta, per_class in audit.items():
                for name, value in per_class.items():
                    for key in ("precision", "coverage"):
                        if value[key] is not None:
                            mlflow.log_metric(f"mining.{key}.{name}.delta_{delta}", value[key])
            mlflow.log_artifact(str(out_dir / "mining_audit.json"))
        mlflow.log_artifact(str(out_dir / "manifest.json"))
    write_stamp(params, inst, {"content_digest": manifest["content_digest"]})


def cmd_evaluate(params: dict, args) -> None:
    from fer_pipeline.eval.evaluate import evaluate
    from fer_pipeline.stages import evaluated_models
    from fer_pipeline.tracking import stage_run

    models = evaluated_models(params)
    if args.model not in models:
        raise KeyError(f"no model {args.model!r} to evaluate; known: {', '.join(models)}")
    inst = get_instance(params, "evaluate", args.model)
    model_dir, dataset_dir = models[args.model]["model_dir"], models[args.model]["dataset_dir"]
    out_dir = Path(params["evaluate"]["out_dir"]) / args.model
    versions = {Path(dataset_dir).name: _manifest_digest(dataset_dir)}
    device = params["train"]["supervised"]["device"]
    title = f"{args.model} (FaceSynth)" if uses_facesynth(params) else args.model
    with stage_run(params, inst, versions) as mlflow:
        metrics = evaluate(model_dir, dataset_dir, out_dir, params["evaluate"]["batch_size"], device, title=title)
        mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)})
        mlflow.log_metrics({f"class_acc.{c}": a for c, a in metrics["per_class_accuracy"].items() if a is not None})
        for name in ("metrics.json", "confusion_matrix.png", "per_class_accuracy.png", "predictions.csv"):
            mlflow.log_artifact(str(out_dir / name))
    write_stamp(params, inst, {"data_versions": versions})


def cmd_extract_features(params: dict, args) -> None:
    from fer_pipeline.labels import ClassSet
    from fer_pipeline.provenance import expected_key
    from fer_pipeline.stages import evaluated_models
    from fer_pipeline.tracking import stage_run
    from fer_pipeline.temporal.features import extract_features

    cfg = params["temporal"]["features"]
    inst = get_instance(params, "extract_features")
    dataset_dir = f"{params['prepare']['out_dir']}/{cfg['dataset']}"
    versions = {cfg["dataset"]: _manifest_digest(dataset_dir)}
    student_dir = evaluated_models(params)[cfg["student"]]["model_dir"]
    work_dir = Path(".fer/work/extract_features") / expected_key(params, inst)
    with stage_run(params, inst, versions) as mlflow:
        manifest = extract_features(student_dir, dataset_dir, inst.outs[0], work_dir, ClassSet.named(cfg["class_set"]),
                                    cfg["batch_size"], cfg["device"], cfg["amp"])
        mlflow.log_metrics({"frames": manifest["rows"], "dim": manifest["dim"]})
        mlflow.log_artifact(str(Path(inst.outs[0]) / "manifest.json"))
    write_stamp(params, inst, {"data_versions": versions, "content_digest": manifest["content_digest"]})


def _features_manifest(params: dict) -> dict:
    feat = params["temporal"]["features"]
    path = Path(feat["out_dir"]) / feat["dataset"] / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `fer extract-features` first")
    return json.loads(path.read_text(encoding="utf-8"))


def cmd_train_temporal(params: dict, args) -> None:
    from fer_pipeline.provenance import expected_key
    from fer_pipeline.tracking import stage_run
    from fer_pipeline.temporal.train import train_temporal

    cfg, feat = params["temporal"]["train"], params["temporal"]["features"]
    inst = get_instance(params, "train_temporal")
    manifest = _features_manifest(params)
    meta = {**manifest, "image_size": params["prepare"]["image_size"]}
    versions = {f"features.{feat['dataset']}": manifest["content_digest"]}
    work_dir = Path(".fer/work/train_temporal") / expected_key(params, inst)
    with stage_run(params, inst, versions) as mlflow:
        summary = train_temporal(cfg, f"{feat['out_dir']}/{feat['dataset']}", cfg["out_dir"], work_dir, meta,
                                 tracker=mlflow)
        mlflow.log_artifact(str(Path(cfg["out_dir"]) / "summary.json"))
    write_stamp(params, inst, {"data_versions": versions, "result": summary})


def cmd_evaluate_temporal(params: dict, args) -> None:
    from fer_pipeline.tracking import stage_run
    from fer_pipeline.temporal.evaluate import evaluate_temporal

    temporal = params["temporal"]
    feat, cfg = temporal["features"], temporal["evaluate"]
    inst = get_instance(params, "evaluate_temporal")
    versions = {f"features.{feat['dataset']}": _features_manifest(params)["content_digest"]}
    with stage_run(params, inst, versions) as mlflow:
        table = evaluate_temporal(temporal["train"]["out_dir"], f"{feat['out_dir']}/{feat['dataset']}", cfg["out_dir"],
                                  temporal["train"]["seeds"], cfg, uses_facesynth(params))
        for row in table["rows"]:
            key = row["row"].replace("+ ", "plus_").replace(" ", "_").replace("(", "").replace(")", "")
            mlflow.log_metrics({f"{key}.macro_f1": row["macro_f1"]["mean"], f"{key}.accuracy": row["accuracy"]["mean"]})
        for path in sorted(Path(cfg["out_dir"]).glob("*")):
            if path.suffix in (".md", ".json", ".png", ".csv"):
                mlflow.log_artifact(str(path))
    write_stamp(params, inst, {"data_versions": versions})


def cmd_predict_video(params: dict, args) -> None:
    from fer_pipeline.temporal.predict import predict_video

    temporal = params["temporal"]
    seed = args.seed if args.seed is not None else temporal["train"]["seeds"][0]
    encoder = Path(temporal["train"]["out_dir"]) / f"seed{seed}" / f"{args.variant}.pt"
    detector = None
    if Path(args.input).is_file():
        from fer_pipeline.prep.detect import make_detector

        detector = make_detector(args.insightface_root)
    result = predict_video(encoder, args.input, args.out, params["prepare"]["image_size"],
                           temporal["evaluate"]["postprocess"], temporal["evaluate"]["stride"], detector=detector)
    log.info("wrote %s: %d frames, %d with a face", result["csv"], result["frames"], result["with_face"])


def cmd_spatial_study(params: dict, args) -> None:
    from fer_pipeline.provenance import expected_key
    from fer_pipeline.spatial_study import run_seed
    from fer_pipeline.tracking import stage_run

    spatial, meta, prep = params["spatial"], params["train"]["meta"], params["prepare"]["out_dir"]
    if args.seed not in spatial["seeds"]:
        raise KeyError(f"seed {args.seed} is not in params.yaml spatial.seeds {spatial['seeds']}")
    inst = get_instance(params, "spatial_study", str(args.seed))
    labeled_dir, pool_dir = f"{prep}/{meta['labeled']}", f"{prep}/{meta['pool']}"
    versions = {meta["labeled"]: _manifest_digest(labeled_dir), meta["pool"]: _manifest_digest(pool_dir)}
    work_dir = Path(".fer/work/spatial_study") / expected_key(params, inst)
    out_dir = Path(spatial["out_dir"]) / f"seed{args.seed}"
    with stage_run(params, inst, versions) as mlflow:
        run_seed(params, args.seed, labeled_dir, pool_dir, out_dir, work_dir, mlflow)
        mlflow.log_artifact(str(out_dir / "results.json"))
    write_stamp(params, inst, {"data_versions": versions})


def cmd_report(params: dict, args) -> None:
    from fer_pipeline.report import write_report
    from fer_pipeline.stages import evaluated_models
    from fer_pipeline.tracking import stage_run

    if args.section == "spatial":
        return _report_spatial(params)
    inst = get_instance(params, "report")
    metrics_files = {name: Path(params["evaluate"]["out_dir"]) / name / "metrics.json"
                     for name in evaluated_models(params)}
    temporal_metrics = Path(params["temporal"]["evaluate"]["out_dir"]) / "metrics.json"
    with stage_run(params, inst) as mlflow:
        write_report(metrics_files, params["report"]["out_dir"], uses_facesynth(params), temporal_metrics)
        mlflow.log_artifact(str(Path(params["report"]["out_dir"]) / "summary.md"))
    write_stamp(params, inst)


def _report_spatial(params: dict) -> None:
    from fer_pipeline.spatial_report import write_spatial_report
    from fer_pipeline.tracking import stage_run

    spatial = params["spatial"]
    inst = get_instance(params, "report_spatial")
    results = [Path(spatial["out_dir"]) / f"seed{seed}" / "results.json" for seed in spatial["seeds"]]
    with stage_run(params, inst) as mlflow:
        tables = write_spatial_report(results, spatial, spatial["report_dir"], uses_facesynth(params))
        mlflow.log_metrics(tables["headline"])
        for path in sorted(Path(spatial["report_dir"]).glob("*")):
            if path.suffix in (".md", ".json", ".png"):
                mlflow.log_artifact(str(path))
    write_stamp(params, inst)


# ---- tools -----------------------------------------------------------------

def cmd_summary(params: dict, args) -> None:
    from fer_pipeline.tracking import tracking_uri

    path = Path(params["report"]["out_dir"]) / "summary.md"
    if not path.exists():
        raise SystemExit(f"{path} not found: run the pipeline first (make run)")
    print(path.read_text(encoding="utf-8"))
    print(f"Plots: {params['evaluate']['out_dir']}/<model>/*.png, {params['temporal']['evaluate']['out_dir']}/*.png")
    print(f"Browse runs: make ui   (= mlflow ui --backend-store-uri {tracking_uri(params)}, "
          "then open http://127.0.0.1:5000)")


def cmd_dvc_yaml(params: dict, args) -> None:
    from fer_pipeline.dvcgen import render_dvc_yaml
    from fer_pipeline.stages import GROUPS

    for group, spec in GROUPS.items():
        text = render_dvc_yaml(params, group)
        path = Path(spec["dvc_file"])
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                raise SystemExit(f"{path} is out of date with fer_pipeline/stages.py and params.yaml: "
                                 "run `fer dvc-yaml`")
            print(f"{path} is up to date")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")


def cmd_dvc_commit(params: dict, args) -> None:
    from fer_pipeline.dvcgen import commit_current_stages

    commit_current_stages(params)


def cmd_status(params: dict, args) -> None:
    from fer_pipeline.provenance import is_current
    from fer_pipeline.stages import instances

    for inst in instances(params):
        print(f"{inst.name:28s} {'up to date' if is_current(params, inst) else 'OUTDATED'}")


COMMANDS = {
    "generate": (cmd_generate, "write the FaceSynth demo datasets in their real on-disk formats"),
    "prepare": (cmd_prepare, "one input partition of a dataset -> aligned face crops in Parquet shards "
                             "(+ manifest, rejects)"),
    "gather": (cmd_gather, "join a dataset's prepared partitions into the prepared dataset (+ manifest, rejects)"),
    "train-supervised": (cmd_train_supervised, "train the supervised baseline"),
    "train-meta": (cmd_train_meta, "Face2Exp teacher-student meta-training with circuit feedback"),
    "mine-pseudo": (cmd_mine_pseudo, "omni-supervised mining: pseudo labels for pool faces near a class centroid"),
    "finetune": (cmd_finetune, "finetune the meta-trained student on the labelled data (fixed small rate)"),
    "spatial-study": (cmd_spatial_study, "one seed of Face2Exp's Tables 4 and 6 (SL vs Meta at 1/5/10 pct labels, ablation)"),
    "evaluate": (cmd_evaluate, "evaluate one trained model: metrics.json, confusion matrix, per-class plot"),
    "extract-features": (cmd_extract_features, "the frozen student embeds every frame of the video dataset"),
    "train-temporal": (cmd_train_temporal, "per seed, the temporal encoder and its frame-level twin on frame features"),
    "evaluate-temporal": (cmd_evaluate_temporal, "whole-video evaluation: frame-level, + temporal encoder, "
                                                 "+ post-processing (macro-F1)"),
    "predict-video": (cmd_predict_video, "per-frame expression CSV for a folder of aligned frames or a video file"),
    "report": (cmd_report, "gather the results table (--section spatial: Face2Exp's tables)"),
    "summary": (cmd_summary, "print the results table and how to open MLflow"),
    "status": (cmd_status, "which jobs are outdated w.r.t. params.yaml (the stamps both tools share)"),
    "dvc-yaml": (cmd_dvc_yaml, "render dvc.yaml from the stage list (--check: fail if it drifted)"),
    "dvc-commit": (cmd_dvc_commit, "record outputs made by Snakemake in dvc.lock"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
        p.add_argument("--log-file", help="also write the log to this file")
        if name in ("prepare", "gather"):
            p.add_argument("--dataset", required=True, help="a key of params.yaml `datasets`")
        if name == "prepare":
            p.add_argument("--part", type=int, required=True,
                           help="which input partition, 0 .. datasets.<name>.parts - 1")
        if name == "evaluate":
            p.add_argument("--model", required=True, help="supervised | meta")
        if name == "dvc-yaml":
            p.add_argument("--check", action="store_true", help="fail if a file differs instead of writing it")
        if name == "spatial-study":
            p.add_argument("--seed", type=int, required=True, help="one of params.yaml `spatial.seeds`")
        if name == "predict-video":
            p.add_argument("--input", required=True, help="a folder of aligned face frames, or a video file")
            p.add_argument("--out", required=True, help="the CSV to write")
            p.add_argument("--seed", type=int, help="which trained seed (default: the first of temporal.train.seeds)")
            p.add_argument("--variant", choices=("temporal", "frame"), default="temporal")
            p.add_argument("--insightface-root", help="insightface model pack root for SCRFD detection in video "
                                                      "files (default: OpenCV's Haar cascade)")
        if name == "report":
            p.add_argument("--section", choices=("main", "spatial"), default="main",
                           help="main: the DAG's results table; spatial: Face2Exp's Tables 4 and 6")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_file)
    try:
        params = params_mod.load(args.params)
    except params_mod.ParamsError as exc:
        log.error("%s", exc)
        return 2
    try:
        COMMANDS[args.command][0](params, args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Bad input (a missing dataset file, a malformed record, an unknown name): one
        # clear line for the user, the traceback in the log for whoever debugs it.
        log.error("fer %s: %s", args.command, exc)
        log.error("traceback of the error above", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
