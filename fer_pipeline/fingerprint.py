"""Content fingerprint of a raw dataset folder, cheap to recompute.

Snakemake decides by mtimes, and a file changed deep inside a dataset root leaves
the root folder's mtime alone, so Snakemake alone would not see a re-downloaded
dataset; DVC hashes contents and does. To give Snakemake DVC's answer, prepare's
key file (provenance.sync_key_file) also checks this fingerprint: a digest over
every file's relative path and content MD5. Each file's MD5 is cached by (size,
mtime_ns, inode), as DVC's state database does, so after the first pass only new
or changed files are read again. A `touch` that keeps the bytes changes nothing,
in both tools. No maintained library computes this for us without also taking
over the data (DVC's own hashing API is internal), hence these few lines.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from fer_pipeline.atomic import write_json

CACHE_DIR = Path(".fer/fingerprints")


def _md5(path: str) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_fingerprint(root: str | Path, cache_dir: Path = CACHE_DIR) -> str:
    """Digest of the folder's file names and contents ("missing" when it does not exist)."""
    root = Path(root)
    if not root.exists():
        return "missing"
    cache_file = cache_dir / (hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16] + ".json")
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    fresh, total = {}, hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # a fixed walk order: the digest must not depend on the file system's
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.stat(full)
            key = [st.st_size, st.st_mtime_ns, st.st_ino]
            cached = cache.get(rel)
            md5 = cached[3] if cached and cached[:3] == key else _md5(full)
            fresh[rel] = key + [md5]
            total.update(f"{rel}\0{md5}\n".encode())
    if fresh != cache:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_json(cache_file, fresh)
    return total.hexdigest()[:16]
