"""`fer train-auxiliary --model NAME`: one model of params `distill.models` (a labelled train
split + its auxiliary set), one network per seed of imbalance.seeds."""

from pathlib import Path

from fer_pipeline.studies.auxiliary import train_model_seeds

STAGE = "train_auxiliary"


def item(args, params: dict) -> str:
    models = params["distill"]["models"]
    if args.model not in models:
        raise SystemExit(f"fer train-auxiliary: no model {args.model!r} in params.yaml distill.models; known: "
                         f"{', '.join(models)}")
    return args.model


def run(job) -> dict:
    out_dir = Path(job.inst.outs[0])
    seconds = train_model_seeds(job.params, job.inst.item, job.inst.values["dataset_dir"], job.inst.values["aux_dir"],
                                out_dir, job.tracker)
    job.tracker.log_metrics({f"{seed}.seconds": s for seed, s in seconds.items()})
    for seed_dir in sorted(out_dir.glob("seed*")):
        job.tracker.log_artifact(str(seed_dir / "history.json"), f"{seed_dir.name}")
    return {"seconds": seconds}
