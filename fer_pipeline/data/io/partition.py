"""Input partitions: which records of a dataset one `prepare` job reads.

A dataset is split into `datasets.<name>.parts` partitions, each prepared by its
own job (Snakemake wildcard, DVC foreach item), then gathered into one prepared
dataset. Readers ask `part.owns(key)` at their cheapest unit *before* any I/O on
it: a list line (RAF-DB, AffectNet), a video (Aff-Wild2, so a video's frames
stay together), an identity folder (WebFace, so a job lists only its own
folders), a RecordIO key (MS1M, so a job seeks only to its own records).

Ownership is a stable hash of the unit's key, not its position, so adding a
line to a list moves no other record to another partition.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Partition:
    index: int
    count: int

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count}: need 0 <= index < count")

    def owns(self, key: str) -> bool:
        # crc32, not hash(): Python salts str hashes per process.
        return self.count == 1 or zlib.crc32(key.encode("utf-8")) % self.count == self.index

    def __str__(self) -> str:
        return f"part {self.index} of {self.count}"


WHOLE = Partition(0, 1)
