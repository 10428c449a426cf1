"""`fer generate`: write the FaceSynth demo datasets in their real on-disk formats."""

from fer_pipeline.data.synth.generate import generate

STAGE = "generate"


def run(job) -> dict:
    summary = generate(job.params["generate"])
    job.tracker.log_dict(summary, "facesynth_summary.json")
    return {"summary": summary}
