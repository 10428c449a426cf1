"""`fer dvc-commit`: record in dvc.lock the jobs Snakemake made (their stamps match)."""

from fer_pipeline.orchestrators.dvc_render import commit_current_stages


def run(params: dict, args) -> None:
    commit_current_stages(params)
