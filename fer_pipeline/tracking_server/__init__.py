"""The team's MLflow: a local PostgreSQL (postgres.py) under `mlflow server` (service.py),
started and stopped together by `fer server` (jobs/server.py)."""
