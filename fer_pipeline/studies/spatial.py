"""`fer spatial-study --seed S`: one seed of Face2Exp's Tables 4 and 6 on the labelled set + pool.

Like for like: at every labelled fraction p (spatial.labeled_fractions, plus 100 %),
the supervised run and the meta run see the same labelled images (Smp's subset for p,
one index file), start from the same weights and get the same finetune; the only
difference is the meta-training. Networks are `spatial.arch` at `spatial.input_size`.

    init        the study's initialisation (spatial.init): seeded random weights, or
                train.pretrain_fr's backbone; one file, identical for every SL run of the seed
    sl_<p>      supervised from init on the p % subset, then the finetune (sl_<p>_raw: before it)
    meta_<p>    Face2Exp, L_s + L_u + L_c + L_f, teacher AND student from sl_<p>_raw's
                weights, on the same subset, then the same finetune. The subset is Smp's
                balanced one (Table 4, AffectNet) or, with spatial.balanced false, a plain
                random p % (Table 5, RAF-DB)
    at spatial.ablation_fraction (Table 6), from sl_<p>_raw and finetuned the same way:
    abl_s       L_s only: the teacher of abl_su, whose teacher loss is L_s alone (not finetuned)
    abl_su      + L_u: the student learns from the teacher's pseudo labels (w_c = w_f = 0)
    abl_suc     + L_c (w_f = 0)
                + L_f is meta_<ablation fraction>
    mining      seed 001's centroid mining with sl_100_raw as the primitive model (audit only)

The finetune is train.finetune's (finetune_config, write_finetune_index: its subset lies
inside the p % subset); the rest of each recipe comes from train.supervised / train.meta.
Runs train in an order where sl_<p> comes before the runs that start from it. Weights live
in the job's work folder: a run's own are deleted once evaluated, sl_<p>_raw's once no later
run starts from them (the study keeps numbers, not models). A finished run leaves its
metrics there (results.json), so a killed job resumes at the run it was in.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from fer_pipeline.common.atomic import write_json
from fer_pipeline.studies.prefixed import PrefixedTracker
from fer_pipeline.studies import resume

log = logging.getLogger(__name__)

NO_CONSISTENCY_NO_FEEDBACK = {"s": 1.0, "c": 0.0, "f": 0.0}
NO_FEEDBACK = {"s": 1.0, "c": 1.0, "f": 0.0}
SUMMARY_KEYS = ("overall_accuracy", "mean_class_accuracy", "std_class_accuracy", "macro_f1", "per_class_accuracy")
STUDY_INIT = "init"            # the start of every SL run: spatial.init's weights
RAW_MODEL = "raw/model.pt"     # an SL run's network before the finetune: where its meta runs start


def percent(fraction: float) -> str:
    return f"{100 * fraction:g}"


def sl_name(fraction: float) -> str:
    return f"sl_{percent(fraction)}"


def meta_name(fraction: float) -> str:
    return f"meta_{percent(fraction)}"


@dataclass(frozen=True)
class StudyRun:
    """One trained model of the study and the networks it evaluates (result name -> bundle)."""

    name: str
    kind: str                                   # supervised | meta
    fraction: float = 1.0
    weights: dict = field(default_factory=dict)  # meta loss weights
    start: str = STUDY_INIT                     # whose weights it starts from: STUDY_INIT or an SL run's name
    evaluations: tuple[tuple[str, str], ...] = ()
    mine: bool = False                          # run the mining audit with its un-finetuned network

    @property
    def subset(self) -> str:
        """The labelled subset's name: one index file per fraction, shared by its SL and meta runs."""
        return f"labelled_{percent(self.fraction)}"


def meta_fractions(spatial: dict) -> list[float]:
    """Table 4's fractions, plus the ablation's when it is not one of them."""
    fractions = list(spatial["labeled_fractions"])
    if spatial["ablation_fraction"] not in fractions:
        fractions.append(spatial["ablation_fraction"])
    return fractions


def sl_run(fraction: float) -> StudyRun:
    name = sl_name(fraction)
    return StudyRun(name, "supervised", fraction, {}, STUDY_INIT,
                    ((f"{name}_raw", RAW_MODEL), (name, "model.pt")), mine=fraction == 1.0)


