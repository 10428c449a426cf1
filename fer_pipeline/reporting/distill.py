"""Seed 001's two tables over the imbalance seeds, in imbalance.report_dir:

- the distillation table: each labelled dataset's train split alone, + the mined auxiliary
  set, + the distilled images (same steps), on its own test split (overall and mean class
  accuracy, mean ± sd in %);
- the cross-dataset matrix: every model of distill.models (rows) on every test set of
  distill.test_sets (columns), mean class accuracy (and overall accuracy).

Markdown, one JSON with every number, a headline metrics JSON and one plot each."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_pipeline.common.atomic import write_json, write_text  # noqa: E402
from fer_pipeline.dag.stages.studies import (  # noqa: E402
    CROSS_PLOT,
    CROSS_TABLE,
    DISTILL_HEADLINE,
    DISTILL_JSON,
    DISTILL_PLOT,
    DISTILL_TABLE,
)
from fer_pipeline.eval.plots import save_figure  # noqa: E402
from fer_pipeline.reporting.format import DEMO_NOTE, fmt, mean_sd  # noqa: E402

METRICS = (("overall_accuracy", "overall acc"), ("mean_class_accuracy", "mean class acc"))
AUX_LABELS = {"none": "{d} train", "mined": "{d} train + mined auxiliary set",
              "distilled": "{d} train + distilled images"}


def model_label(cfg: dict) -> str:
    return AUX_LABELS[cfg["aux"]].format(d=cfg["dataset"])


def build_tables(cells: dict[tuple[str, str], dict], distill: dict) -> dict:
    """`cells`: (model, test set) -> that cross_evaluate job's metrics.json. Every cell's
    metrics as mean ± sd over its seeds (in %), the distillation table's rows (each model
    on its own dataset's test split, when that is a test set) and the headline means."""
    matrix: dict = {}
    for (model, test), cell in cells.items():
        seeds = list(cell["seeds"].values())
        matrix.setdefault(model, {})[test] = {m: mean_sd([s[m] for s in seeds]) for m, _ in METRICS}
        matrix[model][test]["seeds"] = len(seeds)
    in_domain = {model: matrix[model][cfg["dataset"]] for model, cfg in distill["models"].items()
                 if cfg["dataset"] in matrix.get(model, {})}
    headline = {f"{model}.{test}.{m}": stat[m]["mean"] for model, row in matrix.items() for test, stat in row.items()
                for m, _ in METRICS}
    return {"matrix": matrix, "in_domain": in_domain, "headline": headline}


def distillation_markdown(tables: dict, distill: dict, distilled: dict, seeds: list[int], synthetic: bool) -> str:
    train = distill["train"]
    lines = ["# Dataset distillation (seed 001, section 3.4): the labelled split alone, + the mined auxiliary set, "
             "+ the distilled images", ""]
    if synthetic:
        lines += [f"> {DEMO_NOTE}", ""]
    lines += [f"Mean ± sd over {len(seeds)} seeds ({', '.join(map(str, seeds))}), in %, on each labelled dataset's "
              f"own test split. {distill['arch']} at {distill['input_size']} px from seeded random weights, plain CE, "
              f"every model the same {train['epochs'] * (train['epoch_size'] // train['batch_size'])} steps "
              f"({train['epochs']} x {train['epoch_size']} samples in batches of {train['batch_size']}); with an "
              f"auxiliary set, {100 * train['aux_share']:g} % of each epoch's samples are drawn from it. "
              f"Distilled images: {distilled['images']} ({distill['algorithm']['images_per_class']} per class, Algorithm 1, "
              f"{distill['algorithm']['steps']} outer steps, learned eta {distilled['eta']:.3g}) from "
              f"{distilled['mined_faces']} mined pool faces; Algorithm 1's outer loss on "
              f"{distill['algorithm']['held_out_inits']} initialisations it never drew: "
              f"{distilled['held_out_outer_loss']['noise_start']:.3f} (its noise start) -> "
              f"{distilled['held_out_outer_loss']['distilled']:.3f}.", "",
              "| training set | test set | " + " | ".join(label for _, label in METRICS) + " |",
              "|---|---|" + "---:|" * len(METRICS)]
    for model, stat in tables["in_domain"].items():
        cfg = distill["models"][model]
        cells = " | ".join(fmt(stat[m]) for m, _ in METRICS)
        lines.append(f"| {model_label(cfg)} | {cfg['dataset']} | {cells} |")
    lines += ["", "Mined pool faces per class (pseudo labels): " + ", ".join(
        f"{c} {n}" for c, n in distilled["mined_per_class"].items()), ""]
    return "\n".join(lines)


