"""The experiment's saved view "Headline metrics": MLflow's runs table with the
evaluations' headline metrics as columns.

MLflow 3.17.2's runs table starts with no metric column: its default columns are
Source, Models and Dataset, metric columns are made hidden, and the columns a user
picks are kept in that browser's local storage only. An experiment can carry a column
choice in one way: a saved view, the experiment tag `mlflow.sharedViewState.<key>`
holding `{name, createdAt, updatedAt, state}`, `state` the runs page's UI state as
JSON. The UI lists it under Views and opens it at
`#/experiments/<id>/runs?viewStateShareKey=<key>` (the link `make ui` prints). The
format is read from MLflow's UI bundle; docs/dag.md ("MLflow") says where.
"""

from __future__ import annotations

import json

from fer_pipeline.common.headline import HEADLINE

VIEW_KEY = "headline"
VIEW_TAG = f"mlflow.sharedViewState.{VIEW_KEY}"
VIEW_NAME = "Headline metrics"
# The UI's own "Model training" mode: without it a fresh browser shows the GenAI
# pages' sidebar around the runs (docs/dag.md, "Where the experiment opens").
WORKFLOW = "workflowType=machine_learning"
# Column ids as the runs table names them: `<type>.` + the key in backquotes.
KEPT_COLUMNS = ("attributes.`Dataset`", "attributes.`Models`")  # the default's, less Source
METRIC_WIDTH = 170  # px: the whole name shows (the table's default is 100)


def metric_column(metric: str) -> str:
    return f"metrics.`{metric}`"


def view_state() -> dict:
    """The runs page's UI state the view applies: the headline metrics first, then the
    default columns that say what a run read and made."""
    metrics = [metric_column(m) for m in HEADLINE]
    return {"selectedColumns": [*KEPT_COLUMNS, *metrics], "columnOrder": [*metrics, *KEPT_COLUMNS],
            "columnWidths": {column: METRIC_WIDTH for column in metrics}}


def view_tag_value(now_ms: int) -> str:
    return json.dumps({"name": VIEW_NAME, "createdAt": now_ms, "updatedAt": now_ms,
                       "state": json.dumps(view_state())})


def view_route(experiment_id: str) -> str:
    """The address (after the server's `/#/`) that opens the experiment on the view."""
    return f"experiments/{experiment_id}/runs?{WORKFLOW}&viewStateShareKey={VIEW_KEY}"
