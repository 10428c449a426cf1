"""Load and validate params.yaml: the single source of every knob."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fer_pipeline.common.params_checks import cross_field_errors

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "params.schema.yaml"
DEFAULT_PARAMS = Path("params.yaml")


# The optional reader keys of datasets.<name> (fer_pipeline/data/io/layout.py, docs/datasets.md)
# and the formats each applies to (None: every format).
DATASET_READ_KEYS: dict[str, tuple[str, ...] | None] = {
    "follow_symlinks": None,
    "allow_empty": None,
    "max_missing_fraction": None,
    "ignore": None,
    "layout": ("webface_folders",),
    "annotations_dir": ("affwild2_expr",),
    "frames_dir": ("affwild2_expr",),
    "labels_dir": ("affectnet_manual",),
    "images_dir": ("affectnet_manual",),
    "splits": ("affectnet_manual", "affwild2_expr"),
}


class ParamsError(ValueError):
    """params.yaml is unreadable or does not match the schema."""


def load_schema() -> dict:
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _key_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def validate(params: dict, source: str = "params.yaml", base_dir: str | Path | None = None) -> dict:
    """Raise ParamsError naming the offending key for every schema violation, then for
    every cross-field problem (common/params_checks.py). `base_dir`: the params file's
    folder, which relative dataset roots are read from (default: the working directory)."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors:
            where = _key_path(err)
            if err.validator == "additionalProperties":
                # jsonschema's message names the unknown key; give the full dotted path.
                known = set(err.schema.get("properties", {}))
                extra = sorted(set(err.instance) - known) if isinstance(err.instance, dict) else []
                for key in extra:
                    full = f"{where}.{key}" if where != "<top level>" else key
                    lines.append(f"{source}: unknown key '{full}'")
                continue
            lines.append(f"{source}: key '{where}': {err.message}")
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(lines))
    lines = _dataset_key_errors(params, source) + cross_field_errors(params, source, base_dir)
    if lines:
        raise ParamsError("invalid parameters:\n  " + "\n  ".join(lines))
    return params


def _dataset_key_errors(params: dict, source: str) -> list[str]:
    """A reader key of datasets.<name> given for a format that does not take it."""
    lines = []
    for name, ds in (params.get("datasets") or {}).items():
        for key, formats in DATASET_READ_KEYS.items():
            if key in ds and formats is not None and ds.get("format") not in formats:
                lines.append(f"{source}: key 'datasets.{name}.{key}' applies to format {' / '.join(formats)} only, "
                             f"not {ds.get('format')}")
    return lines


def load(path: str | Path = DEFAULT_PARAMS) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            params = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (run from the project root or pass --params)") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return validate(params, str(path), path.resolve().parent)


def select(params: dict, dotted: str) -> Any:
    """params['a']['b'] for 'a.b'."""
    node: Any = params
    for part in dotted.split("."):
        node = node[part]
    return node


def digest(obj: Any) -> str:
    """Stable short hash of a JSON-able object (used for parameter slices)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, for logging params to MLflow."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}
