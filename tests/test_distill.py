"""Seed 001 in the imbalance target: the stages (distill, train_auxiliary@<model>,
cross_evaluate@<model>-on-<test set>, the report's new inputs), the distilled images' grid,
the cross-dataset label mapping, the auxiliary sampler, and every new job function end to
end on tiny 16 px data (seconds)."""

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from fer_pipeline.common import params as params_mod
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.dag.lineage import get_instance, upstream
from fer_pipeline.dag.runner import Job
from fer_pipeline.dag.stages.studies import cross_metrics_files, distill_stages, stages as study_stages
from fer_pipeline.data.auxiliary import MixedSampler, mined_pool_sources
from fer_pipeline.data.datasets import MEAN, STD
from fer_pipeline.data.prep.shards import ShardWriter
from fer_pipeline.reporting.distilled_grid import grid_array, to_rgb
from fer_pipeline.studies.cross_dataset import ScoredLogits, cross_evaluate, logit_columns, scored_classes

BASIC7 = ClassSet.named("basic7")


# ---- the stages ----

def test_distill_stages_are_in_the_imbalance_target(params):
    by_name = {s.name: s for s in study_stages(params)}
    distill, train, cross = by_name["distill"], by_name["train_auxiliary"], by_name["cross_evaluate"]
    report = by_name["report_imbalance"]
    assert {distill.group, train.group, cross.group} == {"imbalance"}
    prep, out = params["prepare"]["out_dir"], params["distill"]["out_dir"]
    assert distill.deps == (f"{prep}/{params['mine']['out_name']}",)
    assert distill.plots == (f"{params['imbalance']['report_dir']}/distilled_images.png",)
    assert train.items == {
        "rafdb": {"dataset_dir": f"{prep}/rafdb", "aux_dir": f"{prep}/rafdb"},
        "rafdb_mined": {"dataset_dir": f"{prep}/rafdb", "aux_dir": f"{prep}/ms1m_mined"},
        "rafdb_distilled": {"dataset_dir": f"{prep}/rafdb", "aux_dir": f"{out}/distilled"},
        "affectnet": {"dataset_dir": f"{prep}/affectnet", "aux_dir": f"{prep}/affectnet"},
        "affectnet_distilled": {"dataset_dir": f"{prep}/affectnet", "aux_dir": f"{out}/distilled"}}
    assert cross.items["rafdb_distilled-on-affectnet"] == {
        "model": "rafdb_distilled", "test_set": "affectnet", "model_dir": f"{out}/models/rafdb_distilled",
        "test_dir": f"{prep}/affectnet"}
    assert len(cross.items) == 5 * 2
    # The report reads the seeds first (the missing input it names), then seed 001's outputs.
    seeds = tuple(f"{params['imbalance']['out_dir']}/seed{s}" for s in params["imbalance"]["seeds"])
    assert report.deps == seeds + (f"{out}/distilled",) + tuple(cross_metrics_files(params))
    inst = get_instance(params, "cross_evaluate", "affectnet-on-rafdb")
    assert inst.cmd == "fer cross-evaluate --model affectnet --test-set rafdb --log-file " \
                       "logs/cross_evaluate/affectnet-on-rafdb.log"
    assert inst.outs == [f"{out}/eval/affectnet/rafdb/metrics.json"]
    # Each model's job is its own: its params key is its own entry of distill.models.
    assert "distill.models.rafdb_mined" in get_instance(params, "train_auxiliary", "rafdb_mined").params
    ups = {u.name for u in upstream(params, get_instance(params, "train_auxiliary", "rafdb_distilled"))}
    assert {"distill", "mine_pseudo"} <= ups


def test_a_dataset_adds_its_jobs_by_params_alone(params):
    params["datasets"]["rafdb2"] = dict(params["datasets"]["rafdb"])
    params["distill"]["models"]["rafdb2"] = {"dataset": "rafdb2", "aux": "none"}
    params["distill"]["test_sets"].append("rafdb2")
    params_mod.validate(params, "test")
    by_name = {s.name: s for s in distill_stages(params)}
    assert len(by_name["train_auxiliary"].items) == 6 and len(by_name["cross_evaluate"].items) == 6 * 3
    assert "rafdb2-on-affectnet" in by_name["cross_evaluate"].items
    assert "rafdb-on-rafdb2" in by_name["cross_evaluate"].items


def test_a_test_set_outside_datasets_is_named(params):
    params["distill"]["test_sets"].append("ck_plus")
    with pytest.raises(params_mod.ParamsError, match="key 'distill.test_sets' names dataset 'ck_plus'"):
        params_mod.validate(params, "test")


