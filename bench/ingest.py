"""Ingestion at scale: `fer prepare`'s throughput against a plain OpenCV floor, the
training Dataset over the Parquet shards against torchvision's ImageFolder, and
prepare's peak memory as the input grows. Prints one JSON object.

    python bench/ingest.py [--images 2000] [--scale 10] [--repeats 3] [--work-dir DIR]

Data: FaceSynth AffectNet (Manually_Annotated: full photos + 68 landmarks in
training.csv / validation.csv), written once by the project's own writer and
reused from --work-dir; `prepare` aligns every face by its landmarks.

(a) prepare: `prepare_dataset` (reader in this process, crops in the
    `prepare.workers` pool, Parquet writer, digest, manifest), wall time of the
    whole call. Floor: the same number of processes, each reading its own slice
    of the same files and doing only cv2.imdecode + cv2.warpAffine (warp matrices
    computed beforehand, untimed) + cv2.imencode at the same size and quality.
    Both rates count the images that reach the cropper; both include starting
    their processes. Target: prepare >= 0.8 x floor. Also reported: CPU ms per
    image of each (main process and workers), which other load skews less.
(b) The supervised training's own loader (train/supervised.py training_data:
    FaceShardDataset over the prepared train split, EpochSampler, the
    augmentation as train.supervised.augment says, batched by default in the
    collate) vs torchvision ImageFolder (PIL loader) over the same crops saved as
    the same JPEG bytes, one file each, with the same augmentation per image
    (build_transform; ToImage() in front) and the same DataLoader settings
    (batch size, num_workers, drop_last, no persistent workers, an EpochSampler
    shuffle); timed over --epochs epochs from the DataLoader's start.
    Target: >= 2x ImageFolder. Also reported, not targeted: FaceShardDataset vs
    ImageFolder with the eval transforms (per image on both sides).
(c) prepare's peak RSS (VmHWM of the main process; ru_maxrss of its largest
    pool worker) in a fresh subprocess on the dataset and on a copy --scale
    times larger (hard links under other names, CSV rows repeated).
    Target: <= 1.2x.

Each figure is the median of --repeats runs. The page cache is warmed first.
Nothing here imports torch at module level: prepare's spawned workers import
this file as __mp_main__.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

TARGETS = {"prepare_vs_floor": 0.8, "dataset_vs_imagefolder": 2.0, "rss_scale_ratio": 1.2}


def load_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))


# ---- data ----------------------------------------------------------------------

def write_dataset(root: Path, images: int, gen: dict) -> None:
    """FaceSynth AffectNet with `images` photos in all (a tenth of them in the balanced test split)."""
    from fer_pipeline.data.synth.world import AFFECTNET_PRIOR, World
    from fer_pipeline.data.synth.writers import write_affectnet_manual

    marker = root / "bench.json"
    want = {"images": images, "seed": gen["seed"], "render_size": gen["render_size"],
            "nuisance_strength": gen["nuisance_strength"]}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    test_per_class = max(1, images // 10 // len(AFFECTNET_PRIOR))
    cfg = {"identities": max(2, images // 10), "train_images": images - test_per_class * len(AFFECTNET_PRIOR),
           "test_per_class": test_per_class}
    world = World(gen["seed"], gen["render_size"], gen["nuisance_strength"], tuple(gen["intensity"]))
    write_affectnet_manual(world, tmp, cfg, gen["label_noise"])
    (tmp / "bench.json").write_text(json.dumps(want))
    os.replace(tmp, root)


def write_scaled(base: Path, root: Path, scale: int) -> None:
    """`scale` copies of every record of `base`: hard links (same bytes, other names)
    and each CSV row repeated with its copy's path."""
    from fer_pipeline.data.io.affectnet import IMAGES_DIR, SPLIT_FILES

    marker = root / "bench.json"
    want = {"base": json.loads((base / "bench.json").read_text()), "scale": scale}
    if marker.exists() and json.loads(marker.read_text()) == want:
        return
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    for csv_name, _ in SPLIT_FILES:
        with open(base / csv_name, newline="", encoding="utf-8") as fh:
            header, *rows = list(csv.reader(fh))
        tmp.mkdir(parents=True, exist_ok=True)
        with open(tmp / csv_name, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            for copy in range(scale):
                for row in rows:
                    rel = f"copy{copy:03d}/{row[0]}"
                    dst = tmp / IMAGES_DIR / rel
                    if not dst.exists():
                        dst.parent.mkdir(parents=True, exist_ok=True)
                        try:
                            os.link(base / IMAGES_DIR / row[0], dst)
                        except OSError:
                            shutil.copyfile(base / IMAGES_DIR / row[0], dst)
                    out.writerow([rel, *row[1:]])
    (tmp / "bench.json").write_text(json.dumps(want))
    os.replace(tmp, root)


def read_options():
    """The reader refuses files it does not know in a dataset root: the bench's marker is one."""
    from fer_pipeline.data.io.layout import ReadOptions

    return ReadOptions(ignore=("bench.json",))


def warm_page_cache(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            path.read_bytes()


# ---- (a) prepare vs the floor ----------------------------------------------------

def crop_jobs(root: Path) -> list[tuple[str, object]]:
    """(path, 2x3 warp matrix) of every record prepare would crop, in reader order."""
    from fer_pipeline.data.io.affectnet import read_affectnet_manual
    from fer_pipeline.data.io.records import RawRecord
    from fer_pipeline.data.prep.align import BadLandmarksError, similarity_to_template

    size = load_params()["prepare"]["image_size"]
    jobs = []
    for item in read_affectnet_manual(root, options=read_options()):
        if isinstance(item, RawRecord):
            try:
                matrix = similarity_to_template(item.landmarks5, size)
            except BadLandmarksError:
                matrix = None
            jobs.append((str(root / item.source), matrix))  # source: the path inside the root
    return jobs


def _floor_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # as prepare's workers


def floor_slice(jobs: list, size: int, quality: int) -> int:
    """Plain OpenCV: read, decode, warp, encode. Returns the bytes written."""
    import cv2
    import numpy as np

    total = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for path, matrix in jobs:
        with open(path, "rb") as fh:
            data = fh.read()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None or matrix is None:
            continue
        crop = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        total += len(cv2.imencode(".jpg", crop, params)[1])
    return total


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its reaped children (pool workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def time_floor(jobs: list, processes: int, size: int, quality: int) -> float:
    t0 = time.perf_counter()
    if processes == 1:
        floor_slice(jobs, size, quality)
    else:
        step = -(-len(jobs) // processes)
        with ProcessPoolExecutor(processes, mp_context=get_context("spawn"), initializer=_floor_init) as ex:
            list(ex.map(floor_slice, [jobs[i:i + step] for i in range(0, len(jobs), step)],
                        [size] * processes, [quality] * processes))
    return time.perf_counter() - t0


def time_prepare(root: Path, out: Path, workers: int) -> tuple[float, dict]:
    from fer_pipeline.data.prep.prepare import prepare_dataset

    prep = load_params()["prepare"]
    shutil.rmtree(out, ignore_errors=True)  # not timed: replacing an old output
    t0 = time.perf_counter()
    manifest = prepare_dataset("bench", "affectnet_manual", str(root), out, prep["image_size"], prep["jpeg_quality"],
                               prep["row_group_size"], prep["rows_per_shard"], workers=workers,
                               options=read_options())
    return time.perf_counter() - t0, manifest


# ---- (b) training Dataset vs ImageFolder ----------------------------------------

def export_imagefolder(prepared: Path, out: Path, class_set) -> int:
    """The train split's crops as `<label>/<n>.jpg`, the shard's own JPEG bytes."""
    from fer_pipeline.data.datasets import read_split

    shutil.rmtree(out, ignore_errors=True)
    table = read_split(prepared, "train", columns=("image", "label"))
    n = 0
    for i, (image, label) in enumerate(zip(table.column("image").to_pylist(), table.column("label").to_pylist())):
        if class_set.index(label) is None:
            continue
        (out / label).mkdir(parents=True, exist_ok=True)
        (out / label / f"{i:07d}.jpg").write_bytes(image)
        n += 1
    return n


def time_loader(dataset, batch_size: int, num_workers: int, epochs: int) -> tuple[float, int]:
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0), persistent_workers=num_workers > 0)
    t0 = time.perf_counter()
    seen = 0
    for _ in range(epochs):
        for images, _ in loader:
            seen += images.shape[0]
    elapsed = time.perf_counter() - t0
    del loader
    return elapsed, seen


def time_epochs(loader, parts: list, epochs: int) -> tuple[float, int]:
    """Seconds and images for `epochs` passes, each after set_epoch on `parts` (as training does)."""
    t0 = time.perf_counter()
    seen = 0
    for epoch in range(epochs):
        for part in parts:
            part.set_epoch(epoch)
        for images, _ in loader:
            seen += images.shape[0]
    return time.perf_counter() - t0, seen


def _summary(images: int, epochs: int, cfg: dict, transforms: str, rates: dict, init: dict) -> dict:
    dataset, folder_rate = statistics.median(rates["dataset"]), statistics.median(rates["imagefolder"])
    return {
        "images": images,
        "epochs_per_run": epochs,
        "batch_size": cfg["batch_size"],
        "num_workers": cfg["num_workers"],
        "input_size": cfg["input_size"],
        "transforms": transforms,
        "dataset_images_per_s": round(dataset, 1),
        "imagefolder_images_per_s": round(folder_rate, 1),
        "dataset_runs": [round(x, 1) for x in rates["dataset"]],
        "imagefolder_runs": [round(x, 1) for x in rates["imagefolder"]],
        "init_seconds": {k: round(v, 3) for k, v in init.items()},
        "ratio": round(dataset / folder_rate, 3),
    }


def bench_training_loader(prepared: Path, folder: Path, cfg: dict, class_set, epochs: int, repeats: int,
                          work: Path) -> dict:
    """The training figure: the supervised training's loader against ImageFolder with the same
    augmentation per image and the same DataLoader settings."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets
    from torchvision.transforms import v2

    from fer_pipeline.data.datasets import EpochSampler, batched, build_transform
    from fer_pipeline.train.supervised import training_data

    torch.set_num_threads(1)  # the main process only iterates; the DataLoader workers decode and augment
    cfg = {**cfg, "upsampling": "none"}  # the plain recipe: the bench's crops, once each
    rates = {"dataset": [], "imagefolder": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        shards, shard_sampler, shard_loader, _ = training_data(cfg, prepared, class_set, None, torch.device("cpu"),
                                                               work / "training_data")
        init_shards = time.perf_counter() - t0
        t0 = time.perf_counter()
        transform = v2.Compose([v2.ToImage(), build_transform(cfg["input_size"], cfg["augment"])])
        folder_ds = datasets.ImageFolder(str(folder), transform=transform)  # default loader: PIL
        folder_sampler = EpochSampler(torch.tensor(folder_ds.targets), cfg["seed"], cfg["balanced_sampling"])
        folder_loader = DataLoader(folder_ds, batch_size=cfg["batch_size"], sampler=folder_sampler,
                                   drop_last=shard_loader.drop_last, num_workers=cfg["num_workers"],
                                   persistent_workers=False)
        init_folder = time.perf_counter() - t0
        assert len(folder_ds) == len(shards), (len(folder_ds), len(shards))
        order = [("dataset", shard_loader, [shards, shard_sampler]), ("imagefolder", folder_loader, [folder_sampler])]
        for name, loader, parts in order if r % 2 == 0 else order[::-1]:
            seconds, seen = time_epochs(loader, parts, epochs)
            rates[name].append(seen / seconds)
    how = "batched per batch (collate_faces)" if batched(cfg["augment"]) else "per image (augment.batched false)"
    return _summary(len(shards), epochs, cfg, f"train: train.supervised.augment, the pipeline's {how}; "
                    "ImageFolder: build_transform per image", rates, {"dataset": init_shards,
                                                                      "imagefolder": init_folder})


def bench_eval_loaders(prepared: Path, folder: Path, cfg: dict, class_set, epochs: int, repeats: int) -> dict:
    """FaceShardDataset vs ImageFolder with the eval transforms (per image on both sides)."""
    import torch
    from torchvision import datasets
    from torchvision.transforms import v2

    from fer_pipeline.data.datasets import FaceShardDataset, build_transform

    torch.set_num_threads(1)  # the main process only collates; the DataLoader workers decode
    rates = {"dataset": [], "imagefolder": []}
    for r in range(repeats):
        t0 = time.perf_counter()
        shards = FaceShardDataset(prepared, "train", class_set, cfg["input_size"], None, seed=0)
        init_shards = time.perf_counter() - t0
        t0 = time.perf_counter()
        transform = v2.Compose([v2.ToImage(), build_transform(cfg["input_size"], None)])
        folder_ds = datasets.ImageFolder(str(folder), transform=transform)  # default loader: PIL
        init_folder = time.perf_counter() - t0
        assert len(folder_ds) == len(shards), (len(folder_ds), len(shards))
        order = [("dataset", shards), ("imagefolder", folder_ds)]
        for name, ds in order if r % 2 == 0 else order[::-1]:
            seconds, seen = time_loader(ds, cfg["batch_size"], cfg["num_workers"], epochs)
            rates[name].append(seen / seconds)
    return _summary(len(shards), epochs, cfg, "eval: build_transform(None), resize + normalize", rates,
                    {"dataset": init_shards, "imagefolder": init_folder})


# ---- (c) peak RSS ------------------------------------------------------------------

def child_prepare(root: str, out: str, workers: int) -> None:
    """Run in a fresh process: prepare, then report this process's peak RSS and its
    largest (reaped) pool worker's."""
    import resource

    seconds, manifest = time_prepare(Path(root), Path(out), workers)
    hwm = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "inputs": manifest["inputs"], "main_peak_kib": hwm,
                      "worker_peak_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))


def measure_rss(root: Path, out: Path, workers: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, __file__, "--child-prepare", str(root), str(out), str(workers)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"prepare subprocess failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- main --------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--scale", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work-dir", default=None, help="default: ./.bench-ingest (data is reused between runs)")
    ap.add_argument("--workers", type=int, default=None, help="prepare workers; default params prepare.workers")
    ap.add_argument("--epochs", type=int, default=2, help="DataLoader epochs per timed run in (b)")
    ap.add_argument("--class-set", default="basic8_contempt")
    ap.add_argument("--child-prepare", nargs=3, metavar=("ROOT", "OUT", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["TQDM_DISABLE"] = "1"  # read when tqdm is imported; keeps stderr quiet
    if args.child_prepare:
        root, out, workers = args.child_prepare
        child_prepare(root, out, int(workers))
        return

    from fer_pipeline.common.labels import ClassSet
    from fer_pipeline.data.prep.pool import resolve_workers

    load_start = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews every figure
    params = load_params()
    prep, train_cfg = params["prepare"], params["train"]["supervised"]
    workers = prep["workers"] if args.workers is None else args.workers
    processes = resolve_workers(workers)
    work = Path(args.work_dir or ".bench-ingest").resolve()
    work.mkdir(parents=True, exist_ok=True)
    base, scaled = work / "affectnet", work / f"affectnet_x{args.scale}"
    t0 = time.perf_counter()
    write_dataset(base, args.images, params["generate"])
    write_scaled(base, scaled, args.scale)
    data_seconds = time.perf_counter() - t0
    warm_page_cache(base)

    # (a)
    jobs = crop_jobs(base)
    floor_s, prep_s, manifest = [], [], {}
    cpu = {"floor": [], "prepare_main": [], "prepare_workers": []}  # CPU ms per image: what load does not skew

    def run_prepare() -> float:
        seconds, manifest_ = time_prepare(base, work / "prepared", workers)
        manifest.update(manifest_)
        return seconds

    for r in range(args.repeats):
        runs = [("floor", lambda: time_floor(jobs, processes, prep["image_size"], prep["jpeg_quality"])),
                ("prepare", run_prepare)]
        for name, run in runs if r % 2 == 0 else runs[::-1]:
            self0, children0 = cpu_seconds()
            (floor_s if name == "floor" else prep_s).append(run())
            self1, children1 = cpu_seconds()
            per_image = 1000 / len(jobs)
            if name == "floor":
                cpu["floor"].append((self1 - self0 + children1 - children0) * per_image)
            else:
                cpu["prepare_main"].append((self1 - self0) * per_image)
                cpu["prepare_workers"].append((children1 - children0) * per_image)
    floor_rate, prep_rate = len(jobs) / statistics.median(floor_s), len(jobs) / statistics.median(prep_s)
    a = {
        "records": manifest["inputs"],
        "cropped": len(jobs),
        "kept": manifest["kept"],
        "rejected_per_reason": manifest["rejected_per_reason"],
        "processes": processes,
        "image_size": prep["image_size"],
        "jpeg_quality": prep["jpeg_quality"],
        "prepare_images_per_s": round(prep_rate, 1),
        "floor_images_per_s": round(floor_rate, 1),
        "prepare_seconds_runs": [round(x, 3) for x in prep_s],
        "floor_seconds_runs": [round(x, 3) for x in floor_s],
        "ratio": round(prep_rate / floor_rate, 3),
        "cpu_ms_per_image": {k: round(statistics.median(v), 3) for k, v in cpu.items()},
    }
    a["cpu_ms_per_image"]["prepare"] = round(a["cpu_ms_per_image"]["prepare_main"]
                                             + a["cpu_ms_per_image"]["prepare_workers"], 3)
    a["cpu_ratio"] = round(a["cpu_ms_per_image"]["floor"] / a["cpu_ms_per_image"]["prepare"], 3)

    # (b)
    class_set = ClassSet.named(args.class_set)
    folder = work / "imagefolder"
    export_imagefolder(work / "prepared", folder, class_set)
    warm_page_cache(folder)
    b = bench_training_loader(work / "prepared", folder, train_cfg, class_set, args.epochs, args.repeats, work)
    b["class_set"] = args.class_set
    # Not the target: the Dataset alone with the eval transforms, where decoding weighs more.
    b["eval_transforms"] = bench_eval_loaders(work / "prepared", folder, train_cfg, class_set, args.epochs,
                                              args.repeats)

    # (c)
    warm_page_cache(scaled)
    rss = {"1x": [], f"{args.scale}x": []}
    for r in range(args.repeats):
        for key, root in (("1x", base), (f"{args.scale}x", scaled)):
            rss[key].append(measure_rss(root, work / f"rss_{key}", workers))
        shutil.rmtree(work / f"rss_{args.scale}x", ignore_errors=True)

    def med(key, field):
        return statistics.median(run[field] for run in rss[key])

    big = f"{args.scale}x"
    main_ratio = med(big, "main_peak_kib") / med("1x", "main_peak_kib")
    worker_ratio = med(big, "worker_peak_kib") / med("1x", "worker_peak_kib") if processes > 1 else None
    c = {
        "inputs": {"1x": rss["1x"][0]["inputs"], big: rss[big][0]["inputs"]},
        "processes": processes,
        "main_peak_mib": {"1x": round(med("1x", "main_peak_kib") / 1024, 1), big: round(med(big, "main_peak_kib") / 1024, 1)},
        "worker_peak_mib": ({"1x": round(med("1x", "worker_peak_kib") / 1024, 1),
                             big: round(med(big, "worker_peak_kib") / 1024, 1)} if processes > 1 else None),
        "images_per_s": {"1x": round(rss["1x"][0]["inputs"] / med("1x", "seconds"), 1),
                         big: round(rss[big][0]["inputs"] / med(big, "seconds"), 1)},
        "main_ratio": round(main_ratio, 3),
        "worker_ratio": round(worker_ratio, 3) if worker_ratio else None,
        "ratio": round(max(main_ratio, worker_ratio or 0.0), 3),
    }

    result = {
        "what": "bench/ingest.py: prepare vs OpenCV floor, Parquet Dataset vs ImageFolder, prepare peak RSS vs input size",
        "data": f"FaceSynth AffectNet (full photos + 68 landmarks), {args.images} photos, render_size "
                f"{params['generate']['render_size']}",
        "machine": {"cpus": os.cpu_count(), "usable_cpus": resolve_workers(0), "loadavg_at_start": load_start,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()},
        "repeats": args.repeats,
        "data_seconds": round(data_seconds, 1),
        "prepare_throughput": a,
        "training_dataset": b,
        "prepare_peak_rss": c,
        "targets": {
            "prepare_vs_floor": {"target": f">= {TARGETS['prepare_vs_floor']}", "value": a["ratio"],
                                 "met": a["ratio"] >= TARGETS["prepare_vs_floor"]},
            "dataset_vs_imagefolder": {"target": f">= {TARGETS['dataset_vs_imagefolder']}", "value": b["ratio"],
                                       "met": b["ratio"] >= TARGETS["dataset_vs_imagefolder"]},
            "rss_scale_ratio": {"target": f"<= {TARGETS['rss_scale_ratio']}", "value": c["ratio"],
                                "met": c["ratio"] <= TARGETS["rss_scale_ratio"]},
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
