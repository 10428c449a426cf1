"""Trained networks as MLflow logged models, and the link from an evaluation to the one it
scored.

A training job logs its network (`mlflow.pytorch.log_model`, with a one-image input
example and the signature inferred from it) and records the model's id, its run's id and
the weights' digest in its stamp (dag/runner.py). An evaluation reads that stamp from
the folder it scores and says in its run which model, run and weights it scored.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fer_pipeline.dag.fingerprint import tree_fingerprint
from fer_pipeline.dag.provenance import read_stamp

log = logging.getLogger(__name__)


def log_network(mlflow, model, input_size: int, weights: Path, name: str = "model") -> dict:
    """Log `model` (a torch module taking N x 3 x size x size images) to the active run as
    the logged model `name`; returns what the stamp records about it."""
    import numpy as np

    example = np.zeros((1, 3, input_size, input_size), dtype=np.float32)  # one image: cheap to store and check
    return log_module(mlflow, model, example, weights, name)


def log_module(mlflow, model, example, weights: Path, name: str = "model") -> dict:
    """Log `model` (a torch module taking one float32 array shaped like `example`) as the
    logged model `name`, with `example` as its input example; returns what the stamp records."""
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.from_numpy(example))
    digest = tree_fingerprint(weights)
    info = mlflow.pytorch.log_model(
        model, name=name, input_example=example, signature=infer_signature(example, output.numpy()),
        # Given, not inferred: inferring the requirements imports the model in a subprocess.
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        params={"weights": str(weights), "weights_digest": digest})
    return {"model_id": info.model_id, "weights": str(weights), "weights_digest": digest}


def log_bundle(mlflow, model_dir: str | Path, bundle: str = "model.pt", name: str = "model") -> dict:
    """The inference bundle in `model_dir` (models/bundle.py) as a logged model."""
    from fer_pipeline.models.bundle import load_bundle

    model, meta = load_bundle(model_dir, bundle)
    return log_network(mlflow, model, meta["input_size"], Path(model_dir) / bundle, name)


def scored_model(model_dir: str | Path, bundle: str = "model.pt") -> dict:
    """What an evaluation of `model_dir` records about the model it scores: the training
    job, its MLflow run and logged model (from the job's stamp; absent when the job ran
    before runs recorded them) and the weights' digest (always: from the bytes)."""
    stamp = read_stamp(Path(model_dir) / "_stage.json") or {}
    tracked = stamp.get("mlflow", {})
    logged = tracked.get("models", {}).get("model", {})
    found = {"model.dir": str(model_dir), "model.job": stamp.get("job", "unknown"),
             "model.training_run_id": tracked.get("run_id", "unknown"),
             "model.logged_model_id": logged.get("model_id", "unknown"),
             "model.weights_digest": tree_fingerprint(Path(model_dir) / bundle)}
    if logged and logged.get("weights_digest") != found["model.weights_digest"]:
        log.warning("%s/%s is not the file its training run logged: its logged model is not linked", model_dir,
                    bundle)
        found["model.logged_model_id"] = "unknown"
    return found


def link_scored_model(mlflow, scored: dict, experiment_id: str) -> str | None:
    """Params, tags and description of the evaluation's run naming the model it scored,
    and the logged model as the run's model input; returns the model id to log the
    metrics against (None: the model is not in this store)."""
    from mlflow.entities import LoggedModelInput

    mlflow.log_params(scored)
    mlflow.set_tags({f"scored.{k.removeprefix('model.')}": v for k, v in scored.items()})
    model_id = scored["model.logged_model_id"]
    run_id = scored["model.training_run_id"]
    if run_id != "unknown":
        mlflow.set_tag("mlflow.note.content",
                       f"Scores the model trained by [{scored['model.job']}](#/experiments/{experiment_id}/runs/{run_id})"
                       f" (weights `{scored['model.weights_digest']}`).")
    if model_id == "unknown":
        return None
    try:
        mlflow.get_logged_model(model_id)
    except Exception:  # MlflowException: logged to another store (e.g. models pulled with `dvc pull`)
        return None
    mlflow.log_input(model=LoggedModelInput(model_id))
    return model_id
