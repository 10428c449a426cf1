"""The team MLflow for real: `fer server` starts PostgreSQL and `mlflow server` on free
local ports, one real stage (`fer evaluate`) logs to it over HTTP, and the run is read
back with MlflowClient (params, metrics, tags, the confusion-matrix artifact downloaded
through the server's artifact proxy); `fer server --stop` then stops both services.
PostgreSQL that cannot start is a failure with its reason, never a skip."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import torch
import yaml

from conftest import BIN, tiny_params, tool_env
from fer_pipeline.common.labels import ClassSet
from fer_pipeline.common.params import flatten
from fer_pipeline.data.prep.prepare import prepare_dataset
from fer_pipeline.data.synth.world import World
from fer_pipeline.data.synth.writers import write_rafdb_basic
from fer_pipeline.models.bundle import save_bundle
from fer_pipeline.models.factory import build_model


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _evaluate_inputs(proj: Path, params: dict) -> None:
    """What `fer evaluate --model supervised` reads, each with its producer's stamp: the
    tiny RAF-DB-like set prepared, and an untrained small network (the stage scores any
    bundle; training it is not what this test is about)."""
    gen = params["generate"]
    world = World(gen["seed"], gen["render_size"], gen["nuisance_strength"], tuple(gen["intensity"]))
    write_rafdb_basic(world, proj / "raw/rafdb", gen["rafdb"], gen["label_noise"])
    prep = params["prepare"]
    prepared = proj / prep["out_dir"] / "rafdb"
    prepare_dataset("rafdb", "rafdb_basic", str(proj / "raw/rafdb"), prepared, prep["image_size"],
                    prep["jpeg_quality"], prep["row_group_size"], prep["rows_per_shard"])
    (prepared / "_stage.json").write_text("{}")
    sup = params["train"]["supervised"]
    torch.manual_seed(0)
    model_dir = proj / sup["out_dir"]
    save_bundle(build_model("small_cnn", len(ClassSet.named(sup["class_set"]).classes)), "small_cnn",
                ClassSet.named(sup["class_set"]), sup["input_size"], model_dir / "model.pt")
    (model_dir / "_stage.json").write_text("{}")


def _wait_until_serving(server: subprocess.Popen, port: int, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"fer server exited ({server.returncode}) before serving:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"fer server did not serve on port {port} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def _stop(proj: Path, server: subprocess.Popen, started: list[psutil.Process]) -> subprocess.CompletedProcess | None:
    """`fer server --stop`; if that fails, SIGTERM (the same clean path), and as a last
    resort the services' processes are killed so that no test leaves a daemon behind."""
    stop = None
    if server.poll() is None:
        stop = subprocess.run([str(BIN / "fer"), "server", "--stop"], cwd=proj, env=tool_env(), capture_output=True,
                              text=True, timeout=120)
    try:
        server.wait(60)
    except subprocess.TimeoutExpired:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
    for proc in started:
        if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
            proc.kill()
    return stop


def test_a_stage_logs_to_the_team_server_and_reads_back_through_it(tmp_path):
    from mlflow.tracking import MlflowClient

    port, db_port = _free_port(), _free_port()
    # PostgreSQL runs as the `postgres` user when the tests run as root: its folder must
    # be reachable by that user, which pytest's 0700 tmp_path is not.
    server_dir = Path(tempfile.mkdtemp(prefix="fer-server-test-"))
    server_dir.chmod(0o755)
    params = tiny_params()
    params["tracking"]["experiment"] = "team-server-test"
    params["tracking"]["server"].update({"dir": str(server_dir), "port": port, "db_port": db_port, "workers": 1})
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "params"]):
        subprocess.run(cmd, cwd=proj, check=True, capture_output=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=proj, capture_output=True, text=True,
                          check=True).stdout.strip()
    _evaluate_inputs(proj, params)

    log = tmp_path / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([str(BIN / "fer"), "server"], cwd=proj, env=tool_env(), stdout=out,
                                  stderr=subprocess.STDOUT)
    started: list[psutil.Process] = []
    try:
        _wait_until_serving(server, port, log)
        started = psutil.Process(server.pid).children(recursive=True)
        assert _listening(db_port), "PostgreSQL listens on its own port"
        url = f"http://127.0.0.1:{port}"
        env = {**tool_env(), "MLFLOW_TRACKING_URI": url, "FER_PIPELINE_ID": "team-server-test"}
        proc = subprocess.run([sys.executable, "-m", "fer_pipeline.cli", "evaluate", "--model", "supervised"],
                              cwd=proj, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-4000:]
        out_dir = proj / params["evaluate"]["out_dir"] / "supervised"
        local_metrics = json.loads((out_dir / "metrics.json").read_text())

        client = MlflowClient(tracking_uri=url)
        experiment = client.get_experiment_by_name("team-server-test")
        assert experiment.artifact_location.startswith("mlflow-artifacts:"), "the server chose where artifacts go"
        # The job's run; the other is the parent that groups the invocation's jobs (dag/tracking.py).
        [run] = client.search_runs([experiment.experiment_id], filter_string="tags.kind = 'job'")
        assert run.info.status == "FINISHED"
        evaluate_params = {k: v for k, v in run.data.params.items() if k.startswith("evaluate.")}
        assert evaluate_params == {k: str(v) for k, v in flatten(params["evaluate"], "evaluate.").items()}
        assert run.data.metrics["mean_class_accuracy"] == pytest.approx(local_metrics["mean_class_accuracy"])
        assert run.data.metrics["macro_f1"] == pytest.approx(local_metrics["macro_f1"])
        tags = run.data.tags
        assert tags["stage"] == "evaluate" and tags["job"] == "evaluate@supervised"
        assert tags["git_commit"] == head and tags["pipeline_id"] == "team-server-test"
        assert {"data_version.rafdb", "data_version.models/supervised"} <= set(tags)

        # The artifact went up through the server's proxy into its destination, and comes
        # back down the same way: the client needs no access to that folder.
        assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"confusion_matrix.png", "metrics.json"}
        fetched = client.download_artifacts(run.info.run_id, "confusion_matrix.png", str(tmp_path))
        assert Path(fetched).read_bytes() == (out_dir / "confusion_matrix.png").read_bytes()
        stored = list((server_dir / "artifacts").rglob("confusion_matrix.png"))
        assert len(stored) == 1 and run.info.run_id in stored[0].parts
        assert not (proj / params["tracking"]["artifact_root"]).exists() and not (proj / "mlflow.db").exists()

        # The run lives in PostgreSQL, not in some fallback store.
        import psycopg2

        password = (server_dir / "pgpass").read_text().strip().rsplit(":", 1)[1]
        conn = psycopg2.connect(host="127.0.0.1", port=db_port, user="mlflow", dbname="mlflow", password=password)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
                assert cur.fetchall() == [("FINISHED",)]
        finally:
            conn.close()
    finally:
        stop = _stop(proj, server, started)
        shutil.rmtree(server_dir, ignore_errors=True)
    assert stop is not None and stop.returncode == 0 and "stopped the server" in stop.stdout, stop
    assert server.returncode == 0, log.read_text()[-3000:]
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in started), "a service outlived stop"
    assert not _listening(port) and not _listening(db_port)
