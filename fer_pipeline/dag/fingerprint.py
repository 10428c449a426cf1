"""Content fingerprint of a file or folder, cheap to recompute: the version of a
job's input that stamps, MLflow tags and the key files record.

Snakemake decides by mtimes, and a file changed deep inside a folder leaves the
folder's mtime alone; DVC hashes contents and does see it. To give every tool DVC's
answer, each job's recorded input version is a digest over every file's relative
path and content MD5. Each file's MD5 is cached by (size, mtime_ns, inode), as DVC's
state database does, so after the first pass only new or changed files are read
again; a file rewritten in place, even at the same size, gets a new mtime and is
read again. A `touch` that keeps the bytes changes nothing, in every tool. No
maintained library computes this for us without also taking over the data (DVC's
own hashing API is internal), hence these few lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fer_pipeline.common.atomic import is_temp_name, write_json

CACHE_DIR = Path(".fer/fingerprints")
_memo: dict[tuple[str, str], str] = {}  # one walk per folder per process


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk(root: Path):
    """(relative path, full path) of every file, in a fixed order."""
    if root.is_file():
        yield root.name, str(root)
        return
    # Relative paths by slicing, not os.path.relpath: relpath makes both paths absolute
    # for every file, which was most of a pass over a 16 000-file raw folder (and of the
    # fingerprints `snakemake -n` and `fer status` take). os.walk yields every folder as
    # `top` joined with the names below it, so the slice is what relpath would return.
    top = os.path.normpath(root)
    prefix = top if top.endswith("/") else top + "/"
    for dirpath, dirnames, filenames in os.walk(top):
        # A fixed walk order (the digest must not depend on the file system's), without
        # the temp files and folders of a write in progress or of a killed job.
        dirnames[:] = sorted(d for d in dirnames if not is_temp_name(d))
        rel_dir = dirpath[len(prefix):] + "/" if dirpath != top else ""
        for name in sorted(f for f in filenames if not is_temp_name(f)):
            yield rel_dir + name, os.path.join(dirpath, name)


def tree_fingerprint(root: str | Path, cache_dir: Path = CACHE_DIR, memo: bool = False) -> str:
    """Digest of the file's or folder's names and contents ("missing" when absent).

    `memo`: reuse this process's answer for the same path (callers that ask about
    many jobs at one moment, e.g. `fer status`, not a job about to write)."""
    root = Path(root)
    memo_key = (str(root), str(cache_dir))
    if memo and memo_key in _memo:
        return _memo[memo_key]
    if not root.exists():
        return "missing"
    cache_file = cache_dir / (hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16] + ".json")
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    fresh, total = {}, hashlib.sha256()
    for rel, full in _walk(root):
        st = os.stat(full)
        key = [st.st_size, st.st_mtime_ns, st.st_ino]
        cached = cache.get(rel)
        md5 = cached[3] if cached and cached[:3] == key else _md5(full)
        fresh[rel] = key + [md5]
        total.update(f"{rel}\0{md5}\n".encode())
    if fresh != cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(cache_file, fresh)
    _memo[memo_key] = total.hexdigest()[:16]
    return _memo[memo_key]
