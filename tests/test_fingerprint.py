"""Content fingerprints (dag/fingerprint.py): the relative paths the digest covers are
those os.path.relpath gives, however the folder is spelled, so recorded input versions
keep matching after the walk stopped calling relpath per file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fer_pipeline.dag.fingerprint import _walk, tree_fingerprint


def _tree(root: Path) -> None:
    for rel, data in {"a.txt": b"1", "sub/b.txt": b"22", "sub/deeper/c.jpg": b"333", "z/d": b"",
                      "sub/.x.tmp-123": b"half-written", ".y.tmp-9/e": b"killed job's folder"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def _reference(root: Path) -> str:
    """The digest as first defined: os.walk in sorted order, relpath of every file."""
    total = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if ".tmp-" not in d)
        for name in sorted(f for f in filenames if ".tmp-" not in f):
            full = os.path.join(dirpath, name)
            md5 = hashlib.md5(Path(full).read_bytes()).hexdigest()
            total.update(f"{os.path.relpath(full, root)}\0{md5}\n".encode())
    return total.hexdigest()[:16]


def test_relative_paths_are_relpaths_however_the_folder_is_spelled(tmp_path, monkeypatch):
    _tree(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    expected = ["a.txt", "sub/b.txt", "sub/deeper/c.jpg", "z/d"]
    for spelling in ("data", "data/", "./data", "./data/.", str(tmp_path / "data"), "../" + tmp_path.name + "/data"):
        walked = list(_walk(Path(spelling)))
        assert [rel for rel, _ in walked] == expected, spelling
        assert all(Path(full).read_bytes() == (tmp_path / "data" / rel).read_bytes() for rel, full in walked)


def test_digest_is_the_reference_one_and_independent_of_the_spelling(tmp_path, monkeypatch):
    _tree(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    reference = _reference(tmp_path / "data")
    digests = {tree_fingerprint(spelling, cache_dir=tmp_path / f"cache{n}")
               for n, spelling in enumerate(("data", "./data/", str(tmp_path / "data")))}
    assert digests == {reference}
    (tmp_path / "data/sub/deeper/c.jpg").write_bytes(b"334")  # same size, other bytes
    assert tree_fingerprint("data", cache_dir=tmp_path / "cache0") == _reference(tmp_path / "data") != reference


def test_the_working_folder_itself(tmp_path, monkeypatch):
    _tree(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert [rel for rel, _ in _walk(Path("."))] == ["a.txt", "sub/b.txt", "sub/deeper/c.jpg", "z/d"]