# ---- the grid ----

def test_grid_tiles_are_the_denormalised_images_one_column_per_class():
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (4, 3, 5, 6), generator=gen, dtype=torch.uint8)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    normalised = (rgb.float() / 255 - mean) / std
    back = to_rgb(normalised)
    assert np.abs(back.astype(int) - rgb.permute(0, 2, 3, 1).numpy().astype(int)).max() <= 1
    assert to_rgb(torch.full((1, 3, 2, 2), 50.0)).max() == 255, "learned pixels past the range are clipped"
    labels = torch.tensor([2, 0, 2, 1])
    grid = grid_array(normalised, labels, num_classes=4, pad=2)
    assert grid.shape == (2 * (5 + 2) + 2, 4 * (6 + 2) + 2, 3), "a column per class, a row per image of a class"
    tile = lambda r, c: grid[2 + r * 7: 2 + r * 7 + 5, 2 + c * 8: 2 + c * 8 + 6]  # noqa: E731
    assert np.array_equal(tile(0, 0), back[1]) and np.array_equal(tile(0, 1), back[3])
    assert np.array_equal(tile(0, 2), back[0]) and np.array_equal(tile(1, 2), back[2])
    assert (tile(0, 3) == 255).all() and (tile(1, 0) == 255).all(), "no image: a white tile"


# ---- the cross-dataset label mapping ----

def test_scored_classes_and_logit_columns_by_name():
    model_classes = ("surprise", "neutral", "contempt", "happiness", "sadness", "fear", "disgust", "anger")
    scored = scored_classes(model_classes, BASIC7)
    assert scored.classes == BASIC7.classes and scored.name == "basic7"
    assert logit_columns(model_classes, scored).tolist() == [1, 3, 4, 0, 5, 6, 7]
    logits = torch.arange(8.0).repeat(2, 1)
    logits[0, 2] = 100.0  # contempt: not a scored class, never the prediction
    wrapped = ScoredLogits(torch.nn.Identity(), logit_columns(model_classes, scored))
    assert wrapped(logits)[1].tolist() == [1.0, 3.0, 4.0, 0.0, 5.0, 6.0, 7.0]
    assert wrapped(logits).argmax(1).tolist() == [6, 6]
    partial = scored_classes(("neutral", "happiness", "anger"), BASIC7)
    assert partial.classes == ("neutral", "happiness", "anger") and partial.name == "basic7_shared"
    with pytest.raises(ValueError, match="predicts none"):
        scored_classes(("other",), BASIC7)


# ---- the sampler ----

def test_mixed_sampler_draws_the_share_from_the_auxiliary_set():
    sampler = MixedSampler(n_labelled=40, n_auxiliary=3, share=0.25, seed=1, length=40)
    order = list(sampler)
    assert len(order) == len(sampler) == 40
    aux = [i for i in order if i >= 40]
    own = [i for i in order if i < 40]
    assert len(aux) == 10 and set(aux) == {40, 41, 42}, "a set smaller than its share repeats"
    assert sorted(aux).count(40) in (3, 4) and len(set(own)) == 30
    assert order == list(sampler), "a function of (seed, epoch)"
    sampler.set_epoch(1)
    assert order != list(sampler)
    # The epoch's length, not the labelled split's size, fixes the steps: a small split repeats.
    small = list(MixedSampler(7, 0, 0.0, 0, length=16))
    counts = sorted(small.count(i) for i in range(7))
    assert len(small) == 16 and counts == [2, 2, 2, 2, 2, 3, 3], "two whole passes, then two of a third"
    assert sorted(MixedSampler(7, 0, 0.0, 0, length=7)) == list(range(7))
    with pytest.raises(ValueError):
        MixedSampler(7, 0, 0.5, 0, length=7)


# ---- the jobs, end to end on tiny data ----

CLASSES = BASIC7.classes


def _write(out, rows, manifest=None):
    out.mkdir(parents=True)
    writer = ShardWriter(out, rows_per_shard=500, row_group_size=64)
    gen = np.random.default_rng(len(rows))
    for label, split, source in rows:
        # A class-coloured face: the tiny networks have something to learn.
        image = np.full((24, 24, 3), 30 * CLASSES.index(label) if label in CLASSES else 250, np.uint8)
        image = np.clip(image + gen.integers(0, 40, image.shape), 0, 255).astype(np.uint8)
        ok, jpeg = cv2.imencode(".jpg", image)
        assert ok
        writer.add({"image": jpeg.tobytes(), "label": label, "identity": None, "split": split, "source": source,
                    "landmarks5": None, "video": None, "frame": None})
    writer.close()
    (out / "manifest.json").write_text(json.dumps(manifest or {"dataset": out.name}))


