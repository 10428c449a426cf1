"""`fer spatial-study --seed S`: one seed of Face2Exp's Tables 4 and 6 on the labelled set + pool.

Every run of a seed starts from scratch (`spatial.arch` at `spatial.input_size`; no run may see
labels outside its own subset, so no network is initialised from the 100 % model):

    sl_100      supervised on all labels, natural class imbalance (the paper's SL column)
    meta_<p>    Face2Exp, L_s + L_u + L_c + L_f, Smp subset of p %: balanced (Table 4,
                AffectNet) or, with spatial.balanced false, a plain random p % (Table 5, RAF-DB)
    at spatial.ablation_fraction (Table 6):
    abl_s       L_s only: the teacher of abl_su, whose teacher loss is L_s alone
    abl_su      + L_u: the student learns from the teacher's pseudo labels (w_c = w_f = 0)
    abl_suc     + L_c (w_f = 0)
                + L_f is meta_<ablation fraction>
    mining      seed 001's centroid mining with sl_100 as the primitive model (audit only)

Meta students are finetuned on their own subset (train.finetune) and evaluated on
the test split; the rest of each recipe comes from train.supervised / train.meta.
Weights live in the job's work folder and are deleted once evaluated; a finished
run leaves its metrics there, so a killed job resumes at the run it was in.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from fer_pipeline.common.atomic import write_json

log = logging.getLogger(__name__)

NO_CONSISTENCY_NO_FEEDBACK = {"s": 1.0, "c": 0.0, "f": 0.0}
NO_FEEDBACK = {"s": 1.0, "c": 1.0, "f": 0.0}
SUMMARY_KEYS = ("overall_accuracy", "mean_class_accuracy", "std_class_accuracy", "macro_f1", "per_class_accuracy")


def percent(fraction: float) -> str:
    return f"{100 * fraction:g}"


@dataclass(frozen=True)
class StudyRun:
    """One trained model of the study and the networks it evaluates (result name -> bundle)."""

    name: str
    kind: str                                   # supervised | meta
    fraction: float = 1.0
    weights: dict = field(default_factory=dict)  # meta loss weights
    evaluations: tuple[tuple[str, str], ...] = ()


def study_runs(spatial: dict, full_weights: dict) -> list[StudyRun]:
    """The runs of one seed, in the order they train."""
    runs = [StudyRun("sl_100", "supervised", 1.0, {}, (("sl_100", "model.pt"),))]
    fractions = list(spatial["labeled_fractions"])
    if spatial["ablation_fraction"] not in fractions:
        fractions.append(spatial["ablation_fraction"])
    for p in fractions:
        name = f"meta_{percent(p)}"
        runs.append(StudyRun(name, "meta", p, full_weights, ((name, "model.pt"),)))
    p = spatial["ablation_fraction"]
    runs.append(StudyRun("abl_su", "meta", p, NO_CONSISTENCY_NO_FEEDBACK,
                         (("abl_su", "model.pt"), ("abl_s", "teacher.pt"))))
    runs.append(StudyRun("abl_suc", "meta", p, NO_FEEDBACK, (("abl_suc", "model.pt"),)))
    return runs


def ablation_rows(spatial: dict) -> list[tuple[str, str]]:
    """Table 6 rows: (label, result name)."""
    full = f"meta_{percent(spatial['ablation_fraction'])}"
    return [("L_s", "abl_s"), ("+ L_u", "abl_su"), ("+ L_c", "abl_suc"), ("+ L_f", full)]


class PrefixedTracker:
    """Logs a run's metrics under `<run>.` inside the job's one MLflow run."""

    def __init__(self, mlflow, prefix: str):
        self.mlflow, self.prefix = mlflow, prefix

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_metrics({f"{self.prefix}.{k}": v for k, v in metrics.items()}, step=step)


@dataclass
class SeedStudy:
    params: dict
    seed: int
    labeled_dir: str
    pool_dir: str
    out_dir: Path
    work_dir: Path
    mlflow: object = None

    @property
    def spatial(self) -> dict:
        return self.params["spatial"]

    def supervised_cfg(self) -> dict:
        cfg = dict(self.params["train"]["supervised"])
        cfg.update({"seed": self.seed, "dataset": self.params["train"]["meta"]["labeled"],
                    "class_set": self.params["train"]["meta"]["class_set"], "init": "scratch",
                    "arch": self.spatial["arch"], "input_size": self.spatial["input_size"], "epochs": self.spatial["sl_epochs"],
                    "balanced_sampling": False})
        return cfg

    def meta_cfg(self, run: StudyRun) -> dict:
        cfg = dict(self.params["train"]["meta"])
        cfg.update({"seed": self.seed, "init": "scratch", "arch": self.spatial["arch"],
                    "input_size": self.spatial["input_size"],
                    "steps": self.spatial["meta_steps"], "labeled_fraction": run.fraction,
                    "balanced": self.spatial["balanced"],
                    "weights": dict(run.weights)})
        return cfg

    def train(self, run: StudyRun, run_dir: Path) -> dict:
        # Trainers imported here: the report reads this module's table layout without torch.
        from fer_pipeline.meta.train import train_meta
        from fer_pipeline.train.finetune import finetune_config
        from fer_pipeline.train.supervised import train_supervised

        tracker = PrefixedTracker(self.mlflow, run.name)
        if run.kind == "supervised":
            return train_supervised(self.supervised_cfg(), self.labeled_dir, run_dir, run_dir / "ckpt", tracker)
        cfg = self.meta_cfg(run)
        result = train_meta(cfg, self.labeled_dir, self.pool_dir, run_dir / "meta", run_dir / "ckpt_meta",
                            None, cfg["pool_truth"], tracker=tracker)
        ft = finetune_config(self.params["train"]["supervised"], cfg, self.params["train"]["finetune"], str(run_dir))
        train_supervised(ft, self.labeled_dir, run_dir, run_dir / "ckpt_finetune",
                         PrefixedTracker(self.mlflow, f"{run.name}.finetune"),
                         subset_index=run_dir / "meta" / "smp_index.json", init_weights=run_dir / "meta" / "model.pt")
        shutil.copy(run_dir / "meta" / "teacher.pt", run_dir / "teacher.pt")
        return result

    def run_one(self, run: StudyRun) -> dict:
        """Train (unless a killed job already finished it), evaluate, keep the small files."""
        run_dir = self.work_dir / run.name
        done = run_dir / "results.json"
        if done.exists():
            log.info("%s: finished earlier in this job's work folder, reused", run.name)
            return json.loads(done.read_text(encoding="utf-8"))
        from fer_pipeline.eval.evaluate import evaluate

        t0 = time.time()
        self.train(run, run_dir)
        results = {}
        for result_name, bundle in run.evaluations:
            metrics = evaluate(run_dir, self.labeled_dir, run_dir / "eval" / result_name,
                               self.params["evaluate"]["batch_size"], self.params["train"]["meta"]["device"],
                               title=f"{result_name}, seed {self.seed} (FaceSynth)", bundle_name=bundle)
            results[result_name] = {k: metrics[k] for k in SUMMARY_KEYS}
        history = run_dir / ("meta/history.json" if run.kind == "meta" else "history.json")
        out = {"run": run.name, "fraction": run.fraction, "weights": run.weights, "results": results,
               "history": json.loads(history.read_text(encoding="utf-8")),
               # Mining needs the SL model (seed 001's primitive model) before its weights go.
               "mining": self.mine(run_dir) if run.kind == "supervised" else None,
               "seconds": round(time.time() - t0, 1)}
        for weights_file in run_dir.rglob("*.pt"):
            weights_file.unlink()  # ~45 MB each; the study keeps numbers, not models
        write_json(done, out)
        return out

    def mine(self, sl_run_dir: Path) -> dict | None:
        """Seed 001's mining audit with this seed's SL model (needs the pool's true expressions)."""
        from fer_pipeline.common.labels import ClassSet
        from fer_pipeline.meta.mining import mine_pseudo_labels, pool_truth

        cfg = self.params["mine"]
        truth = pool_truth(cfg["truth"], self.pool_dir, ClassSet.named(self.params["train"]["meta"]["class_set"]))
        if truth is None:
            return None
        mined_dir = self.work_dir / "mined"
        mine_pseudo_labels(sl_run_dir, self.labeled_dir, self.pool_dir, mined_dir, cfg["delta"],
                           cfg["audit_deltas"], cfg["batch_size"], self.params["prepare"]["row_group_size"], truth)
        audit = json.loads((mined_dir / "mining_audit.json").read_text(encoding="utf-8"))
        shutil.rmtree(mined_dir)
        return audit


def run_seed(params: dict, seed: int, labeled_dir: str, pool_dir: str, out_dir: str | Path,
             work_dir: str | Path, mlflow=None) -> dict:
    study = SeedStudy(params, seed, labeled_dir, pool_dir, Path(out_dir), Path(work_dir), mlflow)
    runs = study_runs(params["spatial"], params["train"]["meta"]["weights"])
    results, histories, seconds, mining = {}, {}, {}, None
    out = Path(out_dir)
    for run in runs:
        log.info("seed %d: run %s (%s, %s %% labels)", seed, run.name, run.kind, percent(run.fraction))
        done = study.run_one(run)
        results.update(done["results"])
        histories[run.name] = done["history"]
        seconds[run.name] = done["seconds"]
        mining = done["mining"] or mining
        for name, metrics in done["results"].items():
            if mlflow is not None:
                mlflow.log_metrics({f"{name}.{k}": v for k, v in metrics.items() if isinstance(v, float)})
            shutil.copytree(study.work_dir / run.name / "eval" / name, out / name, dirs_exist_ok=True)
    summary = {"seed": seed, "results": results, "histories": histories, "seconds": seconds, "mining": mining}
    write_json(out / "results.json", summary)
    return summary
