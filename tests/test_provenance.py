"""The pipeline id every stage of one `dvc repro` shares, found through the process tree
with psutil (no /proc: portable to any OS psutil supports)."""

from __future__ import annotations

import subprocess
import sys

from conftest import tool_env

PRINT_ID = "from fer_pipeline.dag.provenance import pipeline_id; print(pipeline_id())"


def test_stages_under_one_dvc_process_share_its_id_and_others_get_fresh_ones(tmp_path):
    fake_dvc = tmp_path / "dvc"  # what `dvc repro` looks like from its stages: a process named dvc
    fake_dvc.write_text(f"#!{sys.executable}\nimport os, subprocess, sys\nprint(os.getpid(), flush=True)\n"
                        f"for _ in range(2):\n    subprocess.run([sys.executable, '-c', {PRINT_ID!r}], check=True)\n")
    fake_dvc.chmod(0o755)
    out = subprocess.run([str(fake_dvc)], capture_output=True, text=True, env=tool_env(), check=True,
                         timeout=120).stdout.split()
    pid, first, second = out
    assert first == second, "two stages of one dvc run share one id"
    assert first.startswith(f"dvc-{pid}-")

    by_hand = [subprocess.run([sys.executable, "-c", PRINT_ID], capture_output=True, text=True, env=tool_env(),
                              check=True, timeout=120).stdout.strip() for _ in range(2)]
    assert by_hand[0] != by_hand[1] and not by_hand[0].startswith("dvc-"), "a command run by hand: a fresh id"

    env = {**tool_env(), "FER_PIPELINE_ID": "from-snakemake"}
    assert subprocess.run([str(fake_dvc)], capture_output=True, text=True, env=env, check=True,
                          timeout=120).stdout.split()[1:] == ["from-snakemake"] * 2, "the Snakefile's id wins"
