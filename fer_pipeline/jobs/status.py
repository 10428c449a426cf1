"""`fer status`: which jobs are outdated (params, code or input data changed, here or upstream)."""

from fer_pipeline.dag.lineage import direct_upstream, instances
from fer_pipeline.dag.provenance import is_current


def outdated_jobs(params: dict, group: str | None = "main") -> dict[str, bool]:
    """Job name -> outdated. A job is outdated when its own stamp does not match, or when
    a job whose outputs it reads is outdated (it will rerun after it, as under Snakemake)."""
    result: dict[str, bool] = {}
    for inst in instances(params):  # topological order
        if group is not None and inst.stage.group != group:
            continue
        result[inst.name] = not is_current(params, inst) or any(result.get(up.name, False)
                                                                for up in direct_upstream(params, inst))
    return result


def run(params: dict, args) -> None:
    from fer_pipeline.orchestrators.dvc_render import stale_dvc_files

    jobs = outdated_jobs(params, None if args.all else "main")
    for name, outdated in jobs.items():
        print(f"{name:28s} {'OUTDATED' if outdated else 'up to date'}")
    for path in stale_dvc_files(params):
        print(f"warning: {path} differs from the stage list: run `fer dvc-yaml`")
