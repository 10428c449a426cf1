"""`fer train-meta`: Face2Exp teacher-student meta-training with circuit feedback."""


from fer_pipeline.dag.stages.train import init_weights
from fer_pipeline.meta.train import train_meta

STAGE = "train_meta"
RESUME_FLAG = "train.meta.resume"  # resumed from job.work_dir(): continues its MLflow run
SPLITS = ("train", "unlabeled")  # the labelled set's train split, the FR pool


def run(job) -> dict | None:
    params = job.params
    cfg, prep = params["train"]["meta"], params["prepare"]["out_dir"]
    labeled_dir, pool_dir = f"{prep}/{cfg['labeled']}", f"{prep}/{cfg['pool']}"
    result = train_meta(cfg, labeled_dir, pool_dir, cfg["out_dir"], job.work_dir(), init_weights(params, "meta"),
                        cfg["pool_truth"], tracker=job.tracker)
    if not job.is_main_process:  # a non-zero torchrun rank: rank 0 writes and tracks
        return None
    job.log_artifacts(cfg["out_dir"], ("history.json", "smp_index.json", "cover_examples.png"))
    job.log_bundle(cfg["out_dir"])  # the student
    return {"result": result}
