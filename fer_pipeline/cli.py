"""`fer`: one subcommand per pipeline stage, plus the tools that keep the DAG honest.

Argument parsing only. `fer <command>` runs `fer_pipeline/jobs/<command>.py`, imported
by name (never statically: each stage's code dependencies are the import closure of
this file plus its own module, dag/codedeps.py). Every command goes through `main`,
which loads and validates params.yaml, sets up logging and turns bad input into one
clear line; stage commands then run inside dag/runner.py (MLflow run, input versions,
stamp).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from fer_pipeline.common import params as params_mod

log = logging.getLogger("fer")


def _dataset(p):
    p.add_argument("--dataset", required=True, help="a key of params.yaml `datasets`")


def _prepare(p):
    _dataset(p)
    p.add_argument("--part", type=int, required=True, help="which input partition, 0 .. datasets.<name>.parts - 1")


def _evaluate(p):
    p.add_argument("--model", required=True, help="supervised | control | meta")


def _finetune(p):
    p.add_argument("--model", required=True, help="student (the meta-trained student) | control (the baseline)")


def _spatial_study(p):
    p.add_argument("--seed", type=int, required=True, help="one of params.yaml `spatial.seeds`")


def _imbalance_study(p):
    p.add_argument("--seed", type=int, required=True, help="one of params.yaml `imbalance.seeds`")


def _train_auxiliary(p):
    p.add_argument("--model", required=True, help="a key of params.yaml `distill.models`")


def _cross_evaluate(p):
    p.add_argument("--model", required=True, help="a key of params.yaml `distill.models`")
    p.add_argument("--test-set", required=True, help="one of params.yaml `distill.test_sets`")


def _predict_video(p):
    p.add_argument("--input", required=True, help="a folder of aligned face frames, or a video file")
    p.add_argument("--out", required=True, help="the CSV to write")
    p.add_argument("--seed", type=int, help="which trained seed (default: the first of temporal.train.seeds)")
    p.add_argument("--variant", choices=("temporal", "frame"), default="temporal")
    p.add_argument("--insightface-root", help="insightface model pack root for SCRFD detection in video "
                                              "files (default: OpenCV's Haar cascade)")


def _subset(p):
    _dataset(p)
    p.add_argument("--imbalance-factor", type=float, required=True,
                   help="largest class count / smallest (>= 1), LNSU section 4.4")
    p.add_argument("--seed", type=int, default=0, help="which images are drawn (default: 0)")
    p.add_argument("--class-set", help="class set whose classes are counted (default: train.supervised.class_set)")
    p.add_argument("--out", help="index file to write (default: data/subsets/<dataset>_if<IF>_seed<seed>.json)")


def _dvc_yaml(p):
    p.add_argument("--check", action="store_true", help="fail if a file differs instead of writing it")
    p.add_argument("--group", choices=("main", "spatial", "imbalance"),
                   help="which dvc.yaml (default: main; a study's file is rendered only when asked)")


def _server(p):
    p.add_argument("--stop", action="store_true", help="stop the server running for tracking.server.dir")


def _status(p):
    p.add_argument("--all", action="store_true", help="also the optional studies' jobs")


# command -> (help, extra arguments)
COMMANDS = {
    "generate": ("write the FaceSynth demo datasets in their real on-disk formats", None),
    "prepare": ("one input partition of a dataset -> aligned face crops in Parquet shards (+ manifest, rejects)",
                _prepare),
    "gather": ("join a dataset's prepared partitions into the prepared dataset (+ manifest, rejects)", _dataset),
    "pretrain-fr": ("face-recognition pretraining (ArcFace on the FR pools' identities) + verification", None),
    "train-supervised": ("train the supervised baseline", None),
    "train-meta": ("Face2Exp teacher-student meta-training with circuit feedback", None),
    "mine-pseudo": ("omni-supervised mining: pseudo labels for pool faces near a class centroid", None),
    "finetune": ("finetune the meta-trained student, or the baseline as its control, on the same labelled data",
                 _finetune),
    "spatial-study": ("one seed of Face2Exp's Tables 4 and 6 (SL and Meta on the same 1/5/10 pct subsets, "
                      "SL 100 pct, ablation)",
                      _spatial_study),
    "imbalance-study": ("one seed of LNSU's Table 3 and ABAW4-LSD's modules on long-tailed subsets (one training "
                        "per method and imbalance factor)", _imbalance_study),
    "distill": ("seed 001's dataset distillation (Algorithm 1) of the mined pool faces: images, eta, grid", None),
    "train-auxiliary": ("one model of distill.models (a labelled split + nothing, the mined faces or the distilled "
                        "images), one network per imbalance seed", _train_auxiliary),
    "cross-evaluate": ("one distill.models model's networks on one dataset's test split, in the shared taxonomy",
                       _cross_evaluate),
    "evaluate": ("evaluate one trained model: metrics.json, confusion matrix, per-class plot", _evaluate),
    "extract-features": ("the frozen student embeds every frame of the video dataset", None),
    "train-temporal": ("per seed, the temporal encoder and its frame-level twin on frame features", None),
    "evaluate-temporal": ("whole-video evaluation: frame-level, + temporal encoder, + post-processing (macro-F1)",
                          None),
    "predict-video": ("per-frame expression CSV for a folder of aligned frames or a video file", _predict_video),
    "subset": ("a long-tailed subset of a train split with a given imbalance factor (an index file)", _subset),
    "report": ("gather the results table of the main DAG", None),
    "report-spatial": ("Face2Exp's Tables 4 and 6 over the study's seeds", None),
    "report-imbalance": ("LNSU's Table 3 shape over the imbalance study's seeds, the distillation table and the "
                         "cross-dataset matrix", None),
    "summary": ("print the results table and how to open MLflow", None),
    "server": ("a team's MLflow: PostgreSQL + `mlflow server` on 127.0.0.1 (params tracking.server); "
               "Ctrl-C or --stop stops both", _server),
    "status": ("which jobs are outdated (params, code or input data changed, here or upstream)", _status),
    "dvc-yaml": ("render dvc.yaml from the stage list (--check: fail if it drifted)", _dvc_yaml),
    "dvc-commit": ("record outputs made by Snakemake in dvc.lock", None),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, extra) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
        p.add_argument("--log-file", help="also write the log to this file")
        if extra:
            extra(p)
    return parser


def _setup_logging(log_file: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    handlers[0].addFilter(lambda record: record.exc_info is None)  # tracebacks go to the log file only
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def _run(command: str, params: dict, args) -> None:
    module = importlib.import_module(f"fer_pipeline.jobs.{command.replace('-', '_')}")
    if hasattr(module, "STAGE"):
        from fer_pipeline.dag.runner import run_stage

        run_stage(module, params, args)
    else:
        module.run(params, args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_file)
    try:
        params = params_mod.load(args.params)
    except params_mod.ParamsError as exc:
        log.error("%s", exc)
        return 2
    try:
        _run(args.command, params, args)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # Bad input (a missing dataset file, a malformed record, an unknown name): one
        # clear line for the user, the traceback in the log for whoever debugs it.
        log.error("fer %s: %s", args.command, exc)
        log.error("traceback of the error above", exc_info=True)
        return 1
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a refusal with its reason: logged like any other error
            log.error("%s", exc.code)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
