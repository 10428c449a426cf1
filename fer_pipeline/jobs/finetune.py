"""`fer finetune --model student|control`: the meta-trained student, or the supervised
baseline (the control), finetuned on the same labelled images at the same fixed rate."""

from pathlib import Path

from fer_pipeline.dag.stages.train import finetune_starts
from fer_pipeline.train.finetune import finetune_config, write_finetune_index
from fer_pipeline.train.supervised import train_supervised

STAGE = "finetune"
RESUME_FLAG = "train.supervised.resume"  # finetune_config takes `resume` from the supervised recipe
SPLITS = ("train",)


def item(args, params: dict) -> str:
    starts = finetune_starts(params)
    if args.model not in starts:
        raise SystemExit(f"fer finetune: --model {args.model!r}; choose one of {', '.join(starts)}")
    return args.model


def run(job) -> dict:
    train = job.params["train"]
    start_dir, dataset_dir = job.inst.deps
    out_dir = job.inst.outs[0]
    cfg = finetune_config(train["supervised"], train["meta"], train["finetune"], out_dir)
    # Inside the meta run's labelled subset: at a labelled fraction below 100 %, finetuning
    # on the whole set would leak the withheld labels (to the control as to the student).
    index = write_finetune_index(dataset_dir, train["meta"], train["finetune"], out_dir)
    result = train_supervised(cfg, dataset_dir, out_dir, job.work_dir(), tracker=job.tracker,
                              subset_index=index, init_weights=f"{start_dir}/model.pt")
    job.log_artifacts(out_dir, ("history.json", "finetune_index.json"))
    job.log_bundle(out_dir)
    return {"result": result}
