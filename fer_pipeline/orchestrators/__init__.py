"""What the two orchestrators read: dvc.yaml, rendered from the stage list (dvc_render.py),
and the Snakefile's rules (snakemake_rules.py).

Outside `fer_pipeline/dag/` on purpose: no stage imports this package, so editing it
outdates no job, and every module of `dag/` is in every stage's code closure, which lets
dvc.yaml list `fer_pipeline/dag` as one folder dep instead of a dozen files per job.
"""
