"""Face2Exp settings sweep on a finished demo DAG: meta-train the student with some
params overridden, finetune it, put the baseline through the same finetune (the
control), evaluate all of them on the labelled set's test split, print JSON.

Run from the project root after `make run` (it reads data/prepared and the trained
baseline; it writes only under --work and to MLflow experiment `face2exp-sweep`):

    python bench/face2exp_sweep.py --name lr1e-4 --set train.meta.lr_student=1e-4 \
        --set train.finetune.epochs=5 --seeds 11 12 13

`--pool-identities N` swaps the pool for a FaceSynth MS1M pool of N x 20 faces (the
same world: the demo pool's faces are its first ones), generated and prepared once
under --work. Every setting the final params.yaml holds was chosen with this script;
docs/face2exp.md gives the runs.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import time
from pathlib import Path

import mlflow
import yaml

from fer_pipeline.common.params import load as load_params
from fer_pipeline.data.io.layout import ReadOptions
from fer_pipeline.data.io.partition import Partition
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_ms1m_recordio
from fer_pipeline.eval.evaluate import evaluate
from fer_pipeline.meta.train import train_meta
from fer_pipeline.train.finetune import finetune_config, write_finetune_index
from fer_pipeline.train.supervised import train_supervised

HEADLINE = ("overall_accuracy", "mean_class_accuracy", "std_class_accuracy", "macro_f1")
log = logging.getLogger("face2exp_sweep")


def override(params: dict, assignment: str) -> None:
    key, _, value = assignment.partition("=")
    node = params
    *parents, leaf = key.split(".")
    for part in parents:
        node = node[part]
    if leaf not in node:
        raise SystemExit(f"--set {assignment}: no key {key} in params.yaml")
    parsed = yaml.safe_load(value)
    if isinstance(parsed, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    node[leaf] = parsed


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def pool(params: dict, identities: int | None, work: Path) -> tuple[str, str]:
    """(prepared pool folder, truth CSV): the DAG's, or a bigger FaceSynth MS1M pool."""
    meta = params["train"]["meta"]
    if identities is None:
        return f"{params['prepare']['out_dir']}/{meta['pool']}", meta["pool_truth"]
    gen, prep = params["generate"], params["prepare"]
    root = work / f"pool_ms1m_{identities}"
    if not (root / "prepared" / "manifest.json").exists():
        world = World(gen["seed"], gen["render_size"], gen["nuisance_strength"], tuple(gen["intensity"]))
        cfg = dict(gen["ms1m"], identities=identities)
        write_ms1m_recordio(world, root / "raw", cfg, root / "audit", gen["workers"])
        prepare_dataset("ms1m", "ms1m_recordio", str(root / "raw"), root / "prepared", prep["image_size"],
                        prep["jpeg_quality"], prep["row_group_size"], prep["rows_per_shard"],
                        part=Partition(0, 1), workers=prep["workers"],
                        options=ReadOptions.from_params(params["datasets"]["ms1m"]), base_dir=Path.cwd())
    return str(root / "prepared"), str(root / "audit" / "ms1m_truth.csv")


def finetuned(params: dict, start: str, dataset_dir: str, out: Path) -> Path:
    """`start` put through train.finetune on its subset (cached by everything that matters)."""
    train = params["train"]
    if (out / "model.pt").exists():
        return out
    index = write_finetune_index(dataset_dir, train["meta"], train["finetune"], out)
    cfg = finetune_config(train["supervised"], train["meta"], train["finetune"], str(out))
    train_supervised(cfg, dataset_dir, out, out / "work", subset_index=index, init_weights=start)
    return out


def scores(model_dir: Path, dataset_dir: str, out_dir: Path, bundle: str = "model.pt") -> dict:
    """Headline figures (%) on the test split; plots and predictions go to `out_dir`."""
    m = evaluate(model_dir, dataset_dir, out_dir, 256, "cpu", bundle_name=bundle)
    return {k: round(100 * m[k], 2) for k in HEADLINE} | {
        "per_class": {c: None if a is None else round(100 * a, 1) for c, a in m["per_class_accuracy"].items()}}


