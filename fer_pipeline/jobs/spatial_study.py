"""`fer spatial-study --seed S`: one seed of Face2Exp's Tables 4 and 6."""

from pathlib import Path

from fer_pipeline.dag.stages.studies import study_init_weights
from fer_pipeline.studies.spatial import run_seed

STAGE = "spatial_study"


def item(args, params: dict) -> str:
    if args.seed not in params["spatial"]["seeds"]:
        raise SystemExit(f"fer spatial-study: seed {args.seed} is not in params.yaml spatial.seeds "
                         f"{params['spatial']['seeds']}")
    return str(args.seed)


def run(job) -> None:
    params = job.params
    meta, prep = params["train"]["meta"], params["prepare"]["out_dir"]
    out_dir = Path(job.inst.outs[0])
    run_seed(params, job.args.seed, f"{prep}/{meta['labeled']}", f"{prep}/{meta['pool']}", out_dir, job.work_dir(),
             job.tracker, init_weights=study_init_weights(params))
    job.tracker.log_artifact(str(out_dir / "results.json"))
