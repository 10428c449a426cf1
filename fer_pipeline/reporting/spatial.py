"""`fer report-spatial`: Face2Exp's Tables 4 and 6, the paired differences Meta p − SL p,
the pseudo-label audit and the mining audit, as mean ± sd over the study's seeds
(Markdown, JSON, plots).

Meta p and SL p of one seed share their labelled subset, their initialisation and their
finetune, so their difference is taken per seed, then summarised over the seeds."""

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
from fer_pipeline.studies.spatial import ablation_rows, meta_name, percent, sl_name  # noqa: E402

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


def table4_columns(spatial: dict) -> list[tuple[str, str]]:
    """(column label, result name): SL p % beside Meta p % per fraction, then SL 100 %."""
    columns = []
    for p in spatial["labeled_fractions"]:
        columns += [(f"SL {percent(p)} %", sl_name(p)), (f"Meta {percent(p)} %", meta_name(p))]
    if 1.0 not in spatial["labeled_fractions"]:
        columns.append(("SL 100 %", sl_name(1.0)))
    return columns


def sl_fractions(spatial: dict) -> list[float]:
    """Every SL run's fraction: Table 4's, the ablation's, and 100 %."""
    fractions = list(spatial["labeled_fractions"])
    return fractions + [p for p in (spatial["ablation_fraction"], 1.0) if p not in fractions]


PAIRED_METRICS = ("mean_class_accuracy", "std_class_accuracy")


def pair_key(run: str, baseline: str) -> str:
    return f"{run}_minus_{baseline}"


def paired_difference(seeds: list[dict], run: str, baseline: str, metric: str) -> dict:
    """`run` − `baseline` within each seed (same subset, init and finetune), then mean ± sd
    over the seeds, in points."""
    return mean_sd([s["results"][run][metric] - s["results"][baseline][metric] for s in seeds])


def paired_table(seeds: list[dict], spatial: dict) -> dict:
    """Per fraction: Meta p − SL p (the like-for-like pair) and Meta p − SL 100 %."""
    table = {}
    for p in spatial["labeled_fractions"]:
        for baseline in dict.fromkeys((sl_name(p), sl_name(1.0))):
            table[pair_key(meta_name(p), baseline)] = {
                m: paired_difference(seeds, meta_name(p), baseline, m) for m in PAIRED_METRICS}
    return table


def headline(table4: dict, columns: list[tuple[str, str]], paired: dict) -> dict:
    """The study's summary metrics: each Table 4 column's mean/std class accuracy (means over
    seeds) and each paired difference (mean, and its sd over seeds)."""
    out = {f"{result}.{m}": table4[label][m]["mean"] for label, result in columns for m in PAIRED_METRICS}
    for key, stats in paired.items():
        for m in PAIRED_METRICS:
            out[f"{key}.{m}"] = stats[m]["mean"]
            out[f"{key}.{m}_sd"] = stats[m]["sd"]
    return out


def build_tables(seeds: list[dict], spatial: dict) -> dict:
    fractions = spatial["labeled_fractions"]
    columns = table4_columns(spatial)
    table4 = {label: aggregate(seeds, result) for label, result in columns}
    paired = paired_table(seeds, spatial)
    sl_raw = {f"SL {percent(p)} %": aggregate(seeds, f"{sl_name(p)}_raw") for p in sl_fractions(spatial)}
    table6 = {label: aggregate(seeds, result) for label, result in ablation_rows(spatial)}
    meta_runs = [meta_name(p) for p in fractions] + ["abl_su", "abl_suc"]
    meta_runs = list(dict.fromkeys(r for r in meta_runs if r in seeds[0]["histories"]))
    full = ablation_rows(spatial)[-1][1]
    classes = list(seeds[0]["results"][full]["per_class_accuracy"])
    compared = dict.fromkeys([sl_name(spatial["ablation_fraction"]), full, sl_name(1.0)])
    per_class = {name: {c: mean_sd([s["results"][name]["per_class_accuracy"][c] or 0.0 for s in seeds])
                        for c in classes} for name in compared}
    return {
        "seeds": [s["seed"] for s in seeds],
        "table4": table4,
        "paired": paired,
        "sl_raw": sl_raw,
        "table6": table6,
        "per_class": per_class,
        "audit": audit_rows(seeds, meta_runs),
        "pseudo_histogram": {"run": full, "classes": pseudo_histogram(seeds, full, classes)},
        "mining": mining_table(seeds),
        "seconds": {run: mean_sd([s["seconds"][run] for s in seeds], 1.0) for run in seeds[0]["seconds"]},
        "headline": headline(table4, columns, paired),
    }


