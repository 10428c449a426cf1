"""`fer summary`: print the results table and how to open MLflow."""

from pathlib import Path

import os

from fer_pipeline.dag.tracking_location import is_remote


def run(params: dict, args) -> None:
    path = Path(params["report"]["out_dir"]) / "summary.md"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run the pipeline first (make run)")
    print(path.read_text(encoding="utf-8"))
    print(f"Plots: {params['evaluate']['out_dir']}/<model>/*.png, {params['temporal']['evaluate']['out_dir']}/*.png")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]  # as the user wrote it
    if is_remote(uri):  # a tracking server is its own UI
        print(f"Browse runs: open {uri}")
    else:
        print(f"Browse runs: make ui   (= mlflow ui --backend-store-uri {uri}, then open http://127.0.0.1:5000)")
