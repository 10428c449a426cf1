"""Stage keys and stamps: one answer to "what is outdated?" for Snakemake and DVC.

Snakemake remembers the parameters a job ran with in `.snakemake/metadata`, but only
for jobs it ran itself; after `dvc repro` it cannot see a changed parameter. DVC
remembers them in `dvc.lock`, but only for stages it ran or committed. Users mix
both tools, so the pipeline keeps its own record, readable by either:

* a job's **key** hashes its name, the values of its params.yaml keys, the digest of
  its code (the import closure of its command, dag/codedeps.py) and the keys of the
  jobs upstream of it (like a build-system action key). It is computed from
  params.yaml and the source files alone, without running anything;
* a job's **inputs** are the content fingerprints of its data deps (dag/fingerprint.py),
  taken when it starts and recorded in its stamp: a file changed in place, even at
  the same size, makes it outdated in every tool;
* every `fer` stage command writes a **stamp** (`_stage.json`) into its outputs
  holding the key it ran with. The stamp travels with the outputs (DVC caches it);
* for Snakemake, each job takes `.fer/keys/<job>.key` as an input, rewritten at
  parse time: its mtime is set to the epoch when the job's stamp matches its
  expected key and inputs, and to *now* otherwise, so Snakemake's ordinary mtime rule
  reruns exactly the jobs whose parameters, code or inputs (or upstream ones)
  changed, whoever ran them last;
* after a Snakemake run, `fer dvc-commit` records in dvc.lock the jobs whose stamp
  matches, so `dvc status` agrees too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
import uuid
from functools import lru_cache
from pathlib import Path

import psutil

from fer_pipeline.common.atomic import write_json
from fer_pipeline.common.params import digest
from fer_pipeline.dag.codedeps import code_digest, stage_code
from fer_pipeline.dag.fingerprint import tree_fingerprint
from fer_pipeline.dag.lineage import instances, param_values, upstream
from fer_pipeline.dag.stage import StageInstance

KEYS_DIR = Path(".fer/keys")


def expected_key(params: dict, inst: StageInstance) -> str:
    frozen = json.dumps(params, sort_keys=True)
    return _expected_key(frozen, inst.name)


@lru_cache(maxsize=None)
def _expected_key(frozen_params: str, name: str) -> str:
    params = json.loads(frozen_params)
    inst = next(i for i in instances(params) if i.name == name)
    ups = sorted((u.name, _expected_key(frozen_params, u.name)) for u in upstream(params, inst))
    code = code_digest(stage_code(inst.stage.command))
    return digest({"job": name, "params": param_values(params, inst), "code": code, "upstream": ups})


def read_stamp(path: str | Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def input_versions(inst: StageInstance, memo: bool = False) -> dict[str, str]:
    """Content fingerprints of the job's data deps (files or folders), by path."""
    return {path: tree_fingerprint(path, memo=memo) for path in inst.deps}


def _stamp_matches(params: dict, inst: StageInstance, stamp: dict | None) -> bool:
    if stamp is None or stamp.get("key") != expected_key(params, inst):
        return False
    return stamp.get("inputs", {}) == input_versions(inst, memo=True)


def is_current(params: dict, inst: StageInstance) -> bool:
    """True when the job's outputs exist and were made with today's parameters (and
    today's contents of its source folders)."""
    if not _stamp_matches(params, inst, read_stamp(inst.stamp)):
        return False
    return all(Path(p).exists() for p in inst.all_outputs)


def write_stamp(params: dict, inst: StageInstance, record: dict | None = None) -> dict:
    """Write the job's stamp last, atomically: its presence means the outputs are complete."""
    stamp = {
        "job": inst.name,
        "key": expected_key(params, inst),
        "params": param_values(params, inst),
        "pipeline_id": pipeline_id(),
        "git_commit": git_commit(),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **(record or {}),
    }
    path = Path(inst.stamp)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, stamp, sort_keys=True)
    return stamp


def sync_key_file(params: dict, inst: StageInstance, keys_dir: Path = KEYS_DIR) -> str:
    """Write the job's key file for Snakemake and date it (see module docstring).

    The file holds the key and the input fingerprints: Snakemake skips an input whose
    mtime is newer but whose checksum it has seen before, so what changed must change
    the file's bytes, not only its date."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / f"{inst.name}.key"
    content = "\n".join([expected_key(params, inst)] + [f"{src} {fp}" for src, fp in
                                                        sorted(input_versions(inst, memo=True).items())]) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != content:
        path.write_text(content, encoding="utf-8")
    if _stamp_matches(params, inst, read_stamp(inst.stamp)):
        os.utime(path, (0, 0))  # satisfied: older than any output
    else:
        now = time.time()
        os.utime(path, (now, now))  # outdated: newer than the outputs
    return str(path)


def pipeline_id() -> str:
    """An id shared by all stages of one `snakemake` / `dvc repro` invocation.

    The Snakefile exports FER_PIPELINE_ID. DVC offers no such hook, so under
    `dvc repro` the id is derived from the dvc process (pid + start time), which
    is the common ancestor of all stages it runs. A command run by hand gets a
    fresh id.
    """
    env = os.environ.get("FER_PIPELINE_ID")
    if env:
        return env
    ancestor = _orchestrator_ancestor()
    if ancestor:
        return ancestor
    os.environ["FER_PIPELINE_ID"] = new_pipeline_id()
    return os.environ["FER_PIPELINE_ID"]


def new_pipeline_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _orchestrator_ancestor() -> str | None:
    """The nearest `dvc` process above this one, as `dvc-<pid>-<start time>`."""
    try:
        ancestors = psutil.Process().parents()[:8]
    except psutil.Error:
        return None
    for proc in ancestors:
        try:
            cmdline = proc.cmdline()
            started = proc.create_time()
        except psutil.Error:
            return None
        if cmdline and ("dvc" in Path(cmdline[0]).name or "dvc" in cmdline[:2] or
                        any(Path(arg).name == "dvc" for arg in cmdline[:2])):
            return f"dvc-{proc.pid}-{int(started * 100)}"
    return None


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return out + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