@pytest.fixture
def tiny_project(tmp_path, params, monkeypatch):
    """data/prepared/{rafdb, affectnet, ms1m_mined} and the imbalance seeds' folders (the
    report's other inputs) in a folder the jobs run in."""
    prep = tmp_path / params["prepare"]["out_dir"]
    rafdb = [(c, split, f"{split}/{c}_{k}.jpg") for c in CLASSES for split, n in (("train", 3), ("test", 1))
             for k in range(n)]
    _write(prep / "rafdb", rafdb)
    affectnet = [(c, split, f"{split}/{c}_{k}.jpg") for c in CLASSES + ("contempt",)
                 for split, n in (("train", 2), ("test", 1)) for k in range(n)]
    _write(prep / "affectnet", affectnet)
    # mine_pseudo with include_labeled: the labelled rows (test too) under "rafdb/", then pool faces.
    mined = [(c, split, f"rafdb/{s}") for c, split, s in rafdb]
    mined += [(c, "train", f"pool/{c}_{k}.jpg") for c in CLASSES for k in range(4)]
    _write(prep / "ms1m_mined", mined, {"dataset": "ms1m_mined", "labeled_rows_from": f"{prep}/rafdb"})
    params["imbalance"]["seeds"] = [0, 1]
    params["distill"].update({"input_size": 16, "algorithm": {**params["distill"]["algorithm"], "steps": 3,
                                                             "batch_size": 8, "held_out_inits": 2},
                              "train": {"epochs": 1, "epoch_size": 20, "batch_size": 8, "aux_share": 0.25}})
    params["train"]["supervised"]["num_workers"] = 0
    monkeypatch.chdir(tmp_path)
    return params


class Tracker:
    def __init__(self):
        self.metrics, self.artifacts = {}, []

    def log_metrics(self, metrics, step=None):
        self.metrics.update(metrics)

    def log_artifact(self, path, artifact_path=None):
        self.artifacts.append(str(path))


def run_job(params, module, item=None, **args):
    """A job's `run` as dag/runner.py calls it (no stamp, no MLflow: a recording tracker)."""
    mod = importlib.import_module(f"fer_pipeline.jobs.{module}")
    job = Job(params, SimpleNamespace(**args), get_instance(params, mod.STAGE, item), Tracker(), {})
    mod.run(job)
    return job


def test_mined_pool_faces_leave_out_the_labelled_rows(tiny_project):
    pool = mined_pool_sources("data/prepared/ms1m_mined")
    assert len(pool) == 7 * 4 and all(s.startswith("pool/") for s in pool)


