"""`fer generate`: write the FaceSynth demo datasets in their real on-disk formats."""

from pathlib import Path

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.data.synth.generate import generate

STAGE = "generate"


def item(args, params: dict) -> None:
    """The stage has one job. Checked first (before the stage list, which has no generate
    stage when no dataset reads FaceSynth's output, and before the MLflow run opens)."""
    if not uses_facesynth(params):
        raise SystemExit(f"fer generate: no dataset of params.yaml `datasets` has its root under generate.out_dir "
                         f"({params['generate']['out_dir']}): FaceSynth would write data nothing reads")
    out_dir = Path(params["generate"]["out_dir"])
    blocked = next((p for p in (out_dir, *out_dir.parents) if p.exists() and not p.is_dir()), None)
    if blocked is not None:  # else a raw NotADirectoryError traceback from mkdir
        raise SystemExit(f"fer generate: generate.out_dir {out_dir}: {blocked} is a file, not a folder")
    return None


def run(job) -> dict:
    summary = generate(job.params["generate"])
    job.tracker.log_dict(summary, "facesynth_summary.json")
    return {"summary": summary}