def signed(stat: dict) -> str:
    return f"{stat['mean']:+.2f} ± {stat['sd']:.2f}"


def paired_markdown(tables: dict, spatial: dict) -> list[str]:
    """Rows per fraction: Meta p % minus SL p % (the like-for-like pair) and minus SL 100 %."""
    full = sl_name(1.0)
    lines = ["", "## Paired differences: Meta p % − SL p % and Meta p % − SL 100 %", "",
             "Within each seed (Meta p and SL p share the labelled subset, the initialisation and the "
             "finetune), then mean ± sd over the seeds, in points. Mean accuracy: positive favours Meta; "
             "std accuracy: negative favours Meta.", "",
             "| Meta p % minus | SL p %: mean acc | SL p %: std acc | SL 100 %: mean acc | SL 100 %: std acc |",
             "|---|---:|---:|---:|---:|"]
    for p in spatial["labeled_fractions"]:
        own = tables["paired"][pair_key(meta_name(p), sl_name(p))]
        to_full = tables["paired"][pair_key(meta_name(p), full)]
        lines.append(f"| Meta {percent(p)} % | {signed(own['mean_class_accuracy'])} | "
                     f"{signed(own['std_class_accuracy'])} | {signed(to_full['mean_class_accuracy'])} | "
                     f"{signed(to_full['std_class_accuracy'])} |")
    return lines


def _stat_rows(table: dict, metrics: tuple[tuple[str, str], ...]) -> list[str]:
    """A Markdown table: one column per entry of `table`, one row per (metric, label)."""
    cols = list(table)
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for metric, label in metrics:
        lines.append(f"| {label} | " + " | ".join(fmt(table[c][metric]) for c in cols) + " |")
    return lines


ACCURACY_ROWS = (("mean_class_accuracy", "Mean accuracy ↑"), ("std_class_accuracy", "Std accuracy ↓"))
TABLE4_ROWS = ACCURACY_ROWS + (("overall_accuracy", "Overall accuracy"), ("macro_f1", "Macro-F1"))


def header_markdown(tables: dict, spatial: dict, synthetic: bool) -> list[str]:
    n = len(tables["seeds"])
    lines = ["# Face2Exp on the demo data: Tables 4 and 6", ""]
    if synthetic:
        lines += [f"> {DEMO_NOTE}", ""]
    return lines + [
        f"Mean ± sd over {n} seeds ({', '.join(map(str, tables['seeds']))}); {spatial['arch']} at "
        f"{spatial['input_size']} px. At each labelled fraction p, SL p % trains {spatial['sl_epochs']} epochs "
        f"on exactly the labelled subset Meta p % uses, from the study's initialisation ({spatial['init']}); "
        f"Meta p %'s teacher and student start from SL p %'s weights and train {spatial['meta_steps']} steps; "
        "every model is then finetuned the same way on its subset's labels. Accuracies in %."]


def table4_markdown(tables: dict, spatial: dict) -> list[str]:
    subsets = "balanced subsets" if spatial["balanced"] else "unbalanced subsets"
    lines = ["", f"## {'Table 4' if spatial['balanced'] else 'Table 5'} shape: SL vs Meta-Face2Exp on the same "
                 f"{subsets}, and SL with 100 % labels", ""]
    lines += _stat_rows(tables["table4"], TABLE4_ROWS)
    lines += ["", "SL before its finetune (the weights Meta starts from):", ""]
    return lines + _stat_rows(tables["sl_raw"], ACCURACY_ROWS)


