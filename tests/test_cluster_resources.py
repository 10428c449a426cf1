"""What the rules ask a scheduler for (params `resources`, dag/resources.py) and how a
training command is launched for 0, 1 and 2 GPUs, in the stage list, in dvc.yaml and in
the Snakemake rules."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from conftest import REPO, make_project_copy, run, tiny_params
from fer_pipeline.common import params as params_mod
from fer_pipeline.dag import resources
from fer_pipeline.orchestrators.dvc_render import render_dvc_yaml
from fer_pipeline.dag.lineage import get_stage
from fer_pipeline.dag.stages import build_stages

PLAIN = "fer train-meta --log-file logs/train_meta.log"


def with_gpus(n: int, stage: str = "train_meta") -> dict:
    params = tiny_params()
    params["resources"][stage] = {"gpus": n, "mem_mb": 2000, "runtime": 5}
    return params_mod.validate(params)


@pytest.mark.parametrize("gpus, expected", [
    (0, PLAIN),
    (1, PLAIN),
    (2, f"torchrun --standalone --nproc_per_node=2 --no-python {PLAIN}"),
])
def test_train_meta_command_for_0_1_2_gpus(gpus, expected):
    params = with_gpus(gpus)
    stage = get_stage(params, "train_meta")
    assert stage.instances()[0].cmd == expected
    assert stage.command == "train-meta", "the code closure still finds the `fer` command behind torchrun"
    dvc = yaml.safe_load(render_dvc_yaml(params))
    assert dvc["stages"]["train_meta"]["cmd"] == expected


def test_scheduler_resources_and_threads():
    params = with_gpus(2)
    threads = params["train"]["meta"]["threads"]
    assert resources.scheduler_resources(params, "train_meta") == {"gpu": 2, "mem_mb": 2000, "runtime": 5}
    assert resources.threads(params, "train_meta") == 2 * threads, "each torchrun process runs its threads"
    params = with_gpus(0)
    # No GPU key at all at 0 (the plugin then asks for none); an unlisted stage gets the profile's defaults.
    assert resources.scheduler_resources(params, "train_meta") == {"mem_mb": 2000, "runtime": 5}
    assert resources.scheduler_resources(params, "gather") == {}
    assert resources.threads(params, "gather") == 1
    params["prepare"]["workers"] = 0
    assert resources.threads(params, "prepare") == os.cpu_count()


def test_more_than_one_gpu_is_refused_for_a_trainer_without_ddp():
    with pytest.raises(params_mod.ParamsError, match=r"resources\.train_supervised\.gpus' is 2"):
        with_gpus(2, "train_supervised")
    assert resources.launch(with_gpus(1, "train_supervised"), "train_supervised", "fer x") == "fer x"


def test_the_schema_names_every_stage_and_only_stages():
    schema = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())
    named = set(schema["properties"]["resources"]["propertyNames"]["enum"])
    stages = {s.name for s in build_stages(params_mod.load(REPO / "params.yaml"))}
    assert named == stages
    assert set(resources.THREADS_KEYS) <= stages
    bad = tiny_params()
    bad["resources"]["train_everything"] = {"gpus": 1}
    with pytest.raises(params_mod.ParamsError, match="train_everything"):
        params_mod.validate(bad)


def test_snakemake_renders_gpus_threads_and_torchrun_into_the_rule(tmp_path):
    params = with_gpus(2)
    params["train"]["meta"]["threads"] = 3
    proj = make_project_copy(tmp_path, params)
    # --cores 8: Snakemake caps threads at the cores it is given (a cluster executor does not).
    out = run(["snakemake", "-n", "--forceall", "--printshellcmds", "--cores", "8", "models/meta"], proj).stdout
    block = out[out.index("rule train_meta:"):]
    block = block[:block.index("Shell command:") + 200]
    assert re.search(r"resources: .*\bgpu=2\b", block) and "mem_mb=2000" in block and "runtime=5" in block, block
    assert re.search(r"threads: 6\b", block), block
    assert f"torchrun --standalone --nproc_per_node=2 --no-python {PLAIN}" in block, block
