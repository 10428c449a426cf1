"""`fer report-imbalance`: LNSU's Table 3 shape (rows: methods; columns: each imbalance
factor x overall accuracy and mean class accuracy) as mean ± sd over the study's seeds,
in Markdown, a full JSON, a headline metrics JSON and one plot."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_pipeline.common.atomic import write_json, write_text  # noqa: E402
# The files the stage declares: the table, every number, the headline metrics and the plot.
from fer_pipeline.dag.stages.studies import (  # noqa: E402
    IMBALANCE_HEADLINE,
    IMBALANCE_JSON,
    IMBALANCE_PLOT,
    IMBALANCE_TABLE,
)
from fer_pipeline.eval.plots import save_figure  # noqa: E402
from fer_pipeline.reporting.format import DEMO_NOTE, fmt, mean_sd  # noqa: E402
from fer_pipeline.studies.imbalance import factor_name, run_name  # noqa: E402

METRICS = (("overall_accuracy", "overall acc"), ("mean_class_accuracy", "mean class acc"))
ROW_LABELS = {
    "ce": "Baseline (CE)",
    "weighted_ce": "Weighted CE",
    "label_smoothing": "Label smoothing",
    "upsampling": "RandAugment up-sampling",
    "ce_flip": "CE of image + flip (control)",
    "rsl": "RSL",
    "rac": "RAC",
    "rac_rsl": "RAC + RSL (LNSU)",
    "deviation": "Deviation fine-tuning",
    "ensemble": "Ensemble",
}


def row_label(row: str, imbalance: dict) -> str:
    if row == "ensemble":
        return f"Ensemble ({' + '.join(imbalance['ensemble'])})"
    return ROW_LABELS[row]


def build_tables(seeds: list[dict], imbalance: dict) -> dict:
    """Per row and factor, each metric's mean ± sd over the seeds (in %), the subsets'
    realised factors and sizes, and the headline metrics (means, flat)."""
    table: dict = {}
    for row in imbalance["rows"]:
        table[row] = {}
        for f in imbalance["factors"]:
            name = run_name(f, row)
            table[row][factor_name(f)] = {m: mean_sd([s["results"][name][m] for s in seeds]) for m, _ in METRICS}
    subsets = {}
    for f in imbalance["factors"]:
        infos = [s["subsets"][factor_name(f)] for s in seeds]
        subsets[factor_name(f)] = {"imbalance_factor": f,
                                   "realised_imbalance_factor": mean_sd([i["realised_imbalance_factor"] for i in infos],
                                                                        1.0),
                                   "images": mean_sd([i["count"] for i in infos], 1.0)}
    headline = {f"{factor_name(f)}.{row}.{m}": table[row][factor_name(f)][m]["mean"]
                for row in imbalance["rows"] for f in imbalance["factors"] for m, _ in METRICS}
    seconds = {}
    for name in seeds[0]["seconds"]:
        seconds[name] = mean_sd([s["seconds"][name] for s in seeds], 1.0)
    return {"seeds": [s["seed"] for s in seeds], "table": table, "subsets": subsets, "seconds": seconds,
            "headline": headline}


def to_markdown(tables: dict, imbalance: dict, synthetic: bool) -> str:
    factors = [factor_name(f) for f in imbalance["factors"]]
    n = len(tables["seeds"])
    lines = ["# Long-tailed subsets: LNSU's Table 3 and ABAW4-LSD's modules", ""]
    if synthetic:
        lines += [f"> {DEMO_NOTE}", ""]
    lines += [f"Mean ± sd over {n} seeds ({', '.join(map(str, tables['seeds']))}), in %; {imbalance['arch']} at "
              f"{imbalance['input_size']} px from seeded random weights, {imbalance['epochs']} epochs on each "
              "imbalance factor's long-tailed subset of the labelled train split (LNSU 4.4, drawn per seed), "
              f"scored on the untouched test split. Deviation fine-tuning: the CE row's network, "
              f"{imbalance['deviation_epochs']} more epoch(s) with the deviation module.", ""]
    header = "| method | " + " | ".join(f"IF {tables['subsets'][f]['imbalance_factor']:g}: {label}"
                                         for f in factors for _, label in METRICS) + " |"
    lines += [header, "|---|" + "---:|" * (len(factors) * len(METRICS))]
    for row in imbalance["rows"]:
        cells = [fmt(tables["table"][row][f][m]) for f in factors for m, _ in METRICS]
        lines.append(f"| {row_label(row, imbalance)} | " + " | ".join(cells) + " |")
    lines += ["", "The subsets (mean over seeds): realised factor = largest class / smallest, capped by the "
              "images there are.", "", "| IF | realised factor | images |", "|---|---:|---:|"]
    for f in factors:
        sub = tables["subsets"][f]
        lines.append(f"| {sub['imbalance_factor']:g} | {sub['realised_imbalance_factor']['mean']:.1f} | "
                     f"{sub['images']['mean']:.0f} |")
    lines += ["", "Wall time per run (s, mean ± sd): " + ", ".join(
        f"{name} {stat['mean']:.0f} ± {stat['sd']:.0f}" for name, stat in tables["seconds"].items())]
    return "\n".join(lines) + "\n"


def plot_table(tables: dict, imbalance: dict, path: Path) -> None:
    """Mean class accuracy per method, one group of bars per imbalance factor."""
    factors = [factor_name(f) for f in imbalance["factors"]]
    rows = imbalance["rows"]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(factors) + 0.5 * len(rows)), 3.8))
    width = 0.8 / len(rows)
    x = np.arange(len(factors))
    for k, row in enumerate(rows):
        stats = [tables["table"][row][f]["mean_class_accuracy"] for f in factors]
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, [s["mean"] for s in stats], width,
               yerr=[s["sd"] for s in stats], capsize=2, label=row_label(row, imbalance))
    ax.set_xticks(x, [f"IF {tables['subsets'][f]['imbalance_factor']:g}" for f in factors])
    ax.set_ylabel("mean class accuracy (%)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    save_figure(fig, path, dpi=110, bbox_inches=None)


def write_imbalance_report(results_files: list[Path], imbalance: dict, out_dir: str | Path, synthetic: bool) -> dict:
    seeds = []
    for path in results_files:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found: run `fer imbalance-study --seed ...` first")
        seeds.append(json.loads(Path(path).read_text(encoding="utf-8")))
    tables = build_tables(seeds, imbalance)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_table(tables, imbalance, out / IMBALANCE_PLOT)
    write_json(out / IMBALANCE_JSON, tables)
    write_json(out / IMBALANCE_HEADLINE, tables["headline"])
    write_text(out / IMBALANCE_TABLE, to_markdown(tables, imbalance, synthetic))
    return tables
