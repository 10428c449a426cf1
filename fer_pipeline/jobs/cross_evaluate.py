"""`fer cross-evaluate --model NAME --test-set DATASET`: every seed's network of one model of
params `distill.models` on one labelled dataset's test split, in distill.class_set."""

from pathlib import Path

from fer_pipeline.common.atomic import write_json
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.dag.stages.studies import cross_pair
from fer_pipeline.studies.cross_dataset import cross_evaluate

STAGE = "cross_evaluate"
SUMMARY = ("overall_accuracy", "mean_class_accuracy", "macro_f1")


def item(args, params: dict) -> str:
    distill = params["distill"]
    if args.model not in distill["models"] or args.test_set not in distill["test_sets"]:
        raise SystemExit(f"fer cross-evaluate: model {args.model!r} / test set {args.test_set!r} not in params.yaml "
                         f"distill.models ({', '.join(distill['models'])}) / distill.test_sets "
                         f"({', '.join(distill['test_sets'])})")
    return cross_pair(args.model, args.test_set)


def run(job) -> None:
    params, values = job.params, job.inst.values
    eval_set = ClassSet.named(params["distill"]["class_set"])
    per_seed = {}
    for seed in params["imbalance"]["seeds"]:
        per_seed[f"seed{seed}"] = cross_evaluate(Path(values["model_dir"]) / f"seed{seed}", values["test_dir"],
                                                 eval_set, params["evaluate"]["batch_size"],
                                                 params["train"]["supervised"]["device"])
        job.tracker.log_metrics({f"seed{seed}.{k}": per_seed[f"seed{seed}"][k] for k in SUMMARY})
    out = Path(job.inst.outs[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, {"model": values["model"], "test_set": values["test_set"],
                     "trained_on": params["distill"]["models"][values["model"]], "seeds": per_seed})
    job.tracker.log_artifact(str(out))
