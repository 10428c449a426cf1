"""`fer finetune`: the meta-trained student finetuned on its labelled data (fixed small rate)."""

from pathlib import Path

from fer_pipeline.train.finetune import finetune_config
from fer_pipeline.train.supervised import train_supervised

STAGE = "finetune"
RESUME_FLAG = "train.supervised.resume"  # finetune_config takes `resume` from the supervised recipe


def run(job) -> dict:
    train = job.params["train"]
    meta_dir, dataset_dir = job.inst.deps
    cfg = finetune_config(train["supervised"], train["meta"], train["finetune"], job.inst.outs[0])
    # Only the Smp subset the student was meta-trained with: at a labelled fraction
    # below 100 %, finetuning on the whole set would leak the withheld labels.
    result = train_supervised(cfg, dataset_dir, cfg["out_dir"], job.work_dir(), tracker=job.tracker,
                              subset_index=f"{meta_dir}/smp_index.json", init_weights=f"{meta_dir}/model.pt")
    job.tracker.log_artifact(str(Path(cfg["out_dir"]) / "history.json"))
    return {"result": result}
