"""`fer gather --dataset NAME`: join a dataset's prepared partitions into the prepared
dataset (+ manifest, rejects)."""

from pathlib import Path

from fer_pipeline.dag.lineage import get_stage
from fer_pipeline.data.prep.gather import gather_parts
from fer_pipeline.jobs._shared import check_dataset

STAGE = "gather"


def item(args, params: dict) -> str:
    check_dataset(params, "gather", args.dataset)
    return args.dataset


def run(job) -> dict:
    name = job.inst.item
    parts = [p.outs[0] for p in get_stage(job.params, "prepare").instances() if p.values["dataset"] == name]
    manifest = gather_parts(parts, job.inst.outs[0])
    job.tracker.log_metrics({"inputs": manifest["inputs"], "kept": manifest["kept"], "rejected": manifest["rejected"]})
    job.tracker.log_artifact(str(Path(job.inst.outs[0]) / "manifest.json"))
    return {"content_digest": manifest["content_digest"]}
