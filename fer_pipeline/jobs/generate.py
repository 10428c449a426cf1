"""`fer generate`: write the FaceSynth demo datasets in their real on-disk formats."""

from fer_pipeline.dag.stages import uses_facesynth
from fer_pipeline.data.synth.generate import generate

STAGE = "generate"


def item(args, params: dict) -> None:
    """The stage has one job; checked before the stage list is asked for it, which has no
    generate stage at all when no dataset reads FaceSynth's output."""
    if not uses_facesynth(params):
        raise SystemExit(f"fer generate: no dataset of params.yaml `datasets` has its root under generate.out_dir "
                         f"({params['generate']['out_dir']}): FaceSynth would write data nothing reads")
    return None


def run(job) -> dict:
    summary = generate(job.params["generate"])
    job.tracker.log_dict(summary, "facesynth_summary.json")
    return {"summary": summary}
