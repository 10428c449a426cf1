"""`fer pretrain-fr`: the ArcFace identity classifier on the FR pools, its backbone the
FER networks' `fr_pretrained` initialisation, verified on held-out identities."""

from pathlib import Path

from fer_pipeline.common.atomic import write_json
from fer_pipeline.dag.tracked_models import log_network
from fer_pipeline.train.pretrain_fr import pretrain_fr

STAGE = "pretrain_fr"
RESUME_FLAG = "train.pretrain_fr.resume"  # resumed from job.work_dir(): continues its MLflow run


def run(job) -> dict:
    cfg = job.params["train"]["pretrain_fr"]
    pools = dict(zip(cfg["pools"], job.inst.deps))
    out_dir, metrics_file = Path(job.inst.outs[0]), Path(job.inst.fill(job.inst.stage.metrics[0]))
    result = pretrain_fr(cfg, pools, out_dir, job.work_dir(), tracker=job.tracker)
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(metrics_file, result["verification"])
    job.tracker.log_metrics({f"verification.{k}": float(v) for k, v in result["verification"].items()})
    job.tracker.log_artifact(str(metrics_file))
    job.log_artifacts(out_dir, ("history.json", "identity_split.json"))
    job.log_model("backbone", lambda tracker: log_fr_backbone(tracker, out_dir / "backbone.pt", cfg["arch"],
                                                              cfg["input_size"]))
    return {"result": result}


def log_fr_backbone(mlflow, backbone_file: Path, arch: str, input_size: int, name: str = "backbone") -> dict:
    """train.pretrain_fr's backbone (a state_dict without its head) as a logged model that
    maps images to the pooled features the FER networks start from."""
    import torch

    from fer_pipeline.models.factory import build_model

    model = build_model(arch, 1, str(backbone_file))  # the head is not in the file: replaced below
    model.fc = torch.nn.Identity()
    return log_network(mlflow, model, input_size, backbone_file, name)
