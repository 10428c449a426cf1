"""Input partitions (scatter) and gather, on FaceSynth data in all five real formats."""

import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from fer_pipeline.data.io.partition import Partition
from fer_pipeline.data.io.readers import reader_for
from fer_pipeline.data.io.records import Reject
from fer_pipeline.data.prep.gather import GatherError, gather_parts
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth import writers
from fer_pipeline.data.synth.world import World

FORMATS = {  # format -> (writer, tiny config, whether it takes an audit folder)
    "rafdb_basic": (writers.write_rafdb_basic, {"identities": 4, "train_images": 16, "test_images": 8}, False),
    "ms1m_recordio": (writers.write_ms1m_recordio,
                      {"identities": 3, "images_per_identity": 4, "blend_fraction": 0.25}, True),
    "affectnet_manual": (writers.write_affectnet_manual,
                         {"identities": 4, "train_images": 12, "test_per_class": 1}, False),
    "affwild2_expr": (writers.write_affwild2_expr,
                      {"train_videos": 3, "test_videos": 2, "frames_per_video": 6, "invalid_rate": 0.15,
                       "missing_rate": 0.15}, True),
    "webface_folders": (writers.write_webface_folders,
                        {"identities": 5, "images_per_identity": 2, "blend_fraction": 0.0}, True),
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("facesynth")
    world = World(seed=5, render_size=64, nuisance_strength=0.3, intensity=(0.5, 1.0))
    roots = {}
    for fmt, (write, cfg, audited) in FORMATS.items():
        root = base / fmt
        if fmt in ("rafdb_basic", "affectnet_manual"):
            write(world, root, cfg, 0.0)
        else:
            write(world, root, cfg, base / "audit")
        roots[fmt] = root
    return roots


def _sources(items) -> list[str]:
    return [i.source for i in items]


def test_partition_owns_each_key_exactly_once():
    parts = [Partition(k, 3) for k in range(3)]
    keys = [f"video_{n}" for n in range(200)]
    owners = [[p.index for p in parts if p.owns(key)] for key in keys]
    assert all(len(o) == 1 for o in owners)
    counts = Counter(o[0] for o in owners)
    assert set(counts) == {0, 1, 2} and min(counts.values()) > 40, "a stable hash spreads keys over all parts"
    assert Partition(0, 1).owns("anything")
    with pytest.raises(ValueError):
        Partition(3, 3)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_partitions_split_every_record_into_exactly_one_part(datasets, fmt):
    read = reader_for(fmt)
    whole = list(read(datasets[fmt]))
    parts = [list(read(datasets[fmt], part=Partition(k, 3))) for k in range(3)]
    assert sorted(_sources(whole)) == sorted(s for p in parts for s in _sources(p))
    for part in parts:  # each part keeps the whole-dataset order of its records
        order = [_sources(whole).index(s) for s in _sources(part)]
        assert order == sorted(order)
    assert sum(isinstance(i, Reject) for p in parts for i in p) == sum(isinstance(i, Reject) for i in whole)


def test_affwild2_videos_and_webface_identities_stay_whole(datasets):
    # Sources: cropped_aligned/<video>/<NNNNN>.jpg (records and frame rejects), <identity>/<n>.jpg.
    for fmt, unit in (("affwild2_expr", lambda source: source.split("/")[1]),
                      ("webface_folders", lambda source: source.split("/")[0])):
        owner: dict[str, int] = {}
        for k in range(2):
            for item in reader_for(fmt)(datasets[fmt], part=Partition(k, 2)):
                assert owner.setdefault(unit(item.source), k) == k, f"{fmt}: {item.source}'s unit is split"
        assert len(set(owner.values())) == 2, f"{fmt}: both parts got some units"


def _prepare_parts(fmt, root, out, count):
    return [prepare_dataset("demo", fmt, str(root), out / f"part{k}", 64, 90, 4, 10, part=Partition(k, count))
            for k in range(count)]


def _rows(dataset_dir):
    table = pq.read_table(sorted(dataset_dir.glob("shard-*.parquet")))
    return sorted(zip(table["source"].to_pylist(), table["image"].to_pylist()))


@pytest.mark.parametrize("fmt", ["rafdb_basic", "affwild2_expr"])
def test_gather_of_parts_equals_one_whole_prepare(datasets, tmp_path, fmt):
    whole = prepare_dataset("demo", fmt, str(datasets[fmt]), tmp_path / "whole", 64, 90, 4, 10)
    manifests = _prepare_parts(fmt, datasets[fmt], tmp_path, 3)
    gathered = gather_parts([tmp_path / f"part{k}" for k in range(3)], tmp_path / "gathered")

    assert _rows(tmp_path / "gathered") == _rows(tmp_path / "whole"), "same crops, byte for byte"
    for key in ("inputs", "kept", "rejected", "kept_per_split", "kept_per_split_class", "rejected_per_reason"):
        assert gathered[key] == whole[key], key
    assert gathered["inputs"] == gathered["kept"] + gathered["rejected"]
    assert gathered["parts"] == 3 and gathered["part_digests"] == [m["content_digest"] for m in manifests]
    assert gathered["shards"] == sorted(gathered["shards"]), "file order is partition order, then shard order"
    assert json.loads((tmp_path / "gathered/manifest.json").read_text()) == gathered
    rejects = pq.read_table(tmp_path / "gathered/rejects.parquet").to_pylist()
    assert sorted(r["source"] for r in rejects) == sorted(
        r["source"] for r in pq.read_table(tmp_path / "whole/rejects.parquet").to_pylist())


def test_gather_refuses_an_incomplete_or_mixed_set(datasets, tmp_path):
    root = datasets["rafdb_basic"]
    _prepare_parts("rafdb_basic", root, tmp_path, 2)
    with pytest.raises(GatherError, match="not parts 0..0 of 1"):
        gather_parts([tmp_path / "part1"], tmp_path / "out")
    with pytest.raises(GatherError, match="part9/manifest.json is missing"):
        gather_parts([tmp_path / "part0", tmp_path / "part9"], tmp_path / "out")
    prepare_dataset("demo", "rafdb_basic", str(root), tmp_path / "other", 32, 90, 4, 10, part=Partition(1, 2))
    with pytest.raises(GatherError, match="disagree on 'image_size'"):
        gather_parts([tmp_path / "part0", tmp_path / "other"], tmp_path / "out")
    assert not (tmp_path / "out").exists(), "nothing half-written at the final path"