def meta_run(name: str, fraction: float, weights: dict, evaluations: tuple[tuple[str, str], ...] = ()) -> StudyRun:
    """A Face2Exp run whose teacher and student start from the SL run at its fraction."""
    return StudyRun(name, "meta", fraction, dict(weights), sl_name(fraction), evaluations or ((name, "model.pt"),))


def study_runs(spatial: dict, full_weights: dict) -> list[StudyRun]:
    """The runs of one seed, in the order they train: each SL run right before the runs
    that start from its weights, so those can go as soon as the last of them is done."""
    fractions = meta_fractions(spatial)
    runs = [] if 1.0 in fractions else [sl_run(1.0)]
    for p in fractions:
        runs += [sl_run(p), meta_run(meta_name(p), p, full_weights)]
        if p == spatial["ablation_fraction"]:
            runs += [meta_run("abl_su", p, NO_CONSISTENCY_NO_FEEDBACK,
                              (("abl_su", "model.pt"), ("abl_s", "teacher.pt"))),
                     meta_run("abl_suc", p, NO_FEEDBACK)]
    return runs


def ablation_rows(spatial: dict) -> list[tuple[str, str]]:
    """Table 6 rows: (label, result name)."""
    full = meta_name(spatial["ablation_fraction"])
    return [("L_s", "abl_s"), ("+ L_u", "abl_su"), ("+ L_c", "abl_suc"), ("+ L_f", full)]


def starts_needed(runs: list[StudyRun]) -> set[str]:
    """The start weights (STUDY_INIT, SL run names) that these runs train from."""
    return {run.start for run in runs}


def phase_done(phase_dir: Path) -> bool:
    """A training phase finished before a kill and its network is still there (both trainers
    write history.json after the weights; run_one deletes the weights before results.json)."""
    return (phase_dir / "history.json").exists() and (phase_dir / "model.pt").exists()