def cross_markdown(tables: dict, distill: dict, seeds: list[int], synthetic: bool) -> str:
    tests = distill["test_sets"]
    lines = ["# Cross-dataset evaluation (seed 001, Tables 4-7)", ""]
    if synthetic:
        lines += [f"> {DEMO_NOTE}", ""]
    lines += [f"Rows: the training set; columns: the test split scored, in class set {distill['class_set']} (test "
              f"images of other classes dropped). Mean ± sd over {len(seeds)} seeds, in %; the diagonal (a model "
              "on its own dataset) is the in-domain score.", ""]
    for metric, label in reversed(METRICS):
        lines += [f"## {label}", "", "| trained on | " + " | ".join(f"{t} test" for t in tests) + " |",
                  "|---|" + "---:|" * len(tests)]
        for model, cfg in distill["models"].items():
            cells = [fmt(tables["matrix"][model][t][metric]) for t in tests]
            lines.append(f"| {model_label(cfg)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_distillation(tables: dict, distill: dict, path: Path) -> None:
    """Mean class accuracy (± sd) of each model on its own test split."""
    models = list(tables["in_domain"])
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(models) + 1.5), 3.6))
    stats = [tables["in_domain"][m]["mean_class_accuracy"] for m in models]
    ax.bar(range(len(models)), [s["mean"] for s in stats], yerr=[s["sd"] for s in stats], capsize=3,
           color=["C0" if distill["models"][m]["aux"] == "none" else "C1" if distill["models"][m]["aux"] == "mined"
                  else "C2" for m in models])
    ax.set_xticks(range(len(models)), [model_label(distill["models"][m]).replace(" + ", "\n+ ") for m in models],
                  fontsize=7)
    ax.set_ylabel("mean class accuracy (%), own test split")
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)


def plot_cross(tables: dict, distill: dict, path: Path) -> None:
    """The matrix of mean class accuracy as a heat map, each cell annotated."""
    models, tests = list(distill["models"]), distill["test_sets"]
    values = np.array([[tables["matrix"][m][t]["mean_class_accuracy"]["mean"] for t in tests] for m in models])
    fig, ax = plt.subplots(figsize=(2.2 + 1.4 * len(tests), 1.0 + 0.5 * len(models)))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for i in range(len(models)):
        for j in range(len(tests)):
            stat = tables["matrix"][models[i]][tests[j]]["mean_class_accuracy"]
            ax.text(j, i, f"{stat['mean']:.1f}±{stat['sd']:.1f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_xticks(range(len(tests)), [f"{t} test" for t in tests], fontsize=8)
    ax.set_yticks(range(len(models)), [model_label(distill["models"][m]) for m in models], fontsize=7)
    fig.colorbar(image, ax=ax, label="mean class acc (%)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)


def write_distill_report(metrics_files: list[Path], distilled_info: Path, distill: dict, seeds: list[int],
                         out_dir: str | Path, synthetic: bool) -> dict:
    cells = {}
    for path in metrics_files:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found: run `fer cross-evaluate` first")
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        cells[(data["model"], data["test_set"])] = data
    distilled = json.loads(Path(distilled_info).read_text(encoding="utf-8"))
    tables = build_tables(cells, distill)
    tables["distilled"] = distilled
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_distillation(tables, distill, out / DISTILL_PLOT)
    plot_cross(tables, distill, out / CROSS_PLOT)
    write_json(out / DISTILL_JSON, {**tables, "seeds": seeds})
    write_json(out / DISTILL_HEADLINE, tables["headline"])
    write_text(out / DISTILL_TABLE, distillation_markdown(tables, distill, distilled, seeds, synthetic))
    write_text(out / CROSS_TABLE, cross_markdown(tables, distill, seeds, synthetic))
    return tables