def table6_markdown(tables: dict, spatial: dict) -> list[str]:
    abl = percent(spatial["ablation_fraction"])
    lines = ["", f"## Table 6 shape: losses (labelled subset {abl} %)", "",
             f"Every row starts from SL {abl} %'s weights and is finetuned like it, except L_s: the teacher of "
             "the + L_u run (its teacher loss is L_s alone), not finetuned.", "",
             "| model | L_s | L_u | L_c | L_f | mean acc | std acc | overall acc |", "|---|---|---|---|---|---:|---:|---:|"]
    for k, (label, stats) in enumerate(tables["table6"].items()):
        marks = " | ".join("✓" if j <= k else "✗" for j in range(4))
        lines.append(f"| {k + 1} ({label}) | {marks} | {fmt(stats['mean_class_accuracy'])} | "
                     f"{fmt(stats['std_class_accuracy'])} | {fmt(stats['overall_accuracy'])} |")
    classes = list(next(iter(tables["per_class"].values())))
    lines += ["", "Per-class accuracy:", "", "| model | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for name, per in tables["per_class"].items():
        lines.append(f"| {name} | " + " | ".join(fmt(per[c]) for c in classes) + " |")
    return lines


def audit_markdown(tables: dict) -> list[str]:
    lines = ["", "## Pseudo-label audit (last logged window of each meta run; the pool's true expressions "
             "come from FaceSynth)", "", "| run | teacher pseudo-label acc | f mean | f > 0 rate |", "|---|---:|---:|---:|"]
    for row in tables["audit"]:
        acc = fmt(row["pseudo_label_accuracy"]) if row["pseudo_label_accuracy"] else "—"
        f_mean, f_rate = row["feedback_mean"], row["feedback_positive_rate"]
        f_text = f"{f_mean['mean']:.2e} ± {f_mean['sd']:.2e} | {fmt(f_rate)}" if f_mean else "— (no L_f) | —"
        lines.append(f"| {row['run']} | {acc} | {f_text} |")
    hist = tables["pseudo_histogram"]
    return lines + ["", f"Pseudo-label class shares vs the pool's true shares ({hist['run']}, %):", "",
                    "| | " + " | ".join(hist["classes"]) + " |", "|---|" + "---:|" * len(hist["classes"]),
                    "| pseudo | " + " | ".join(fmt(v["pseudo"]) for v in hist["classes"].values()) + " |",
                    "| true | " + " | ".join(fmt(v["true"]) for v in hist["classes"].values()) + " |"]


def mining_markdown(tables: dict) -> list[str]:
    if not tables["mining"]:
        return []
    deltas = list(tables["mining"])
    lines = ["", "## Omni-supervised mining (seed 001) with each seed's SL 100 % model (before its finetune)",
             "", "Precision / coverage in % (mean over seeds) at each margin δ:", "",
             "| class | " + " | ".join(f"δ = {d}" for d in deltas) + " |", "|---|" + "---:|" * len(deltas)]

    def cell(entry: dict) -> str:
        return " / ".join("—" if entry[k] is None else f"{entry[k]['mean']:.1f}" for k in ("precision", "coverage"))

    for name in tables["mining"][deltas[0]]:
        lines.append(f"| {name} | " + " | ".join(cell(tables["mining"][d][name]) for d in deltas) + " |")
    return lines


def to_markdown(tables: dict, spatial: dict, synthetic: bool) -> str:
    lines = header_markdown(tables, spatial, synthetic)
    lines += table4_markdown(tables, spatial)
    lines += paired_markdown(tables, spatial)
    lines += table6_markdown(tables, spatial)
    lines += audit_markdown(tables)
    lines += mining_markdown(tables)
    lines += ["", "Wall time per run (s, mean ± sd): " + ", ".join(
        f"{run} {stat['mean']:.0f} ± {stat['sd']:.0f}" for run, stat in tables["seconds"].items())]
    return "\n".join(lines) + "\n"


def _bars(ax, labels: list[str], stats: list[dict], title: str) -> None:
    # SL grey, Meta blue: each Meta bar stands beside the SL bar it is paired with.
    colors = ["#8C8C8C" if label.startswith("SL") else "#4C72B0" for label in labels]
    ax.bar(range(len(labels)), [s["mean"] for s in stats], yerr=[s["sd"] for s in stats], capsize=4,
           color=colors)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_title(title)
    ax.set_ylabel("%")


def plot_tables(tables: dict, seeds: list[dict], out: Path) -> None:
    for name, table in (("table4", tables["table4"]), ("table6", tables["table6"])):
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
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