@dataclass
class SeedStudy:
    params: dict
    seed: int
    labeled_dir: str
    pool_dir: str
    out_dir: Path
    work_dir: Path
    mlflow: object = None
    init_weights: str | None = None   # spatial.init's file (fr_pretrained); None: seeded random weights

    @property
    def spatial(self) -> dict:
        return self.params["spatial"]

    def supervised_cfg(self) -> dict:
        cfg = dict(self.params["train"]["supervised"])
        cfg.update({"seed": self.seed, "dataset": self.params["train"]["meta"]["labeled"],
                    "class_set": self.params["train"]["meta"]["class_set"], "init": self.spatial["init"],
                    "arch": self.spatial["arch"], "input_size": self.spatial["input_size"], "epochs": self.spatial["sl_epochs"],
                    "balanced_sampling": False})
        return cfg

    def meta_cfg(self, fraction: float, weights: dict | None = None) -> dict:
        """train.meta at this study's settings and fraction: what the meta run trains with, and
        what the labelled subset and the finetune of every run at that fraction are drawn from."""
        cfg = dict(self.params["train"]["meta"])
        cfg.update({"seed": self.seed, "init": "supervised", "arch": self.spatial["arch"],
                    "input_size": self.spatial["input_size"],
                    "steps": self.spatial["meta_steps"], "labeled_fraction": fraction,
                    # The 100 % column is every label as drawn (the paper's SL column), not Smp's
                    # balanced cut of it (630 of the demo's 3 600 labels).
                    "balanced": self.spatial["balanced"] and fraction < 1.0,
                    "weights": dict(weights or {})})
        return cfg

    # ---- weights each run starts from ----

    def start_weights(self, start: str) -> Path:
        """The file a run starts from: the study's init, or an SL run's un-finetuned network."""
        if start == STUDY_INIT:
            return self.work_dir / "init.pt"
        return self.work_dir / start / RAW_MODEL

    def write_study_init(self) -> Path:
        """One seeded network (spatial.init's backbone, or random) every SL run starts from,
        so they differ only in their labels; the head is drawn here too, not per run."""
        import torch

        from fer_pipeline.common.labels import ClassSet
        from fer_pipeline.models.bundle import save_bundle
        from fer_pipeline.models.factory import build_model

        path = self.start_weights(STUDY_INIT)
        if path.exists():
            return path
        class_set = ClassSet.named(self.params["train"]["meta"]["class_set"])
        torch.manual_seed(self.seed)
        model = build_model(self.spatial["arch"], len(class_set), self.init_weights)
        save_bundle(model, self.spatial["arch"], class_set, self.spatial["input_size"], path)
        return path

    def release_weights(self, runs: list[StudyRun], pending: list[StudyRun]) -> None:
        """Delete the start weights (the init, the SL runs' un-finetuned networks) that no
        `pending` run trains from (the study keeps numbers, not models)."""
        starts = {STUDY_INIT} | {run.name for run in runs if run.kind == "supervised"}
        for start in starts - starts_needed(pending):
            self.start_weights(start).unlink(missing_ok=True)

    # ---- the labelled data of a fraction ----

    def subset_index_path(self, run: StudyRun) -> Path:
        return self.work_dir / "subsets" / f"{run.subset}.json"

    def subset_index(self, run: StudyRun) -> Path:
        """The index file of the run's labelled subset (labelled_subset on meta_cfg at its
        fraction), written once; the SL run trains on it, the meta run is checked against it."""
        path = self.subset_index_path(run)
        if not path.exists():
            from fer_pipeline.common.labels import ClassSet
            from fer_pipeline.data.datasets import FaceShardDataset
            from fer_pipeline.meta.smp import labelled_subset, write_index

            cfg = self.meta_cfg(run.fraction)
            labelled = FaceShardDataset(self.labeled_dir, "train", ClassSet.named(cfg["class_set"]), cfg["input_size"],
                                        augment=None)
            chosen = labelled_subset(labelled.targets.numpy(), cfg, len(labelled.class_set))
            write_index(path, labelled.sources, chosen, {"dataset": str(self.labeled_dir), "fraction": run.fraction,
                                                         "balanced": cfg["balanced"], "seed": cfg["seed"]})
        return path

    def check_same_subset(self, run: StudyRun, meta_index: Path) -> None:
        """The meta run draws its subset itself: it must be the SL run's, or the pair compares nothing."""
        from fer_pipeline.meta.smp import read_index

        if read_index(meta_index) != read_index(self.subset_index(run)):
            raise RuntimeError(f"{run.name}: its labelled subset ({meta_index}) is not the one {run.start} trained on "
                               f"({self.subset_index(run)}): the pair would not compare like with like")

    # ---- training ----

    def train(self, run: StudyRun, run_dir: Path) -> None:
        """Train the run's network (unless that phase finished before a kill), then finetune it."""
        start = self.start_weights(run.start)
        if run.start == STUDY_INIT:
            self.write_study_init()
        elif not start.exists():
            raise FileNotFoundError(f"{run.name} starts from {start}, which is gone: delete "
                                    f"{self.work_dir / run.start / 'results.json'} to retrain {run.start}")
        if run.kind == "supervised":
            if not phase_done(run_dir / "raw"):
                self.train_sl(run, run_dir / "raw", start)
            tuned_from = run_dir / RAW_MODEL
        else:
            if not phase_done(run_dir / "meta"):
                self.train_face2exp(run, run_dir / "meta", start)
            self.check_same_subset(run, run_dir / "meta" / "smp_index.json")
            shutil.copy(run_dir / "meta" / "teacher.pt", run_dir / "teacher.pt")
            tuned_from = run_dir / "meta" / "model.pt"
        self.finetune(run, run_dir, tuned_from)

    def train_sl(self, run: StudyRun, out: Path, start: Path) -> None:
        from fer_pipeline.train.supervised import train_supervised

        train_supervised(self.supervised_cfg(), self.labeled_dir, out, out.parent / "ckpt",
                         PrefixedTracker(self.mlflow, run.name), subset_index=self.subset_index(run),
                         init_weights=start)

    def train_face2exp(self, run: StudyRun, out: Path, start: Path) -> None:
        from fer_pipeline.meta.train import train_meta

        cfg = self.meta_cfg(run.fraction, run.weights)
        train_meta(cfg, self.labeled_dir, self.pool_dir, out, out.parent / "ckpt_meta", start, cfg["pool_truth"],
                   tracker=PrefixedTracker(self.mlflow, run.name))

    def finetune(self, run: StudyRun, run_dir: Path, start: Path) -> None:
        """train.finetune, identical for every run at a fraction: same images (inside the
        p % subset), epochs, rate and seed; writes the run's model.pt."""
        from fer_pipeline.train.finetune import finetune_config, write_finetune_index
        from fer_pipeline.train.supervised import train_supervised

        cfg, finetune = self.meta_cfg(run.fraction), self.params["train"]["finetune"]
        index = write_finetune_index(self.labeled_dir, cfg, finetune, run_dir)
        ft = finetune_config(self.params["train"]["supervised"], cfg, finetune, str(run_dir))
        train_supervised(ft, self.labeled_dir, run_dir, run_dir / "ckpt_finetune",
                         PrefixedTracker(self.mlflow, f"{run.name}.finetune"), subset_index=index, init_weights=start)

    # ---- one run, resumable ----

    def pending(self, runs: list[StudyRun]) -> list[StudyRun]:
        return resume.pending(self.work_dir, runs)

    def finished(self, run: StudyRun, needed_later: bool) -> bool:
        return resume.finished(self.work_dir, run.name, self.start_weights(run.name), needed_later)

    def run_one(self, run: StudyRun, needed_later: bool = False) -> dict:
        """Train (unless a killed job already finished it), evaluate, keep the small files and,
        when `needed_later`, the un-finetuned network later runs start from."""
        run_dir = self.work_dir / run.name
        done = run_dir / "results.json"
        if self.finished(run, needed_later):
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
        history = run_dir / ("meta/history.json" if run.kind == "meta" else "raw/history.json")
        out = {"run": run.name, "fraction": run.fraction, "start": run.start, "weights": run.weights,
               "results": results, "history": json.loads(history.read_text(encoding="utf-8")),
               "finetune_history": json.loads((run_dir / "history.json").read_text(encoding="utf-8")),
               # Mining needs the SL model (seed 001's primitive model) before its weights go.
               "mining": self.mine(run_dir / "raw") if run.mine else None,
               "seconds": round(time.time() - t0, 1)}
        keep = self.start_weights(run.name) if needed_later else None
        for weights_file in run_dir.rglob("*.pt"):
            if weights_file != keep:
                weights_file.unlink()  # ~5-100 MB each; the study keeps numbers, not models
        write_json(done, out)
        return out

    def mine(self, sl_model_dir: Path) -> dict | None:
        """Seed 001's mining audit with this seed's SL model (needs the pool's true expressions)."""
        from fer_pipeline.common.labels import ClassSet
        from fer_pipeline.meta.mining import mine_pseudo_labels, pool_truth

        cfg = self.params["mine"]
        truth = pool_truth(cfg["truth"], self.pool_dir, ClassSet.named(self.params["train"]["meta"]["class_set"]))
        if truth is None:
            return None
        mined_dir = self.work_dir / "mined"
        mine_pseudo_labels(sl_model_dir, self.labeled_dir, self.pool_dir, mined_dir, cfg["delta"],
                           cfg["audit_deltas"], cfg["batch_size"], self.params["prepare"]["row_group_size"], truth)
        audit = json.loads((mined_dir / "mining_audit.json").read_text(encoding="utf-8"))
        shutil.rmtree(mined_dir)
        return audit


