"""`fer report`: gather every evaluated model into one results table (Markdown), and
its headline numbers into `summary.json`, the one file `dvc metrics show` reads."""

from __future__ import annotations

import json
from pathlib import Path

from fer_pipeline.common.atomic import write_json, write_text
from fer_pipeline.common.headline import HEADLINE
from fer_pipeline.reporting.format import DEMO_NOTE


def build_summary(metrics_files: dict[str, Path], synthetic: bool, temporal_metrics: Path | None = None) -> dict:
    rows = []
    for model, path in metrics_files.items():
        m = json.loads(Path(path).read_text(encoding="utf-8"))
        rows.append({
            "model": model,
            "dataset": m["dataset"],
            "n": m["n"],
            "overall_accuracy": m["overall_accuracy"],
            "mean_class_accuracy": m["mean_class_accuracy"],
            "std_class_accuracy": m["std_class_accuracy"],
            "macro_f1": m["macro_f1"],
            "per_class_accuracy": m["per_class_accuracy"],
        })
    summary = {"data": "FaceSynth (synthetic demo)" if synthetic else "user datasets", "rows": rows}
    if temporal_metrics is not None:
        summary["temporal"] = json.loads(Path(temporal_metrics).read_text(encoding="utf-8"))["table"]
    return summary


def to_markdown(summary: dict) -> str:
    lines = ["# fer-pipeline results", ""]
    if summary["data"].startswith("FaceSynth"):
        lines += [f"> {DEMO_NOTE}", ""]
    lines += ["| model | test set | n | overall acc | mean class acc | std class acc | macro-F1 |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        lines.append(f"| {r['model']} | {r['dataset']} | {r['n']} | {100 * r['overall_accuracy']:.2f} | "
                     f"{100 * r['mean_class_accuracy']:.2f} | {100 * r['std_class_accuracy']:.2f} | "
                     f"{100 * r['macro_f1']:.2f} |")
    for r in summary["rows"]:
        classes = list(r["per_class_accuracy"])
        lines += ["", f"Per-class accuracy (%), {r['model']}:", "",
                  "| " + " | ".join(classes) + " |", "|" + "---:|" * len(classes),
                  "| " + " | ".join("—" if r["per_class_accuracy"][c] is None
                                    else f"{100 * r['per_class_accuracy'][c]:.1f}" for c in classes) + " |"]
    if "temporal" in summary:
        from fer_pipeline.reporting.temporal import to_markdown as temporal_markdown

        lines += ["", temporal_markdown(summary["temporal"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def headline(summary: dict) -> dict:
    """The numbers a reader compares runs by: four per model, the temporal table's
    mean macro-F1 and accuracy per row (per-class and per-seed numbers stay in the
    stages' own metrics.json files)."""
    out: dict = {"models": {r["model"]: {k: r[k] for k in HEADLINE} for r in summary["rows"]}}
    if "temporal" in summary:
        out["temporal"] = {row["row"]: {"macro_f1": row["macro_f1"]["mean"], "accuracy": row["accuracy"]["mean"]}
                           for row in summary["temporal"]["rows"]}
    return out


def write_report(metrics_files: dict[str, Path], out_dir: str | Path, synthetic: bool,
                 temporal_metrics: Path | None = None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = build_summary(metrics_files, synthetic, temporal_metrics)
    write_json(out / "summary.json", headline(summary))
    write_text(out / "summary.md", to_markdown(summary))
    return summary
