"""The prepared datasets a job reads, logged to its MLflow run with `mlflow.log_input`:
the runs table's Dataset column and Datasets filter, and the run page's dataset list.

One input per dataset, named after it, with its data version (dag/fingerprint.py, the
`data_version.*` tag) as its digest: runs that read the same bytes show the same dataset.
The splits the job reads are the input's context ("train", "test", "train+test"); the
counts come from the dataset's manifest.json: rows per split read as the input's tags,
the whole ledger (per split and class) as the dataset's profile.
"""

from __future__ import annotations

import json
from pathlib import Path

from fer_pipeline.data.prep.manifest import MANIFEST


def prepared_datasets(params: dict, inputs: dict[str, str]) -> dict[str, tuple[str, str]]:
    """name -> (folder, data version) of the inputs that are prepared datasets."""
    prep_dir = params["prepare"]["out_dir"].rstrip("/")
    found = {}
    for path, version in sorted(inputs.items()):
        if path.startswith(prep_dir + "/") and (Path(path) / MANIFEST).is_file():
            found[path[len(prep_dir) + 1:]] = (path, version)
    return found


def log_datasets(mlflow, params: dict, inputs: dict[str, str], splits: tuple[str, ...] | None = None) -> None:
    """`splits`: the splits the job reads (None: all the manifest lists)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    class PreparedDataset(MetaDataset):
        """A MetaDataset with a profile (MetaDataset has none): the manifest's counts."""

        def __init__(self, source, name: str, digest: str, profile: dict):
            super().__init__(source, name=name, digest=digest)
            self._profile = profile

        @property
        def profile(self) -> dict:
            return self._profile

        def to_dict(self) -> dict:
            return {**super().to_dict(), "profile": json.dumps(self._profile)}

    for name, (path, version) in prepared_datasets(params, inputs).items():
        manifest = json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8"))
        read = {split: rows for split, rows in manifest["kept_per_split"].items() if splits is None or split in splits}
        if not read:
            continue
        profile = {key: manifest[key] for key in ("inputs", "kept", "rejected", "kept_per_split",
                                                  "kept_per_split_class") if key in manifest}
        dataset = PreparedDataset(resolve_dataset_source(str(Path(path).resolve())), name, version, profile)
        # One input per dataset and run (MLflow keeps only the first of a dataset's inputs
        # to a run): the splits read are its context, their row counts its tags.
        mlflow.log_input(dataset, context="+".join(read),
                         tags={"rows": str(sum(read.values())), **{f"rows.{s}": str(n) for s, n in read.items()}})