def run_seed(params: dict, seed: int, labeled_dir: str, pool_dir: str, out_dir: str | Path,
             work_dir: str | Path, mlflow=None, init_weights: str | None = None) -> dict:
    """Every run of one seed, in plan order; `init_weights` is spatial.init's file (None: scratch)."""
    study = SeedStudy(params, seed, labeled_dir, pool_dir, Path(out_dir), Path(work_dir), mlflow, init_weights)
    runs = study_runs(params["spatial"], params["train"]["meta"]["weights"])
    results, histories, seconds, mining = {}, {}, {}, None
    out = Path(out_dir)
    for i, run in enumerate(runs):
        # Runs a killed job already finished need no weights: only the pending ones count.
        pending = study.pending(runs[i + 1:])
        log.info("seed %d: run %s (%s, %s %% labels, from %s)", seed, run.name, run.kind, percent(run.fraction),
                 run.start)
        done = study.run_one(run, needed_later=run.name in starts_needed(pending))
        study.release_weights(runs, pending)
        results.update(done["results"])
        histories[run.name] = done["history"]
        seconds[run.name] = done["seconds"]
        mining = done["mining"] or mining
        for name, metrics in done["results"].items():
            if mlflow is not None:
                mlflow.log_metrics({f"{name}.{k}": v for k, v in metrics.items() if isinstance(v, float)})
            shutil.copytree(study.work_dir / run.name / "eval" / name, out / name, dirs_exist_ok=True)
    summary = {"seed": seed, "init": params["spatial"]["init"], "results": results, "histories": histories,
               "seconds": seconds, "mining": mining}
    write_json(out / "results.json", summary)
    return summary
