"""`fer imbalance-study --seed S`: one seed of LNSU's Table 3 (Zhang et al., NeurIPS 2023)
and ABAW4-LSD's modules (Li et al., ECCV-W 2022) on long-tailed subsets.

Per imbalance factor IF (imbalance.factors): the long-tailed subset of the labelled train
split (train.supervised.dataset; LNSU 4.4, methods/imbalance_subset.py, drawn with the
seed), then one training of imbalance.arch per row of imbalance.rows, every one through
train/supervised.py: the row sets train.supervised's loss.kind / rac / rsl / upsampling /
deviation (ROWS), all else (optimiser, rate, augmentation, the loss options) is
train.supervised's, at imbalance.epochs / batch_size / input_size. Every network of a seed
starts from the same seeded weights (start_training seeds torch before building it), and
every row is scored on the untouched test split.

    ce, weighted_ce, label_smoothing, upsampling, ce_flip, rsl, rac, rac_rsl    one training each
    deviation   the CE row's network fine-tuned with the deviation module (deviation_epochs)
    ensemble    the CE models of imbalance.ensemble's archs, softmax averaged: a member of
                arch imbalance.arch is the CE row's model, the others train as member_<arch>

Resumable as studies/spatial.py: a finished run leaves results.json in the job's work
folder, so a killed job resumes at the run it was in; weights are deleted once no pending
run reads them (the study keeps numbers, not models).
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from fer_pipeline.common.atomic import write_json
from fer_pipeline.studies import resume
from fer_pipeline.studies.prefixed import PrefixedTracker
from fer_pipeline.studies.spatial import phase_done

log = logging.getLogger(__name__)

# Row -> the train.supervised keys it sets (on top of the study's defaults below).
ROWS = {
    "ce": {"loss": {"kind": "ce"}},
    "weighted_ce": {"loss": {"kind": "weighted_ce"}},
    "label_smoothing": {"loss": {"kind": "label_smoothing"}},
    "upsampling": {"loss": {"kind": "ce"}, "upsampling": "randaugment"},
    # LNSU's loss with both modules off: the cross-entropy of image + flip in one batch, the
    # control that sees what the LNSU rows see (twice the images per step), minus the methods.
    "ce_flip": {"loss": {"kind": "lnsu", "rac": False, "rsl": False}},
    "rsl": {"loss": {"kind": "lnsu", "rac": False, "rsl": True}},
    "rac": {"loss": {"kind": "lnsu", "rac": True, "rsl": False}},
    "rac_rsl": {"loss": {"kind": "lnsu", "rac": True, "rsl": True}},
}
# What no row inherits from train.supervised: the baseline row is plain CE.
STUDY_DEFAULTS = {"label_smoothing": 0.0, "upsampling": "none", "deviation": False, "balanced_sampling": False,
                  "init": "scratch"}
SUMMARY_KEYS = ("overall_accuracy", "mean_class_accuracy", "std_class_accuracy", "macro_f1", "per_class_accuracy")


def factor_name(factor: float) -> str:
    return f"if{factor:g}"


def run_name(factor: float, row: str) -> str:
    return f"{factor_name(factor)}_{row}"


@dataclass(frozen=True)
class StudyRun:
    """One training (or, with `members`, one ensemble of trained models) of the study."""

    name: str
    factor: float
    row: str                                   # a ROWS key, deviation, ensemble or member_<arch>
    arch: str = ""
    settings: dict = field(default_factory=dict)   # train.supervised keys the run sets
    epochs: int = 0
    start: str | None = None                   # the run whose model.pt it starts from (deviation)
    members: tuple[str, ...] = ()              # ensemble: the runs whose models it averages

    @property
    def trains(self) -> bool:
        return not self.members


def study_runs(imbalance: dict) -> list[StudyRun]:
    """The runs of one seed, factor by factor, each run after the runs it reads: the CE
    row first (deviation starts from it, the ensemble averages it), the ensemble last."""
    rows, arch, epochs = imbalance["rows"], imbalance["arch"], imbalance["epochs"]
    runs = []
    for f in imbalance["factors"]:
        ce = StudyRun(run_name(f, "ce"), f, "ce", arch, ROWS["ce"], epochs)
        if "ce" in rows or "deviation" in rows or ("ensemble" in rows and arch in imbalance["ensemble"]):
            runs.append(ce)  # also when only deviation or the ensemble reads it (not a table row then)
        runs += [StudyRun(run_name(f, row), f, row, arch, ROWS[row], epochs) for row in rows
                 if row in ROWS and row != "ce"]
        if "deviation" in rows:
            runs.append(StudyRun(run_name(f, "deviation"), f, "deviation", arch, {**ROWS["ce"], "deviation": True},
                                 imbalance["deviation_epochs"], start=ce.name))
        if "ensemble" in rows:
            members = [StudyRun(run_name(f, f"member_{a}"), f, f"member_{a}", a, ROWS["ce"], epochs)
                       for a in imbalance["ensemble"] if a != arch]
            runs += members
            names = {a: ce.name if a == arch else run_name(f, f"member_{a}") for a in imbalance["ensemble"]}
            runs.append(StudyRun(run_name(f, "ensemble"), f, "ensemble", members=tuple(names.values())))
    return runs


def weights_read_by(runs: list[StudyRun]) -> set[str]:
    """The runs whose model.pt these runs start from or average."""
    return {r.start for r in runs if r.start} | {m for r in runs for m in r.members}


@dataclass
class SeedStudy:
    params: dict
    seed: int
    dataset_dir: str
    out_dir: Path
    work_dir: Path
    mlflow: object = None
    init_weights: str | None = None   # imbalance.init's file (fr_pretrained); None: seeded random weights

    @property
    def imbalance(self) -> dict:
        return self.params["imbalance"]

    @property
    def supervised(self) -> dict:
        return self.params["train"]["supervised"]

    @cached_property
    def class_set(self):
        from fer_pipeline.common.labels import ClassSet

        return ClassSet.named(self.supervised["class_set"])

    def train_cfg(self, run: StudyRun) -> dict:
        """train.supervised with the study's sizes and the run's row switches."""
        cfg = copy.deepcopy(self.supervised)
        cfg.update(STUDY_DEFAULTS)
        cfg.update({"seed": self.seed, "arch": run.arch, "input_size": self.imbalance["input_size"],
                    "epochs": run.epochs, "batch_size": self.imbalance["batch_size"]})
        settings = copy.deepcopy(run.settings)
        cfg["loss"] = {**cfg["loss"], **settings.pop("loss", {})}
        cfg.update(settings)
        return cfg

    # ---- the long-tailed subset of a factor ----

    def subset_index(self, factor: float) -> Path:
        """The factor's subset of the train split (LNSU 4.4), written once per seed."""
        path = self.work_dir / "subsets" / f"{factor_name(factor)}.json"
        if path.exists():
            return path
        import numpy as np

        from fer_pipeline.data.datasets import FaceShardDataset
        from fer_pipeline.meta.smp import write_index
        from fer_pipeline.methods.imbalance_subset import imbalanced_subset, realised_factor

        train = FaceShardDataset(self.dataset_dir, "train", self.class_set, self.imbalance["input_size"])
        targets = train.targets.numpy()
        chosen = imbalanced_subset(targets, factor, self.seed, len(self.class_set))
        classes = self.class_set.classes
        kept = np.bincount(targets[chosen], minlength=len(classes)).tolist()
        write_index(path, train.sources, chosen, {
            "dataset": str(self.dataset_dir), "split": "train", "imbalance_factor": factor, "seed": self.seed,
            "realised_imbalance_factor": realised_factor(kept),
            "per_class_full": dict(zip(classes, np.bincount(targets, minlength=len(classes)).tolist())),
            "per_class": dict(zip(classes, kept))})
        return path

    def subset_info(self, factor: float) -> dict:
        data = json.loads(self.subset_index(factor).read_text(encoding="utf-8"))
        return {k: data[k] for k in ("imbalance_factor", "realised_imbalance_factor", "count", "per_class")}

    # ---- training and evaluation ----

    def model_path(self, name: str) -> Path:
        return self.work_dir / name / "model.pt"

    def train(self, run: StudyRun, run_dir: Path) -> None:
        from fer_pipeline.train.supervised import train_supervised

        start = self.model_path(run.start) if run.start else self.initial_weights(run)
        if run.start and not start.exists():
            raise FileNotFoundError(f"{run.name} starts from {start}, which is gone: delete "
                                    f"{self.work_dir / run.start / 'results.json'} to retrain {run.start}")
        if not phase_done(run_dir):
            train_supervised(self.train_cfg(run), self.dataset_dir, run_dir, run_dir / "ckpt",
                             PrefixedTracker(self.mlflow, run.name), subset_index=self.subset_index(run.factor),
                             init_weights=start)

    def initial_weights(self, run: StudyRun) -> str | None:
        """imbalance.init's backbone for networks of its arch; an ensemble member of another
        arch has no pretrained weights here and starts from seeded random ones."""
        return self.init_weights if run.arch == self.imbalance["arch"] else None

    @cached_property
    def test_set(self):
        from fer_pipeline.data.datasets import FaceShardDataset

        return FaceShardDataset(self.dataset_dir, "test", self.class_set, self.imbalance["input_size"])

    def evaluate(self, run: StudyRun) -> dict:
        """The run's network (or its members' averaged softmax) on the untouched test split."""
        from fer_pipeline.eval.evaluate import predict
        from fer_pipeline.eval.metrics import classification_metrics
        from fer_pipeline.methods.ensemble import SoftmaxEnsemble
        from fer_pipeline.models.bundle import load_bundle
        from fer_pipeline.train.device import pick_device

        bundles = [self.work_dir / m for m in run.members] if run.members else [self.work_dir / run.name]
        models = [load_bundle(folder)[0] for folder in bundles]
        model = SoftmaxEnsemble(models) if run.members else models[0]
        preds = predict(model, self.test_set, self.params["evaluate"]["batch_size"],
                        pick_device(self.supervised["device"]))
        metrics = classification_metrics(self.test_set.targets.numpy(), preds.numpy(), list(self.class_set.classes))
        return {k: metrics[k] for k in SUMMARY_KEYS}

    # ---- one run, resumable ----

    def pending(self, runs: list[StudyRun]) -> list[StudyRun]:
        return resume.pending(self.work_dir, runs)

    def finished(self, run: StudyRun, needed_later: bool) -> bool:
        return resume.finished(self.work_dir, run.name, self.model_path(run.name), needed_later)

    def run_one(self, run: StudyRun, needed_later: bool = False) -> dict:
        run_dir = self.work_dir / run.name
        done = run_dir / "results.json"
        if self.finished(run, needed_later):
            log.info("%s: finished earlier in this job's work folder, reused", run.name)
            return json.loads(done.read_text(encoding="utf-8"))
        t0 = time.time()
        if run.trains:
            self.train(run, run_dir)
        results = self.evaluate(run)
        history = json.loads((run_dir / "history.json").read_text(encoding="utf-8")) if run.trains else []
        out = {"run": run.name, "factor": run.factor, "row": run.row, "arch": run.arch, "settings": run.settings,
               "start": run.start, "members": list(run.members), "results": results, "history": history,
               "seconds": round(time.time() - t0, 1)}
        run_dir.mkdir(parents=True, exist_ok=True)  # an ensemble trains nothing: its folder holds only results
        keep = self.model_path(run.name) if needed_later else None
        for weights_file in run_dir.rglob("*.pt"):
            if weights_file != keep:
                weights_file.unlink()  # the study keeps numbers, not models
        write_json(done, out)
        return out

    def release(self, runs: list[StudyRun], pending: list[StudyRun]) -> None:
        """Delete the models no pending run reads."""
        for run in runs:
            if run.trains and run.name not in weights_read_by(pending):
                self.model_path(run.name).unlink(missing_ok=True)


