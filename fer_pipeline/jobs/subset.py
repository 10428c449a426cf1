"""`fer subset --dataset NAME --imbalance-factor IF --seed S [--out PATH]`: a long-tailed
subset of a prepared dataset's train split (LNSU section 4.4; the profile is documented
in methods/imbalance_subset.py), written as an Smp-style index file that
train/supervised.py's `subset_index` reads. Not a stage (yet): the test split is not
read, and nothing else is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fer_pipeline.common.labels import ClassSet
from fer_pipeline.data.datasets import read_split
from fer_pipeline.jobs._shared import check_dataset
from fer_pipeline.meta.smp import write_index
from fer_pipeline.methods.imbalance_subset import imbalanced_subset, realised_factor, target_counts

log = logging.getLogger(__name__)


def default_out(args) -> str:
    return f"data/subsets/{args.dataset}_if{args.imbalance_factor:g}_seed{args.seed}.json"


def run(params: dict, args) -> None:
    check_dataset(params, "subset", args.dataset)
    class_set = ClassSet.named(args.class_set or params["train"]["supervised"]["class_set"])
    dataset_dir = Path(params["prepare"]["out_dir"]) / args.dataset
    table = read_split(dataset_dir, "train", columns=("label", "source"))
    # The rows FaceShardDataset keeps for this class set, in the same order.
    ids = [class_set.index(label) for label in table.column("label").to_pylist()]
    all_sources = table.column("source").to_pylist()
    keep = [i for i, c in enumerate(ids) if c is not None]
    sources, targets = [all_sources[i] for i in keep], [ids[i] for i in keep]
    chosen = imbalanced_subset(targets, args.imbalance_factor, args.seed, len(class_set))
    full = [targets.count(c) for c in range(len(class_set))]
    kept = [int(n) for n in target_counts(full, args.imbalance_factor)]
    out = args.out or default_out(args)
    write_index(out, sources, chosen, {
        "dataset": str(dataset_dir), "split": "train", "class_set": class_set.name,
        "imbalance_factor": args.imbalance_factor, "seed": args.seed,
        "realised_imbalance_factor": realised_factor(kept),
        "per_class_full": dict(zip(class_set.classes, full)), "per_class": dict(zip(class_set.classes, kept)),
        "method": "LNSU 4.4: n_r = floor(n_max * IF^(-r/(C-1))), r = rank by full count, capped by availability",
    })
    log.info("%s: %d of %d train images, per class %s (realised factor %.1f)", out, len(chosen), len(targets),
             dict(zip(class_set.classes, kept)), realised_factor(kept))
