"""`fer imbalance-study --seed S`: one seed of LNSU's Table 3 and ABAW4-LSD's modules on
long-tailed subsets."""

from pathlib import Path

from fer_pipeline.dag.stages.studies import study_init_weights
from fer_pipeline.studies.imbalance import run_seed

STAGE = "imbalance_study"


def item(args, params: dict) -> str:
    if args.seed not in params["imbalance"]["seeds"]:
        raise SystemExit(f"fer imbalance-study: seed {args.seed} is not in params.yaml imbalance.seeds "
                         f"{params['imbalance']['seeds']}")
    return str(args.seed)


def run(job) -> None:
    out_dir = Path(job.inst.outs[0])
    run_seed(job.params, job.args.seed, job.inst.deps[0], out_dir, job.work_dir(), job.tracker,
             init_weights=study_init_weights(job.params, "imbalance"))
    job.tracker.log_artifact(str(out_dir / "results.json"))
