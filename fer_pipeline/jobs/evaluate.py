"""`fer evaluate --model NAME`: metrics.json, confusion matrix, per-class plot, predictions."""

from pathlib import Path

from fer_pipeline.dag.stages import evaluated_models, uses_facesynth
from fer_pipeline.dag.tracked_models import link_scored_model, scored_model
from fer_pipeline.eval.evaluate import evaluate

STAGE = "evaluate"
SPLITS = ("test",)


def item(args, params: dict) -> str:
    models = evaluated_models(params)
    if args.model not in models:
        raise SystemExit(f"fer evaluate: no model {args.model!r} to evaluate; known: {', '.join(models)}")
    return args.model


def run(job) -> None:
    params, name = job.params, job.inst.item
    model_dir, dataset_dir = job.inst.values["model_dir"], job.inst.values["dataset_dir"]
    out_dir = Path(job.inst.outs[0]).parent
    title = f"{name} ({'FaceSynth ' if uses_facesynth(params) else ''}{Path(dataset_dir).name} test split)"
    metrics = evaluate(model_dir, dataset_dir, out_dir, params["evaluate"]["batch_size"],
                       params["train"]["supervised"]["device"], title=title)
    mlflow = job.tracker
    # Which model this scored (training run, logged model, weights); the metrics are
    # logged against that model too, so its page in MLflow lists them.
    model_id = link_scored_model(mlflow, scored_model(model_dir), mlflow.active_run().info.experiment_id)
    mlflow.log_metrics({k: v for k, v in metrics.items() if isinstance(v, float)}, model_id=model_id)
    mlflow.log_metrics({f"class_acc.{c}": a for c, a in metrics["per_class_accuracy"].items() if a is not None},
                       model_id=model_id)
    job.log_artifacts(out_dir, ("metrics.json", "confusion_matrix.png", "per_class_accuracy.png", "predictions.csv"))
