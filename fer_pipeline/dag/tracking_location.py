"""Where MLflow runs go: the store a stage logs to, where a new experiment keeps its
artifacts, and which DVC experiment a run belongs to.

Relative local paths (`sqlite:///mlflow.db`, `tracking.artifact_root`) name the
project's files. A queued `dvc exp run` runs the stages in a temporary copy of the
project (.dvc/tmp/exps/...) and sets DVC_ROOT to the project itself (dvc's
repo/experiments/queue/base.py), so those paths are resolved against DVC_ROOT: every
experiment logs to the one store the user browses, not to a copy deleted afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

# Stores whose server decides where artifacts go (`mlflow server --serve-artifacts`
# hands out mlflow-artifacts:/ locations); a client then needs no access to that disk.
REMOTE_SCHEMES = ("http://", "https://", "databricks")


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def store_uri(params: dict) -> str:
    """The store's URI, a relative sqlite path made absolute: MLflow caches one store per
    URI string in a process, so a relative one would keep pointing at the first
    folder it was opened from."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params["tracking"]["uri"]
    prefix = "sqlite:///"
    relative = uri.startswith(prefix) and not uri.startswith(prefix + "/")  # sqlite:////abs is absolute
    if relative:
        uri = prefix + str(project_root() / uri.removeprefix(prefix))
    return uri


def is_remote(uri: str) -> bool:
    return uri.startswith(REMOTE_SCHEMES)


def artifact_location(params: dict, uri: str) -> str | None:
    """The artifact location a new experiment is created with: None (the server's choice)
    for a tracking server, else the project's `tracking.artifact_root` (created)."""
    if is_remote(uri):
        return None
    root = project_root() / params["tracking"]["artifact_root"]
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve().as_uri()


def dvc_experiment_tags() -> dict[str, str]:
    """Under `dvc exp run` (queued or not), the experiment's name and baseline commit,
    as DVC sets them for every stage: a sweep's runs are found by `tags.dvc_exp_name`."""
    tags = {}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc_exp_baseline"] = os.environ["DVC_EXP_BASELINE_REV"]
    return tags
