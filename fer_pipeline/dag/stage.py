"""One stage of the DAG, as data, and one job of it (a stage with its item filled in).

A stage may be *scattered* over items (one `prepare` job per dataset partition): its
templates then contain `{<item_name>}` and per-item values such as `{root}`.
Snakemake sees the item as a wildcard; DVC as a `foreach` stage.

A stage's code dependencies are not listed here: they are the import closure of the
module its command runs (`fer_pipeline/jobs/<command>.py`), computed by dag/codedeps.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str                      # shell line; `{log}` is the log file, `{<item_name>}` the item
    deps: tuple[str, ...]         # data inputs (paths)
    outs: tuple[str, ...]         # directories or files written
    params: tuple[str, ...]       # dotted params.yaml keys whose change reruns the stage
    log: str
    stamp: str                    # provenance record the command writes (see provenance.py)
    metrics: tuple[str, ...] = ()  # small JSON files, not cached by DVC
    plots: tuple[str, ...] = ()
    item_name: str | None = None
    items: dict[str, dict[str, str]] = field(default_factory=dict)
    group: str = "main"           # "main": `make run`; another group is a separate target (see GROUPS)

    @property
    def command(self) -> str:
        """The `fer` subcommand the stage runs (`train-supervised`), also behind a launcher
        (`torchrun ... fer train-meta`)."""
        words = self.cmd.split()
        return words[words.index("fer") + 1]

    @property
    def scattered(self) -> bool:
        return self.item_name is not None

    def outs_with_stamp(self) -> list[str]:
        """Outputs, plus the stamp when it does not already live inside one of them."""
        inside = any(is_under(self.stamp, out) for out in self.outs)
        return list(self.outs) + ([] if inside else [self.stamp])

    def declared_outputs(self) -> list[str]:
        """Every path the stage writes (templates unfilled): outs, stamp, metrics, plots."""
        return self.outs_with_stamp() + list(self.metrics) + list(self.plots)

    def instances(self) -> list["StageInstance"]:
        if not self.scattered:
            return [StageInstance(self, None, {})]
        return [StageInstance(self, item, values) for item, values in self.items.items()]


@dataclass(frozen=True)
class StageInstance:
    """A stage with its item filled in: one job of the DAG."""

    stage: Stage
    item: str | None
    values: dict[str, str]

    @property
    def name(self) -> str:
        """DVC's name for the job (`prepare@rafdb` for a foreach stage)."""
        return self.stage.name if self.item is None else f"{self.stage.name}@{self.item}"

    def field(self, key: str) -> str:
        """The value a template field takes in this job (the item itself, or one of its values)."""
        return self.item if key == self.stage.item_name else self.values[key]

    def fill(self, template: str) -> str:
        subs = dict(self.values)
        if self.stage.item_name:
            subs[self.stage.item_name] = self.item
        subs["log"] = _substitute(self.stage.log, subs)
        return _substitute(template, subs)

    @property
    def cmd(self) -> str:
        return self.fill(self.stage.cmd)

    @property
    def deps(self) -> list[str]:
        return [self.fill(d) for d in self.stage.deps]

    @property
    def outs(self) -> list[str]:
        return [self.fill(o) for o in self.stage.outs]

    @property
    def params(self) -> list[str]:
        return [self.fill(p) for p in self.stage.params]

    @property
    def stamp(self) -> str:
        return self.fill(self.stage.stamp)

    @property
    def all_outputs(self) -> list[str]:
        return [self.fill(p) for p in self.stage.declared_outputs()]


_FIELD = re.compile(r"\{(\w+)\}")


def template_fields(template: str) -> list[str]:
    return _FIELD.findall(template)


def _substitute(template: str, subs: dict[str, str]) -> str:
    def repl(match: re.Match) -> str:
        key = match.group(1)
        if key not in subs:
            raise KeyError(f"template {template!r} uses {{{key}}} but only {sorted(subs)} are defined")
        return str(subs[key])

    return _FIELD.sub(repl, template)


def is_under(path: str, root: str) -> bool:
    """`path` is `root` or inside it (relative POSIX paths, as params and dvc.yaml write them).

    On strings, not PurePosixPath: the DAG asks this ~17 000 times per `fer` call, which
    cost every stage over half a second."""
    path, root = _normalized(path), _normalized(root)
    if root in (".", "/"):  # the working folder holds every relative path, "/" every absolute one
        return path.startswith("/") == (root == "/")
    return path == root or path.startswith(root + "/")


@lru_cache(maxsize=4096)
def _normalized(path: str) -> str:
    # PurePosixPath's reading of a path: no empty or "." parts, no trailing slash; ".." kept.
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return ("/" if path.startswith("/") else "") + "/".join(parts) or "."
