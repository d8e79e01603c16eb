"""export --dest mlflow against a real MLflow tracking server (the `mlflow` package's
`mlflow server`, sqlite backend, on loopback), read back through MLflow's own client: one
run per job however often it is exported, its metrics, params, tags and artifacts; a dead
server is one line and exit 3 within seconds. No Docker; marked integration (it starts a
server, ~10 s)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher import __version__, cli
from launcher.commands.export import export
from tests.unit.fake_runs import snapshot

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The server and its workers (its process group): SIGTERM, then SIGKILL after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        start_new_session=True,  # its workers in its own process group, stopped with it
        stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.3)
        yield uri
    finally:
        stop(proc)
        log.close()


def test_export_twice_one_run_per_job(server, finished, capsys, tmp_path):
    out, run = finished
    before = snapshot(out)
    o = [f"export.mlflow.tracking_uri={server}", "export.mlflow.experiment_name=exp-a",
         "export.mlflow.tags.team=evals", "export.mlflow.description=first look",
         "export.mlflow.log_logs=true"]
    assert export(out, [run.invocation_id], "mlflow", o) == 0
    said = capsys.readouterr().out
    assert "2 runs created, 0 updated" in said and len(said.splitlines()) == 1  # no mlflow URLs
    assert export(out, [run.invocation_id], "mlflow", o) == 0
    assert "0 runs created, 2 updated" in capsys.readouterr().out
    assert snapshot(out) == before  # the results as they were

    client = mlflow.tracking.MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("exp-a")
    found = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["eval_launcher.job_id"] for r in found) == [
        f"{run.invocation_id}.0", f"{run.invocation_id}.1"]
    by_task = {r.data.tags["eval_launcher.task"]: r for r in found}
    gsm = by_task["gsm8k"]
    assert gsm.info.run_name == f"{run.invocation_id}.0"
    assert gsm.info.status == "FINISHED"
    assert gsm.data.metrics["accuracy"] == 0.5
    assert gsm.data.metrics["accuracy_stderr"] == pytest.approx((0.25 / 3) ** 0.5)
    assert by_task["humaneval"].data.metrics["accuracy"] == pytest.approx(2 / 3)
    # one value per metric, however often exported
    assert len(client.get_metric_history(gsm.info.run_id, "accuracy")) == 1
    assert gsm.data.params["task"] == "gsm8k"
    assert gsm.data.params["model_id"] == "m-a"
    assert gsm.data.params["endpoint_url"] == "http://ep:8000/v1/chat/completions"
    assert any(k.startswith("params.") for k in gsm.data.params)
    tags = gsm.data.tags
    assert tags["eval_launcher.invocation_id"] == run.invocation_id
    assert tags["eval_launcher.version"] == __version__
    assert tags["team"] == "evals" and tags["mlflow.note.content"] == "first look"
    names = {a.path for a in client.list_artifacts(gsm.info.run_id)}
    assert {"results.yml", "samples.jsonl", "logs"} <= names
    local = client.download_artifacts(gsm.info.run_id, "samples.jsonl", str(tmp_path))
    job_dir = next(j.job_dir for j in run.invocation().jobs if j.task == "gsm8k")
    assert Path(local).read_bytes() == (Path(job_dir) / "artifacts/samples.jsonl").read_bytes()


def test_one_job_only_and_no_logs_by_default(server, finished, capsys):
    out, run = finished
    o = [f"export.mlflow.tracking_uri={server}", "export.mlflow.experiment_name=exp-b"]
    assert export(out, [f"{run.invocation_id}.1"], "mlflow", o) == 0
    client = mlflow.tracking.MlflowClient(tracking_uri=server)
    (only,) = client.search_runs([client.get_experiment_by_name("exp-b").experiment_id])
    assert only.data.tags["eval_launcher.task"] == "humaneval"
    assert "logs" not in {a.path for a in client.list_artifacts(only.info.run_id)}


def test_dead_server_is_one_line_exit_3(finished, capsys, monkeypatch):
    out, run = finished
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    before = snapshot(out)
    monkeypatch.setattr("sys.argv", ["launcher", "export", run.invocation_id, "--output-dir",
                                     out, "--dest", "mlflow", "-o",
                                     f"export.mlflow.tracking_uri={uri}"])
    start = time.monotonic()
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert exc.value.code == 3, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert uri in err and "export.mlflow.tracking_uri" in err
    assert snapshot(out) == before
