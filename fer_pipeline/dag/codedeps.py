"""A stage's code dependencies, computed from the import graph instead of listed by hand.

A job runs `fer <command>`: `fer_pipeline/cli.py`, which imports the job machinery
(dag/runner.py and what it reads), and `fer_pipeline/jobs/<command>.py`, which imports
the science it runs. The stage's code is the transitive closure of `fer_pipeline`
modules those two import, found statically with `ast` (every `import` statement,
including those inside functions, which the package uses to keep start-up light).
Snakemake (through the job's key file), DVC (deps rendered into dvc.yaml) and
`fer status` (the key in the stamp) all read this one answer.

`modulefinder` would execute nothing either, but it follows every third-party
import too (torch, mlflow: seconds per call); here only the package's own
modules matter, and a small `ast` walk over them is fast.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import fer_pipeline

PACKAGE = "fer_pipeline"
ENTRY = "fer_pipeline.cli"


def source_root() -> Path:
    """The folder holding `fer_pipeline/`: the working folder when it has the package's
    source (a checkout: the files the tools hash), else where the package is installed."""
    cwd = Path.cwd()
    if (cwd / PACKAGE / "cli.py").is_file():
        return cwd
    return Path(fer_pipeline.__file__).resolve().parents[1]


def job_module(command: str) -> str:
    """The module that implements `fer <command>`."""
    return f"{PACKAGE}.jobs.{command.replace('-', '_')}"


@lru_cache(maxsize=None)  # asked ~4 000 times per `snakemake -n` for ~200 modules
def _module_file(root: Path, module: str) -> Path | None:
    base = root.joinpath(*module.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


@lru_cache(maxsize=None)
def _imports(path: str, mtime_ns: int, module: str, is_package: bool) -> tuple[str, ...]:
    """Every fer_pipeline module name a file imports (candidates: `from a import b`
    yields `a` and `a.b`, since `b` may be a submodule)."""
    source = Path(path).read_bytes()
    if b"import" not in source:
        return ()
    tree = ast.parse(source, filename=path)
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return tuple(name for name in found if name == PACKAGE or name.startswith(PACKAGE + "."))


def _import_nodes(node: ast.AST):
    """Import statements anywhere in the tree; expressions are skipped (no statement
    hides inside one), which makes the walk several times cheaper than `ast.walk`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.stmt) or isinstance(child, ast.excepthandler) or isinstance(child, ast.match_case):
            yield from _import_nodes(child)


def closure(modules: tuple[str, ...], root: Path | None = None) -> list[str]:
    """Files (relative POSIX paths under `root`) of the modules and everything they
    import from the package, parent packages' `__init__.py` included."""
    root = root or source_root()
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = _module_file(root, module)
        if path is None:
            continue  # `from pkg import name` where name is not a module
        seen[module] = path
        parts = module.split(".")
        todo += [".".join(parts[:k]) for k in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += _imports(str(path), path.stat().st_mtime_ns, module, path.name == "__init__.py")
    return sorted(str(p.relative_to(root).as_posix()) for p in seen.values())


def stage_code(command: str, root: Path | None = None) -> list[str]:
    """The code files a stage running `fer <command>` depends on (computed once per
    process: the source does not change while one `fer` or Snakemake call reads it)."""
    return list(_stage_code(command, root or source_root()))


@lru_cache(maxsize=None)
def _stage_code(command: str, root: Path) -> tuple[str, ...]:
    return tuple(closure((ENTRY, job_module(command)), root))


def code_digest(files: list[str], root: Path | None = None) -> str:
    """Digest of the files' paths and bytes (what DVC's md5 of each file also sees)."""
    root = root or source_root()
    total = hashlib.sha256()
    for rel in files:
        total.update(rel.encode() + b"\0" + _file_md5(str(root / rel)).encode() + b"\n")
    return total.hexdigest()[:16]


def _file_md5(path: str) -> str:
    st = os.stat(path)
    return _md5_cached(path, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=None)
def _md5_cached(path: str, size: int, mtime_ns: int) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()
