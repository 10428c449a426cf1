# fer-pipeline: raw datasets -> aligned crops -> trained, evaluated FER models.
# Thin by design: every rule reads its inputs, outputs and command from
# fer_pipeline/dag/stages/ (the stage list dvc.yaml is rendered from) and runs a `fer` command.

import os

from fer_pipeline.dag.provenance import new_pipeline_id
from fer_pipeline.orchestrators.snakemake_rules import Rules


configfile: "params.yaml"

# Rules() validates the config (with any --config overrides) against the schema, then
# with the checks across keys the schema cannot express (fer_pipeline/common/params_checks.py),
# before any key file is written. Not also snakemake.utils.validate: it would load and
# check the same schema a second time on every `snakemake -n` (tests/test_params.py:
# a bad value still stops Snakemake, named).
RULES = Rules(config)
# One id for every job of this invocation: MLflow groups the runs by it.
os.environ.setdefault("FER_PIPELINE_ID", new_pipeline_id())


include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/temporal.smk"
include: "workflow/rules/reporting.smk"
include: "workflow/rules/studies.smk"


rule all:
    default_target: True
    input:
        RULES.targets(),


onsuccess:
    # Record what Snakemake made in dvc.lock, so `dvc status` agrees with `snakemake -n`.
    shell("fer dvc-commit --log-file logs/dvc_commit.log")
