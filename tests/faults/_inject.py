"""Runs `fer` with one fault injected: the N-th call of a function SIGKILLs the process
(`kill`), or waits there until a file appears (`pause`: a job held mid-way while the
test starts a second tool beside it).

    FER_FAULT='{"action": "kill", "target": "torch.optim:Adam.step", "at": 4}' python _inject.py train-supervised

The target is `module:attribute.path`; the call is counted before the original runs, so
`at: 4` dies with three calls done. Nothing in fer_pipeline knows about this file.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys
import time
from pathlib import Path


def install(spec: dict) -> None:
    module_name, _, path = spec["target"].partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = {"n": 0}

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == spec["at"]:
            if spec["action"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            signals = Path(spec["dir"])
            (signals / "paused").write_text(str(os.getpid()))
            deadline = time.monotonic() + spec.get("timeout", 120)
            while not (signals / "go").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def main() -> int:
    spec = os.environ.get("FER_FAULT")
    if spec:
        install(json.loads(spec))
    from fer_pipeline.cli import main as fer_main

    return fer_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
