"""One MLflow run per study job, many trainings inside it: each training's metrics
under its own prefix (`<run>.` or `seed<S>.`)."""

from __future__ import annotations


class PrefixedTracker:
    """Logs a training's metrics under `<prefix>.` inside the job's one MLflow run
    (None: logs nothing, for calls outside a job)."""

    def __init__(self, mlflow, prefix: str):
        self.mlflow, self.prefix = mlflow, prefix

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        if self.mlflow is not None:
            self.mlflow.log_metrics({f"{self.prefix}.{k}": v for k, v in metrics.items()}, step=step)
