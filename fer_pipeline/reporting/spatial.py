"""`fer report-spatial`: Face2Exp's Tables 4 and 6, the pseudo-label audit
and the mining audit, as mean ± sd over the study's seeds (Markdown, JSON, plots)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fer_pipeline.common.atomic import write_json, write_text  # noqa: E402
from fer_pipeline.eval.plots import save_figure  # noqa: E402
from fer_pipeline.reporting.format import DEMO_NOTE, fmt, mean_sd  # noqa: E402
from fer_pipeline.studies.spatial import ablation_rows, percent  # noqa: E402

METRICS = ("mean_class_accuracy", "std_class_accuracy", "overall_accuracy", "macro_f1")


def aggregate(seeds: list[dict], result: str) -> dict:
    return {m: mean_sd([s["results"][result][m] for s in seeds]) for m in METRICS}


def last_audit(history: list[dict]) -> dict:
    """The last logged audit window of a meta run (pseudo-label accuracy, f, shares)."""
    return history[-1] if history else {}


def audit_rows(seeds: list[dict], runs: list[str]) -> list[dict]:
    rows = []
    for run in runs:
        finals = [last_audit(s["histories"][run]) for s in seeds]
        row = {"run": run}
        no_feedback = all(f.get("feedback_mean", 0.0) == 0.0 and f.get("feedback_positive_rate", 0.0) == 0.0
                          for f in finals)  # an ablation without L_f never computes f
        for key in ("pseudo_label_accuracy", "feedback_mean", "feedback_positive_rate"):
            values = [f[key] for f in finals if key in f]
            if key.startswith("feedback") and no_feedback:
                values = []
            row[key] = mean_sd(values, 1.0 if key == "feedback_mean" else 100.0) if values else None
        rows.append(row)
    return rows


def pseudo_histogram(seeds: list[dict], run: str, classes: list[str]) -> dict:
    finals = [last_audit(s["histories"][run]) for s in seeds]
    return {c: {"pseudo": mean_sd([f.get(f"pseudo_share.{c}", 0.0) for f in finals]),
                "true": mean_sd([f.get(f"true_share.{c}", 0.0) for f in finals])} for c in classes}


def mining_table(seeds: list[dict]) -> dict:
    """Per delta and class: precision and coverage, mean ± sd over the seeds that have them."""
    audits = [s["mining"] for s in seeds if s.get("mining")]
    if not audits:
        return {}
    table: dict = {}
    for delta in audits[0]:
        table[delta] = {}
        for name in audits[0][delta]:
            entry = {}
            for key in ("precision", "coverage"):
                values = [a[delta][name][key] for a in audits if a[delta][name][key] is not None]
                entry[key] = mean_sd(values) if values else None
            table[delta][name] = entry
    return table


def build_tables(seeds: list[dict], spatial: dict) -> dict:
    fractions = spatial["labeled_fractions"]
    table4 = {"SL 100 %": aggregate(seeds, "sl_100")}
    for p in fractions:
        table4[f"Meta {percent(p)} %"] = aggregate(seeds, f"meta_{percent(p)}")
    table6 = {label: aggregate(seeds, result) for label, result in ablation_rows(spatial)}
    meta_runs = [f"meta_{percent(p)}" for p in fractions] + ["abl_su", "abl_suc"]
    meta_runs = list(dict.fromkeys(r for r in meta_runs if r in seeds[0]["histories"]))
    classes = list(seeds[0]["results"]["sl_100"]["per_class_accuracy"])
    full = ablation_rows(spatial)[-1][1]
    per_class = {name: {c: mean_sd([s["results"][name]["per_class_accuracy"][c] or 0.0 for s in seeds])
                        for c in classes} for name in ["sl_100", full]}
    return {
        "seeds": [s["seed"] for s in seeds],
        "table4": table4,
        "table6": table6,
        "per_class": per_class,
        "audit": audit_rows(seeds, meta_runs),
        "pseudo_histogram": {"run": full, "classes": pseudo_histogram(seeds, full, classes)},
        "mining": mining_table(seeds),
        "seconds": {run: mean_sd([s["seconds"][run] for s in seeds], 1.0) for run in seeds[0]["seconds"]},
        "headline": {
            "sl_100.mean_class_accuracy": table4["SL 100 %"]["mean_class_accuracy"]["mean"],
            "sl_100.std_class_accuracy": table4["SL 100 %"]["std_class_accuracy"]["mean"],
            **{f"{name.replace(' ', '_').replace('%', 'pct')}.{m}": stats[m]["mean"]
               for name, stats in table4.items() if name != "SL 100 %"
               for m in ("mean_class_accuracy", "std_class_accuracy")},
        },
    }


def to_markdown(tables: dict, spatial: dict, synthetic: bool) -> str:
    n = len(tables["seeds"])
    lines = ["# Face2Exp on the demo data: Tables 4 and 6", ""]
    if synthetic:
        lines += [f"> {DEMO_NOTE}", ""]
    lines += [f"Mean ± sd over {n} seeds ({', '.join(map(str, tables['seeds']))}); every run from scratch, "
              f"{spatial['arch']} at {spatial['input_size']} px, SL {spatial['sl_epochs']} epochs, meta {spatial['meta_steps']} steps "
              "then the student's finetuning on its own subset. Accuracies in %.", "",
              "## Table 4 shape: SL with 100 % labels vs Meta-Face2Exp with balanced subsets" if spatial["balanced"]
              else "## Table 5 shape: SL with 100 % labels vs Meta-Face2Exp with unbalanced subsets", ""]
    cols = list(tables["table4"])
    lines += ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for metric, label in (("mean_class_accuracy", "Mean accuracy ↑"), ("std_class_accuracy", "Std accuracy ↓"),
                          ("overall_accuracy", "Overall accuracy"), ("macro_f1", "Macro-F1")):
        lines.append(f"| {label} | " + " | ".join(fmt(tables["table4"][c][metric]) for c in cols) + " |")
    lines += ["", f"## Table 6 shape: losses (labelled subset {percent(spatial['ablation_fraction'])} %)", "",
              "| model | L_s | L_u | L_c | L_f | mean acc | std acc | overall acc |", "|---|---|---|---|---|---:|---:|---:|"]
    for k, (label, stats) in enumerate(tables["table6"].items()):
        marks = " | ".join("✓" if j <= k else "✗" for j in range(4))
        lines.append(f"| {k + 1} ({label}) | {marks} | {fmt(stats['mean_class_accuracy'])} | "
                     f"{fmt(stats['std_class_accuracy'])} | {fmt(stats['overall_accuracy'])} |")
    classes = list(next(iter(tables["per_class"].values())))
    lines += ["", "Per-class accuracy:", "", "| model | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for name, per in tables["per_class"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(per[c]) for c in classes) + " |")
    lines += ["", "## Pseudo-label audit (last logged window of each meta run; the pool's true expressions "
              "come from FaceSynth)", "", "| run | teacher pseudo-label acc | f mean | f > 0 rate |", "|---|---:|---:|---:|"]
    for row in tables["audit"]:
        acc = fmt(row["pseudo_label_accuracy"]) if row["pseudo_label_accuracy"] else "—"
        f_mean, f_rate = row["feedback_mean"], row["feedback_positive_rate"]
        f_text = f"{f_mean['mean']:.2e} ± {f_mean['sd']:.2e} | {fmt(f_rate)}" if f_mean else "— (no L_f) | —"
        lines.append(f"| {row['run']} | {acc} | {f_text} |")
    hist = tables["pseudo_histogram"]
    lines += ["", f"Pseudo-label class shares vs the pool's true shares ({hist['run']}, %):", "",
              "| | " + " | ".join(hist["classes"]) + " |", "|---|" + "---:|" * len(hist["classes"]),
              "| pseudo | " + " | ".join(fmt(v["pseudo"]) for v in hist["classes"].values()) + " |",
              "| true | " + " | ".join(fmt(v["true"]) for v in hist["classes"].values()) + " |"]
    if tables["mining"]:
        deltas = list(tables["mining"])
        lines += ["", "## Omni-supervised mining (seed 001) with each seed's SL model",
                  "", "Precision / coverage in % (mean over seeds) at each margin δ:", "",
                  "| class | " + " | ".join(f"δ = {d}" for d in deltas) + " |", "|---|" + "---:|" * len(deltas)]

        def cell(entry: dict) -> str:
            return " / ".join("—" if entry[k] is None else f"{entry[k]['mean']:.1f}" for k in ("precision", "coverage"))

        for name in tables["mining"][deltas[0]]:
            lines.append(f"| {name} | " + " | ".join(cell(tables["mining"][d][name]) for d in deltas) + " |")
    lines += ["", "Wall time per run (s, mean ± sd): " + ", ".join(
        f"{run} {stat['mean']:.0f} ± {stat['sd']:.0f}" for run, stat in tables["seconds"].items())]
    return "\n".join(lines) + "\n"


def _bars(ax, labels: list[str], stats: list[dict], title: str) -> None:
    ax.bar(range(len(labels)), [s["mean"] for s in stats], yerr=[s["sd"] for s in stats], capsize=4,
           color="#4C72B0")
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_title(title)
    ax.set_ylabel("%")


def plot_tables(tables: dict, seeds: list[dict], out: Path) -> None:
    for name, table in (("table4", tables["table4"]), ("table6", tables["table6"])):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        labels = list(table)
        _bars(axes[0], labels, [table[c]["mean_class_accuracy"] for c in labels], "mean class accuracy ↑")
        _bars(axes[1], labels, [table[c]["std_class_accuracy"] for c in labels], "std of class accuracy ↓")
        fig.tight_layout()
        save_figure(fig, out / f"{name}.png", dpi=110, bbox_inches=None)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for row in tables["audit"]:
        curves = [[r.get("pseudo_label_accuracy") for r in s["histories"][row["run"]]] for s in seeds]
        if not curves[0] or curves[0][0] is None:
            continue
        steps = [r["step"] for r in seeds[0]["histories"][row["run"]]]
        ax.plot(steps, 100 * np.mean(np.asarray(curves, dtype=float), axis=0), label=row["run"])
    ax.set_xlabel("meta step")
    ax.set_ylabel("teacher pseudo-label accuracy (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "pseudo_label_accuracy.png", dpi=110, bbox_inches=None)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    deltas = list(tables["mining"])
    if deltas:
        classes = list(tables["mining"][deltas[0]])
        for key, style in (("precision", "-o"), ("coverage", "--s")):
            for name in classes:
                values = [tables["mining"][d][name][key]["mean"] if tables["mining"][d][name][key] else np.nan
                          for d in deltas]
                ax.plot([float(d) for d in deltas], values, style, label=f"{name} {key}", markersize=3)
        ax.legend(fontsize=6, ncol=2)
    ax.set_xlabel("margin δ")
    ax.set_ylabel("%")
    ax.set_title("mining precision / coverage per class")
    fig.tight_layout()
    save_figure(fig, out / "mining.png", dpi=110, bbox_inches=None)


def write_spatial_report(results_files: list[Path], spatial: dict, out_dir: str | Path, synthetic: bool) -> dict:
    seeds = []
    for path in results_files:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} not found: run `fer spatial-study --seed ...` first")
        seeds.append(json.loads(Path(path).read_text(encoding="utf-8")))
    tables = build_tables(seeds, spatial)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_tables(tables, seeds, out)
    write_json(out / "tables.json", tables)
    write_text(out / "tables.md", to_markdown(tables, spatial, synthetic))
    return tables
