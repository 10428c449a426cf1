"""The process pool behind `fer prepare` (params `prepare.workers`).

The reader stays in the main process: it lists the dataset and reads each
record's bytes (`RawRecord.load()`), so partitioning, path checks and reject
bookkeeping stay where they were. Only the CPU work (JPEG decode, alignment
warp or resize, JPEG encode) is shipped, as chunks of (bytes, landmarks), to
worker processes, with at most a few chunks in flight: peak memory depends on
the chunk size and the worker count, not on the size of the dataset.

Results come back in input order and are built by the very function the
inline path (`workers=1`, no pool) uses, so the shards are byte-identical
whatever the worker count.

Workers are started with 'spawn' (fork is unsafe in a process that may hold
threads, e.g. pyarrow's or OpenMP's) and import only the crop code
(OpenCV, NumPy): never torch. They die with the process that made them
(common/workers.py): a killed `fer prepare` leaves no worker behind.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from multiprocessing import get_context
from typing import Iterable, Iterator

from fer_pipeline.common.workers import die_with_parent
from fer_pipeline.data.io.records import RawRecord, Reject
from fer_pipeline.data.prep.crop import CropError, crop_aligned, crop_with_landmarks

CHUNK_SIZE = 64         # records per task shipped to a worker
CHUNKS_PER_WORKER = 2   # tasks in flight per worker: one being cropped, one queued

Job = tuple[bytes, tuple | None]            # (encoded image, landmarks5 or None)
Result = tuple[str, object, object]         # ("ok", jpeg, landmarks list) | ("reject", reason, detail)


def resolve_workers(workers: int) -> int:
    """`prepare.workers`: 0 = every core this process may run on."""
    if workers < 0:
        raise ValueError(f"prepare.workers must be >= 0, got {workers}")
    if workers:
        return workers
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def crop_job(job: Job, size: int, quality: int) -> Result:
    """Decode, align (or resize) and re-encode one image; a crop failure is a result, not an error."""


    data, landmarks5 = job
    try:
        if landmarks5 is not None:
            image, landmarks = crop_with_landmarks(data, landmarks5, size, quality)
        else:
            image, landmarks = crop_aligned(data, size, quality)
    except CropError as exc:
        return ("reject", exc.reason, str(exc))
    return ("ok", image, landmarks.reshape(-1).tolist())


def crop_chunk(jobs: list[Job], size: int, quality: int) -> list[Result]:
    return [crop_job(job, size, quality) for job in jobs]


def _init_worker(parent_pid: int) -> None:
    """One process per core already: no library thread pools on top. OpenBLAS's would
    otherwise wake (and spin) on every tiny least-squares fit of the alignment."""
    die_with_parent(parent_pid)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # read when NumPy loads its BLAS, i.e. only if not imported yet
    import cv2

    cv2.setNumThreads(1)
    try:  # NumPy already imported (by the parent's __main__, say): limit its BLAS at run time
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def start_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` spawned cropping processes, each killed if this process dies."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))


def _load(item: RawRecord | Reject) -> Reject | Job:
    """Read the record's bytes (main process); a record that cannot be read is a reject."""
    if isinstance(item, Reject):
        return item
    try:
        data = item.load()
    except FileNotFoundError:
        return Reject(item.source, item.split, "missing_file", "file listed but not on disk")
    except OSError as exc:
        return Reject(item.source, item.split, "unreadable_file", str(exc))
    return (data, item.landmarks5)


def _row(item: RawRecord, result: Result) -> dict | Reject:
    status, a, b = result
    if status == "reject":
        return Reject(item.source, item.split, a, b)
    return {
        "image": a,
        "label": item.label,
        "identity": item.identity,
        "split": item.split,
        "source": item.source,
        "landmarks5": b,
        "video": item.video,
        "frame": item.frame,
    }


def _merge(chunk: list, loaded: list, results: Iterable[Result]) -> Iterator[tuple]:
    results = iter(results)
    for item, load in zip(chunk, loaded):
        yield item, (load if isinstance(load, Reject) else _row(item, next(results)))


def crop_in_order(items: Iterable[RawRecord | Reject], workers: int, size: int, quality: int,
                  chunk_size: int | None = None) -> Iterator[tuple[RawRecord | Reject, dict | Reject]]:
    """For each reader item, in input order: (item, shard row) or (item, Reject).

    `workers`: 1 crops inline in this process; N > 1 uses N spawned processes;
    0 = all cores. A dataset smaller than one chunk is always cropped inline."""
    workers = resolve_workers(workers)
    chunk_size = chunk_size or CHUNK_SIZE
    items = iter(items)
    first = list(islice(items, chunk_size))
    if workers == 1 or len(first) < chunk_size:
        for chunk in (first, items):
            for item in chunk:
                load = _load(item)
                yield item, (load if isinstance(load, Reject) else _row(item, crop_job(load, size, quality)))
        return

    def chunks():
        chunk = first
        while chunk:
            yield chunk
            chunk = list(islice(items, chunk_size))

    max_in_flight = CHUNKS_PER_WORKER * workers
    pending: deque[tuple[list, list, Future]] = deque()
    executor = start_pool(workers)
    try:
        for chunk in chunks():
            loaded = [_load(item) for item in chunk]
            jobs = [load for load in loaded if not isinstance(load, Reject)]
            pending.append((chunk, loaded, executor.submit(crop_chunk, jobs, size, quality)))
            while len(pending) >= max_in_flight:
                chunk_done, loaded_done, future = pending.popleft()
                yield from _merge(chunk_done, loaded_done, future.result())
        while pending:
            chunk_done, loaded_done, future = pending.popleft()
            yield from _merge(chunk_done, loaded_done, future.result())
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
