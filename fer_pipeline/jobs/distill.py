"""`fer distill`: seed 001's Algorithm 1 on mine_pseudo's mined pool faces -> the distilled
images + eta, what they are, and their grid (also in imbalance.report_dir)."""

from pathlib import Path

from fer_pipeline.studies.auxiliary import DISTILLED_INFO, GRID_FILE, distill_mined

STAGE = "distill"


def run(job) -> dict:
    params = job.params
    out_dir = Path(job.inst.outs[0])
    grid_copy = job.inst.all_outputs[-1]  # the stage's one plot: the grid in the report folder
    info = distill_mined(params["distill"], job.inst.deps[0], out_dir, grid_copy,
                         params["train"]["supervised"]["threads"], job.tracker)
    job.log_artifacts(out_dir, (DISTILLED_INFO, GRID_FILE))
    return {"eta": info["eta"], "images": info["images"]}
