"""Parquet shards of face crops: the one format every training stage reads."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SHARD_SCHEMA = pa.schema(
    [
        pa.field("image", pa.binary(), nullable=False),          # JPEG bytes of the aligned crop
        pa.field("label", pa.string()),                           # canonical expression; null = unlabeled
        pa.field("identity", pa.string()),
        pa.field("split", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),          # path/key inside the dataset root
        pa.field("landmarks5", pa.list_(pa.float32(), 10)),       # x0,y0..x4,y4 in crop pixels
        pa.field("video", pa.string()),                           # video id; null for still images
        pa.field("frame", pa.int32()),                            # 1-based frame index in `video`
    ]
)

REJECT_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string()),
    ]
)


class ShardWriter:
    """Buffers rows and writes `shard-NNNNN.parquet` files of at most `rows_per_shard`
    rows, each in row groups of `row_group_size` (the training Dataset's unit of I/O)."""

    def __init__(self, out_dir: Path, rows_per_shard: int, row_group_size: int):
        self.out_dir = Path(out_dir)
        self.rows_per_shard = rows_per_shard
        self.row_group_size = row_group_size
        self.shards: list[str] = []
        self._buffer: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows_in_shard = 0

    def add(self, row: dict) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.row_group_size:
            self._flush()

    def _flush(self) -> None:
        while self._buffer:
            if self._writer is None:
                name = f"shard-{len(self.shards):05d}.parquet"
                self._writer = pq.ParquetWriter(self.out_dir / name, SHARD_SCHEMA, compression="none")
                self.shards.append(name)
                self._rows_in_shard = 0
            room = self.rows_per_shard - self._rows_in_shard
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            # JPEG bytes do not compress further; skip the codec to keep reads cheap.
            self._writer.write_table(pa.Table.from_pylist(chunk, SHARD_SCHEMA), row_group_size=self.row_group_size)
            self._rows_in_shard += len(chunk)
            if self._rows_in_shard >= self.rows_per_shard:
                self._writer.close()
                self._writer = None

    def close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def write_rejects(path: Path, rejects: list[dict]) -> None:
    pq.write_table(pa.Table.from_pylist(rejects, REJECT_SCHEMA), path)


class CorruptShardError(ValueError):
    """A Parquet file of a prepared dataset (or of the features) exists but cannot be read."""


def corrupt(path: str | Path, exc: Exception) -> CorruptShardError:
    """The error for an unreadable Parquet file: it names the file and the way out.
    pyarrow's own message ("Parquet magic bytes not found in footer") names neither."""
    folder = Path(path).parent
    return CorruptShardError(f"{path} cannot be read ({str(exc).strip()[:200]}): the file is damaged (cut short by "
                             f"a full disk or an interrupted copy?). Delete {folder} and run `snakemake` (or the "
                             f"`fer` job that writes {folder}) to write it again")


def read_parquet(path: str | Path, **kwargs) -> pa.Table:
    """`pq.read_table(path, **kwargs)`; CorruptShardError naming the file when it is damaged."""
    try:
        return pq.read_table(path, **kwargs)
    except (pa.ArrowException, OSError) as exc:
        raise corrupt(path, exc) from None


def shard_paths(dataset_dir: str | Path) -> list[Path]:
    paths = sorted(Path(dataset_dir).glob("shard-*.parquet"))
    if not paths:
        raise FileNotFoundError(f"no shard-*.parquet in {dataset_dir}: run `fer prepare` for this dataset first")
    return paths