def run_seed(params: dict, seed: int, dataset_dir: str, out_dir: str | Path, work_dir: str | Path,
             mlflow=None, init_weights: str | None = None) -> dict:
    """Every run of one seed, in plan order; writes `<out_dir>/results.json`.
    `init_weights` is imbalance.init's file (None: every network from seeded random weights)."""
    study = SeedStudy(params, seed, dataset_dir, Path(out_dir), Path(work_dir), mlflow, init_weights)
    runs = study_runs(params["imbalance"])
    results, histories, seconds = {}, {}, {}
    for i, run in enumerate(runs):
        pending = study.pending(runs[i + 1:])
        log.info("seed %d: run %s (%d of %d)", seed, run.name, i + 1, len(runs))
        done = study.run_one(run, needed_later=run.name in weights_read_by(pending))
        study.release(runs, pending)
        results[run.name], histories[run.name], seconds[run.name] = done["results"], done["history"], done["seconds"]
        if mlflow is not None:
            mlflow.log_metrics({f"{run.name}.{k}": v for k, v in done["results"].items() if isinstance(v, float)})
    summary = {"seed": seed, "arch": params["imbalance"]["arch"], "init": params["imbalance"]["init"],
               "subsets": {factor_name(f): study.subset_info(f) for f in params["imbalance"]["factors"]},
               "results": results, "histories": histories, "seconds": seconds}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(out_dir) / "results.json", summary)
    return summary
