"""`fer mine-pseudo`: omni-supervised mining, pseudo labels for pool faces near a class centroid."""

import json
from pathlib import Path

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.meta.mining import mine_pseudo_labels, pool_truth

STAGE = "mine_pseudo"


def run(job) -> dict:
    params = job.params
    cfg, sup, prep = params["mine"], params["train"]["supervised"], params["prepare"]
    labeled_dir, pool_dir = f"{prep['out_dir']}/{sup['dataset']}", f"{prep['out_dir']}/{cfg['pool']}"
    out_dir = Path(job.inst.outs[0])
    truth = pool_truth(cfg["truth"], pool_dir, ClassSet.named(sup["class_set"]))
    manifest = mine_pseudo_labels(sup["out_dir"], labeled_dir, pool_dir, out_dir, cfg["delta"], cfg["audit_deltas"],
                                  cfg["batch_size"], prep["row_group_size"], truth, cfg["include_labeled"])
    mlflow = job.tracker
    mlflow.log_metrics({"mined": manifest["mined"], "left_unlabelled": manifest["rejected"]})
    if (out_dir / "mining_audit.json").exists():
        audit = json.loads((out_dir / "mining_audit.json").read_text(encoding="utf-8"))
        mlflow.log_metrics({f"mining.{key}.{name}.delta_{delta}": value[key]
                            for delta, per_class in audit.items() for name, value in per_class.items()
                            for key in ("precision", "coverage") if value[key] is not None})
        mlflow.log_artifact(str(out_dir / "mining_audit.json"))
    mlflow.log_artifact(str(out_dir / "manifest.json"))
    return {"content_digest": manifest["content_digest"]}
