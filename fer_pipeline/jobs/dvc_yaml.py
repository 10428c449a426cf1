"""`fer dvc-yaml`: render dvc.yaml from the stage list (--check: fail if it drifted)."""

from pathlib import Path

from fer_pipeline.common.atomic import write_text
from fer_pipeline.orchestrators.dvc_render import render_dvc_yaml
from fer_pipeline.dag.stages import GROUPS


def run(params: dict, args) -> None:
    groups = [args.group] if args.group else ["main"]
    for group in groups:
        text = render_dvc_yaml(params, group)
        path = Path(GROUPS[group]["dvc_file"])
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                raise SystemExit(f"{path} is out of date with the stage list (fer_pipeline/dag/stages/), the code's "
                                 "imports and params.yaml: run `fer dvc-yaml`")
            print(f"{path} is up to date")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text(path, text)
        print(f"wrote {path}")