def test_every_job_end_to_end(tiny_project):
    params = tiny_project
    out, report_dir = params["distill"]["out_dir"], params["imbalance"]["report_dir"]
    job = run_job(params, "distill")
    info = json.loads(Path(f"{out}/distilled/distilled.json").read_text())
    assert info["images"] == 7 and info["mined_faces"] == 28 and info["classes"] == list(CLASSES) and info["eta"] > 0
    saved = torch.load(f"{out}/distilled/distilled.pt", weights_only=True)
    assert saved["images"].shape == (7, 3, 16, 16) and len(saved["history"]) == 3
    assert Path(f"{report_dir}/distilled_images.png").stat().st_size > 0
    assert "held_out_loss_distilled" in job.tracker.metrics
    assert any(a.endswith("grid.png") for a in job.tracker.artifacts)

    for model in params["distill"]["models"]:
        run_job(params, "train_auxiliary", model, model=model)
        for seed in (0, 1):
            history = json.loads(Path(f"{out}/models/{model}/seed{seed}/history.json").read_text())
            labelled = 21 if model.startswith("rafdb") else 14
            assert history["labelled_images"] == labelled and history["steps"] == 20 // 8, "same steps for every model"
            assert history["auxiliary_per_epoch"] == (0 if history["auxiliary"] == "none" else 5)
    assert json.loads(Path(f"{out}/models/rafdb_mined/seed0/history.json").read_text())["auxiliary_images"] == 28
    assert json.loads(Path(f"{out}/models/rafdb_distilled/seed0/history.json").read_text())["auxiliary_images"] == 7

    for model in params["distill"]["models"]:
        for test in params["distill"]["test_sets"]:
            run_job(params, "cross_evaluate", f"{model}-on-{test}", model=model, test_set=test)
    cell = json.loads(Path(f"{out}/eval/rafdb_distilled/affectnet/metrics.json").read_text())
    assert list(cell["seeds"]) == ["seed0", "seed1"]
    assert cell["seeds"]["seed0"]["n"] == 7, "AffectNet's contempt test row is outside basic7: dropped"
    assert cell["seeds"]["seed0"]["classes"] == list(CLASSES)

    for seed in params["imbalance"]["seeds"]:  # the imbalance study's seeds, as run_seed writes them
        Path(f"{params['imbalance']['out_dir']}/seed{seed}").mkdir(parents=True)
        results = {f"if{f:g}_{row}": {"overall_accuracy": 0.5, "mean_class_accuracy": 0.4}
                   for f in params["imbalance"]["factors"] for row in params["imbalance"]["rows"]}
        Path(f"{params['imbalance']['out_dir']}/seed{seed}/results.json").write_text(json.dumps({
            "seed": seed, "results": results, "seconds": {},
            "subsets": {f"if{f:g}": {"realised_imbalance_factor": f, "count": 10}
                        for f in params["imbalance"]["factors"]}}))
    job = run_job(params, "report_imbalance")
    distillation = Path(f"{report_dir}/distillation.md").read_text()
    assert "every model the same 2 steps (1 x 20 samples in batches of 8)" in distillation
    rows = [line for line in distillation.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0] for r in rows[1:]] == ["| rafdb train", "| rafdb train + mined auxiliary set",
                                                     "| rafdb train + distilled images", "| affectnet train",
                                                     "| affectnet train + distilled images"]
    per_seed = [cell["seeds"][s]["mean_class_accuracy"] for s in ("seed0", "seed1")]
    tables = json.loads(Path(f"{report_dir}/distill_tables.json").read_text())
    stat = tables["matrix"]["rafdb_distilled"]["affectnet"]["mean_class_accuracy"]
    assert stat["mean"] == pytest.approx(100 * np.mean(per_seed)) and stat["sd"] == pytest.approx(
        100 * np.std(per_seed, ddof=1))
    cross = Path(f"{report_dir}/cross_dataset.md").read_text()
    assert "| trained on | rafdb test | affectnet test |" in cross
    assert f"{stat['mean']:.2f} ± {stat['sd']:.2f}" in cross
    headline = json.loads(Path(f"{report_dir}/distill_headline.json").read_text())
    assert headline["rafdb_distilled.affectnet.mean_class_accuracy"] == pytest.approx(stat["mean"])
    for name in ("distillation.png", "cross_dataset.png", "table3.md"):
        assert Path(f"{report_dir}/{name}").stat().st_size > 0
    assert job.tracker.metrics["distill.rafdb.rafdb.overall_accuracy"] == pytest.approx(
        tables["matrix"]["rafdb"]["rafdb"]["overall_accuracy"]["mean"])


def test_cross_evaluate_scores_a_contempt_model_in_basic7(tiny_project, tmp_path):
    from fer_pipeline.models.bundle import save_bundle
    from fer_pipeline.models.factory import build_model

    basic8 = ClassSet.named("basic8_contempt")
    save_bundle(build_model("small_cnn", 8), "small_cnn", basic8, 16, tmp_path / "m8" / "model.pt")
    metrics = cross_evaluate(tmp_path / "m8", "data/prepared/affectnet", BASIC7, 64, "cpu")
    assert metrics["n"] == 7 and metrics["classes"] == list(BASIC7.classes) and len(metrics["model_classes"]) == 8


# ---- Algorithm 1's update with Adam (distill.algorithm.optimizer) ----

def test_adam_update_lowers_the_outer_loss_on_a_tiny_problem():
    from fer_pipeline.methods.distillation import DistillConfig, distill, initial_images, outer_loss

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(40)
    images = (torch.randn(3, 8, generator=gen) * 3)[labels] + torch.randn(120, 8, generator=gen)

    def make_model():
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    cfg = DistillConfig(steps=20, inits_per_step=2, batch_size=32, lr=0.1, eta0=0.05, optimizer="adam")
    start, start_labels = initial_images(images, 3, cfg)
    held_out = range(1000, 1008)
    before = outer_loss(make_model, start, start_labels, cfg.eta0, images, labels, held_out)
    result = distill(make_model, images, labels, 3, cfg)
    assert outer_loss(make_model, result.images, result.labels, result.eta, images, labels, held_out) < 0.8 * before
    with pytest.raises(ValueError, match="optimizer"):
        distill(make_model, images, labels, 3, DistillConfig(optimizer="rmsprop"))
