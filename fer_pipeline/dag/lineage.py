"""Questions about the DAG the stage list defines: its jobs, who reads whose outputs,
and what each job inherits from upstream (params keys, raw sources, code).

Computed once per params (`_dag` is cached): the DVC renderer, the Snakemake rules
and `fer status` all ask for every job's lineage.
"""

from __future__ import annotations

import json
from functools import lru_cache

from fer_pipeline.common.params import select
from fer_pipeline.dag.codedeps import stage_code
from fer_pipeline.dag.stage import Stage, StageInstance, is_under
from fer_pipeline.dag.stages import build_stages


def instances(params: dict, group: str | None = None) -> list[StageInstance]:
    """Every job (of one group, when given)."""
    return [inst for stage in build_stages(params) if group in (None, stage.group) for inst in stage.instances()]


def get_stage(params: dict, name: str) -> Stage:
    for stage in build_stages(params):
        if stage.name == name:
            return stage
    raise KeyError(f"no stage {name!r} in this pipeline")


def get_instance(params: dict, name: str, item: str | None = None) -> StageInstance:
    stage = get_stage(params, name)
    for inst in stage.instances():
        if inst.item == item:
            return inst
    raise KeyError(f"stage {name!r} has no item {item!r}; items: {sorted(stage.items)}")


def upstream(params: dict, inst: StageInstance) -> list[StageInstance]:
    """Jobs whose outputs this job reads (a dep equal to, inside, or holding one of their outputs).

    The jobs of a scattered stage share one lineage (the union over its items):
    DVC's foreach declares params once for all items, and both tools must agree."""
    by_name, ups = _dag(_frozen(params))
    return [by_name[name] for name in ups[inst.name]]


def direct_upstream(params: dict, inst: StageInstance) -> list[StageInstance]:
    """Jobs whose outputs this job's *own* deps read (gather@ms1m reads ms1m's prepare
    jobs only): what must rerun before this one when data changes, as Snakemake sees it."""
    frozen = _frozen(params)
    by_name, _ = _dag(frozen)
    return [by_name[name] for name in _OWN_UPSTREAM[frozen][inst.name]]


_OWN_UPSTREAM: dict[str, dict[str, tuple[str, ...]]] = {}


def _frozen(params: dict) -> str:
    return json.dumps(params)  # not sorted: the order of `datasets` is the order of their jobs


@lru_cache(maxsize=8)
def _dag(frozen_params: str):
    """Every job by name, and the names of the jobs each one's stage reads from (the
    union over its items). Computed once per params: the DVC renderer, the stage keys
    and `fer status` ask for every job's lineage."""
    jobs = instances(json.loads(frozen_params))
    outputs = {job.name: job.all_outputs for job in jobs}

    def reads(deps, exclude):
        return tuple(other for other, outs in outputs.items() if other not in exclude and any(
            is_under(d, out) or is_under(out, d) for d in deps for out in outs))

    ups, own_ups = {}, {}
    for job in jobs:
        siblings = job.stage.instances()
        names = {s.name for s in siblings}
        ups[job.name] = reads([d for sibling in siblings for d in sibling.deps], names)
        own_ups[job.name] = reads(job.deps, names)
    _OWN_UPSTREAM[frozen_params] = own_ups
    return {job.name: job for job in jobs}, ups


def _transitive(params: dict, inst: StageInstance, own) -> list[str]:
    """`own(job)` of every job upstream of `inst`, deepest first, each value once."""
    by_name, ups = _dag(_frozen(params))
    seen: list[str] = []
    for name in ups[inst.name]:
        up = by_name[name]
        for value in _transitive(params, up, own) + list(own(up)):
            if value not in seen:
                seen.append(value)
    return seen


def upstream_params(params: dict, inst: StageInstance) -> list[str]:
    """params.yaml keys of every job upstream of this one, in pipeline order.

    DVC declares them on the downstream stage too, so `dvc status` names a job
    whose inputs are about to change, not only the job whose own key changed
    (the same transitive answer the stage keys give Snakemake)."""
    jobs = list(_dag(_frozen(params))[0].values())
    first_use = {}
    for n, job in enumerate(jobs):
        for key in job.params:
            first_use.setdefault(key, n)
    return sorted(_transitive(params, inst, lambda job: job.params), key=lambda k: (first_use.get(k, 0), k))


def upstream_code(params: dict, inst: StageInstance) -> list[str]:
    """Code files of this job and of every job upstream of it, sorted.

    DVC declares them all on the stage, as it does upstream params: `dvc status` then
    names every job a code change will rerun, the answer Snakemake gives by running
    the upstream job first."""
    return sorted(_code_with_upstream(_frozen(params), inst.name))


@lru_cache(maxsize=None)
def _code_with_upstream(frozen_params: str, name: str) -> frozenset[str]:
    by_name, ups = _dag(frozen_params)
    files = set(stage_code(by_name[name].stage.command))
    for up in ups[name]:
        files |= _code_with_upstream(frozen_params, up)
    return frozenset(files)


def param_values(params: dict, inst: StageInstance) -> dict:
    return {key: select(params, key) for key in inst.params}


def expand_deps(params: dict, inst: StageInstance) -> list[str]:
    """The job's deps as files or folders some job writes (or raw sources): a dep on a
    folder that no job writes, but inside which jobs write (gather's partitions
    folder), stands for those jobs' outputs. DVC resolves such a dep itself;
    Snakemake needs the outputs named."""
    outputs = [out for other in instances(params) for out in other.all_outputs]
    expanded: list[str] = []
    for dep in inst.deps:
        inside = [out for out in outputs if is_under(out, dep) and out != dep]
        written = any(is_under(dep, out) for out in outputs)
        expanded += [dep] if written or not inside else inside
    return expanded
