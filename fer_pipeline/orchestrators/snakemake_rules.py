"""What the Snakemake rules read from the stage list (no logic lives in the rules).

A rule asks for its inputs, outputs, log and shell line by stage name; the
values come from fer_pipeline/dag/stages/, the same specs dvc.yaml is rendered from.
"""

from __future__ import annotations

import re
from pathlib import Path

from snakemake.io import directory

from fer_pipeline.common import params as params_mod
from fer_pipeline.dag import resources
from fer_pipeline.dag.lineage import expand_deps, get_stage, instances
from fer_pipeline.dag.provenance import sync_key_file
from fer_pipeline.dag.stage import Stage, template_fields
from fer_pipeline.dag.stages import build_stages


class Rules:
    def __init__(self, config: dict):
        self.params = params_mod.validate(dict(config), "params.yaml (Snakemake config)")
        # Every key file is written and dated once, at parse time, before Snakemake
        # builds the DAG and reads any mtime.
        self.key_files = {inst.name: sync_key_file(self.params, inst) for inst in instances(self.params)}

    def has(self, name: str) -> bool:
        return any(s.name == name for s in build_stages(self.params))

    def stage(self, name: str) -> Stage:
        return get_stage(self.params, name)

    def wildcards(self, name: str) -> list[str]:
        """Template fields of the stage's outputs: Snakemake's wildcards for its jobs."""
        return sorted({f for p in self.stage(name).declared_outputs() for f in template_fields(p)})

    def _instance(self, name: str, wildcards):
        stage = self.stage(name)
        given = {key: getattr(wildcards, key) for key in self.wildcards(name)}
        return next(i for i in stage.instances() if all(i.field(k) == v for k, v in given.items()))

    def inputs(self, name: str):
        """Input function: data deps and the key file. The key file carries the job's
        code, params and input versions (dag/provenance.py): code files are not listed
        as inputs, since Snakemake would rerun on a `touch` that DVC and `fer status`
        rightly ignore."""
        def fn(wildcards):
            inst = self._instance(name, wildcards)
            return {"data": expand_deps(self.params, inst), "key": self.key_files[inst.name]}
        return fn

    def outputs(self, name: str) -> list:
        """Output patterns (items as wildcards); paths without a suffix are folders."""
        return [directory(p) if not Path(p).suffix else p for p in self.stage(name).declared_outputs()]

    def threads(self, name: str) -> int:
        """The CPUs a job really uses (its params threads key; dag/resources.py): what
        Snakemake counts against --cores, and SLURM's --cpus-per-task."""
        return resources.threads(self.params, name)

    def resources(self, name: str) -> dict[str, int]:
        """What the job asks a scheduler for, from params `resources` (gpu, mem_mb, runtime)."""
        return resources.scheduler_resources(self.params, name)

    def log(self, name: str) -> str:
        return self.stage(name).log

    def shell(self, name: str) -> str:
        """The stage's command with its template fields as Snakemake wildcards."""
        cmd = self.stage(name).cmd
        for key in self.wildcards(name):
            cmd = cmd.replace("{%s}" % key, "{wildcards.%s}" % key)
        return cmd

    def targets(self, group: str = "main") -> list[str]:
        """Every output of every job of a group: what `rule all` (main) asks for."""
        return [p for inst in instances(self.params, group) for p in inst.all_outputs]

    def wildcard_pattern(self, name: str, key: str | None = None) -> str:
        """The values a wildcard takes (the stage's item by default), as a regex."""
        stage = self.stage(name)
        values = dict.fromkeys(i.field(key or stage.item_name) for i in stage.instances())
        return "|".join(re.escape(v) for v in values)
