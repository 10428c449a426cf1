"""A queued DVC sweep for real, as the README runs one: `dvc exp run --queue -S ...`,
`dvc queue start`, then `dvc exp show` lists the experiment, and its MLflow run, in the
project's own store (not the temporary copy DVC ran it in), is found by the experiment's
name. The slice swept is the cheapest stage (`generate`, at the test sizes) so the
whole queue round-trip stays within about a minute on 2 cores (about 15 s of CPU): not
marked `integration`, which would also put it ahead of the two DAG runs that
tests/conftest.py starts first."""

import json
import time

from conftest import make_project_copy, run, tiny_params

def _wait_for_queue(proj, name: str, timeout: float = 300.0) -> str:
    """The experiment's final state in `dvc queue status` (Success / Failed). Polled
    through git (the experiment's ref appears when it succeeds) and only now and then
    through `dvc queue status`: each DVC command takes the repository's lock, which the
    worker needs too, and a worker that cannot get it fails the experiment."""
    deadline = time.monotonic() + timeout
    next_status = time.monotonic() + 20
    while time.monotonic() < deadline:
        refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], proj).stdout.split()
        if any(ref.endswith(f"/{name}") for ref in refs) or time.monotonic() > next_status:
            rows = [line.split() for line in run(["dvc", "queue", "status"], proj).stdout.splitlines()]
            state = next((row[-1] for row in rows if len(row) > 1 and row[1] == name), None)
            if state not in (None, "Queued", "Running"):
                return state
            next_status = time.monotonic() + 20
        time.sleep(1)
    raise AssertionError(f"experiment {name} still queued or running after {timeout:.0f} s")


def _experiments(proj) -> dict[str, dict]:
    """`dvc exp show --json`: each experiment of the baseline, by name, with its params."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], proj).stdout)
    out = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp["revs"]:
                params = rev["data"]["params"]["params.yaml"]["data"]
                out[exp["name"]] = {"rev": rev["rev"], "params": params}
    return out


def test_a_queued_sweep_shows_in_dvc_and_its_runs_carry_the_experiment_name(tmp_path):
    from mlflow.tracking import MlflowClient

    params = tiny_params()
    proj = make_project_copy(tmp_path / "clone", params)
    run(["fer", "dvc-yaml"], proj)
    if run(["git", "status", "--porcelain"], proj).stdout.strip():  # the test sizes may render another dvc.yaml
        run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "dvc.yaml for these params"], proj)
    baseline_seed = params["generate"]["seed"]

    # A one-value sweep (the README's `-S 'key=v1,v2'` syntax, one value), of one stage.
    run(["dvc", "exp", "run", "--queue", "-S", "generate.seed=7", "--name", "seed7", "generate"], proj)
    run(["dvc", "queue", "start", "-j", "1"], proj)
    state = _wait_for_queue(proj, "seed7")
    assert state == "Success", run(["dvc", "queue", "logs", "seed7"], proj, check=False).stdout[-4000:]

    experiments = _experiments(proj)
    assert set(experiments) == {"seed7"}
    assert experiments["seed7"]["params"]["generate"]["seed"] == 7
    table = run(["dvc", "exp", "show", "--no-pager", "--drop", ".*", "--keep", "Experiment|State|generate.seed"],
                proj).stdout
    assert "seed7" in table and "Success" in table
    run(["dvc", "queue", "stop"], proj, check=False)  # its worker exits when idle; this makes sure

    # The experiment ran in a temporary copy (.dvc/tmp/exps/...), yet logged to the
    # project's store, tagged with its name and carrying the swept value.
    assert not list((proj / ".dvc/tmp").rglob("mlflow.db")), "no store left behind in DVC's temporary copy"
    client = MlflowClient(tracking_uri=f"sqlite:///{proj / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(params["tracking"]["experiment"])
    [mlflow_run] = client.search_runs([experiment.experiment_id], filter_string="tags.dvc_exp_name = 'seed7'")
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.tags["job"] == "generate"
    assert mlflow_run.data.params["generate.seed"] == "7"
    head = run(["git", "rev-parse", "HEAD"], proj).stdout.strip()
    assert mlflow_run.data.tags["dvc_exp_baseline"] == head
    assert mlflow_run.info.artifact_uri.startswith((proj / params["tracking"]["artifact_root"]).as_uri())

    # The workspace is the baseline's: the queued run changed nothing in it.
    assert f"seed: {baseline_seed}" in (proj / "params.yaml").read_text()
    assert not (proj / params["generate"]["out_dir"]).exists()
