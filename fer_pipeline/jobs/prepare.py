"""`fer prepare --dataset NAME --part K`: one input partition of a dataset -> aligned
face crops in Parquet shards (+ manifest, rejects)."""

from pathlib import Path

from fer_pipeline.data.io.layout import ReadOptions
from fer_pipeline.data.io.partition import Partition
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.jobs._shared import check_dataset

STAGE = "prepare"


def item(args, params: dict) -> str:
    check_dataset(params, "prepare", args.dataset)
    parts = params["datasets"][args.dataset]["parts"]
    if not 0 <= args.part < parts:
        raise SystemExit(f"fer prepare: --part {args.part} but datasets.{args.dataset}.parts is {parts} "
                         f"(parts are 0..{parts - 1})")
    return f"{args.dataset}-{args.part}"


def run(job) -> dict:
    name = job.inst.values["dataset"]
    ds, prep = job.params["datasets"][name], job.params["prepare"]
    out_dir = Path(job.inst.outs[0])
    # The root stays as params.yaml writes it (the stage list's path); a relative one is
    # read from the params file's folder (the project root for params.yaml).
    base_dir = Path(getattr(job.args, "params", None) or "params.yaml").resolve().parent
    manifest = prepare_dataset(name, ds["format"], job.inst.values["root"], out_dir, prep["image_size"],
                               prep["jpeg_quality"], prep["row_group_size"], prep["rows_per_shard"],
                               part=Partition(int(job.inst.values["index"]), ds["parts"]), workers=prep["workers"],
                               options=ReadOptions.from_params(ds), base_dir=base_dir)
    job.tracker.log_metrics({"inputs": manifest["inputs"], "kept": manifest["kept"], "rejected": manifest["rejected"]})
    job.tracker.log_artifact(str(out_dir / "manifest.json"))
    return {"content_digest": manifest["content_digest"]}
