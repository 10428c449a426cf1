"""The stage list: the single source of truth for Snakemake, DVC and `fer status`.

Every stage of the DAG is declared once, as data (dag/stage.py), in one module per
phase: data (generate, prepare, gather), train, evaluate, temporal, reporting and
the optional studies. `workflow/rules/*.smk` read their inputs, outputs and shell
lines from these specs and `fer dvc-yaml` renders dvc.yaml from the same specs, so
the two tools cannot drift apart (tests/test_dag_agreement.py proves it).
"""

from __future__ import annotations

from fer_pipeline.dag.stage import Stage
from fer_pipeline.dag.stages import data, evaluate, reporting, studies, temporal, train
from fer_pipeline.dag.stages.common import GROUPS, evaluated_models, uses_facesynth  # noqa: F401 (the package's API)


def build_stages(params: dict) -> list[Stage]:
    """The pipeline's stages, in topological order, for these parameters."""
    main = (data.stages(params) + train.stages(params) + evaluate.stages(params) + temporal.stages(params)
            + reporting.stages(params))
    return main + studies.stages(params)
