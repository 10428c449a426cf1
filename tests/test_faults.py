"""Faults end cleanly: a truncated checkpoint or model names the file and the way out;
a killed job's temp folders are removed before its stage runs again and never count
as data; its MLflow run is closed as KILLED by the next run of the same job."""

import socket
import subprocess
import sys

import pytest
import torch

from fer_pipeline.common.atomic import remove_dead_temps
from fer_pipeline.dag.fingerprint import tree_fingerprint
from fer_pipeline.models.bundle import load_bundle
from fer_pipeline.train import checkpoint


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_truncated_checkpoint_names_the_file_and_what_to_delete(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save(path, model={"w": torch.arange(1000.0)}, step=3)
    assert checkpoint.load(path)["step"] == 3
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoint.CorruptCheckpointError) as err:
        checkpoint.load(path)
    assert str(path) in str(err.value) and f"rm '{path}'" in str(err.value)


def test_a_zero_byte_model_file_is_a_clear_error_not_a_raw_traceback(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(checkpoint.CorruptCheckpointError, match="model.pt cannot be read"):
        load_bundle(tmp_path)


def test_temps_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    final = tmp_path / "parts" / "0"
    final.mkdir(parents=True)
    dead, live = _dead_pid(), subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / "parts" / f".0.tmp-{dead}").mkdir()
        (tmp_path / "parts" / f".0.tmp-{dead}" / "shard.parquet").write_bytes(b"x" * 100)
        (tmp_path / "parts" / f".1.tmp-{live.pid}").mkdir()
        (final / f".manifest.json.tmp-{dead}").write_text("{")
        (final / "manifest.json").write_text("{}")
        removed = remove_dead_temps(final)
        assert sorted(p.name for p in removed) == sorted([f".0.tmp-{dead}", f".manifest.json.tmp-{dead}"])
        assert (tmp_path / "parts" / f".1.tmp-{live.pid}").is_dir(), "a running job's temp folder is left alone"
        assert (final / "manifest.json").is_file()
    finally:
        live.kill()


def test_temp_names_never_count_as_data(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "shard-0.parquet").write_bytes(b"rows")
    before = tree_fingerprint(data, cache_dir=tmp_path / "cache")
    (data / ".shard-1.parquet.tmp-4242").write_bytes(b"half")
    (data / ".sub.tmp-4242").mkdir()
    (data / ".sub.tmp-4242" / "x").write_bytes(b"half")
    assert tree_fingerprint(data, cache_dir=tmp_path / "cache2") == before
    (data / "shard-1.parquet").write_bytes(b"more rows")
    assert tree_fingerprint(data, cache_dir=tmp_path / "cache3") != before


def test_a_killed_jobs_mlflow_run_is_closed_by_the_next_run_of_that_job(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from fer_pipeline.dag.tracking import _close_killed_runs

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.create_experiment("t", artifact_location=(tmp_path / "art").as_uri())
    host = socket.gethostname()
    killed = client.create_run(exp, tags={"job": "train_meta", "host": host, "pid": str(_dead_pid())})
    other_job = client.create_run(exp, tags={"job": "evaluate@meta", "host": host, "pid": str(_dead_pid())})
    running = client.create_run(exp, tags={"job": "train_meta", "host": host, "pid": str(subprocess.os.getpid())})
    _close_killed_runs(mlflow, exp, "train_meta", host)
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    assert client.get_run(running.info.run_id).info.status == "RUNNING", "a live process keeps its run"
    assert client.get_run(other_job.info.run_id).info.status == "RUNNING", "only the same job's runs"