def markdown_table(results_dir: Path) -> str:
    """Every finished sweep run as one Markdown table (for docs/face2exp.md)."""
    def cell(row: dict, model: str) -> str:
        return " / ".join(f"{row[model][k]:.2f}" for k in HEADLINE)

    lines = ["| run | seed | pseudo-label acc first → last | baseline | control | teacher | student before finetune "
             "| student | student − control (mean class) |", "|---|---:|---|---|---|---|---|---|---:|"]
    for path in sorted(results_dir.glob("*.json")):
        for row in json.loads(path.read_text()):
            pla = row["pseudo_label_accuracy"]
            lines.append(f"| {row['name']} | {row['seed']} | {pla['first']:.2f} → {pla['last']:.2f} | "
                         + " | ".join(cell(row, m) for m in ("baseline", "control", "teacher", "student_raw", "student"))
                         + f" | {row['student_minus_control']['mean_class_accuracy']:+.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", action="store_true", help="print the finished runs as a Markdown table and exit")
    ap.add_argument("--name")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", type=int, nargs="+", default=[11])
    ap.add_argument("--pool-identities", type=int)
    ap.add_argument("--work", default=".bench/face2exp")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    if args.table:
        print(markdown_table(Path(args.work) / "results"))
        return
    if not args.name:
        ap.error("--name is required to run")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = load_params(args.params)
    for assignment in args.set:
        override(base, assignment)
    work = Path(args.work)
    pool_dir, truth = pool(base, args.pool_identities, work)
    dataset_dir = f"{base['prepare']['out_dir']}/{base['train']['meta']['labeled']}"
    baseline = Path(base["train"]["supervised"]["out_dir"])
    mlflow.set_tracking_uri(base["tracking"]["uri"])
    mlflow.set_experiment("face2exp-sweep")
    rows = []
    for seed in args.seeds:
        params = copy.deepcopy(base)
        params["train"]["meta"]["seed"] = seed
        meta, finetune = params["train"]["meta"], params["train"]["finetune"]
        run_dir = work / "runs" / f"{args.name}-{digest([meta, args.pool_identities])}"
        t0 = time.time()
        if not (run_dir / "model.pt").exists():
            train_meta(meta, dataset_dir, pool_dir, run_dir, run_dir / "work", baseline / "model.pt"
                       if meta["init"] == "supervised" else None, truth)
        meta_seconds = time.time() - t0
        ft_key = digest([finetune, {k: meta[k] for k in ("labeled", "labeled_fraction", "balanced", "seed")}])
        student = finetuned(params, str(run_dir / "model.pt"), dataset_dir, run_dir / f"finetuned-{ft_key}")
        control = finetuned(params, str(baseline / "model.pt"), dataset_dir, work / "control" / ft_key)
        history = json.loads((run_dir / "history.json").read_text())
        pla = [h.get("pseudo_label_accuracy") for h in history]
        row = {"name": args.name, "seed": seed, "set": args.set, "pool_identities": args.pool_identities,
               "meta_seconds": round(meta_seconds, 1),
               "pseudo_label_accuracy": {"first": pla[0], "last": pla[-1], "curve": pla},
               "baseline": scores(baseline, dataset_dir, work / "eval" / "baseline"),
               "control": scores(control, dataset_dir, control / "eval"),
               "teacher": scores(run_dir, dataset_dir, run_dir / "eval_teacher", "teacher.pt"),
               "student_raw": scores(run_dir, dataset_dir, run_dir / "eval_student_raw"),
               "student": scores(student, dataset_dir, student / "eval")}
        row["student_minus_control"] = {k: round(row["student"][k] - row["control"][k], 2) for k in HEADLINE}
        with mlflow.start_run(run_name=f"{args.name}/seed{seed}"):
            mlflow.log_params({"sets": " ".join(args.set) or "-", "seed": seed,
                               "pool_identities": args.pool_identities or 0})
            for model in ("baseline", "control", "teacher", "student_raw", "student"):
                mlflow.log_metrics({f"{model}.{k}": row[model][k] for k in HEADLINE})
            for i, a in enumerate(pla):
                if a is not None:
                    mlflow.log_metric("pseudo_label_accuracy", a, step=history[i]["step"])
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "per_class"}), flush=True)
    (work / "results").mkdir(parents=True, exist_ok=True)
    (work / "results" / f"{args.name}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
