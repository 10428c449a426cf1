"""The temporal table (seed 002 Table 1's shape) over seeds, and its plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_pipeline.eval.plots import plot_confusion, save_figure  # noqa: E402
from fer_pipeline.reporting.format import fmt, mean_sd  # noqa: E402

PAPER_F1 = {"frame-level": "40.96 / 41.57 (SSL)", "+ temporal encoder": "43.77", "+ post-processing": "45.43"}

# Table rows: (name, variant whose logits it uses, post-processed?). The last row is
# not in the paper: it shows what voting alone does to frame-level predictions.
ROWS = (
    ("frame-level", "frame", False),
    ("+ temporal encoder", "temporal", False),
    ("+ post-processing", "temporal", True),
    ("frame-level + post-processing (control)", "frame", True),
)


def build_table(per_seed: dict[int, dict]) -> dict:
    """mean ± sd over seeds of macro-F1, accuracy and label switches, per row."""
    seeds = sorted(per_seed)
    table = []
    for name, _, _ in ROWS:
        runs = [per_seed[s][name] for s in seeds]
        table.append({
            "row": name,
            "macro_f1": mean_sd([r["macro_f1"] for r in runs]),
            "accuracy": mean_sd([r["accuracy"] for r in runs]),
            "switches_per_100_frames": mean_sd([r["switches_per_100_frames"] for r in runs], scale=1.0),
            "per_class_f1": {c: mean_sd([r["per_class_f1"][c] for r in runs]) for c in runs[0]["per_class_f1"]},
            "accuracy_by_condition": {
                g: {**mean_sd([r["accuracy_by_condition"][g]["accuracy"] or 0.0 for r in runs]),
                    "frames": runs[0]["accuracy_by_condition"][g]["n"]}
                for g in runs[0].get("accuracy_by_condition", {})},
        })
    truth_switches = mean_sd([per_seed[s]["truth"]["switches_per_100_frames"] for s in seeds], scale=1.0)
    return {"seeds": seeds, "rows": table, "truth_switches_per_100_frames": truth_switches,
            "n_frames": per_seed[seeds[0]][ROWS[0][0]]["n"]}


def to_markdown(table: dict, title: str = "Temporal phase (seed 002, Table 1)") -> str:
    lines = [f"## {title}", "",
             f"Macro-F1 over the {len(table['rows'][0]['per_class_f1'])} classes, {table['n_frames']} scored frames, "
             f"mean ± sd over seeds {table['seeds']} (%). Switches: label changes per 100 frames "
             f"(ground truth: {table['truth_switches_per_100_frames']['mean']:.1f}).", "",
             "| row | macro-F1 | accuracy | switches / 100 frames | paper F1 (Aff-Wild2) |",
             "|---|---:|---:|---:|---:|"]
    for r in table["rows"]:
        sw = r["switches_per_100_frames"]
        lines.append(f"| {r['row']} | {fmt(r['macro_f1'])} | {fmt(r['accuracy'])} | {sw['mean']:.1f} ± {sw['sd']:.1f} "
                     f"| {PAPER_F1.get(r['row'], '—')} |")
    classes = list(table["rows"][0]["per_class_f1"])
    lines += ["", "Per-class F1 (%, mean over seeds):", "", "| row | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for r in table["rows"]:
        lines.append(f"| {r['row']} | " + " | ".join(f"{r['per_class_f1'][c]['mean']:.1f}" for c in classes) + " |")
    groups = list(table["rows"][0]["accuracy_by_condition"])
    if groups:
        counts = table["rows"][0]["accuracy_by_condition"]
        lines += ["", "Accuracy (%) by frame condition (FaceSynth's audit of each frame; n frames):", "",
                  "| row | " + " | ".join(f"{g} (n={counts[g]['frames']})" for g in groups) + " |",
                  "|---|" + "---:|" * len(groups)]
        for r in table["rows"]:
            lines.append(f"| {r['row']} | " + " | ".join(fmt(r["accuracy_by_condition"][g]) for g in groups) + " |")
    return "\n".join(lines) + "\n"


def plot_table(table: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    names = [r["row"] for r in table["rows"]]
    means = [r["macro_f1"]["mean"] for r in table["rows"]]
    sds = [r["macro_f1"]["sd"] for r in table["rows"]]
    ax.barh(range(len(names)), means, xerr=sds, color="#4c72b0")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("macro-F1 (%)")
    ax.set_title("Temporal phase: macro-F1, mean ± sd over seeds")
    save_figure(fig, path)


def plot_timeline(video, preds: dict, classes: list[str], path: Path) -> None:
    """One video, frame by frame: the labels and each row's predictions as colour strips."""
    strips = [("truth", video.labels)] + [(name, p) for name, p in preds.items()]
    cmap = plt.get_cmap("tab10", len(classes))
    fig, axes = plt.subplots(len(strips), 1, figsize=(10, 0.55 * len(strips) + 1.2), sharex=True)
    for ax, (name, labels) in zip(axes, strips):
        data = np.ma.masked_less(np.asarray(labels, dtype=float)[None, :], 0)
        ax.imshow(data, aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, interpolation="nearest",
                  extent=(video.frames[0] - 0.5, video.frames[-1] + 0.5, 0, 1))
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    axes[-1].set_xlabel(f"frame of {video.video}")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(len(classes))]
    fig.legend(handles, classes, loc="upper center", ncol=len(classes), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save_figure(fig, path)


def plot_confusion_summed(per_seed: dict[int, dict], row: str, classes: list[str], path: Path, title: str) -> None:
    matrix = np.sum([per_seed[s][row]["confusion_matrix"] for s in per_seed], axis=0).tolist()
    plot_confusion(matrix, classes, path, title)
